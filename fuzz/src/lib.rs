//! What the fuzz targets share: a fixed JWKS built once from the committed fixture keys, and a
//! fixed issuer configuration loaded the way `proxy.yaml` is.

use std::path::Path;
use std::sync::OnceLock;

use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use tokengate::algorithm::Algorithm;
use serde_json::{json, Value};
use tokengate::config::{IssuerSettings, Overrides};
use tokengate::jwk::KeySet;

/// Every algorithm tokengate can verify.
pub const ALL: [Algorithm; 10] = tokengate::jwk::SUPPORTED_ALGORITHMS;

/// The issuer the fuzzed claims are checked against.
pub const ISSUER: &str = "https://idp.fuzz.test";
/// Its audiences.
pub const AUDIENCES: [&str; 2] = ["api://fuzz", "api://other"];
/// Its leeway, in seconds.
pub const LEEWAY: f64 = 60.0;
/// "Now" for claim checks: fixed, so a crash reproduces.
pub const NOW: f64 = 1_700_000_000.0;

const CONFIG: &str = "issuers:
  - issuer: https://idp.fuzz.test
    audiences: [api://fuzz, api://other]
    algorithms: [RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA]
    leeway: 60s
    claims: { cid: client-1 }
";

pub struct Fixed {
    pub keys: KeySet,
    pub issuer: IssuerSettings,
}

/// Built on first use, then shared by every run.
pub fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let jwks = json!({"keys": [
            rsa_jwk(include_str!("../../tests/fixtures/keys/rsa-a.pem"), "rsa-a", None),
            rsa_jwk(include_str!("../../tests/fixtures/keys/rsa-b.pem"), "rsa-b", Some("PS256")),
            ec_jwk(include_str!("../../tests/fixtures/keys/ec-p256.pem"), "ec-p256", Algorithm::ES256),
            ec_jwk(include_str!("../../tests/fixtures/keys/ec-p384.pem"), "ec-p384", Algorithm::ES384),
            ed_jwk(include_str!("../../tests/fixtures/keys/ed25519.pem"), "ed25519"),
        ]});
        let (keys, skipped) = KeySet::parse(jwks.to_string().as_bytes(), &ALL)
            .expect("the fixture JWKS parses");
        assert!(skipped.is_empty(), "fixture keys were skipped: {skipped:?}");
        let settings = tokengate::config::load_str(
            Path::new("fuzz.yaml"),
            CONFIG,
            &Overrides::default(),
        )
        .expect("the fuzz issuer configuration is valid");
        let issuer = settings
            .issuers
            .into_iter()
            .next()
            .expect("one issuer is configured");
        Fixed { keys, issuer }
    })
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("fixture PEM is base64")
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn rsa_jwk(pem: &str, kid: &str, alg: Option<&str>) -> Value {
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der(pem)).expect("RSA fixture");
    let public = pair.public_key();
    let mut jwk = json!({
        "kty": "RSA",
        "kid": kid,
        "use": "sig",
        "n": b64(public.modulus().big_endian_without_leading_zero()),
        "e": b64(public.exponent().big_endian_without_leading_zero()),
    });
    if let Some(alg) = alg {
        jwk["alg"] = json!(alg);
    }
    jwk
}

fn ec_jwk(pem: &str, kid: &str, alg: Algorithm) -> Value {
    let (signing, crv, size) = if alg == Algorithm::ES256 {
        (&ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
    } else {
        (&ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
    };
    let pair = EcdsaKeyPair::from_pkcs8(signing, &der(pem)).expect("EC fixture");
    let point = pair.public_key().as_ref().to_vec();
    json!({
        "kty": "EC",
        "kid": kid,
        "crv": crv,
        "x": b64(&point[1..1 + size]),
        "y": b64(&point[1 + size..]),
    })
}

fn ed_jwk(pem: &str, kid: &str) -> Value {
    let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der(pem)).expect("Ed25519 fixture");
    json!({"kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(pair.public_key().as_ref())})
}
