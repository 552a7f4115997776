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
