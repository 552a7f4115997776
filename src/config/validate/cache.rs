//! `cache:`: the verified-token cache.

use super::Issues;
use crate::config::raw::RawCache;
use crate::config::CacheSettings;

/// On by default with room for 100000 tokens; the size is checked only when it is on.
pub(super) fn cache(issues: &mut Issues, raw: &RawCache) -> CacheSettings {
    let cache = CacheSettings {
        enabled: raw.enabled.unwrap_or(true),
        max_entries: raw.max_entries.unwrap_or(100_000),
    };
    if cache.enabled && !(1..=10_000_000).contains(&cache.max_entries) {
        issues.add(
            "cache.max_entries",
            format!("{} is out of range", cache.max_entries),
            "use 1 to 10000000 (about 1.5 KiB each for a typical token), or enabled: false",
        );
    }
    cache
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("cache: { max_entries: 0 }\n", "cache.max_entries", "0 is out of range"),
            ("cache: { enabled: true, max_entries: 10000001 }\n", "cache.max_entries", "10000001 is out of range"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "cache: { max_entries: 1 }\n",
            "cache: { max_entries: 10000000 }\n",
            // Off, the size is not used.
            "cache: { enabled: false, max_entries: 0 }\n",
        ]);
        let s = settings("")
            .ok()
            .map(|s| (s.cache.enabled, s.cache.max_entries));
        assert_eq!(s, Some((true, 100_000)));
    }
}
