//! `limits:` (what one client may make tokengate spend) and `shutdown_timeout`.

use std::time::Duration;

use super::Issues;
use crate::config::raw::RawLimits;
use crate::config::Limits;

/// Every size and count within its range and every timeout above zero; absent fields take
/// the defaults the hints name.
pub(super) fn limits(issues: &mut Issues, raw: &RawLimits) -> Limits {
    let max_token_bytes = raw.max_token_bytes.unwrap_or(16 * 1024);
    if !(1024..=1024 * 1024).contains(&max_token_bytes) {
        issues.add(
            "limits.max_token_bytes",
            format!("{max_token_bytes} is out of range"),
            "use a size from 1024 to 1048576 bytes; the default is 16384",
        );
    }
    let max_header_bytes = raw.max_header_bytes.unwrap_or(64 * 1024);
    if !(8 * 1024..=1024 * 1024).contains(&max_header_bytes) {
        issues.add(
            "limits.max_header_bytes",
            format!("{max_header_bytes} is out of range"),
            "use 8192 to 1048576 bytes; the default is 65536",
        );
    }
    let max_connections = raw.max_connections.unwrap_or(25_000);
    if max_connections == 0 {
        issues.add(
            "limits.max_connections",
            "must be above zero",
            "the default is 25000",
        );
    }
    let max_headers = raw.max_headers.unwrap_or(100);
    if !(16..=10_000).contains(&max_headers) {
        issues.add(
            "limits.max_headers",
            format!("{max_headers} is out of range"),
            "use 16 to 10000 header fields; the default is 100",
        );
    }
    let http2_max_concurrent_streams = raw.http2_max_concurrent_streams.unwrap_or(100);
    if !(1..=1000).contains(&http2_max_concurrent_streams) {
        issues.add(
            "limits.http2_max_concurrent_streams",
            format!("{http2_max_concurrent_streams} is out of range"),
            "use 1 to 1000 streams (RFC 9113 recommends at least 100); the default is 100",
        );
    }
    let http2_max_send_buffer = raw.http2_max_send_buffer.unwrap_or(64 * 1024);
    if !(16 * 1024..=16 * 1024 * 1024).contains(&http2_max_send_buffer) {
        issues.add(
            "limits.http2_max_send_buffer",
            format!("{http2_max_send_buffer} is out of range"),
            "use 16384 to 16777216 bytes per stream; the default is 65536",
        );
    }
    let limits = Limits {
        header_read_timeout: issues.duration(
            "limits.header_read_timeout",
            raw.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        idle_timeout: issues.duration(
            "limits.idle_timeout",
            raw.idle_timeout.as_deref(),
            Duration::from_secs(120),
        ),
        max_header_bytes,
        max_headers,
        max_token_bytes,
        max_connections,
        send_timeout: issues.duration(
            "limits.send_timeout",
            raw.send_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        body_read_timeout: issues.duration(
            "limits.body_read_timeout",
            raw.body_read_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        http2_max_concurrent_streams,
        http2_max_send_buffer,
    };
    for (field, value) in [
        ("header_read_timeout", limits.header_read_timeout),
        ("idle_timeout", limits.idle_timeout),
        ("send_timeout", limits.send_timeout),
        ("body_read_timeout", limits.body_read_timeout),
    ] {
        if value.is_zero() {
            issues.add(
                format!("limits.{field}"),
                "timeouts must be above zero",
                "the defaults are header_read_timeout: 10s, idle_timeout: 120s, send_timeout: 60s, body_read_timeout: 60s",
            );
        }
    }
    limits
}

/// How long a stopping server waits for requests in flight; 30s by default.
pub(super) fn shutdown_timeout(issues: &mut Issues, raw: Option<&str>) -> Duration {
    issues.duration("shutdown_timeout", raw, Duration::from_secs(30))
}
