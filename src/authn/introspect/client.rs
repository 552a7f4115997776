//! One RFC 7662 call: the form POST with client authentication (RFC 6749 §2.3.1, RFC 7523),
//! the answer read (at most 1 MiB) and, for `response: jwt`, the RFC 9701 signed answer
//! checked with the issuer's keys. Returns what the endpoint said, or why it could not be
//! believed; deciding what the answer means for the request is `mod.rs`'s job.

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::{Map, Value};
use url::form_urlencoded::byte_serialize;
use url::Url;

use crate::authn::jose::Jws;
use crate::authn::{json, TokenError};
use crate::config::{ClientAuth, IntrospectionResponse, IntrospectionSettings, IssuerSettings};
use crate::jwks::KeyStore;

/// The largest introspection answer read.
const MAX_ANSWER_BYTES: usize = 1024 * 1024;
/// Lifetime of a `private_key_jwt` assertion.
const ASSERTION_LIFETIME: u64 = 60;
/// RFC 9701 §4: the media type of a signed answer (also its `typ`, with or without the
/// `application/` prefix, RFC 7515 §4.1.9).
const JWT_MEDIA_TYPE: &str = "application/token-introspection+jwt";

/// What the endpoint said about a token.
#[derive(Debug, Clone)]
pub enum Said {
    /// `active: true`, with every member of the answer (RFC 7662 §2.2).
    Active(Map<String, Value>),
    /// `active` false, absent or not exactly `true`.
    Inactive,
}

/// Why the endpoint's answer could not be had or believed: 503, never a pass or "inactive".
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    #[error("no introspection endpoint: none configured and discovery named none (yet)")]
    NoEndpoint,
    #[error("request failed: {0}")]
    Transport(String),
    #[error("HTTP status {0}")]
    Status(u16),
    #[error("the answer is not a JSON object: {0}")]
    Unparsable(&'static str),
    #[error("the signed answer is not acceptable: {0}")]
    BadJwt(&'static str),
    #[error("the private_key_jwt assertion cannot be made: {0}")]
    Assertion(String),
}

/// The HTTP client for introspection: the issuer's timeout, and no redirects (the token and
/// the client's credentials would follow them).
pub fn http_client(timeout: Duration) -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(timeout)
        .connect_timeout(timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("tokengate/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_default()
}

/// POSTs `token` to `endpoint` (RFC 7662 §2.1: `token`, `token_type_hint=access_token`, the
/// client authenticated as `settings.auth` says) and reads the answer: JSON (§2.2), or for
/// `response: jwt` an RFC 9701 JWT whose `typ`, signature (the issuer's keys), `iss`, `aud`
/// (= `client_id`) and `iat` are checked before its `token_introspection` members are read.
///
/// Errors: [`CallError`] for anything but a readable, believable answer.
pub async fn call(
    http: &reqwest::Client,
    settings: &IntrospectionSettings,
    endpoint: &Url,
    issuer: &IssuerSettings,
    keys: &KeyStore,
    token: &str,
) -> Result<Said, CallError> {
    let mut form = vec![
        ("token", token.as_bytes().to_vec()),
        ("token_type_hint", b"access_token".to_vec()),
    ];
    let mut request = http.post(endpoint.clone());
    match &settings.auth {
        ClientAuth::ClientSecretBasic(secret) => {
            // RFC 6749 §2.3.1: each form-urlencoded, then joined by ':' and base64'd.
            let user: String = byte_serialize(settings.client_id.as_bytes()).collect();
            let pass: String = byte_serialize(&secret.bytes).collect();
            let basic = STANDARD.encode(format!("{user}:{pass}"));
            request = request.header("authorization", format!("Basic {basic}"));
        }
        ClientAuth::ClientSecretPost(secret) => {
            form.push(("client_id", settings.client_id.as_bytes().to_vec()));
            form.push(("client_secret", secret.bytes.to_vec()));
        }
        ClientAuth::PrivateKeyJwt(pem) => {
            let assertion = assertion(&settings.client_id, endpoint, &pem.bytes)?;
            form.push(("client_id", settings.client_id.as_bytes().to_vec()));
            form.push((
                "client_assertion_type",
                b"urn:ietf:params:oauth:client-assertion-type:jwt-bearer".to_vec(),
            ));
            form.push(("client_assertion", assertion.into_bytes()));
        }
    }
    let body = form
        .iter()
        .map(|(name, value)| format!("{name}={}", byte_serialize(value).collect::<String>()))
        .collect::<Vec<_>>()
        .join("&");
    let accept = match settings.response {
        IntrospectionResponse::Json => "application/json",
        IntrospectionResponse::Jwt => JWT_MEDIA_TYPE,
    };
    let mut response = request
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", accept)
        .body(body)
        .send()
        .await
        .map_err(transport)?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(CallError::Status(response.status().as_u16()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(transport)? {
        if bytes.len() + chunk.len() > MAX_ANSWER_BYTES {
            return Err(CallError::Unparsable("larger than 1 MiB"));
        }
        bytes.extend_from_slice(&chunk);
    }
    let members = match settings.response {
        IntrospectionResponse::Json => json::parse_object(&bytes).ok_or(CallError::Unparsable(
            "not one JSON object without duplicate members",
        ))?,
        IntrospectionResponse::Jwt => signed_members(&bytes, settings, issuer, keys).await?,
    };
    // RFC 7662 §2.2: `active` is REQUIRED; only exactly `true` means active.
    if members.get("active") == Some(&Value::Bool(true)) {
        Ok(Said::Active(members))
    } else {
        Ok(Said::Inactive)
    }
}

/// RFC 9701 §5: the JWT's `typ`, its signature by a key the issuer publishes under an
/// algorithm the issuer allows, `iss` = the issuer, `aud` = our client id, `iat` present and
/// not in the future; then the `token_introspection` object.
async fn signed_members(
    bytes: &[u8],
    settings: &IntrospectionSettings,
    issuer: &IssuerSettings,
    keys: &KeyStore,
) -> Result<Map<String, Value>, CallError> {
    let text = std::str::from_utf8(bytes)
        .map_err(|_| CallError::BadJwt("not text"))?
        .trim();
    let jws = Jws::parse(text).map_err(|e| CallError::BadJwt(jws_reason(&e)))?;
    let typ_ok = jws.typ.as_deref().is_some_and(|t| {
        t.eq_ignore_ascii_case(JWT_MEDIA_TYPE) || t.eq_ignore_ascii_case("token-introspection+jwt")
    });
    if !typ_ok {
        return Err(CallError::BadJwt("typ is not token-introspection+jwt"));
    }
    if !issuer.algorithms.contains(&jws.alg) {
        return Err(CallError::BadJwt("alg is not allowed for this issuer"));
    }
    let key = keys
        .select(&issuer.issuer, jws.kid.as_deref(), jws.alg)
        .await
        .map_err(|_| CallError::BadJwt("no key of the issuer verifies it"))?;
    jws.verify_signature(&key)
        .map_err(|_| CallError::BadJwt("the signature is invalid"))?;
    let claims = json::parse_object(&jws.payload)
        .ok_or(CallError::BadJwt("the payload is not a JSON object"))?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer.issuer.as_str()) {
        return Err(CallError::BadJwt("iss is not the issuer"));
    }
    let aud_ok = match claims.get("aud") {
        Some(Value::String(aud)) => *aud == settings.client_id,
        Some(Value::Array(items)) => items
            .iter()
            .any(|a| a.as_str() == Some(settings.client_id.as_str())),
        _ => false,
    };
    if !aud_ok {
        return Err(CallError::BadJwt("aud is not our client_id"));
    }
    match claims.get("iat").and_then(Value::as_f64) {
        Some(iat) if iat <= crate::authn::now() + issuer.leeway.as_secs_f64() => {}
        Some(_) => return Err(CallError::BadJwt("iat is in the future")),
        None => return Err(CallError::BadJwt("iat is missing")),
    }
    match claims.get("token_introspection") {
        Some(Value::Object(members)) => Ok(members.clone()),
        _ => Err(CallError::BadJwt("no token_introspection object")),
    }
}

fn jws_reason(e: &TokenError) -> &'static str {
    match e {
        TokenError::Malformed(why) => why,
        TokenError::UnsupportedAlgorithm => "alg is not supported",
        TokenError::CriticalHeader => "crit is not understood",
        _ => "not a compact JWS",
    }
}

/// RFC 7523 §3 client assertion: `iss` = `sub` = client id, `aud` = the endpoint, a random
/// `jti`, `iat` now and `exp` a minute later, signed RS256 (RSA key) or ES256 (P-256 key).
fn assertion(client_id: &str, endpoint: &Url, pem: &[u8]) -> Result<String, CallError> {
    let alg = crate::config::signing_algorithm(pem)
        .ok_or_else(|| CallError::Assertion("not an RSA or P-256 PEM key".into()))?;
    let key = match alg {
        jsonwebtoken::Algorithm::RS256 => jsonwebtoken::EncodingKey::from_rsa_pem(pem),
        _ => jsonwebtoken::EncodingKey::from_ec_pem(pem),
    }
    .map_err(|e| CallError::Assertion(e.to_string()))?;
    let mut jti = [0u8; 16];
    aws_lc_rs::rand::fill(&mut jti).map_err(|_| CallError::Assertion("no randomness".into()))?;
    let now = crate::authn::now() as u64;
    let claims = serde_json::json!({
        "iss": client_id,
        "sub": client_id,
        "aud": endpoint.as_str(),
        "jti": jti.iter().map(|b| format!("{b:02x}")).collect::<String>(),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME,
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), &claims, &key)
        .map_err(|e| CallError::Assertion(e.to_string()))
}

/// reqwest errors name the URL; the message is enough without it.
fn transport(e: reqwest::Error) -> CallError {
    let timeout = e.is_timeout();
    let text = e.without_url().to_string();
    CallError::Transport(if timeout {
        format!("timed out ({text})")
    } else {
        text
    })
}
