//! Opaque tokens: RFC 7662 introspection (RFC 9701 signed answers), cached without the known
//! cache bugs.
//!
//! [`Introspector::verify`] asks the issuers of `opaque_tokens:` in order (or, for a JWT of
//! an issuer with `introspect_jwts`, that issuer) whether the token is active. An active
//! answer's members become the token's claims and go through the same checks as a JWT's
//! ([`check_members`]): `iss`, `token_type`, `exp` (optional here: RFC 7662 §2.2 makes it
//! so, and without it the cache TTL bounds the answer), `nbf`, `iat`, `aud`, claim types
//! and the issuer's assertions. An endpoint that cannot be reached or believed is a 503
//! (`AuthnError::IntrospectionUnavailable`), never a pass and never "inactive".
//!
//! The cache (`cache.rs`) keeps answers, never decisions: the checks above run on every hit,
//! and the route's rule runs per request in `authz` as for any token.

/// The answer cache: keys, bounded storage, single-flight lookups.
pub mod cache;
mod client;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};
use tracing::warn;

use self::cache::{Answer, AnswerCache, Cached, Lookup};
use self::client::{CallError, Said};
use super::{AuthnError, ClaimCheck, TokenError, VerifiedToken};
use crate::config::{IntrospectionSettings, IssuerSettings, Settings};
use crate::jwks::KeyStore;
use crate::logsafe::Escaped;
use crate::metrics::{IntrospectionCounters, Metrics};

/// How long an endpoint failure is remembered for the requests waiting on the same key.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(1);

/// Per introspecting issuer: its HTTP client, answer cache and metrics.
struct Endpoint {
    http: reqwest::Client,
    cache: AnswerCache,
    counters: IntrospectionCounters,
}

/// The introspection state of one configuration: one [`Endpoint`] per issuer with
/// `introspection:`. Built with the configuration (a reload starts with empty caches).
pub struct Introspector {
    endpoints: HashMap<String, Endpoint>,
}

impl Introspector {
    /// For every issuer of `settings` with `introspection:`, with metrics of its own.
    pub fn new(settings: &Settings) -> Introspector {
        Introspector::counting(settings, &Metrics::new())
    }

    /// As [`Introspector::new`], counting into the process's `metrics`.
    pub fn counting(settings: &Settings, metrics: &Metrics) -> Introspector {
        let endpoints = settings
            .issuers
            .iter()
            .filter_map(|issuer| {
                let config = issuer.introspection.as_ref()?;
                Some((
                    issuer.issuer.clone(),
                    Endpoint {
                        http: client::http_client(config.timeout),
                        cache: AnswerCache::new(config.max_entries),
                        counters: metrics.introspection_counters(&issuer.issuer),
                    },
                ))
            })
            .collect();
        Introspector { endpoints }
    }

    /// Answers cached over all issuers (for metrics and tests).
    pub fn cached(&self) -> usize {
        self.endpoints.values().map(|e| e.cache.len()).sum()
    }

    /// An opaque token: asked of each issuer of `settings.opaque_tokens` in order until one
    /// says active. The first active answer decides (its member checks' failure is the 401).
    ///
    /// Errors: [`AuthnError::Invalid`] (`token_inactive` when no issuer says active, or the
    /// failed member check); [`AuthnError::IntrospectionUnavailable`] naming the first issuer
    /// that could not answer when none said active.
    pub async fn verify_opaque(
        &self,
        token: &str,
        settings: &Settings,
        keys: &KeyStore,
    ) -> Result<Arc<VerifiedToken>, AuthnError> {
        if settings.opaque_tokens.is_empty() {
            // No issuer introspects: the token is judged as the JWS it is not.
            return Err(TokenError::Malformed("a JWS has three segments").into());
        }
        let mut unavailable = None;
        for name in &settings.opaque_tokens {
            let Some(issuer) = settings.issuer(name) else {
                continue;
            };
            match self.introspect(token, issuer, keys).await {
                Ok(Some(verified)) => return Ok(verified),
                Ok(None) => {}
                Err(e @ AuthnError::IntrospectionUnavailable { .. }) => {
                    unavailable.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(unavailable.unwrap_or(AuthnError::Invalid(TokenError::Inactive)))
    }

    /// A token of `issuer` (a JWT of an `introspect_jwts` issuer): active there, or refused.
    ///
    /// Errors: as [`Introspector::verify_opaque`].
    pub async fn verify_at(
        &self,
        token: &str,
        issuer: &IssuerSettings,
        keys: &KeyStore,
    ) -> Result<Arc<VerifiedToken>, AuthnError> {
        self.introspect(token, issuer, keys)
            .await?
            .ok_or(AuthnError::Invalid(TokenError::Inactive))
    }

    /// `Some(token)` when `issuer` says the token is active and its members pass every check,
    /// `None` when it says inactive.
    async fn introspect(
        &self,
        token: &str,
        issuer: &IssuerSettings,
        keys: &KeyStore,
    ) -> Result<Option<Arc<VerifiedToken>>, AuthnError> {
        let unavailable = || AuthnError::IntrospectionUnavailable {
            issuer: issuer.issuer.clone(),
        };
        let (Some(config), Some(state)) = (
            issuer.introspection.as_ref(),
            self.endpoints.get(&issuer.issuer),
        ) else {
            return Err(TokenError::UnknownIssuer.into());
        };
        let endpoint = config
            .endpoint
            .clone()
            .or_else(|| keys.introspection_endpoint(&issuer.issuer));
        let endpoint_text = endpoint.as_ref().map_or("", |u| u.as_str());
        let key = cache::key(token, &issuer.issuer, endpoint_text, &config.client_id);
        let cached = match state.cache.lookup(&key).await {
            Lookup::Hit(cached) => {
                state.counters.hit();
                cached
            }
            Lookup::Miss(guard) => {
                let cached = Arc::new(
                    self.ask(state, config, endpoint.as_ref(), issuer, keys, token)
                        .await,
                );
                guard.fill((*cached).clone());
                cached
            }
        };
        match &cached.answer {
            Answer::Active { members, token } => {
                check_members(members, issuer, super::now())?;
                Ok(Some(token.clone()))
            }
            Answer::Inactive => Ok(None),
            Answer::Unavailable => Err(unavailable()),
        }
    }

    /// One call, its metrics and log line, and the answer as it will be cached.
    async fn ask(
        &self,
        state: &Endpoint,
        config: &IntrospectionSettings,
        endpoint: Option<&url::Url>,
        issuer: &IssuerSettings,
        keys: &KeyStore,
        token: &str,
    ) -> Cached {
        let started = Instant::now();
        let said = match endpoint {
            Some(url) => client::call(&state.http, config, url, issuer, keys, token).await,
            None => Err(CallError::NoEndpoint),
        };
        let now = Instant::now();
        match said {
            Ok(Said::Active(mut members)) => {
                state.counters.call("active", now - started);
                // The issuer asked is the token's issuer: claims headers and route rules read
                // `iss` as for a JWT (a different `iss` fails `check_members`).
                members
                    .entry("iss")
                    .or_insert_with(|| Value::String(issuer.issuer.clone()));
                let ttl = ttl(&members, config.cache_ttl, super::now());
                let claims_json = serde_json::to_vec(&members).unwrap_or_default();
                let verified = VerifiedToken::from_verified(
                    issuer.issuer.clone(),
                    br#"{"typ":"token-introspection"}"#,
                    &claims_json,
                    &members,
                );
                Cached {
                    answer: Answer::Active {
                        members: Arc::new(members),
                        token: Arc::new(verified),
                    },
                    until: now + ttl,
                }
            }
            Ok(Said::Inactive) => {
                state.counters.call("inactive", now - started);
                Cached {
                    answer: Answer::Inactive,
                    until: now + config.negative_cache_ttl,
                }
            }
            Err(error) => {
                state.counters.call("error", now - started);
                warn!(
                    issuer = %Escaped(&issuer.issuer),
                    error = %Escaped(&error),
                    "introspection failed; the request gets 503"
                );
                Cached {
                    answer: Answer::Unavailable,
                    until: now + UNAVAILABLE_FOR,
                }
            }
        }
    }
}

/// How long an active answer may be reused: `cache_ttl`, and never past its `exp`.
fn ttl(members: &Map<String, Value>, cache_ttl: Duration, now: f64) -> Duration {
    match members.get("exp").and_then(Value::as_f64) {
        Some(exp) if exp - now < cache_ttl.as_secs_f64() => {
            Duration::try_from_secs_f64((exp - now).max(0.0)).unwrap_or(Duration::ZERO)
        }
        _ => cache_ttl,
    }
}

/// The checks an active answer's members must pass, on every use (RFC 7662 §2.2 members read
/// as JWT claims, RFC 7519 §4.1): `iss`, when present, is the issuer; `token_type`, when
/// present, names an access token (`Bearer`, `DPoP`, `access_token`); then the issuer's
/// claim checks in order, with `exp` optional (when absent, `max_lifetime` has nothing to
/// cap) and without the RFC 9068 profile (a JWT header property).
///
/// Errors: the [`TokenError`] of the first failed check.
pub fn check_members(
    members: &Map<String, Value>,
    issuer: &IssuerSettings,
    now: f64,
) -> Result<(), TokenError> {
    match members.get("iss") {
        None => {}
        Some(Value::String(iss)) if *iss == issuer.issuer => {}
        Some(Value::String(_)) => return Err(TokenError::IssuerMismatch),
        Some(_) => return Err(TokenError::ClaimType("iss")),
    }
    match members.get("token_type") {
        None => {}
        Some(Value::String(t))
            if ["bearer", "dpop", "access_token"]
                .iter()
                .any(|ok| t.eq_ignore_ascii_case(ok)) => {}
        Some(_) => return Err(TokenError::NotAnAccessToken),
    }
    let has_exp = members.contains_key("exp");
    ClaimCheck::ordered(issuer)
        .filter(|check| match check {
            ClaimCheck::Rfc9068Profile => false,
            ClaimCheck::Expiry | ClaimCheck::Lifetime => has_exp,
            _ => true,
        })
        .try_for_each(|check| check.run(members, None, issuer, now))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::KeySource;
    use serde_json::json;

    fn issuer() -> IssuerSettings {
        IssuerSettings {
            issuer: "https://idp.test".into(),
            audiences: vec!["api://default".into()],
            algorithms: vec![crate::algorithm::Algorithm::RS256],
            leeway: Duration::from_secs(60),
            max_lifetime: None,
            key_source: KeySource::Discovery,
            allow_http: false,
            claims: Vec::new(),
            require_rfc9068: false,
            introspection: None,
            introspect_jwts: false,
        }
    }

    fn check(v: Value) -> Result<(), TokenError> {
        let Value::Object(m) = v else {
            return Err(TokenError::Malformed("test"));
        };
        check_members(&m, &issuer(), 1_000_000.0)
    }

    #[test]
    fn members_are_checked_as_claims() {
        let ok = json!({"active": true, "aud": "api://default", "scope": "read"});
        assert_eq!(check(ok.clone()), Ok(()));
        let mut m = ok.clone();
        m["iss"] = json!("https://idp.test");
        assert_eq!(check(m.clone()), Ok(()));
        m["iss"] = json!("https://other");
        assert_eq!(check(m), Err(TokenError::IssuerMismatch));
        let mut m = ok.clone();
        m["aud"] = json!("api://other");
        assert_eq!(check(m), Err(TokenError::Audience));
        let mut m = ok.clone();
        m["exp"] = json!(999_900);
        assert_eq!(check(m), Err(TokenError::Expired));
        let mut m = ok.clone();
        m["nbf"] = json!(1_000_100);
        assert_eq!(check(m), Err(TokenError::NotYetValid));
        let mut m = ok.clone();
        m["token_type"] = json!("refresh_token");
        assert_eq!(check(m), Err(TokenError::NotAnAccessToken));
        let mut m = ok;
        m["scope"] = json!(["read"]);
        assert_eq!(check(m), Err(TokenError::ClaimType("scope")));
    }

    #[test]
    fn the_ttl_never_passes_exp() {
        let sixty = Duration::from_secs(60);
        let m = |v: Value| match v {
            Value::Object(m) => m,
            _ => Map::new(),
        };
        assert_eq!(ttl(&m(json!({})), sixty, 1000.0), sixty);
        assert_eq!(
            ttl(&m(json!({"exp": 1010})), sixty, 1000.0),
            Duration::from_secs(10)
        );
        assert_eq!(ttl(&m(json!({"exp": 990})), sixty, 1000.0), Duration::ZERO);
        assert_eq!(ttl(&m(json!({"exp": 99_999})), sixty, 1000.0), sixty);
    }
}
