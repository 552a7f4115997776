//! Used DPoP proofs (RFC 9449 §11.1): each accepted proof's key, `sha256(jkt ‖ jti)`, is
//! recorded for the `iat` window, and a second use is refused. `memory` keeps them in this
//! process; `redis` in one server every replica shares (`SET key 1 NX EX ttl`), so a proof
//! accepted by one replica is refused by all. A store that cannot answer refuses the
//! proof: fail closed.

use std::collections::{HashSet, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use crate::config::ReplaySettings;

/// `sha256(jkt ‖ 0x00 ‖ jti)`: the separator keeps (`ab`, `c`) and (`a`, `bc`) apart.
pub type ProofKey = [u8; 32];

/// The key of a proof by `jkt` (RFC 7638 thumbprint, base64url) with `jti`.
pub fn proof_key(jkt: &str, jti: &str) -> ProofKey {
    let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    ctx.update(jkt.as_bytes());
    ctx.update(&[0]);
    ctx.update(jti.as_bytes());
    let mut key = [0; 32];
    key.copy_from_slice(ctx.finish().as_ref());
    key
}

/// Why a proof could not be recorded (each a 503).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The memory store holds `max_entries` proofs that have not expired yet.
    #[error("the DPoP replay store is full")]
    Full,
    /// Redis did not answer within `dpop.replay.timeout`, or answered with an error.
    #[error("the DPoP replay store cannot be reached")]
    Unreachable,
}

/// Where used proofs are remembered.
pub enum ReplayStore {
    Memory(Mutex<Memory>),
    Redis(Redis),
}

impl ReplayStore {
    /// From `dpop.replay`. A Redis store connects on first use.
    ///
    /// Errors: a Redis URL the client library refuses (validation has checked its scheme
    /// and host).
    pub fn new(settings: &ReplaySettings) -> Result<ReplayStore, String> {
        Ok(match settings {
            ReplaySettings::Memory { max_entries } => ReplayStore::Memory(Mutex::new(Memory {
                max_entries: *max_entries,
                seen: HashSet::new(),
                expiry: VecDeque::new(),
            })),
            ReplaySettings::Redis {
                url,
                timeout,
                key_prefix,
            } => ReplayStore::Redis(Redis {
                client: redis::Client::open(url.as_str())
                    .map_err(|e| format!("dpop.replay.url: {e}"))?,
                connection: OnceCell::new(),
                timeout: *timeout,
                key_prefix: key_prefix.clone(),
            }),
        })
    }

    /// Records `key` for `ttl`; `Ok(true)` the first time, `Ok(false)` for a replay.
    ///
    /// Errors: [`StoreError`]; the caller refuses the proof (503).
    pub async fn first_use(&self, key: ProofKey, ttl: Duration) -> Result<bool, StoreError> {
        match self {
            ReplayStore::Memory(memory) => match memory.lock() {
                Ok(mut memory) => memory.first_use(key, ttl, Instant::now()),
                // A panic while holding the lock: nothing recorded can be trusted.
                Err(_) => Err(StoreError::Unreachable),
            },
            // Boxed: the Redis client's future is large and only this store needs it.
            ReplayStore::Redis(redis) => Box::pin(redis.first_use(key, ttl)).await,
        }
    }
}

/// The in-process store: a set of keys and their expiry times in insertion order. Every
/// proof lives the same `ttl`, so the oldest entry always expires first and expiring is a
/// pop from the front.
pub struct Memory {
    max_entries: usize,
    seen: HashSet<ProofKey>,
    expiry: VecDeque<(Instant, ProofKey)>,
}

impl Memory {
    fn first_use(
        &mut self,
        key: ProofKey,
        ttl: Duration,
        now: Instant,
    ) -> Result<bool, StoreError> {
        while let Some(&(at, old)) = self.expiry.front() {
            if at > now {
                break;
            }
            self.expiry.pop_front();
            self.seen.remove(&old);
        }
        if self.seen.contains(&key) {
            return Ok(false);
        }
        // Evicting a live entry would let its proof be replayed: refuse instead.
        if self.seen.len() >= self.max_entries {
            return Err(StoreError::Full);
        }
        self.seen.insert(key);
        self.expiry.push_back((now + ttl, key));
        Ok(true)
    }
}

/// The shared store: one Redis, reached through a reconnecting connection.
pub struct Redis {
    client: redis::Client,
    connection: OnceCell<ConnectionManager>,
    timeout: Duration,
    key_prefix: String,
}

impl Redis {
    async fn first_use(&self, key: ProofKey, ttl: Duration) -> Result<bool, StoreError> {
        let name = format!("{}{}", self.key_prefix, URL_SAFE_NO_PAD.encode(key));
        let seconds = ttl.as_secs().max(1);
        let attempt = async {
            let connection = self
                .connection
                .get_or_try_init(|| {
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(Some(self.timeout))
                        .set_response_timeout(Some(self.timeout))
                        .set_number_of_retries(1);
                    ConnectionManager::new_with_config(self.client.clone(), config)
                })
                .await?;
            let mut connection = connection.clone();
            // `SET key 1 NX EX ttl` answers OK when it set the key and nil when it existed.
            redis::cmd("SET")
                .arg(&name)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(seconds)
                .query_async::<Option<String>>(&mut connection)
                .await
        };
        match tokio::time::timeout(self.timeout, attempt).await {
            Ok(Ok(answer)) => Ok(answer.is_some()),
            Ok(Err(_)) | Err(_) => Err(StoreError::Unreachable),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(max_entries: usize) -> Memory {
        Memory {
            max_entries,
            seen: HashSet::new(),
            expiry: VecDeque::new(),
        }
    }

    #[test]
    fn a_proof_is_used_once_until_it_expires() {
        let mut m = memory(10);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(65);
        let key = proof_key("jkt", "jti-1");
        assert_eq!(m.first_use(key, ttl, t0), Ok(true));
        assert_eq!(
            m.first_use(key, ttl, t0 + Duration::from_secs(64)),
            Ok(false)
        );
        // Expired: by then its iat is outside the window, so the proof is refused anyway.
        assert_eq!(m.first_use(key, ttl, t0 + ttl), Ok(true));
    }

    #[test]
    fn a_full_store_refuses_rather_than_forgets() {
        let mut m = memory(2);
        let t0 = Instant::now();
        let ttl = Duration::from_secs(65);
        assert_eq!(m.first_use(proof_key("k", "1"), ttl, t0), Ok(true));
        assert_eq!(m.first_use(proof_key("k", "2"), ttl, t0), Ok(true));
        assert_eq!(
            m.first_use(proof_key("k", "3"), ttl, t0),
            Err(StoreError::Full)
        );
        // The first one is still remembered.
        assert_eq!(m.first_use(proof_key("k", "1"), ttl, t0), Ok(false));
        // Once the old ones expire there is room again.
        assert_eq!(m.first_use(proof_key("k", "3"), ttl, t0 + ttl), Ok(true));
        assert_eq!(m.seen.len(), 1);
    }

    #[test]
    fn keys_separate_the_thumbprint_from_the_jti() {
        assert_ne!(proof_key("ab", "c"), proof_key("a", "bc"));
        assert_ne!(proof_key("k1", "j"), proof_key("k2", "j"));
    }
}
