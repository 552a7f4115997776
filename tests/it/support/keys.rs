//! Fixture keys (committed PEMs) and token minting with full control over header and claims.

use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public JWK, as an issuer would publish it.
    pub jwk: Value,
    /// The PEM text (for attacks that misuse it as an HMAC secret).
    pub pem: String,
}

pub fn fixture_pem(name: &str) -> String {
    let path = format!(
        "{}/tests/fixtures/keys/{name}.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("fixture PEM is base64")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    /// Loads `tests/fixtures/keys/{name}.pem` to sign with `alg`, published under `kid`.
    pub fn load(name: &str, kid: &str, alg: Algorithm) -> TestKey {
        let pem = fixture_pem(name);
        let der = pem_der(&pem);
        let (encoding, mut jwk) = match alg {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => {
                let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).expect("RSA fixture");
                let public = pair.public_key();
                let jwk = json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                });
                (
                    EncodingKey::from_rsa_pem(pem.as_bytes()).expect("RSA PEM"),
                    jwk,
                )
            }
            Algorithm::ES256 | Algorithm::ES384 => {
                let (signing, crv, size) = if alg == Algorithm::ES256 {
                    (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::from_pkcs8(signing, &der).expect("EC fixture");
                let point = pair.public_key().as_ref().to_vec();
                let jwk = json!({
                    "kty": "EC",
                    "crv": crv,
                    "x": b64(&point[1..1 + size]),
                    "y": b64(&point[1 + size..]),
                });
                (
                    EncodingKey::from_ec_pem(pem.as_bytes()).expect("EC PEM"),
                    jwk,
                )
            }
            Algorithm::EdDSA => {
                let pair =
                    Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).expect("Ed25519 fixture");
                let jwk =
                    json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())});
                (
                    EncodingKey::from_ed_pem(pem.as_bytes()).expect("Ed PEM"),
                    jwk,
                )
            }
            other => panic!("no fixture for {other:?}"),
        };
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(alg_name(alg));
        TestKey {
            kid: kid.into(),
            alg,
            encoding,
            jwk,
            pem,
        }
    }

    /// The same key with another signing algorithm claimed in the token header
    /// (the JWK keeps its own `alg`).
    pub fn signing_as(&self, alg: Algorithm) -> TestKey {
        TestKey {
            alg,
            ..self.clone()
        }
    }
}

pub fn alg_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::EdDSA => "EdDSA",
        _ => "unknown",
    }
}

/// Signs `header` and `claims` exactly as given (no field added or reordered).
pub fn sign_raw(header: &Value, claims: &Value, key: &EncodingKey, alg: Algorithm) -> String {
    let signing_input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(signing_input.as_bytes(), key, alg).expect("signing");
    format!("{signing_input}.{signature}")
}

/// Encodes a header and claims given as raw text, with any signature string.
pub fn raw_token(header: &str, claims: &str, signature: &str) -> String {
    format!(
        "{}.{}.{}",
        b64(header.as_bytes()),
        b64(claims.as_bytes()),
        signature
    )
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
