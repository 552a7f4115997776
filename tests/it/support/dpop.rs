//! DPoP proofs (RFC 9449 §4.2) made the way a client makes them, with every part
//! adjustable so a test can break exactly one thing.

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use super::issuer::merge;
use super::keys::{alg_name, now, sign_raw, TestKey};

/// A client's DPoP key: a fixture key pair and its public JWK.
#[derive(Clone)]
pub struct DpopKey {
    pub key: TestKey,
}

impl DpopKey {
    /// The P-256 fixture key, signing ES256.
    pub fn es256() -> DpopKey {
        DpopKey {
            key: TestKey::load("ec-p256", "client", Algorithm::ES256),
        }
    }

    /// Another fixture key: `rsa-b` (RS256) or `ed25519` (EdDSA).
    pub fn load(name: &str, alg: Algorithm) -> DpopKey {
        DpopKey {
            key: TestKey::load(name, "client", alg),
        }
    }

    /// The public JWK as a proof carries it: required members and `kty` only.
    pub fn jwk(&self) -> Value {
        let mut jwk = self.key.jwk.clone();
        if let Some(o) = jwk.as_object_mut() {
            o.retain(|k, _| matches!(k.as_str(), "kty" | "crv" | "x" | "y" | "n" | "e"));
        }
        jwk
    }

    /// RFC 7638 thumbprint of the key, computed here independently of tokengate: the
    /// required members in lexicographic order, no white space, SHA-256, base64url.
    pub fn jkt(&self) -> String {
        let jwk = self.jwk();
        let s = |name: &str| jwk[name].as_str().unwrap_or_default().to_owned();
        let canonical = match s("kty").as_str() {
            "EC" => format!(
                r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
                s("crv"),
                s("x"),
                s("y")
            ),
            "RSA" => format!(r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#, s("e"), s("n")),
            "OKP" => format!(r#"{{"crv":"{}","kty":"OKP","x":"{}"}}"#, s("crv"), s("x")),
            other => panic!("no thumbprint for kty {other}"),
        };
        URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes()))
    }

    /// A good proof for `method` on `htu` carrying `token`'s `ath`, with a fresh `jti`.
    pub fn proof(&self, method: &str, htu: &str, token: &str) -> String {
        self.proof_with(method, htu, token, json!({}), json!({}))
    }

    /// As [`DpopKey::proof`], with `header` and `claims` merged over the good ones (a null
    /// removes a member).
    pub fn proof_with(
        &self,
        method: &str,
        htu: &str,
        token: &str,
        header: Value,
        claims: Value,
    ) -> String {
        let good_header = json!({
            "typ": "dpop+jwt",
            "alg": alg_name(self.key.alg),
            "jwk": self.jwk(),
        });
        let good_claims = json!({
            "jti": format!("{:032x}", fastrand::u128(..)),
            "htm": method,
            "htu": htu,
            "iat": now(),
            "ath": ath(token),
        });
        sign_raw(
            &merge(good_header, header),
            &merge(good_claims, claims),
            &self.key.encoding,
            self.key.alg,
        )
    }
}

/// `ath`: base64url of SHA-256 of the access token (RFC 9449 §4.2).
pub fn ath(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()))
}
