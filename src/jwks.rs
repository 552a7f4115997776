//! KeyStore: where each issuer's keys come from and how long they are trusted.
//!
//! Reads are lock-free snapshots (`ArcSwap`). Fetches (start-up, scheduled refresh, an unknown
//! `kid`) go through one async mutex per issuer, so they are single-flight: requests that
//! arrive while a fetch runs wait for it (bounded by `keys.fetch_timeout`) and then re-read the
//! snapshot. On-demand refetches are limited to `keys.refetch_per_minute`. A failed fetch
//! never replaces good keys; they are served until `keys.max_stale`.

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant, SystemTime};

use crate::algorithm::Algorithm;
use arc_swap::ArcSwapOption;
use serde_json::Value;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tracing::{info, warn};
use url::Url;

use crate::config::{IssuerSettings, KeySource, KeyTimings, Settings};
use crate::jwk::{JwksError, KeySet, Selection, Skipped, VerifyingKey};
use crate::logsafe::Escaped;
use crate::metrics::{FetchCounters, Metrics};

/// The largest discovery or JWKS document we read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How often a `jwks_file` is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);

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

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    #[error("request failed: {0}")]
    Http(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("document larger than 1 MiB")]
    TooLarge,
    #[error("discovery document is not valid JSON or has no jwks_uri")]
    BadDiscovery,
    #[error("discovery names issuer {found:?}, not the configured one")]
    IssuerMismatch { found: String },
    #[error("jwks_uri {0} is not https (set allow_http for local testing)")]
    InsecureJwksUri(String),
    #[error("{0}")]
    Jwks(#[from] crate::jwk::JwksError),
    #[error("cannot read {path}: {error}")]
    File { path: PathBuf, error: String },
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

    /// Fetches now (the caller holds the lock) and stores good keys. Returns their lifetime.
    async fn fetch_and_store(&self, state: &mut FetchState) -> Result<Duration, FetchError> {
        let result = self.fetch(state).await;
        let counter = if result.is_ok() {
            &self.counters.ok
        } else {
            &self.counters.failed
        };
        counter.inc();
        match &result {
            Ok((set, ttl)) => {
                info!(issuer = %Escaped(&self.issuer), keys = set.len(), ttl_s = ttl.as_secs(), "keys loaded");
            }
            Err(error) => {
                let serving = if self.usable().is_some() {
                    "serving the last good keys"
                } else {
                    "no keys yet: token requests get 503"
                };
                warn!(issuer = %Escaped(&self.issuer), error = %Escaped(error), "key fetch failed; {serving}");
            }
        }
        let result = result.map(|(set, ttl)| {
            self.store(set, ttl);
            ttl
        });
        // After the store: a waiter that sees the new count also sees the new keys.
        self.attempts.fetch_add(1, Ordering::AcqRel);
        result
    }

    async fn fetch(&self, state: &mut FetchState) -> Result<(KeySet, Duration), FetchError> {
        let uri = match (&self.source, &state.discovered) {
            (KeySource::JwksUri(uri), _) => uri.clone(),
            (_, Some(uri)) => uri.clone(),
            _ => {
                let uri = self.discover().await?;
                state.discovered = Some(uri.clone());
                uri
            }
        };
        let fetched = self.get(&uri).await;
        if fetched.is_err() {
            state.discovered = None;
        }
        let (body, headers) = fetched?;
        let set = self.parse_and_report(&body)?;
        let ttl = cache_lifetime(&headers, &self.timings);
        Ok((set, ttl))
    }

    /// OIDC Discovery §4, then RFC 8414 (appended, then inserted well-known path).
    async fn discover(&self) -> Result<Url, FetchError> {
        self.discover_from().await.map(|(_, jwks)| jwks)
    }

    /// As [`IssuerKeys::discover`], with the discovery document's URL: (document, jwks_uri).
    async fn discover_from(&self) -> Result<(Url, Url), FetchError> {
        let base = self.issuer.trim_end_matches('/');
        let mut candidates = vec![
            format!("{base}/.well-known/openid-configuration"),
            format!("{base}/.well-known/oauth-authorization-server"),
        ];
        if let Ok(url) = Url::parse(base) {
            if url.path() != "/" && !url.path().is_empty() {
                let origin = url.origin().ascii_serialization();
                candidates.push(format!(
                    "{origin}/.well-known/oauth-authorization-server{}",
                    url.path()
                ));
            }
        }
        // The OIDC location's failure is the one to report: the RFC 8414 fallbacks usually
        // answer 404 on an OIDC provider, which would hide a 503 or a timeout.
        let mut first = None;
        for candidate in candidates {
            let Ok(url) = Url::parse(&candidate) else {
                continue;
            };
            match self.get(&url).await {
                Ok((body, _)) => return self.read_discovery(&body).map(|jwks| (url, jwks)),
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        Err(first.unwrap_or(FetchError::BadDiscovery))
    }

    fn read_discovery(&self, body: &[u8]) -> Result<Url, FetchError> {
        let doc: Value = serde_json::from_slice(body).map_err(|_| FetchError::BadDiscovery)?;
        let found = doc
            .get("issuer")
            .and_then(Value::as_str)
            .unwrap_or_default();
        // OIDC Discovery §4.3: the issuer in the document must be exactly ours.
        if found != self.issuer {
            return Err(FetchError::IssuerMismatch {
                found: found.chars().take(200).collect(),
            });
        }
        let uri = doc
            .get("jwks_uri")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok())
            .ok_or(FetchError::BadDiscovery)?;
        if uri.scheme() != "https" && !(self.allow_http && uri.scheme() == "http") {
            return Err(FetchError::InsecureJwksUri(uri.to_string()));
        }
        Ok(uri)
    }

    /// GET with the store's timeout, the redirect policy and a 1 MiB cap on the body.
    async fn get(&self, url: &Url) -> Result<(Vec<u8>, reqwest::header::HeaderMap), FetchError> {
        let mut response = self
            .http
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| FetchError::Http(without_url(e)))?;
        if !response.status().is_success() {
            return Err(FetchError::Status(response.status().as_u16()));
        }
        if response
            .content_length()
            .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
        {
            return Err(FetchError::TooLarge);
        }
        let headers = response.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| FetchError::Http(without_url(e)))?
        {
            if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, headers))
    }
}

/// What `tokengate check --online` found for one issuer, fetched with the run-time code
/// (same client, timeouts, redirect and https rules, discovery order and key hygiene).
#[derive(Debug, Clone)]
pub struct Probe {
    pub issuer: String,
    /// The discovery document used, when keys are found by discovery.
    pub discovery: Option<String>,
    /// Where the keys came from: the JWKS URL or file (none for the dev issuer).
    pub jwks: Option<String>,
    /// Usable keys: `kid` (or `(no kid)`), type with size or curve, algorithms.
    pub usable: Vec<(String, String, Vec<Algorithm>)>,
    pub skipped: Vec<Skipped>,
    /// Why the issuer has no usable key: unreachable, not a JWKS, every key skipped.
    pub error: Option<String>,
}

/// Fetches discovery and the JWKS of every configured issuer once, as the proxy would at
/// start, and reports each (`tokengate check --online`). Never starts background tasks.
pub async fn probe(settings: &Settings) -> Vec<Probe> {
    let store = KeyStore::new(settings, None);
    let mut probes = Vec::new();
    for issuer in &settings.issuers {
        let Some(keys) = store.issuers.get(&issuer.issuer) else {
            continue;
        };
        probes.push(keys.probe().await);
    }
    probes
}

impl IssuerKeys {
    async fn probe(&self) -> Probe {
        let mut probe = Probe {
            issuer: self.issuer.clone(),
            discovery: None,
            jwks: None,
            usable: Vec::new(),
            skipped: Vec::new(),
            error: None,
        };
        let body = match &self.source {
            KeySource::DevIssuer | KeySource::Hmac(_) => return probe,
            KeySource::JwksFile(path) => {
                probe.jwks = Some(path.display().to_string());
                tokio::fs::read(path).await.map_err(|e| FetchError::File {
                    path: path.clone(),
                    error: e.to_string(),
                })
            }
            KeySource::JwksUri(uri) => {
                probe.jwks = Some(uri.to_string());
                self.get(uri).await.map(|(body, _)| body)
            }
            KeySource::Discovery => match self.discover_from().await {
                Ok((document, uri)) => {
                    probe.discovery = Some(document.to_string());
                    probe.jwks = Some(uri.to_string());
                    self.get(&uri).await.map(|(body, _)| body)
                }
                Err(e) => {
                    probe.error = Some(format!(
                        "discovery failed at {}/.well-known/openid-configuration (and RFC 8414's locations): {e}",
                        self.issuer.trim_end_matches('/')
                    ));
                    return probe;
                }
            },
        };
        let parsed = body.and_then(|b| KeySet::parse(&b, &self.allowed).map_err(FetchError::from));
        match parsed {
            Ok((set, skipped)) => {
                probe.usable = set
                    .keys
                    .iter()
                    .map(|k| {
                        (
                            k.kid.clone().unwrap_or_else(|| "(no kid)".into()),
                            k.kind.clone(),
                            k.algorithms.clone(),
                        )
                    })
                    .collect();
                probe.skipped = skipped;
                for kid in set.conflicting_kids() {
                    probe.skipped.push(Skipped {
                        kid: kid.to_owned(),
                        reason: "kid_ambiguous",
                        detail: "two different keys under this kid: its tokens are refused".into(),
                    });
                }
            }
            Err(FetchError::Jwks(JwksError::NoUsableKeys(skipped))) => {
                probe.skipped = skipped;
                probe.error = Some("no usable signing key".into());
            }
            Err(e) => probe.error = Some(e.to_string()),
        }
        probe
    }
}

/// Fetches at start, refreshes before the keys expire, retries failures with backoff.
async fn refresh_forever(keys: Weak<IssuerKeys>) {
    let mut failures: u32 = 0;
    loop {
        let Some(keys) = keys.upgrade() else { return };
        let result = {
            let mut state = keys.fetch_lock.lock().await;
            keys.fetch_and_store(&mut state).await
        };
        let wait = match result {
            Ok(ttl) => {
                failures = 0;
                // Refresh before expiry so that no request waits for a scheduled fetch.
                ttl.mul_f64(0.9)
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                backoff(failures)
            }
        };
        drop(keys);
        tokio::time::sleep(wait).await;
    }
}

/// Reads a `jwks_file` now and whenever it changes (a rename into place included).
async fn watch_file(keys: Weak<IssuerKeys>, path: PathBuf) {
    let mut last_seen = None;
    loop {
        let Some(keys) = keys.upgrade() else { return };
        let stamp = file_stamp(&path);
        if stamp != last_seen {
            last_seen = stamp;
            let loaded = tokio::fs::read(&path)
                .await
                .map_err(|e| FetchError::File {
                    path: path.clone(),
                    error: e.to_string(),
                })
                .and_then(|bytes| keys.parse_and_report(&bytes).map_err(FetchError::from));
            match loaded {
                Ok(set) => {
                    info!(issuer = %Escaped(&keys.issuer), keys = set.len(), file = %Escaped(path.display()), "keys loaded from file");
                    keys.store(set, Duration::MAX);
                    keys.counters.ok.inc();
                }
                Err(error) => {
                    keys.counters.failed.inc();
                    warn!(issuer = %Escaped(&keys.issuer), error = %Escaped(&error), "jwks_file not loaded; keeping the keys we had")
                }
            }
            keys.attempts.fetch_add(1, Ordering::AcqRel);
        }
        drop(keys);
        tokio::time::sleep(FILE_POLL).await;
    }
}

/// What identifies a version of a file: modification time, size and inode.
fn file_stamp(path: &Path) -> Option<(SystemTime, u64, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((meta.modified().ok()?, meta.len(), inode))
}

/// Exponential backoff from 1 s to 5 min, with up to 50% random jitter.
fn backoff(failures: u32) -> Duration {
    let base = Duration::from_secs(1u64 << failures.saturating_sub(1).min(8))
        .min(Duration::from_secs(300));
    let jitter = base.mul_f64(fastrand::f64() * 0.5);
    base + jitter
}

/// `Cache-Control: max-age`, else `Expires`, else `keys.refresh`; clamped to the bounds.
fn cache_lifetime(headers: &reqwest::header::HeaderMap, t: &KeyTimings) -> Duration {
    let max_age = headers
        .get_all(reqwest::header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|directive| {
            let (name, value) = directive.trim().split_once('=')?;
            name.eq_ignore_ascii_case("max-age")
                .then(|| value.trim_matches('"').parse::<u64>().ok())?
        })
        .map(Duration::from_secs);
    let expires = || {
        let at = headers.get(reqwest::header::EXPIRES)?.to_str().ok()?;
        let at = httpdate::parse_http_date(at).ok()?;
        Some(
            at.duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO),
        )
    };
    max_age
        .or_else(expires)
        .unwrap_or(t.refresh)
        .clamp(t.min_refresh, t.max_refresh)
}

fn http_client(timeout: Duration) -> reqwest::Client {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let Some(first) = attempt.previous().first() else {
            return attempt.follow();
        };
        let same = first.host_str() == attempt.url().host_str()
            && first.port_or_known_default() == attempt.url().port_or_known_default()
            && first.scheme() == attempt.url().scheme();
        if attempt.previous().len() > 5 {
            attempt.error("too many redirects")
        } else if same {
            attempt.follow()
        } else {
            attempt.error("redirect to another host")
        }
    });
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(policy)
        .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// reqwest errors name the URL; the message is enough without it.
fn without_url(e: reqwest::Error) -> String {
    let timeout = e.is_timeout();
    let mut text = e.without_url().to_string();
    if timeout {
        text = format!("timed out ({text})");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};

    #[test]
    fn cache_lifetime_honours_max_age_and_clamps() {
        let t = KeyTimings::default();
        let mut h = HeaderMap::new();
        assert_eq!(cache_lifetime(&h, &t), Duration::from_secs(3600));
        h.insert(
            "cache-control",
            HeaderValue::from_static("public, max-age=7200"),
        );
        assert_eq!(cache_lifetime(&h, &t), Duration::from_secs(7200));
        h.insert("cache-control", HeaderValue::from_static("max-age=5"));
        assert_eq!(cache_lifetime(&h, &t), Duration::from_secs(60));
        h.insert(
            "cache-control",
            HeaderValue::from_static("max-age=999999999"),
        );
        assert_eq!(cache_lifetime(&h, &t), Duration::from_secs(86400));
    }

    fn keys_for(allow_http: bool) -> IssuerKeys {
        let settings = IssuerSettings {
            issuer: "https://idp.example.com".into(),
            audiences: vec!["a".into()],
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(60),
            max_lifetime: None,
            key_source: KeySource::Discovery,
            allow_http,
            claims: Vec::new(),
            require_rfc9068: false,
        };
        IssuerKeys::new(
            &settings,
            &KeyTimings::default(),
            reqwest::Client::new(),
            FetchCounters::default(),
        )
    }

    #[test]
    fn discovery_must_name_our_issuer_and_an_https_jwks_uri() {
        let keys = keys_for(false);
        let good =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"https://idp.example.com/keys"}"#;
        assert!(keys.read_discovery(good).is_ok());
        let other =
            br#"{"issuer":"https://evil.example.com","jwks_uri":"https://idp.example.com/keys"}"#;
        assert!(matches!(
            keys.read_discovery(other),
            Err(FetchError::IssuerMismatch { .. })
        ));
        let trailing =
            br#"{"issuer":"https://idp.example.com/","jwks_uri":"https://idp.example.com/keys"}"#;
        assert!(matches!(
            keys.read_discovery(trailing),
            Err(FetchError::IssuerMismatch { .. })
        ));
        let plain =
            br#"{"issuer":"https://idp.example.com","jwks_uri":"http://idp.example.com/keys"}"#;
        assert!(matches!(
            keys.read_discovery(plain),
            Err(FetchError::InsecureJwksUri(_))
        ));
        assert!(keys_for(true).read_discovery(plain).is_ok());
        assert!(matches!(
            keys.read_discovery(b"{}"),
            Err(FetchError::IssuerMismatch { .. })
        ));
        assert!(matches!(
            keys.read_discovery(b"nope"),
            Err(FetchError::BadDiscovery)
        ));
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        assert!(backoff(1) >= Duration::from_secs(1) && backoff(1) <= Duration::from_millis(1500));
        assert!(backoff(4) >= Duration::from_secs(8));
        assert!(backoff(60) <= Duration::from_secs(450));
    }
}
