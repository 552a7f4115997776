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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use std::time::Duration;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("limits: { max_token_bytes: 1023 }\n", "limits.max_token_bytes", "1023 is out of range"),
            ("limits: { max_token_bytes: 1048577 }\n", "limits.max_token_bytes", "1048577 is out of range"),
            ("limits: { max_header_bytes: 8191 }\n", "limits.max_header_bytes", "8191 is out of range"),
            ("limits: { max_header_bytes: 1048577 }\n", "limits.max_header_bytes", "1048577 is out of range"),
            ("limits: { max_connections: 0 }\n", "limits.max_connections", "must be above zero"),
            ("limits: { max_headers: 15 }\n", "limits.max_headers", "15 is out of range"),
            ("limits: { max_headers: 10001 }\n", "limits.max_headers", "10001 is out of range"),
            ("limits: { http2_max_concurrent_streams: 0 }\n", "limits.http2_max_concurrent_streams", "0 is out of range"),
            ("limits: { http2_max_concurrent_streams: 1001 }\n", "limits.http2_max_concurrent_streams", "1001 is out of range"),
            ("limits: { http2_max_send_buffer: 16383 }\n", "limits.http2_max_send_buffer", "16383 is out of range"),
            ("limits: { http2_max_send_buffer: 16777217 }\n", "limits.http2_max_send_buffer", "16777217 is out of range"),
            ("limits: { header_read_timeout: 0s }\n", "limits.header_read_timeout", "timeouts must be above zero"),
            ("limits: { idle_timeout: 0ms }\n", "limits.idle_timeout", "timeouts must be above zero"),
            ("limits: { send_timeout: 0 }\n", "limits.send_timeout", "timeouts must be above zero"),
            ("limits: { body_read_timeout: 0m }\n", "limits.body_read_timeout", "timeouts must be above zero"),
            // The shared duration rule, for each duration of this section.
            ("limits: { header_read_timeout: 10 secs }\n", "limits.header_read_timeout", "`10 secs` is not a duration"),
            ("limits: { idle_timeout: 2min }\n", "limits.idle_timeout", "`2min` is not a duration"),
            ("limits: { send_timeout: -1s }\n", "limits.send_timeout", "`-1s` is not a duration"),
            ("limits: { body_read_timeout: forever }\n", "limits.body_read_timeout", "`forever` is not a duration"),
            ("shutdown_timeout: 1.5s\n", "shutdown_timeout", "`1.5s` is not a duration"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "limits: { max_token_bytes: 1024, max_header_bytes: 8192, max_connections: 1, max_headers: 16, http2_max_concurrent_streams: 1, http2_max_send_buffer: 16384 }\n",
            "limits: { max_token_bytes: 1048576, max_header_bytes: 1048576, max_headers: 10000, http2_max_concurrent_streams: 1000, http2_max_send_buffer: 16777216 }\n",
            "limits: { header_read_timeout: 1ms, idle_timeout: 1s, send_timeout: 1m, body_read_timeout: 1h }\n",
            "shutdown_timeout: 0s\n",
        ]);
    }

    #[test]
    fn defaults() {
        let Ok(s) = settings("") else {
            panic!("the empty file is valid")
        };
        let l = &s.limits;
        assert_eq!(
            (
                l.max_token_bytes,
                l.max_header_bytes,
                l.max_connections,
                l.max_headers
            ),
            (16384, 65536, 25_000, 100)
        );
        assert_eq!(
            (l.http2_max_concurrent_streams, l.http2_max_send_buffer),
            (100, 65536)
        );
        assert_eq!(
            [
                l.header_read_timeout,
                l.idle_timeout,
                l.send_timeout,
                l.body_read_timeout
            ],
            [10, 120, 60, 60].map(Duration::from_secs)
        );
        assert_eq!(s.shutdown_timeout, Duration::from_secs(30));
    }
}
