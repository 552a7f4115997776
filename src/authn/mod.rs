//! Stage 3: verify a bearer token → [`Principal`].
//!
//! Order matters: the unverified `iss` only *selects* a configured issuer; the signature is
//! checked before any claim, so a forged token learns nothing about which claim would fail.
//! Every check fails closed: any doubt is a [`TokenError`], which the caller turns into 401.

pub mod binding;
pub mod cache;
mod checks;
pub mod dpop;
pub mod introspect;
mod jose;
mod json;

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderName, HeaderValue};
use serde_json::{Map, Value};

pub use binding::{CertificateThumbprint, Confirmation, Presentation};
pub use checks::{check_claims, ClaimCheck};
pub use dpop::{ProofChecker, ProofError, StoreError};
pub use introspect::Introspector;
pub use jose::Jws;

use self::cache::{Entry, TokenCache};
use crate::config::Settings;
use crate::jwks::{KeyError, KeyStore};
use crate::token::AccessToken;

/// Who is calling.
#[derive(Debug, Clone)]
pub enum Principal {
    /// No token was needed and none was used.
    Anonymous,
    /// A token that [`verify`] accepted (shared with the verified-token cache).
    Authenticated(Arc<VerifiedToken>),
}

/// A token whose signature and claims passed every check.
///
/// Kept compact because the verified-token cache holds many: the header and claims stay as
/// the JSON that was signed and are parsed again only when needed (`/secure`, route claim
/// rules, the first rendering of the forwarded headers); the subject and scopes, needed on
/// every request, are extracted once.
#[derive(Debug)]
pub struct VerifiedToken {
    /// The configured issuer that verified it (its `issuer:` setting, equal to the token's
    /// `iss`).
    pub issuer: String,
    header_json: Box<[u8]>,
    claims_json: Box<[u8]>,
    subject: Option<Box<str>>,
    scopes: Box<[Box<str>]>,
    /// `aud` (a string or an array of strings, RFC 7519 §4.1.3), read once: a protected
    /// resource's routes compare it on every request.
    audiences: Box<[Box<str>]>,
    /// What `cnf` binds the token to, read once (checked on every request by `binding`).
    confirmation: Confirmation,
    /// The claims headers for the upstream, rendered once per token (and so once per cache
    /// entry) by `mutate`; `None` for a header whose claim cannot be sent unambiguously.
    pub forward_headers: OnceLock<Vec<(HeaderName, Option<HeaderValue>)>>,
}

impl VerifiedToken {
    /// From the JSON that was verified (`header_json`, `claims_json`) and its parsed claims.
    fn from_verified(
        issuer: String,
        header_json: &[u8],
        claims_json: &[u8],
        claims: &Map<String, Value>,
    ) -> VerifiedToken {
        VerifiedToken {
            issuer,
            header_json: header_json.into(),
            claims_json: claims_json.into(),
            subject: claims.get("sub").and_then(Value::as_str).map(Box::from),
            scopes: crate::claims::scopes(claims)
                .into_iter()
                .map(Box::from)
                .collect(),
            audiences: match claims.get("aud") {
                Some(Value::String(aud)) => Box::new([Box::from(aud.as_str())]),
                Some(Value::Array(items)) => items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(Box::from)
                    .collect(),
                _ => Box::new([]),
            },
            confirmation: Confirmation::of(claims),
            forward_headers: OnceLock::new(),
        }
    }

    /// From parsed parts, unverified: for unit tests, benches and fuzz targets only (the
    /// `test-support` feature), so the proxy itself cannot make a verified token any other
    /// way than [`verify`].
    #[cfg(any(test, feature = "test-support"))]
    pub fn new(
        issuer: String,
        header: Map<String, Value>,
        claims: Map<String, Value>,
    ) -> VerifiedToken {
        let header_json = Value::Object(header).to_string();
        let claims_json = Value::Object(claims.clone()).to_string();
        VerifiedToken::from_verified(
            issuer,
            header_json.as_bytes(),
            claims_json.as_bytes(),
            &claims,
        )
    }

    /// The `sub` claim (RFC 7519 §4.1.2), if present (a string, as the claim checks require).
    pub fn subject(&self) -> Option<&str> {
        self.subject.as_deref()
    }

    /// The token's scopes, as [`crate::claims::scopes`] reads them: `scp` (an array, or a
    /// space-separated string) if present, else `scope` (space-separated, RFC 9068 §2.2.3).
    pub fn scopes(&self) -> &[Box<str>] {
        &self.scopes
    }

    /// The `aud` values (RFC 7519 §4.1.3): one for a string, each string of an array.
    pub fn audiences(&self) -> &[Box<str>] {
        &self.audiences
    }

    /// What the token is bound to (`cnf`, RFC 7800), checked on every request it came with.
    pub fn confirmation(&self) -> &Confirmation {
        &self.confirmation
    }

    /// The claims, parsed from the verified JSON.
    pub fn claims(&self) -> Map<String, Value> {
        json::parse_object(&self.claims_json).unwrap_or_default()
    }

    /// The claims exactly as they were signed.
    pub fn claims_json(&self) -> &[u8] {
        &self.claims_json
    }

    /// The JOSE header, parsed from the verified JSON.
    pub fn header(&self) -> Map<String, Value> {
        json::parse_object(&self.header_json).unwrap_or_default()
    }
}

/// Why a token is not accepted. Each variant says which check failed, never the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Not a compact JWS with a JSON object header and payload we accept (RFC 7515 §7.1);
    /// the text says what is wrong.
    #[error("the token is malformed: {0}")]
    Malformed(&'static str),
    /// Longer than `limits.max_token_bytes`; refused before any parsing.
    #[error("the token is longer than allowed")]
    TooLarge,
    /// `alg` names no algorithm tokengate implements (`none` included), or an HMAC algorithm
    /// on an issuer that has no secret.
    #[error("the token's algorithm is not supported")]
    UnsupportedAlgorithm,
    /// `alg` is implemented but not in the issuer's `algorithms`, or not one the selected
    /// key admits.
    #[error("the token's algorithm is not allowed for this issuer or key")]
    AlgorithmNotAllowed,
    /// The header has `crit`: tokengate implements no extension, so RFC 7515 §4.1.11 makes it
    /// invalid.
    #[error("the token has critical header parameters that are not understood")]
    CriticalHeader,
    /// `iss` is absent or names no configured issuer.
    #[error("the token's issuer is not accepted")]
    UnknownIssuer,
    /// No key of the issuer admits the token's `alg` under its `kid` (or at all, without
    /// one), even after the refetch an unknown `kid` may trigger.
    #[error("no key of the issuer matches the token's kid")]
    UnknownKey,
    /// The header has no `kid` and more than one of the issuer's keys admits its `alg`.
    #[error("the token names no kid and the issuer has several keys")]
    KidMissing,
    /// The issuer publishes two different keys under the token's `kid` for its algorithm
    /// (RFC 7517 §4.5 asks that they be distinguishable): neither is tried.
    #[error("the issuer publishes two different keys under kid {0:?}")]
    KidAmbiguous(String),
    /// The signature does not verify with the selected key (RFC 7515 §5.2).
    #[error("the token's signature is invalid")]
    BadSignature,
    /// `exp` + leeway is not after now (RFC 7519 §4.1.4).
    #[error("the token has expired")]
    Expired,
    /// `nbf` is later than now + leeway (RFC 7519 §4.1.5).
    #[error("the token is not valid yet")]
    NotYetValid,
    /// `iat` is later than now + leeway (RFC 7519 §4.1.6).
    #[error("the token was issued in the future")]
    IssuedInFuture,
    /// `exp` lies further beyond now, or beyond `iat`, than the issuer's `max_lifetime`.
    #[error("the token's lifetime is longer than the issuer allows")]
    LifetimeTooLong,
    /// No `exp`: tokengate requires every token to expire.
    #[error("the token has no exp claim")]
    MissingExp,
    /// The named claim is present with a type its specification does not allow (a
    /// NumericDate that is not a number, an `aud` that is not a string or array of strings,
    /// a non-string `iss`, `sub`, `scope`, …).
    #[error("the claim `{0}` has the wrong type")]
    ClaimType(&'static str),
    /// `aud` is absent or names none of the issuer's audiences (RFC 7519 §4.1.3).
    #[error("the token is not meant for this audience")]
    Audience,
    /// The issuer's claim assertion on the named claim does not hold.
    #[error("the claim `{0}` does not match")]
    Claim(String),
    /// The issuer requires RFC 9068 and the header's `typ` is not `at+jwt` (or
    /// `application/at+jwt`) (RFC 9068 §2.1).
    #[error("the token's typ is not at+jwt")]
    NotAnAccessToken,
    /// The issuer requires RFC 9068 and one of `sub`, `client_id`, `iat`, `jti` is absent
    /// (RFC 9068 §2.2).
    #[error("the token lacks the required claim `{0}`")]
    MissingClaim(&'static str),
    /// RFC 7662 §2.2: the introspection endpoint did not say `active: true`.
    #[error("the token is not active")]
    Inactive,
    /// An introspection answer's `iss` is not the issuer asked.
    #[error("the token's issuer is not the one that introspected it")]
    IssuerMismatch,
    /// A DPoP-bound token (`cnf.jkt`) sent as `Bearer` (RFC 9449 §7.2).
    #[error("the token is DPoP-bound: send it as Authorization: DPoP with a DPoP proof")]
    DpopBoundAsBearer,
    /// `Authorization: DPoP` with a token that is not bound to a key (RFC 9449 §7.1).
    #[error(
        "the token is not DPoP-bound (no cnf.jkt), so it cannot be sent as Authorization: DPoP"
    )]
    NotDpopBound,
    /// A bearer token on a route with `dpop: required`.
    #[error("this resource accepts DPoP-bound tokens only")]
    DpopRequired,
    /// A certificate-bound token (`cnf["x5t#S256"]`) without a client certificate (RFC 8705 §3).
    #[error("the token is bound to a client certificate, and none was presented")]
    CertificateRequired,
    /// A certificate-bound token with another certificate than the one it names.
    #[error("the client certificate is not the one the token is bound to")]
    CertificateMismatch,
    /// `cnf` binds the token in a way tokengate cannot check, or is malformed.
    #[error("the token's confirmation (cnf) is not one tokengate can check")]
    UnsupportedConfirmation,
}

impl TokenError {
    /// A stable code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            TokenError::Malformed(_) => "token_malformed",
            TokenError::TooLarge => "token_too_large",
            TokenError::UnsupportedAlgorithm => "alg_unsupported",
            TokenError::AlgorithmNotAllowed => "alg_not_allowed",
            TokenError::CriticalHeader => "crit_unsupported",
            TokenError::UnknownIssuer => "issuer_unknown",
            TokenError::UnknownKey => "kid_unknown",
            TokenError::KidMissing => "kid_missing",
            TokenError::KidAmbiguous(_) => "kid_ambiguous",
            TokenError::BadSignature => "signature_invalid",
            TokenError::Expired => "token_expired",
            TokenError::NotYetValid => "token_not_yet_valid",
            TokenError::IssuedInFuture => "token_issued_in_future",
            TokenError::LifetimeTooLong => "token_lifetime_too_long",
            TokenError::MissingExp => "exp_missing",
            TokenError::ClaimType(_) => "claim_type",
            TokenError::Audience => "audience_mismatch",
            TokenError::Claim(_) => "claim_mismatch",
            TokenError::NotAnAccessToken => "typ_mismatch",
            TokenError::MissingClaim(_) => "claim_missing",
            TokenError::Inactive => "token_inactive",
            TokenError::IssuerMismatch => "issuer_mismatch",
            TokenError::DpopBoundAsBearer => "dpop_bound_token_as_bearer",
            TokenError::NotDpopBound => "token_not_dpop_bound",
            TokenError::DpopRequired => "dpop_required",
            TokenError::CertificateRequired => "certificate_missing",
            TokenError::CertificateMismatch => "certificate_mismatch",
            TokenError::UnsupportedConfirmation => "cnf_unsupported",
        }
    }
}

/// Why authentication did not produce a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthnError {
    /// The token failed a check: the client's fault (401 `invalid_token`).
    Invalid(TokenError),
    /// The issuer has no usable keys yet: not the client's fault, so 503 rather than 401.
    KeysUnavailable {
        /// The configured issuer whose keys are missing.
        issuer: String,
    },
    /// The issuer's introspection endpoint could not be reached or believed (unreachable,
    /// timeout, non-200 such as 5xx or a 401 to our client, an unparsable or unverifiable
    /// answer): 503 with `Retry-After`, never a pass and never "inactive".
    IntrospectionUnavailable { issuer: String },
    /// The DPoP proof failed a check (401 `invalid_dpop_proof`, RFC 9449 §7.1).
    InvalidProof(ProofError),
    /// The DPoP proof lacks the current server nonce (401 `use_dpop_nonce` with this one,
    /// RFC 9449 §8).
    UseDpopNonce(String),
    /// The replay store could not record the proof: 503, never accepted.
    ReplayStoreUnavailable(StoreError),
}

/// A token that passed verification and its binding check.
#[derive(Debug, Clone)]
pub struct Authenticated {
    pub token: Arc<VerifiedToken>,
    /// A fresh DPoP nonce for the response (RFC 9449 §8.2), when the proof's is about to
    /// expire.
    pub dpop_nonce: Option<String>,
}

impl From<TokenError> for AuthnError {
    fn from(e: TokenError) -> Self {
        AuthnError::Invalid(e)
    }
}

/// Verifies a bearer token. A compact JWS (RFC 7515 §7.1: three dot-separated segments) is
/// verified locally against the configured issuers, through the verified-token cache:
/// signature, then `iss`, `aud`, `exp`/`nbf`/`iat`, the RFC 9068 profile where asked and the
/// issuer's claim assertions; unless its issuer says `introspect_jwts`, when it is
/// introspected there instead. Anything else is an opaque token, introspected (RFC 7662) at
/// the issuers of `opaque_tokens:` in order, and only there.
///
/// Then, however the token was verified, its binding (`cnf`) is checked against the
/// `presentation` (`binding::confirm`: the DPoP proof, the client certificate), on every
/// request, cached or not.
///
/// Errors: [`AuthnError::Invalid`] with the failed check (401 `invalid_token`, RFC 6750
/// §3.1), [`AuthnError::KeysUnavailable`] while the issuer has no keys (503),
/// [`AuthnError::IntrospectionUnavailable`] when an introspection endpoint cannot answer
/// (503), or the binding's errors ([`AuthnError::InvalidProof`],
/// [`AuthnError::UseDpopNonce`], [`AuthnError::ReplayStoreUnavailable`]).
pub async fn verify(
    token: AccessToken<'_>,
    presentation: &Presentation<'_>,
    settings: &Settings,
    keys: &KeyStore,
    cache: &TokenCache,
    introspector: &Introspector,
    proofs: &ProofChecker,
) -> Result<Authenticated, AuthnError> {
    let verified = verify_token(token.as_str(), settings, keys, cache, introspector).await?;
    let dpop_nonce =
        binding::confirm(token, verified.confirmation(), presentation, proofs, now()).await?;
    Ok(Authenticated {
        token: verified,
        dpop_nonce,
    })
}

/// The token's own checks, through the cache or introspection (see [`verify`]).
async fn verify_token(
    token: &str,
    settings: &Settings,
    keys: &KeyStore,
    cache: &TokenCache,
    introspector: &Introspector,
) -> Result<Arc<VerifiedToken>, AuthnError> {
    if token.len() > settings.limits.max_token_bytes {
        return Err(TokenError::TooLarge.into());
    }
    // The paths that may wait on the network are boxed: their futures hold HTTP clients'
    // state (kilobytes), and an unboxed one would make every connection's request future
    // that large, cache hit or not.
    if !is_compact_jws(token) {
        return Box::pin(introspector.verify_opaque(token, settings, keys)).await;
    }
    if let Some(issuer) = introspected_jwt_issuer(token, settings) {
        return Box::pin(introspector.verify_at(token, issuer, keys)).await;
    }
    let cache_key = cache.enabled().then(|| cache.key(token));
    if let Some(key) = &cache_key {
        // An expired entry, or one whose key was rotated out, is dropped and the token
        // verified afresh (which will say why).
        let usable = |e: &Entry| now() < e.deadline && keys.is_current(&e.token.issuer, &e.key);
        if let Some(entry) = cache.get(key, usable) {
            return Ok(entry.token.clone());
        }
    }
    let (verified, key, deadline) = Box::pin(verify_uncached(token, settings, keys)).await?;
    let verified = Arc::new(verified);
    if let Some(cache_key) = cache_key {
        cache.insert(
            cache_key,
            Entry {
                revision: cache.revision(&verified.issuer).unwrap_or_default(),
                token: verified.clone(),
                deadline,
                key,
            },
        );
    }
    Ok(verified)
}

/// Whether `token` has the three segments of the JWS compact serialisation (RFC 7515 §7.1):
/// exactly two dots. Anything else is an opaque token.
fn is_compact_jws(token: &str) -> bool {
    // Searched, not counted: a byte-by-byte count of a 1 KiB token was a quarter of a cache
    // hit's time (benches/hot_path.rs, `extract_and_verify_cache_hit`).
    let mut dots = token.match_indices('.');
    dots.next().is_some() && dots.next().is_some() && dots.next().is_none()
}

/// The issuer of a JWT that is introspected rather than verified locally
/// (`introspect_jwts: true`), chosen by its unverified `iss` among configured issuers only.
fn introspected_jwt_issuer<'s>(
    token: &str,
    settings: &'s Settings,
) -> Option<&'s crate::config::IssuerSettings> {
    if !settings.issuers.iter().any(|i| i.introspect_jwts) {
        return None;
    }
    let jws = Jws::parse(token).ok()?;
    let claims = parse_claims(&jws.payload).ok()?;
    let issuer = settings.issuer(claims.get("iss")?.as_str()?)?;
    issuer.introspect_jwts.then_some(issuer)
}

/// The full check. Returns the token, the key that verified it and its `exp` + leeway.
async fn verify_uncached(
    token: &str,
    settings: &Settings,
    keys: &KeyStore,
) -> Result<(VerifiedToken, Arc<crate::jwk::VerifyingKey>, f64), AuthnError> {
    let jws = Jws::parse(token)?;
    let claims = parse_claims(&jws.payload).map_err(TokenError::Malformed)?;
    let iss = match claims.get("iss") {
        Some(Value::String(iss)) => iss.as_str(),
        Some(_) => return Err(TokenError::ClaimType("iss").into()),
        None => return Err(TokenError::UnknownIssuer.into()),
    };
    // An unknown issuer fetches nothing.
    let issuer = settings.issuer(iss).ok_or(TokenError::UnknownIssuer)?;
    if !issuer.algorithms.contains(&jws.alg) {
        // HMAC on an asymmetric issuer is not "not allowed" but impossible: it has no secret.
        let hmac_issuer = matches!(issuer.key_source, crate::config::KeySource::Hmac(_));
        if crate::jwk::is_hmac(jws.alg) && !hmac_issuer {
            return Err(TokenError::UnsupportedAlgorithm.into());
        }
        return Err(TokenError::AlgorithmNotAllowed.into());
    }
    let key = keys
        .select(iss, jws.kid.as_deref(), jws.alg)
        .await
        .map_err(|e| match e {
            KeyError::UnknownIssuer => AuthnError::Invalid(TokenError::UnknownIssuer),
            KeyError::UnknownKey => AuthnError::Invalid(TokenError::UnknownKey),
            KeyError::NoKid => AuthnError::Invalid(TokenError::KidMissing),
            KeyError::KidConflict => AuthnError::Invalid(TokenError::KidAmbiguous(
                jws.kid
                    .as_deref()
                    .unwrap_or_default()
                    .chars()
                    .take(64)
                    .collect(),
            )),
            KeyError::Unavailable => AuthnError::KeysUnavailable {
                issuer: issuer.issuer.clone(),
            },
        })?;
    jws.verify_signature(&key)?;
    check_claims(&claims, jws.typ.as_deref(), issuer, now())?;
    // check_claims proved exp is a number.
    let deadline =
        claims.get("exp").and_then(Value::as_f64).unwrap_or(0.0) + issuer.leeway.as_secs_f64();
    Ok((
        VerifiedToken::from_verified(
            issuer.issuer.clone(),
            &jws.header_json,
            &jws.payload,
            &claims,
        ),
        key,
        deadline,
    ))
}

/// The payload as a claims object (strict JSON: no duplicate members), or the true reason it
/// is not one (a duplicate member, a number out of range, a lone surrogate, nesting too deep,
/// not JSON, not an object).
pub fn parse_claims(payload: &[u8]) -> Result<Map<String, Value>, &'static str> {
    json::parse_part(payload, json::Part::Payload)
}

/// Seconds since the epoch, with fractions (NumericDate allows them, RFC 7519 §2).
pub fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::claims::{ClaimRule, Predicate};
    use crate::config::IssuerSettings;
    use crate::config::KeySource;
    use serde_json::json;
    use std::time::Duration;

    proptest::proptest! {
        /// The same answer as counting the dots, on any text.
        #[test]
        fn a_compact_jws_has_exactly_two_dots(token in "[a-z.é]{0,12}") {
            let dots = token.bytes().filter(|&b| b == b'.').count();
            proptest::prop_assert_eq!(is_compact_jws(&token), dots == 2);
        }
    }

    fn issuer() -> IssuerSettings {
        IssuerSettings {
            issuer: "https://idp.test".into(),
            audiences: vec!["api://default".into(), "api://other".into()],
            algorithms: vec![crate::algorithm::Algorithm::RS256],
            leeway: Duration::from_secs(60),
            max_lifetime: Some(Duration::from_secs(3600)),
            key_source: KeySource::Discovery,
            allow_http: false,
            claims: vec![ClaimRule::new("cid", Predicate::Equals(json!("client-1")))],
            require_rfc9068: false,
            introspection: None,
            introspect_jwts: false,
        }
    }

    fn check(claims: Value) -> Result<(), TokenError> {
        let Value::Object(map) = claims else {
            return Err(TokenError::Malformed("test"));
        };
        check_claims(&map, None, &issuer(), 1_000_000.0)
    }

    fn base() -> Value {
        json!({"iss": "https://idp.test", "aud": "api://default", "exp": 1_000_100, "cid": "client-1", "sub": "u"})
    }

    fn with(key: &str, value: Value) -> Value {
        let mut v = base();
        v[key] = value;
        v
    }

    #[test]
    fn max_lifetime_caps_exp_beyond_now_and_beyond_iat() {
        // max_lifetime 1h, leeway 60 s, now 1_000_000.
        assert_eq!(check(with("exp", json!(1_003_660))), Ok(()));
        assert_eq!(
            check(with("exp", json!(1_003_661))),
            Err(TokenError::LifetimeTooLong)
        );
        assert_eq!(
            check(with("exp", json!(2e206))),
            Err(TokenError::LifetimeTooLong)
        );
        let mut long = with("exp", json!(1_000_100));
        long["iat"] = json!(990_000);
        assert_eq!(check(long), Err(TokenError::LifetimeTooLong));
    }

    #[test]
    fn exp_is_required_and_checked_with_leeway() {
        assert_eq!(check(base()), Ok(()));
        let mut no_exp = base();
        no_exp.as_object_mut().map(|m| m.remove("exp"));
        assert_eq!(check(no_exp), Err(TokenError::MissingExp));
        assert_eq!(check(with("exp", json!(999_950))), Ok(()));
        assert_eq!(check(with("exp", json!(999_940))), Err(TokenError::Expired));
        assert_eq!(check(with("exp", json!(-5))), Err(TokenError::Expired));
        assert_eq!(check(with("exp", json!(1_000_100.5))), Ok(()));
        assert_eq!(
            check(with("exp", json!("1000100"))),
            Err(TokenError::ClaimType("exp"))
        );
        assert_eq!(
            check(with("exp", json!([1_000_100]))),
            Err(TokenError::ClaimType("exp"))
        );
    }

    #[test]
    fn nbf_and_iat() {
        assert_eq!(check(with("nbf", json!(1_000_050))), Ok(()));
        assert_eq!(
            check(with("nbf", json!(1_000_061))),
            Err(TokenError::NotYetValid)
        );
        assert_eq!(
            check(with("iat", json!(1_000_061))),
            Err(TokenError::IssuedInFuture)
        );
        assert_eq!(
            check(with("iat", json!("x"))),
            Err(TokenError::ClaimType("iat"))
        );
    }

    #[test]
    fn audience_any_of_and_strict_type() {
        assert_eq!(check(with("aud", json!(["x", "api://other"]))), Ok(()));
        assert_eq!(check(with("aud", json!(["x"]))), Err(TokenError::Audience));
        assert_eq!(check(with("aud", json!([]))), Err(TokenError::Audience));
        assert_eq!(
            check(with("aud", json!({"a": "api://default"}))),
            Err(TokenError::ClaimType("aud"))
        );
        assert_eq!(
            check(with("aud", json!(["api://default", 5]))),
            Err(TokenError::ClaimType("aud"))
        );
        assert_eq!(
            check(with("aud", json!("api://default/"))),
            Err(TokenError::Audience)
        );
    }

    #[test]
    fn claim_assertions_and_types() {
        assert_eq!(
            check(with("cid", json!("client-2"))),
            Err(TokenError::Claim("cid".into()))
        );
        assert_eq!(
            check(with("sub", json!(7))),
            Err(TokenError::ClaimType("sub"))
        );
        assert_eq!(
            check(with("scp", json!(["a", 1]))),
            Err(TokenError::ClaimType("scp"))
        );
    }

    #[test]
    fn rfc9068_profile() {
        let mut iss = issuer();
        iss.require_rfc9068 = true;
        iss.claims.clear();
        let Value::Object(claims) = json!({"aud": "api://default", "exp": 1_000_100, "sub": "u", "client_id": "c", "iat": 999_999, "jti": "j"})
        else {
            return;
        };
        assert_eq!(
            check_claims(&claims, Some("at+jwt"), &iss, 1_000_000.0),
            Ok(())
        );
        assert_eq!(
            check_claims(&claims, Some("JWT"), &iss, 1_000_000.0),
            Err(TokenError::NotAnAccessToken)
        );
        let mut missing = claims.clone();
        missing.remove("jti");
        assert_eq!(
            check_claims(&missing, Some("at+jwt"), &iss, 1_000_000.0),
            Err(TokenError::MissingClaim("jti"))
        );
    }
}
