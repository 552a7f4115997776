//! `keys:`: how the keys of JWKS issuers are fetched, cached and kept.

use super::Issues;
use crate::config::raw::RawKeys;
use crate::config::KeyTimings;

/// The timings, [`KeyTimings::default`] for every field not written; `min_refresh` above
/// zero and not above `max_refresh`, 1 to 600 refetches a minute, a fetch timeout above zero.
pub(super) fn keys(issues: &mut Issues, raw: &RawKeys) -> KeyTimings {
    let d = KeyTimings::default();
    let timings = KeyTimings {
        refresh: issues.duration("keys.refresh", raw.refresh.as_deref(), d.refresh),
        min_refresh: issues.duration(
            "keys.min_refresh",
            raw.min_refresh.as_deref(),
            d.min_refresh,
        ),
        max_refresh: issues.duration(
            "keys.max_refresh",
            raw.max_refresh.as_deref(),
            d.max_refresh,
        ),
        refetch_per_minute: raw.refetch_per_minute.unwrap_or(d.refetch_per_minute),
        fetch_timeout: issues.duration(
            "keys.fetch_timeout",
            raw.fetch_timeout.as_deref(),
            d.fetch_timeout,
        ),
        max_stale: issues.duration("keys.max_stale", raw.max_stale.as_deref(), d.max_stale),
    };
    if timings.min_refresh > timings.max_refresh || timings.min_refresh.is_zero() {
        issues.add(
            "keys.min_refresh",
            "min_refresh must be above zero and not above max_refresh",
            "the defaults are 1m and 24h",
        );
    }
    if !(1..=600).contains(&timings.refetch_per_minute) {
        issues.add(
            "keys.refetch_per_minute",
            "must be from 1 to 600",
            "the default is 10, as Okta's jwksRequestsPerMinute",
        );
    }
    if timings.fetch_timeout.is_zero() {
        issues.add(
            "keys.fetch_timeout",
            "must be above zero",
            "the default is 5s",
        );
    }
    timings
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::config::KeyTimings;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("keys: { min_refresh: 0s }\n", "keys.min_refresh", "min_refresh must be above zero and not above max_refresh"),
            ("keys: { min_refresh: 2h, max_refresh: 1h }\n", "keys.min_refresh", "not above max_refresh"),
            ("keys: { refetch_per_minute: 0 }\n", "keys.refetch_per_minute", "must be from 1 to 600"),
            ("keys: { refetch_per_minute: 601 }\n", "keys.refetch_per_minute", "must be from 1 to 600"),
            ("keys: { fetch_timeout: 0s }\n", "keys.fetch_timeout", "must be above zero"),
            // The shared duration rule, for each duration of this section.
            ("keys: { refresh: 1 hour }\n", "keys.refresh", "`1 hour` is not a duration"),
            ("keys: { min_refresh: soon }\n", "keys.min_refresh", "`soon` is not a duration"),
            ("keys: { max_refresh: 1w }\n", "keys.max_refresh", "`1w` is not a duration"),
            ("keys: { fetch_timeout: 5sec }\n", "keys.fetch_timeout", "`5sec` is not a duration"),
            ("keys: { max_stale: never }\n", "keys.max_stale", "`never` is not a duration"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "keys: { min_refresh: 1h, max_refresh: 1h, refetch_per_minute: 1 }\n",
            "keys: { refresh: 5m, min_refresh: 1s, max_refresh: 1d, refetch_per_minute: 600, fetch_timeout: 1s, max_stale: 0s }\n",
        ]);
        let s = settings("").ok().map(|s| s.keys);
        assert_eq!(s, Some(KeyTimings::default()));
    }
}
