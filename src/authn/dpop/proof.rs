//! One DPoP proof (RFC 9449 §4.2) read and checked on its own: size, JWS syntax, `typ`,
//! `alg`, the public `jwk` in the header, the signature with that key, and the types of the
//! claims. What the proof must agree with (the request, the token, the clock, the nonce,
//! earlier proofs) is checked by the caller, `dpop::ProofChecker::check`.

use serde_json::{Map, Value};

use super::ProofError;
use crate::algorithm::Algorithm;
use crate::authn::jose::Jws;
use crate::authn::json::{parse_part, Part};
use crate::authn::TokenError;
use crate::jwk;

/// The longest proof read (RFC 9449 gives none; a proof with an RSA-4096 key is under 2 KiB).
pub const MAX_PROOF_BYTES: usize = 8 * 1024;
/// The longest `jti` recorded.
pub const MAX_JTI_BYTES: usize = 256;

/// JWK members that only a private (or symmetric) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// A proof whose signature verified with the key it carries.
#[derive(Debug)]
pub struct Proof {
    /// RFC 7638 thumbprint (SHA-256, base64url) of the proof's key.
    pub jkt: String,
    pub jti: String,
    pub htm: String,
    pub htu: String,
    /// Seconds since the epoch.
    pub iat: f64,
    pub ath: Option<String>,
    pub nonce: Option<String>,
}

/// Reads `text` as a DPoP proof signed with one of `algorithms` (§4.3 checks 2–7).
///
/// Errors: the first [`ProofError`] found.
pub fn read(text: &str, algorithms: &[Algorithm]) -> Result<Proof, ProofError> {
    if text.len() > MAX_PROOF_BYTES {
        return Err(ProofError::TooLarge);
    }
    let jws = Jws::parse(text).map_err(|e| match e {
        TokenError::UnsupportedAlgorithm => ProofError::Algorithm,
        TokenError::CriticalHeader => ProofError::Malformed("it has critical header parameters"),
        TokenError::Malformed(why) => ProofError::Malformed(why),
        _ => ProofError::Malformed("not a compact JWS"),
    })?;
    // §4.2: `typ` is `dpop+jwt`; media type names compare case-insensitively (RFC 7515
    // §4.1.9).
    if !jws
        .typ
        .as_deref()
        .is_some_and(|t| t.eq_ignore_ascii_case("dpop+jwt"))
    {
        return Err(ProofError::Typ);
    }
    if !algorithms.contains(&jws.alg) || jwk::is_hmac(jws.alg) {
        return Err(ProofError::Algorithm);
    }
    let Some(Value::Object(key)) = jws.header.get("jwk") else {
        return Err(ProofError::Key("the header has no jwk object"));
    };
    if PRIVATE_MEMBERS.iter().any(|m| key.contains_key(*m)) {
        return Err(ProofError::PrivateKey);
    }
    let verifying = jwk::parse_key(&Value::Object(key.clone()), &[jws.alg])
        .map_err(|_| ProofError::Key("it is not a public key for the proof's alg"))?;
    jws.verify_signature(&verifying).map_err(|e| match e {
        TokenError::AlgorithmNotAllowed => ProofError::Key("it does not admit the proof's alg"),
        _ => ProofError::Signature,
    })?;
    let jkt = thumbprint(key)?;
    let claims = parse_part(&jws.payload, Part::Payload).map_err(ProofError::Malformed)?;
    let text_claim = |name: &'static str| -> Result<String, ProofError> {
        match claims.get(name) {
            Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
            _ => Err(ProofError::Claim(name)),
        }
    };
    let optional = |name: &'static str| -> Result<Option<String>, ProofError> {
        match claims.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ProofError::Claim(name)),
        }
    };
    let jti = text_claim("jti")?;
    if jti.len() > MAX_JTI_BYTES {
        return Err(ProofError::JtiTooLong);
    }
    let iat = match claims.get("iat") {
        Some(Value::Number(n)) => n.as_f64().ok_or(ProofError::Claim("iat"))?,
        _ => return Err(ProofError::Claim("iat")),
    };
    Ok(Proof {
        jkt,
        jti,
        htm: text_claim("htm")?,
        htu: text_claim("htu")?,
        iat,
        ath: optional("ath")?,
        nonce: optional("nonce")?,
    })
}

/// RFC 7638 §3: SHA-256 over the key's required members, in lexicographic order, as JSON
/// without white space; base64url without padding.
///
/// Errors: [`ProofError::Key`] when a required member is missing or not a string.
pub fn thumbprint(key: &Map<String, Value>) -> Result<String, ProofError> {
    let members: &[&str] = match key.get("kty").and_then(Value::as_str) {
        Some("EC") => &["crv", "kty", "x", "y"],
        Some("RSA") => &["e", "kty", "n"],
        Some("OKP") => &["crv", "kty", "x"],
        _ => return Err(ProofError::Key("its kty has no RFC 7638 thumbprint")),
    };
    let mut json = String::from("{");
    for (i, name) in members.iter().enumerate() {
        let Some(Value::String(value)) = key.get(*name) else {
            return Err(ProofError::Key("a required member is missing"));
        };
        if i > 0 {
            json.push(',');
        }
        // serde_json writes a string with exactly the escapes RFC 7638 §3.3 asks for.
        json.push_str(&Value::String((*name).to_owned()).to_string());
        json.push(':');
        json.push_str(&Value::String(value.clone()).to_string());
    }
    json.push('}');
    Ok(super::base64url_sha256(json.as_bytes()))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thumbprint_of_rfc_7638_example() {
        // RFC 7638 §3.1.
        let key = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        let Value::Object(key) = key else {
            panic!("an object")
        };
        assert_eq!(
            thumbprint(&key).ok().as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn thumbprint_needs_the_required_members() {
        for key in [
            json!({"kty": "EC", "crv": "P-256", "x": "a"}),
            json!({"kty": "oct", "k": "a"}),
            json!({"kty": "RSA", "n": "a", "e": 3}),
            json!({}),
        ] {
            let Value::Object(key) = key else {
                panic!("an object")
            };
            assert!(thumbprint(&key).is_err(), "{key:?}");
        }
    }
}
