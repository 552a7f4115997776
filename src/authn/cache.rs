//! The verified-token cache: after a token verifies, later requests with the same token skip
//! the signature check.
//!
//! Key: SHA-256 of the whole token. Value: the verified token (shared, never copied), the
//! deadline its `exp` (plus leeway) allows, the key that verified it, and the *revision* of
//! its issuer's settings it was verified under. An entry is used only while the deadline has
//! not passed, that key is still in its issuer's current key set, and the issuer's settings
//! are still those of that revision, so it never outlives the token, the key or the
//! issuer's configuration. A reload keeps the entries (the cache itself is carried over when
//! `cache:` is unchanged) and gives a new revision only to issuers whose settings changed
//! (audiences, algorithms, claims, leeway, profile, key source...): the entries of the
//! others stay usable, and no reload sets off a re-verification storm. Only successes are
//! cached. Bounded by `cache.max_entries` (S3-FIFO eviction); one entry of a typical 1 KiB
//! access token costs about 1.5 KiB.

use std::sync::Arc;

use prometheus_client::metrics::counter::Counter;

use crate::authn::VerifiedToken;
use crate::config::{CacheSettings, IssuerSettings, Settings};
use crate::jwk::VerifyingKey;

/// A token's cache key: the SHA-256 of the whole token, so the cache never holds the token
/// itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CacheKey {
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
    /// The revision of the issuer's settings the token was verified under
    /// ([`TokenCache::revision`] at insertion).
    pub revision: u64,
}

type Entries = quick_cache::sync::Cache<CacheKey, Arc<Entry>>;

/// The verified-token cache of one configuration: disabled (every lookup misses, nothing is
/// kept) unless `cache.enabled`, else at most `cache.max_entries` entries, possibly shared
/// with the configuration before it.
pub struct TokenCache {
    entries: Option<Arc<Entries>>,
    settings: CacheSettings,
    /// Each configured issuer's settings and their revision.
    issuers: Vec<(IssuerSettings, u64)>,
    hits: Counter,
    misses: Counter,
}

impl TokenCache {
    /// An empty cache for `settings` (its `cache:` and issuers), counting hits and misses
    /// into counters of its own.
    pub fn new(settings: &Settings) -> TokenCache {
        TokenCache::reusing(settings, None, Counter::default(), Counter::default())
    }

    /// The cache for `settings` after `previous` (a reload): its entries are kept when
    /// `cache:` is unchanged, and each issuer keeps its revision when its settings are
    /// unchanged (otherwise it gets `settings.generation`, so its old entries never match).
    /// Counts into `hits` and `misses` (the process's metrics, which outlive a reload).
    pub fn reusing(
        settings: &Settings,
        previous: Option<&TokenCache>,
        hits: Counter,
        misses: Counter,
    ) -> TokenCache {
        let kept = previous.filter(|p| p.settings == settings.cache);
        let entries = match kept {
            Some(p) => p.entries.clone(),
            None => settings
                .cache
                .enabled
                .then(|| Arc::new(Entries::new(settings.cache.max_entries))),
        };
        let issuers = settings
            .issuers
            .iter()
            .map(|issuer| {
                let unchanged = previous.and_then(|p| {
                    p.issuers
                        .iter()
                        .find(|(old, _)| old == issuer)
                        .map(|(_, revision)| *revision)
                });
                (issuer.clone(), unchanged.unwrap_or(settings.generation))
            })
            .collect();
        TokenCache {
            entries,
            settings: settings.cache,
            issuers,
            hits,
            misses,
        }
    }

    /// The current revision of `issuer`'s settings (its exact `issuer` value); `None` for an
    /// issuer this configuration does not have.
    pub fn revision(&self, issuer: &str) -> Option<u64> {
        self.issuers
            .iter()
            .find(|(settings, _)| settings.issuer == issuer)
            .map(|(_, revision)| *revision)
    }

    /// Whether the configuration enables the cache (`cache.enabled`).
    pub fn enabled(&self) -> bool {
        self.entries.is_some()
    }

    /// The key of `token` in this cache (SHA-256 of its bytes).
    pub fn key(&self, token: &str) -> CacheKey {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(digest.as_ref());
        CacheKey { digest: bytes }
    }

    /// The entry under `key` if one is cached, verified under its issuer's current settings,
    /// and `usable` says it still is (deadline, key); an unusable one is dropped. Counts a
    /// hit only for an entry that is returned.
    pub fn get(&self, key: &CacheKey, usable: impl Fn(&Entry) -> bool) -> Option<Arc<Entry>> {
        let entries = self.entries.as_ref()?;
        let entry = entries.get(key);
        let found = match entry {
            Some(entry)
                if self.revision(&entry.token.issuer) == Some(entry.revision) && usable(&entry) =>
            {
                Some(entry)
            }
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
