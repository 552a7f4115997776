//! `dev_issuer:`: the embedded issuer that mints tokens for local testing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::Issues;
use crate::config::raw::RawDevIssuer;
use crate::config::DevIssuerSettings;

const DEV_ISSUER_DEFAULT: &str = "urn:tokengate:dev";

/// The dev issuer's `iss`, audience, key file and token lifetime (1s to 1d, 1h by default).
/// It mints tokens for anyone, so `listen` (given at `listen_path`) must be a loopback
/// address.
pub(super) fn dev_issuer(
    issues: &mut Issues,
    raw: &RawDevIssuer,
    listen: SocketAddr,
    listen_path: &str,
) -> DevIssuerSettings {
    if !listen.ip().is_loopback() {
        issues.add(
            listen_path,
            format!(
                "the dev issuer mints tokens for anyone who asks, so it only runs on a loopback address, not {listen}"
            ),
            "listen on 127.0.0.1 or [::1], or remove the dev_issuer: block and configure a real issuer",
        );
    }
    let token_lifetime = issues.duration(
        "dev_issuer.token_lifetime",
        raw.token_lifetime.as_deref(),
        Duration::from_secs(3600),
    );
    if token_lifetime.is_zero() || token_lifetime > Duration::from_secs(86400) {
        issues.add(
            "dev_issuer.token_lifetime",
            "the token lifetime must be between 1s and 1d",
            "the default is 1h",
        );
    }
    let issuer = raw
        .issuer
        .clone()
        .unwrap_or_else(|| DEV_ISSUER_DEFAULT.into());
    let audience = raw
        .audience
        .clone()
        .unwrap_or_else(|| "api://default".into());
    if issuer.is_empty() || audience.is_empty() {
        issues.add(
            "dev_issuer",
            "the dev issuer's issuer and audience must not be empty",
            "omit them to use urn:tokengate:dev and api://default",
        );
    }
    DevIssuerSettings {
        issuer,
        audience,
        key_file: raw.key_file.as_ref().map(PathBuf::from),
        token_lifetime,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::testing::*;
    use crate::config::Overrides;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("listen: 0.0.0.0:3000\ndev_issuer: {}\n", "listen", "so it only runs on a loopback address, not 0.0.0.0:3000"),
            ("dev_issuer: { token_lifetime: 0s }\n", "dev_issuer.token_lifetime", "the token lifetime must be between 1s and 1d"),
            ("dev_issuer: { token_lifetime: 25h }\n", "dev_issuer.token_lifetime", "the token lifetime must be between 1s and 1d"),
            ("dev_issuer: { issuer: \"\" }\n", "dev_issuer", "the dev issuer's issuer and audience must not be empty"),
            ("dev_issuer: { audience: \"\" }\n", "dev_issuer", "the dev issuer's issuer and audience must not be empty"),
            // The shared duration rule.
            ("dev_issuer: { token_lifetime: an hour }\n", "dev_issuer.token_lifetime", "`an hour` is not a duration"),
        ]);
        let cli = Overrides {
            listen: Some("192.0.2.1:3000".into()),
            ..Overrides::default()
        };
        assert_rows_with(&cli, &[("dev_issuer: {}\n", "--listen", "not 192.0.2.1:3000")]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "dev_issuer: {}\n",
            "listen: \"[::1]:3000\"\ndev_issuer: { issuer: \"urn:test\", audience: api, key_file: dev.pem, token_lifetime: 1d }\n",
            "dev_issuer: { token_lifetime: 1s }\n",
        ]);
        let Ok(s) = settings("dev_issuer: {}\n") else {
            panic!("the dev issuer is valid")
        };
        let dev = s.dev_issuer.expect("a dev issuer");
        assert_eq!(
            (dev.issuer.as_str(), dev.audience.as_str()),
            ("urn:tokengate:dev", "api://default")
        );
        assert_eq!(
            (dev.key_file, dev.token_lifetime),
            (None, Duration::from_secs(3600))
        );
    }
}
