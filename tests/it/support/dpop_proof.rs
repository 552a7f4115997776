//! DpopKey: a DPoP proof key (ES256, made per test with rcgen) and the proofs it signs, built
//! by hand exactly as RFC 9449 §4.2 lays them out, for tests that need a proof the test
//! controls (the replay test sends the same proof twice; oidc-provider's token endpoint gets
//! one to bind a token).

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::keys::{now, sign_raw};

pub struct DpopKey {
    encoding: EncodingKey,
    /// The public JWK (`kty`, `crv`, `x`, `y` only).
    pub jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// base64url(SHA-256(access token)): a proof's `ath` (RFC 9449 §4.2).
pub fn ath(access_token: &str) -> String {
    b64(digest(&SHA256, access_token.as_bytes()).as_ref())
}

impl DpopKey {
    /// A fresh P-256 key.
    pub fn generate() -> DpopKey {
        let pair =
            rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a P-256 key");
        // The uncompressed point: 0x04 || x || y.
        let point = pair.public_key_raw();
        assert_eq!(point.len(), 65, "an uncompressed P-256 point");
        DpopKey {
            encoding: EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes())
                .expect("the key as PKCS#8 PEM"),
            jwk: json!({
                "kty": "EC",
                "crv": "P-256",
                "x": b64(&point[1..33]),
                "y": b64(&point[33..]),
            }),
        }
    }

    /// The key's RFC 7638 thumbprint: what a token bound to it carries in `cnf.jkt`.
    pub fn thumbprint(&self) -> String {
        // The required members in lexicographic order, no whitespace (RFC 7638 §3.2).
        let canonical = format!(
            r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
            self.jwk["x"].as_str().expect("x"),
            self.jwk["y"].as_str().expect("y")
        );
        b64(digest(&SHA256, canonical.as_bytes()).as_ref())
    }

    /// A proof for `htm htu`, issued now with a random `jti`, with `ath` for
    /// `access_token` when there is one and `nonce` when given.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
    ) -> String {
        let mut claims = json!({
            "jti": format!("{:032x}", fastrand::u128(..)),
            "htm": htm,
            "htu": htu,
            "iat": now(),
        });
        if let Some(token) = access_token {
            claims["ath"] = json!(ath(token));
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = json!(nonce);
        }
        self.sign(&claims)
    }

    /// Signs `claims` under a well-formed proof header (`typ: dpop+jwt`, ES256, the `jwk`).
    pub fn sign(&self, claims: &Value) -> String {
        let header = json!({ "typ": "dpop+jwt", "alg": "ES256", "jwk": self.jwk });
        sign_raw(&header, claims, &self.encoding, Algorithm::ES256)
    }
}
