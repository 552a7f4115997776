//! Bytes → token string → `Jws::parse` → signature check against a fixed JWKS → `check_claims`
//! with a fixed issuer. Never panics; never verifies (the fuzzer holds no private key); and
//! claims that pass `check_claims` satisfy every configured check, tested independently.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tokengate::authn::{check_claims, Jws};
use tokengate::jwk::Selection;
use tokengate_fuzz::{fixed, AUDIENCES, LEEWAY, NOW};

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let fixed = fixed();
    let Ok(jws) = Jws::parse(token) else {
        return;
    };
    assert!(token.starts_with(jws.signing_input));
    assert_eq!(
        token.matches('.').count(),
        2,
        "parsed a token without three segments"
    );
    if let Selection::Found(key) = fixed.keys.select(jws.kid.as_deref(), jws.alg) {
        assert!(
            jws.verify_signature(&key).is_err(),
            "a fuzzed token verified against the selected key"
        );
    }
    for key in &fixed.keys.keys {
        assert!(
            jws.verify_signature(key).is_err(),
            "a fuzzed token verified against {:?}",
            key.kid
        );
    }
    let Ok(claims) = serde_json::from_slice::<Map<String, Value>>(&jws.payload) else {
        return;
    };
    if check_claims(&claims, jws.typ.as_deref(), &fixed.issuer, NOW).is_err() {
        return;
    }
    // Accepted: every configured check holds, judged here without tokengate's code.
    let number = |name: &str| claims.get(name).map(|v| v.as_f64().expect("a number"));
    let exp = number("exp").expect("exp is present");
    assert!(NOW < exp + LEEWAY, "expired token accepted: exp {exp}");
    if let Some(nbf) = number("nbf") {
        assert!(
            nbf <= NOW + LEEWAY,
            "not yet valid token accepted: nbf {nbf}"
        );
    }
    if let Some(iat) = number("iat") {
        assert!(
            iat <= NOW + LEEWAY,
            "token from the future accepted: iat {iat}"
        );
    }
    let audience_ok = match claims.get("aud") {
        Some(Value::String(a)) => AUDIENCES.contains(&a.as_str()),
        Some(Value::Array(items)) => items
            .iter()
            .any(|i| i.as_str().is_some_and(|a| AUDIENCES.contains(&a))),
        _ => false,
    };
    assert!(audience_ok, "audience {:?} accepted", claims.get("aud"));
    assert_eq!(claims.get("cid"), Some(&Value::from("client-1")));
});
