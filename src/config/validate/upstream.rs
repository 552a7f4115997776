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
