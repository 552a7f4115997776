//! `upstream:` (or `--upstream`): where verified requests go, and how connections to it
//! are made and kept.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::Issues;
use crate::config::raw::RawUpstream;
use crate::config::{Overrides, UpstreamSettings};

/// `--upstream` replaces `upstream.url` (the file's other `upstream:` fields still apply);
/// `None` when neither names one.
pub(super) fn upstream(
    issues: &mut Issues,
    raw: Option<&RawUpstream>,
    overrides: &Overrides,
) -> Option<UpstreamSettings> {
    match (&overrides.upstream, raw) {
        (Some(url), Some(raw_upstream)) => Some(settings(issues, "--upstream", url, raw_upstream)),
        (Some(url), None) => Some(settings(issues, "--upstream", url, &RawUpstream::default())),
        (None, Some(raw_upstream)) => Some(settings(
            issues,
            "upstream.url",
            &raw_upstream.url,
            raw_upstream,
        )),
        (None, None) => None,
    }
}

/// The upstream at `url_text` (given at `at`): an http(s) base URL without query, timeouts
/// above zero, a bounded idle pool, and TLS settings only for https.
fn settings(issues: &mut Issues, at: &str, url_text: &str, raw: &RawUpstream) -> UpstreamSettings {
    let url = match Url::parse(url_text) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none() =>
        {
            url
        }
        _ => {
            issues.add(
                at,
                format!("`{url_text}` is not an http(s) URL"),
                "write the upstream's base URL, e.g. http://127.0.0.1:8080",
            );
            Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable_url())
        }
    };
    let timeout = issues.duration(
        "upstream.timeout",
        raw.timeout.as_deref(),
        Duration::from_secs(60),
    );
    let connect_timeout = issues.duration(
        "upstream.connect_timeout",
        raw.connect_timeout.as_deref(),
        Duration::from_secs(5),
    );
    let pool_idle_timeout = issues.duration(
        "upstream.pool_idle_timeout",
        raw.pool_idle_timeout.as_deref(),
        Duration::from_secs(90),
    );
    let pool_max_idle = raw.pool_max_idle.unwrap_or(32);
    if pool_max_idle > 10_000 {
        issues.add(
            "upstream.pool_max_idle",
            format!("{pool_max_idle} is out of range"),
            "use 0 to 10000 idle connections; the default is 32",
        );
    }
    if timeout.is_zero() || connect_timeout.is_zero() {
        issues.add(
            "upstream",
            "timeouts must be above zero",
            "the defaults are timeout: 60s, connect_timeout: 5s",
        );
    }
    if (raw.ca_file.is_some() || raw.server_name.is_some()) && url.scheme() != "https" {
        issues.add(
            "upstream",
            "ca_file and server_name only apply to an https upstream",
            "use an https:// URL or remove them",
        );
    }
    if let Some(ca) = &raw.ca_file {
        if !std::path::Path::new(ca).is_file() {
            issues.add(
                "upstream.ca_file",
                format!("`{ca}` is not a readable file"),
                "give the PEM file of the CA that signed the upstream's certificate",
            );
        }
    }
    UpstreamSettings {
        url,
        http2: raw.http2,
        timeout,
        connect_timeout,
        pool_idle_timeout,
        pool_max_idle,
        preserve_host: raw.preserve_host.unwrap_or(true),
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
        server_name: raw.server_name.clone(),
    }
}

fn unreachable_url() -> Url {
    // Only reached if a literal URL fails to parse, which it cannot.
    Url::parse("http://localhost/").unwrap_or_else(|_| std::process::abort())
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
            ("upstream: { url: \"ftp://files.example.com\" }\n", "upstream.url", "`ftp://files.example.com` is not an http(s) URL"),
            ("upstream: { url: \"http://127.0.0.1:8080/?a=b\" }\n", "upstream.url", "is not an http(s) URL"),
            ("upstream: { url: \"127.0.0.1:8080\" }\n", "upstream.url", "`127.0.0.1:8080` is not an http(s) URL"),
            ("upstream: { timeout: 5s }\n", "upstream.url", "`` is not an http(s) URL"),
            ("upstream: { url: \"http://u\", pool_max_idle: 10001 }\n", "upstream.pool_max_idle", "10001 is out of range"),
            ("upstream: { url: \"http://u\", timeout: 0s }\n", "upstream", "timeouts must be above zero"),
            ("upstream: { url: \"http://u\", connect_timeout: 0s }\n", "upstream", "timeouts must be above zero"),
            ("upstream: { url: \"http://u\", server_name: u.internal }\n", "upstream", "ca_file and server_name only apply to an https upstream"),
            ("upstream: { url: \"http://u\", ca_file: Cargo.toml }\n", "upstream", "ca_file and server_name only apply to an https upstream"),
            ("upstream: { url: \"https://u\", ca_file: missing-ca.pem }\n", "upstream.ca_file", "`missing-ca.pem` is not a readable file"),
            // The shared duration rule, for each duration of this section.
            ("upstream: { url: \"http://u\", timeout: 1 min }\n", "upstream.timeout", "`1 min` is not a duration"),
            ("upstream: { url: \"http://u\", connect_timeout: fast }\n", "upstream.connect_timeout", "`fast` is not a duration"),
            ("upstream: { url: \"http://u\", pool_idle_timeout: 90 s. }\n", "upstream.pool_idle_timeout", "`90 s.` is not a duration"),
        ]);
        let cli = Overrides {
            upstream: Some("localhost:8080".into()),
            ..Overrides::default()
        };
        assert_rows_with(&cli, &[
            ("", "--upstream", "`localhost:8080` is not an http(s) URL"),
            ("upstream: { url: \"http://u\" }\n", "--upstream", "`localhost:8080` is not an http(s) URL"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "upstream: { url: \"http://127.0.0.1:8080\" }\n",
            "upstream: { url: \"https://api.internal/base/\", ca_file: Cargo.toml, server_name: api.internal, pool_max_idle: 10000, pool_idle_timeout: 0s }\n",
            "upstream: { url: \"http://u\", pool_max_idle: 0, timeout: 1ms, connect_timeout: 1ms, http2: true, preserve_host: false }\n",
        ]);
    }

    #[test]
    fn defaults_and_overrides() {
        let none = settings("").ok().map(|s| s.upstream.is_none());
        assert_eq!(none, Some(true));
        let Ok(s) = settings("upstream: { url: \"http://127.0.0.1:8080\" }\n") else {
            panic!("valid")
        };
        let Some(u) = s.upstream else {
            panic!("an upstream")
        };
        assert_eq!(
            (u.timeout, u.connect_timeout, u.pool_idle_timeout),
            (
                Duration::from_secs(60),
                Duration::from_secs(5),
                Duration::from_secs(90)
            )
        );
        assert_eq!(
            (u.pool_max_idle, u.preserve_host, u.http2),
            (32, true, false)
        );
        let cli = Overrides {
            upstream: Some("http://127.0.0.1:9000".into()),
            ..Overrides::default()
        };
        let Ok(s) = validate_with("upstream: { url: \"ftp://x\", timeout: 7s }\n", &cli) else {
            panic!("--upstream wins")
        };
        let Some(u) = s.upstream else {
            panic!("an upstream")
        };
        assert_eq!(
            (u.url.as_str(), u.timeout),
            ("http://127.0.0.1:9000/", Duration::from_secs(7))
        );
    }
}
