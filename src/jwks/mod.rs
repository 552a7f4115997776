//! KeyStore: where each issuer's keys come from and how long they are trusted.
//!
//! Reads are lock-free snapshots (`ArcSwap`). Fetches (start-up, scheduled refresh, an unknown
//! `kid`) go through one async mutex per issuer, so they are single-flight: requests that
//! arrive while a fetch runs wait for it (bounded by `keys.fetch_timeout`) and then re-read the
//! snapshot. On-demand refetches are limited to `keys.refetch_per_minute`. A failed fetch
//! never replaces good keys; they are served until `keys.max_stale`.
//!
//! This file holds the key state and its reads; `fetch` gets documents over HTTP or from a
//! file (discovery, JWKS, refresh and backoff); `probe` is `tokengate check --online`.

mod fetch;
mod probe;

pub use fetch::FetchError;
use fetch::{http_client, refresh_forever, watch_file};
pub use probe::{probe, Probe};

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::algorithm::Algorithm;
use arc_swap::ArcSwapOption;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::warn;
use url::Url;

use crate::config::{IssuerSettings, KeySource, KeyTimings, Settings};
use crate::jwk::{JwksError, KeySet, Selection, Skipped, VerifyingKey};
use crate::logsafe::Escaped;
use crate::metrics::{FetchCounters, Metrics};

/// Why no key could be had for a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// The issuer is not configured.
    UnknownIssuer,
    /// Keys are loaded, but none has the token's `kid` (after one refetch, if allowed).
    UnknownKey,
    /// The token has no `kid` and several keys fit.
    NoKid,
    /// The token's `kid` names two different keys that fit its algorithm.
    KidConflict,
    /// The issuer has no usable keys yet (or they went stale): 503, try again.
    Unavailable,
}

/// Keys for every configured issuer.
pub struct KeyStore {
    issuers: HashMap<String, Arc<IssuerKeys>>,
}

pub use crate::metrics::IssuerStatus;

impl KeyStore {
    /// Builds the store; `dev_keys` are the embedded dev issuer's keys, when it is on.
    /// Call [`KeyStore::start`] inside a tokio runtime to begin fetching.
    pub fn new(settings: &Settings, dev_keys: Option<KeySet>) -> KeyStore {
        KeyStore::reusing(settings, dev_keys, None, &Metrics::new())
    }

    /// As [`KeyStore::new`], keeping the keys (and background task) of every issuer of
    /// `previous` whose key configuration is unchanged: a reload refetches nothing for them.
    pub fn reusing(
        settings: &Settings,
        dev_keys: Option<KeySet>,
        previous: Option<&KeyStore>,
        metrics: &Metrics,
    ) -> KeyStore {
        let http = http_client(settings.keys.fetch_timeout);
        let mut dev_keys = dev_keys;
        let issuers = settings
            .issuers
            .iter()
            .map(|issuer| {
                let counters = metrics.fetch_counters(&issuer.issuer);
                let fresh = IssuerKeys::new(issuer, &settings.keys, http.clone(), counters);
                let kept = previous
                    .and_then(|p| p.issuers.get(&issuer.issuer))
                    .filter(|old| old.same_configuration(&fresh))
                    .filter(|_| issuer.key_source != KeySource::DevIssuer);
                let keys = match kept {
                    Some(old) => old.clone(),
                    None => {
                        match &issuer.key_source {
                            KeySource::DevIssuer => {
                                if let Some(set) = dev_keys.take() {
                                    fresh.store(set, Duration::MAX);
                                }
                            }
                            // The shared secret is the issuer's one key, for its HS algorithms
                            // only (validated at load, so this cannot fail in practice).
                            KeySource::Hmac(secret) => match VerifyingKey::hmac(
                                None,
                                issuer.algorithms.clone(),
                                &secret.bytes,
                            ) {
                                Ok(key) => fresh.store(
                                    KeySet {
                                        keys: vec![Arc::new(key)],
                                        conflicts: Vec::new(),
                                    },
                                    Duration::MAX,
                                ),
                                Err(e) => warn!(issuer = %Escaped(&issuer.issuer), error = %e, "HMAC secret not usable"),
                            },
                            _ => {}
                        }
                        Arc::new(fresh)
                    }
                };
                (issuer.issuer.clone(), keys)
            })
            .collect();
        KeyStore { issuers }
    }

    /// Starts the background task (fetch, refresh, retry; or watch the file) of every issuer
    /// that has none yet.
    pub fn start(&self) {
        for keys in self.issuers.values() {
            let mut slot = keys
                .task
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if slot.is_some() {
                continue;
            }
            // The task holds a weak reference: it ends when the issuer is dropped (a reload
            // that removed or changed it), and the Drop below aborts it while it sleeps.
            let weak = Arc::downgrade(keys);
            *slot = match keys.source.clone() {
                KeySource::DevIssuer | KeySource::Hmac(_) => None,
                KeySource::JwksFile(path) => Some(tokio::spawn(watch_file(weak, path))),
                KeySource::Discovery | KeySource::JwksUri(_) => {
                    Some(tokio::spawn(refresh_forever(weak)))
                }
            };
        }
    }

    /// Every issuer's key state, sorted by issuer.
    pub fn status(&self) -> Vec<IssuerStatus> {
        let mut all: Vec<IssuerStatus> = self
            .issuers
            .values()
            .map(|k| IssuerStatus {
                issuer: k.issuer.clone(),
                keys: k.usable().map_or(0, |l| l.set.len()),
                fetches_ok: k.counters.ok.get(),
                fetches_failed: k.counters.failed.get(),
                since_last_good: k.current.load().as_ref().map(|l| l.fetched_at.elapsed()),
            })
            .collect();
        all.sort_by(|a, b| a.issuer.cmp(&b.issuer));
        all
    }

    /// The key that verifies a token of `issuer` with this `kid` and `alg`.
    pub async fn select(
        &self,
        issuer: &str,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let keys = self.issuers.get(issuer).ok_or(KeyError::UnknownIssuer)?;
        keys.select(kid, alg).await
    }

    /// True when `key` is still in the issuer's usable key set (a cached verification made
    /// with it may be trusted again). Never fetches.
    pub fn is_current(&self, issuer: &str, key: &VerifyingKey) -> bool {
        self.issuers
            .get(issuer)
            .and_then(|k| k.usable())
            .is_some_and(|loaded| loaded.set.keys.iter().any(|k| k.same_as(key)))
    }

    /// The `introspection_endpoint` of the issuer's discovery document (RFC 8414 §2), once
    /// discovery has been read; `None` before, for an issuer that does no discovery, or when
    /// the document names none (or one that is not https without `allow_http`).
    pub fn introspection_endpoint(&self, issuer: &str) -> Option<Url> {
        self.issuers
            .get(issuer)?
            .introspection_endpoint
            .load_full()
            .map(|u| (*u).clone())
    }

    /// A copy of the issuer's usable keys, limited to `allowed` (for `tokengate inspect`).
    pub fn key_set(&self, issuer: &str, allowed: &[Algorithm]) -> Option<KeySet> {
        let loaded = self.issuers.get(issuer)?.usable()?;
        let keys = loaded
            .set
            .keys
            .iter()
            .filter(|k| k.algorithms.iter().any(|a| allowed.contains(a)))
            .cloned()
            .collect();
        let conflicts = loaded
            .set
            .conflicts
            .iter()
            .filter(|(_, alg)| allowed.contains(alg))
            .cloned()
            .collect();
        Some(KeySet { keys, conflicts })
    }

    /// The keys each issuer's last load skipped, with their reasons (for `/readyz`,
    /// `inspect`), sorted by issuer.
    pub fn skipped_keys(&self) -> Vec<(&str, Vec<Skipped>)> {
        let mut all: Vec<(&str, Vec<Skipped>)> = self
            .issuers
            .values()
            .map(|k| {
                let skipped = k
                    .skipped
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                (k.issuer.as_str(), skipped)
            })
            .filter(|(_, s)| !s.is_empty())
            .collect();
        all.sort_by(|a, b| a.0.cmp(b.0));
        all
    }

    /// Issuers that have no usable keys, for `/readyz`.
    pub fn issuers_without_keys(&self) -> Vec<&str> {
        let mut missing: Vec<&str> = self
            .issuers
            .values()
            .filter(|k| k.usable().is_none())
            .map(|k| k.issuer.as_str())
            .collect();
        missing.sort_unstable();
        missing
    }
}

/// A loaded key set and when it was fetched.
struct Loaded {
    set: KeySet,
    fetched_at: Instant,
    /// How long the source said the keys may be cached (clamped).
    ttl: Duration,
}

struct IssuerKeys {
    issuer: String,
    allowed: Vec<Algorithm>,
    source: KeySource,
    allow_http: bool,
    timings: KeyTimings,
    http: reqwest::Client,
    current: ArcSwapOption<Loaded>,
    /// Held for the whole of a fetch: this is what makes fetches single-flight.
    fetch_lock: Mutex<FetchState>,
    /// Counts finished fetch attempts, so a waiter can tell that one ran while it waited.
    attempts: AtomicU64,
    counters: FetchCounters,
    /// The background task; aborted when the issuer is dropped.
    task: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// The keys the last load skipped (whether or not another key was usable).
    skipped: std::sync::Mutex<Vec<Skipped>>,
    /// Discovery's `introspection_endpoint`, from the last discovery document read.
    introspection_endpoint: ArcSwapOption<Url>,
}

impl Drop for IssuerKeys {
    fn drop(&mut self) {
        let task = self
            .task
            .get_mut()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(task) = task.take() {
            task.abort();
        }
    }
}

#[derive(Default)]
struct FetchState {
    /// Start times of recent on-demand refetches, for the per-minute limit.
    recent: VecDeque<Instant>,
    /// The discovered `jwks_uri`, kept until a fetch from it fails.
    discovered: Option<Url>,
}

impl IssuerKeys {
    fn new(
        issuer: &IssuerSettings,
        timings: &KeyTimings,
        http: reqwest::Client,
        counters: FetchCounters,
    ) -> IssuerKeys {
        IssuerKeys {
            issuer: issuer.issuer.clone(),
            allowed: issuer.algorithms.clone(),
            source: issuer.key_source.clone(),
            allow_http: issuer.allow_http,
            timings: timings.clone(),
            http,
            current: ArcSwapOption::empty(),
            fetch_lock: Mutex::new(FetchState::default()),
            attempts: AtomicU64::new(0),
            counters,
            task: std::sync::Mutex::new(None),
            skipped: std::sync::Mutex::new(Vec::new()),
            introspection_endpoint: ArcSwapOption::empty(),
        }
    }

    /// Same issuer, algorithms, key source, transport rule and timings.
    fn same_configuration(&self, other: &IssuerKeys) -> bool {
        self.issuer == other.issuer
            && self.allowed == other.allowed
            && self.source == other.source
            && self.allow_http == other.allow_http
            && self.timings == other.timings
    }

    /// Parses a JWKS document and reports what it skipped: one warning per skipped key and
    /// per `kid` with two different keys, at every load (usable keys or not), each counted in
    /// `tokengate_jwks_keys_skipped_total{issuer,reason}` and remembered for `/readyz`.
    fn parse_and_report(&self, bytes: &[u8]) -> Result<KeySet, JwksError> {
        let parsed = KeySet::parse(bytes, &self.allowed);
        let skipped = match &parsed {
            Ok((_, skipped)) | Err(JwksError::NoUsableKeys(skipped)) => skipped.clone(),
            Err(JwksError::NotAJwks | JwksError::MixedHmac) => Vec::new(),
        };
        for s in &skipped {
            warn!(
                issuer = %Escaped(&self.issuer),
                kid = %Escaped(&s.kid),
                reason = s.reason,
                detail = %Escaped(&s.detail),
                "JWK skipped"
            );
            self.counters.key_skipped(s.reason);
        }
        if let Ok((set, _)) = &parsed {
            for kid in set.conflicting_kids() {
                warn!(
                    issuer = %Escaped(&self.issuer),
                    kid = %Escaped(kid),
                    "the JWKS publishes two different keys under this kid: tokens naming it are refused (kid_ambiguous); other kids keep working"
                );
                self.counters.key_skipped("kid_ambiguous");
            }
        }
        if !matches!(parsed, Err(JwksError::NotAJwks | JwksError::MixedHmac)) {
            *self
                .skipped
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = skipped;
        }
        parsed.map(|(set, _)| set)
    }

    fn store(&self, set: KeySet, ttl: Duration) {
        self.current.store(Some(Arc::new(Loaded {
            set,
            fetched_at: Instant::now(),
            ttl,
        })));
    }

    /// The current keys, unless they have outlived `max_stale` past their lifetime.
    fn usable(&self) -> Option<Arc<Loaded>> {
        let loaded = self.current.load_full()?;
        let remote = matches!(self.source, KeySource::Discovery | KeySource::JwksUri(_));
        let age = loaded.fetched_at.elapsed();
        if remote && age > loaded.ttl.saturating_add(self.timings.max_stale) {
            return None;
        }
        Some(loaded)
    }

    async fn select(
        &self,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Result<Arc<VerifyingKey>, KeyError> {
        let seen = self.attempts.load(Ordering::Acquire);
        if matches!(self.source, KeySource::Hmac(_)) {
            // One shared secret, whatever `kid` the token names (HMAC issuers rarely publish
            // kids); it admits only the issuer's HS algorithms.
            return self
                .usable()
                .and_then(|l| l.set.keys.first().cloned())
                .filter(|k| k.admits(alg))
                .ok_or(KeyError::Unavailable);
        }
        if let Some(loaded) = self.usable() {
            match loaded.set.select(kid, alg) {
                Selection::Found(key) => return Ok(key),
                Selection::NoKidSeveralKeys => return Err(KeyError::NoKid),
                Selection::KidConflict => return Err(KeyError::KidConflict),
                Selection::NotFound => {}
            }
        }
        if matches!(self.source, KeySource::Discovery | KeySource::JwksUri(_)) {
            // A new kid usually means the issuer rotated: refetch once, then look again.
            let _ = tokio::time::timeout(self.timings.fetch_timeout, self.refetch_on_demand(seen))
                .await;
        }
        match self.usable() {
            None => Err(KeyError::Unavailable),
            Some(loaded) => match loaded.set.select(kid, alg) {
                Selection::Found(key) => Ok(key),
                Selection::NoKidSeveralKeys => Err(KeyError::NoKid),
                Selection::KidConflict => Err(KeyError::KidConflict),
                Selection::NotFound => Err(KeyError::UnknownKey),
            },
        }
    }

    async fn refetch_on_demand(&self, seen: u64) {
        let mut state = self.fetch_lock.lock().await;
        if self.attempts.load(Ordering::Acquire) != seen {
            return; // a fetch finished while we waited: use its result
        }
        let now = Instant::now();
        while state
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            state.recent.pop_front();
        }
        if state.recent.len() >= self.timings.refetch_per_minute as usize {
            return;
        }
        state.recent.push_back(now);
        let _ = self.fetch_and_store(&mut state).await;
    }
}
