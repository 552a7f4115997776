//! Getting an issuer's keys: OIDC discovery (§4), the JWKS document, a `jwks_file`, the
//! refresh schedule from `Cache-Control`, and backoff after failures.

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Weak;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tracing::{info, warn};
use url::Url;

use super::{FetchState, IssuerKeys};
use crate::config::{KeySource, KeyTimings};
use crate::jwk::KeySet;
use crate::logsafe::Escaped;

/// The largest discovery or JWKS document we read.
const MAX_DOCUMENT_BYTES: usize = 1024 * 1024;
/// How often a `jwks_file` is checked for changes.
const FILE_POLL: Duration = Duration::from_secs(2);

/// Why a fetch failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum FetchError {
    /// The request did not complete: connection, TLS, timeout, a refused redirect (to another
    /// host, scheme or port, or more than five) or the body cut short. The text never names
    /// the URL.
    #[error("request failed: {0}")]
    Http(String),
    /// The server answered with a status other than 2xx.
    #[error("HTTP status {0}")]
    Status(u16),
    /// The body is (or announces itself as) larger than 1 MiB; reading stops there.
    #[error("document larger than 1 MiB")]
    TooLarge,
    /// The discovery document is not JSON, or has no `jwks_uri` that parses as a URL
    /// (OIDC Discovery §3, RFC 8414 §2); also when no discovery location could be tried.
    #[error("discovery document is not valid JSON or has no jwks_uri")]
    BadDiscovery,
    /// The discovery document's `issuer` is not exactly the configured issuer (OIDC Discovery
    /// §4.3, RFC 8414 §3.3): its keys would not be this issuer's.
    #[error("discovery names issuer {found:?}, not the configured one")]
    IssuerMismatch {
        /// The `issuer` the document names (at most 200 characters; empty when absent).
        found: String,
    },
    /// The discovered `jwks_uri` is neither `https` nor, with `allow_http`, `http`.
    #[error("jwks_uri {0} is not https (set allow_http for local testing)")]
    InsecureJwksUri(String),
    /// The document was read but is not a JWKS with a usable key.
    #[error("{0}")]
    Jwks(#[from] crate::jwk::JwksError),
    /// A `jwks_file` could not be read.
    #[error("cannot read {path}: {error}")]
    File {
        /// The configured file.
        path: PathBuf,
        /// The I/O error, in words.
        error: String,
    },
}

impl IssuerKeys {
    /// Fetches now (the caller holds the lock) and stores good keys. Returns their lifetime.
    pub(super) async fn fetch_and_store(
        &self,
        state: &mut FetchState,
    ) -> Result<Duration, FetchError> {
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
    pub(super) async fn discover_from(&self) -> Result<(Url, Url), FetchError> {
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
        // RFC 8414 §2 / RFC 7662 §4: where this issuer's tokens are introspected, kept for
        // `introspection:` without an `endpoint` (an insecure one is not kept).
        let introspection = doc
            .get("introspection_endpoint")
            .and_then(Value::as_str)
            .and_then(|s| Url::parse(s).ok())
            .filter(|u| u.scheme() == "https" || (self.allow_http && u.scheme() == "http"));
        self.introspection_endpoint
            .store(introspection.map(std::sync::Arc::new));
        Ok(uri)
    }

    /// GET with the store's timeout, the redirect policy and a 1 MiB cap on the body.
    pub(super) async fn get(
        &self,
        url: &Url,
    ) -> Result<(Vec<u8>, reqwest::header::HeaderMap), FetchError> {
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

/// Fetches at start, refreshes before the keys expire, retries failures with backoff.
pub(super) async fn refresh_forever(keys: Weak<IssuerKeys>) {
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
pub(super) async fn watch_file(keys: Weak<IssuerKeys>, path: PathBuf) {
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

pub(super) fn http_client(timeout: Duration) -> reqwest::Client {
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
    use crate::algorithm::Algorithm;
    use crate::config::IssuerSettings;
    use crate::metrics::FetchCounters;
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
            introspection: None,
            introspect_jwts: false,
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
