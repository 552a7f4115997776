//! The verified-token cache: after a token verifies, later requests with the same token skip
//! the signature check.
//!
//! Key: SHA-256 of the whole token with the configuration generation. Value: the verified
//! token (shared, never copied), the deadline its `exp` (plus leeway) allows, and the key that
//! verified it. An entry is used only while the deadline has not passed and that key is still
//! in its issuer's current key set, so it never outlives the token, the key or the
//! configuration. Only successes are cached. Bounded by `cache.max_entries` (S3-FIFO
//! eviction); one entry of a typical 1 KiB access token costs about 1.5 KiB.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use crate::authn::VerifiedToken;
use crate::config::CacheSettings;
use crate::jwk::VerifyingKey;

/// A token's cache key: the SHA-256 of the whole token and the configuration generation, so
/// the cache never holds the token itself and an entry from before a reload never matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
    generation: u64,
    digest: [u8; 32],
}

/// What a cache hit needs to be trusted again.
#[derive(Debug)]
pub struct Entry {
    /// The verified token, shared with every request that hits the entry.
    pub token: Arc<VerifiedToken>,
    /// `exp` + leeway, in seconds since the epoch.
    pub deadline: f64,
    /// The key that verified the signature.
    pub key: Arc<VerifyingKey>,
}

/// The verified-token cache of one configuration generation: disabled (every lookup misses,
/// nothing is kept) unless `cache.enabled`, else at most `cache.max_entries` entries.
pub struct TokenCache {
    entries: Option<quick_cache::sync::Cache<CacheKey, Arc<Entry>>>,
    generation: u64,
    hits: Counter,
    misses: Counter,
}

impl TokenCache {
    /// An empty cache for configuration `generation`, counting hits and misses into counters
    /// of its own.
    pub fn new(settings: &CacheSettings, generation: u64) -> TokenCache {
        TokenCache::with_counters(settings, generation, Counter::default(), Counter::default())
    }

    /// Counting into `hits` and `misses` (the process's metrics, which outlive a reload).
    pub fn with_counters(
        settings: &CacheSettings,
        generation: u64,
        hits: Counter,
        misses: Counter,
    ) -> TokenCache {
        TokenCache {
            entries: settings
                .enabled
                .then(|| quick_cache::sync::Cache::new(settings.max_entries)),
            generation,
            hits,
            misses,
        }
    }

    /// Whether the configuration enables the cache (`cache.enabled`).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The key of `token` in this cache (SHA-256 of its bytes, with this cache's generation).
    pub fn key(&self, token: &str) -> CacheKey {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        CacheKey {
            generation: self.generation,
            digest: bytes,
        }
    }

    /// The entry under `key` if one is cached and `usable` says it still is (deadline, key);
    /// an unusable one is dropped. Counts a hit only for an entry that is returned.
    pub fn get(&self, key: &CacheKey, usable: impl Fn(&Entry) -> bool) -> Option<Arc<Entry>> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(key);
        let found = match entry {
            Some(entry) if usable(&entry) => Some(entry),
            Some(_) => {
                entries.remove(key);
                None
            }
            None => None,
        };
        let counter = if found.is_some() {
            &self.hits
        } else {
            &self.misses
        };
        counter.inc();
        found
    }

    /// Caches `entry` under `key`, evicting as the bound requires; nothing when disabled.
    pub fn insert(&self, key: CacheKey, entry: Entry) {
        if let Some(entries) = &self.entries {
            entries.insert(key, Arc::new(entry));
        }
    }

    /// The number of entries held (0 when disabled).
    pub fn len(&self) -> usize {
        self.entries.as_ref().map_or(0, |e| e.len())
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// (hits, misses) counted so far.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }
}
