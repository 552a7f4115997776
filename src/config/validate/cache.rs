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
