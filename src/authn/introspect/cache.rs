//! The introspection answer cache: what an endpoint said about a token, never what tokengate
//! decided with it.
//!
//! Key: SHA-256 over the length-prefixed token, issuer, endpoint and client id, so an answer
//! is only ever reused for the same token asked of the same endpoint by the same client under
//! the same issuer (Oathkeeper's two cache advisories), and no token is kept in clear. Value:
//! the answer (the members of an active one, or "inactive", or "unavailable") and until when
//! it may be reused. The checks that turn members into a decision (time, audience, assertions,
//! then the route's rule) run again on every hit. Bounded (S3-FIFO eviction); one cache per
//! introspecting issuer, rebuilt on reload. Lookups are single-flight per key: while one
//! request asks the endpoint, the others with the same key wait for its answer.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Map, Value};

use crate::authn::VerifiedToken;

/// SHA-256 of the length-prefixed fields.
pub type Key = [u8; 32];

/// What an endpoint said, as cached.
#[derive(Debug, Clone)]
pub enum Answer {
    /// Active: the members (to re-check on every hit) and the token built from them.
    Active {
        members: Arc<Map<String, Value>>,
        token: Arc<VerifiedToken>,
    },
    Inactive,
    /// The endpoint could not be had or believed; kept for a second so that a crowd of
    /// requests waiting on one key gets the 503 at once rather than one call each.
    Unavailable,
}

/// A cached answer and when it stops being usable.
#[derive(Debug, Clone)]
pub struct Cached {
    pub answer: Answer,
    pub until: Instant,
}

/// The key of `token` asked of `endpoint` by `client_id` for `issuer`: each field preceded
/// by its length (8 bytes, big-endian), so no two field lists share a byte string.
pub fn key(token: &str, issuer: &str, endpoint: &str, client_id: &str) -> Key {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for field in [token, issuer, endpoint, client_id] {
        ctx.update(&(field.len() as u64).to_be_bytes());
        ctx.update(field.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// A bounded, single-flight map from [`Key`] to [`Cached`].
pub struct AnswerCache {
    entries: quick_cache::sync::Cache<Key, Arc<Cached>>,
}

/// What a lookup found: a live answer, or the right (and duty) to ask the endpoint.
pub enum Lookup<'a> {
    Hit(Arc<Cached>),
    /// Insert the answer through it; dropping it lets the next waiter ask.
    Miss(Guard<'a>),
}

/// The placeholder a miss holds while it asks the endpoint.
pub struct Guard<'a>(
    quick_cache::sync::PlaceholderGuard<
        'a,
        Key,
        Arc<Cached>,
        quick_cache::UnitWeighter,
        quick_cache::DefaultHashBuilder,
        quick_cache::sync::DefaultLifecycle<Key, Arc<Cached>>,
    >,
);

impl Guard<'_> {
    /// Stores the answer and wakes the requests waiting for it.
    pub fn fill(self, cached: Cached) {
        // Err only when the placeholder was removed meanwhile: nothing to do then.
        let _ = self.0.insert(Arc::new(cached));
    }
}

impl AnswerCache {
    /// Room for `max_entries` answers (at least one).
    pub fn new(max_entries: usize) -> AnswerCache {
        AnswerCache {
            entries: quick_cache::sync::Cache::new(max_entries.max(1)),
        }
    }

    /// The live answer under `key`, waiting while another request is asking for it; an
    /// expired one is dropped and reported as a miss.
    pub async fn lookup(&self, key: &Key) -> Lookup<'_> {
        loop {
            match self.entries.get_value_or_guard_async(key).await {
                Ok(cached) if Instant::now() < cached.until => return Lookup::Hit(cached),
                Ok(_) => {
                    self.entries.remove(key);
                }
                Err(guard) => return Lookup::Miss(Guard(guard)),
            }
        }
    }

    /// Answers held now.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no answer is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_in_the_key_and_fields_cannot_run_together() {
        let base = key("tok", "https://idp", "https://idp/introspect", "rs");
        assert_ne!(
            base,
            key("tok2", "https://idp", "https://idp/introspect", "rs")
        );
        assert_ne!(
            base,
            key("tok", "https://idp2", "https://idp/introspect", "rs")
        );
        assert_ne!(
            base,
            key("tok", "https://idp", "https://other/introspect", "rs")
        );
        assert_ne!(
            base,
            key("tok", "https://idp", "https://idp/introspect", "rs2")
        );
        // Without length prefixes these two would hash the same bytes.
        assert_ne!(key("ab", "c", "e", "f"), key("a", "bc", "e", "f"));
        assert_eq!(
            base,
            key("tok", "https://idp", "https://idp/introspect", "rs")
        );
    }

    #[tokio::test]
    async fn expired_answers_are_misses_and_a_miss_fills_for_the_waiters() {
        let cache = AnswerCache::new(10);
        let k = key("t", "i", "e", "c");
        let Lookup::Miss(guard) = cache.lookup(&k).await else {
            panic!("an empty cache has no hit")
        };
        guard.fill(Cached {
            answer: Answer::Inactive,
            until: Instant::now() + std::time::Duration::from_secs(60),
        });
        assert!(matches!(cache.lookup(&k).await, Lookup::Hit(_)));
        let Lookup::Miss(guard) = cache.lookup(&key("t2", "i", "e", "c")).await else {
            panic!("another token has no hit")
        };
        guard.fill(Cached {
            answer: Answer::Inactive,
            until: Instant::now(),
        });
        assert!(matches!(
            cache.lookup(&key("t2", "i", "e", "c")).await,
            Lookup::Miss(_)
        ));
    }
}
