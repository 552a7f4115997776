//! Wycheproof JWS vectors (tests/vectors/wycheproof, Apache-2.0) through tokengate's key
//! parsing and signature check. Every vector labelled invalid must be refused. Every vector
//! labelled valid must be accepted, except where tokengate's policy refuses it on purpose
//! (HMAC keys in a JWKS; tests/it/hmac.rs runs those with HMAC allowed) or the label is wrong
//! upstream (see the vectors' README). P-521 (ES512) vectors must pass like the others.

use serde_json::{json, Value};
use tokengate::authn::Jws;
use tokengate::jwk::{KeySet, Selection, SUPPORTED_ALGORITHMS};

/// Labelled valid upstream, but they contradict RFC 7515/8725 (README "Known label problems").
const MISLABELLED_VALID: [u64; 4] = [346, 347, 350, 351];

fn accepts(keys: &Value, jws: &str) -> bool {
    let jwks = if keys.get("keys").is_some() {
        keys.clone()
    } else {
        json!({"keys": [keys]})
    };
    let Ok((set, _)) = KeySet::parse(jwks.to_string().as_bytes(), &SUPPORTED_ALGORITHMS) else {
        return false;
    };
    let Ok(parsed) = Jws::parse(jws) else {
        return false;
    };
    match set.select(parsed.kid.as_deref(), parsed.alg) {
        Selection::Found(key) => parsed.verify_signature(&key).is_ok(),
        _ => false,
    }
}

/// Why tokengate refuses a vector labelled valid on purpose, if it does.
fn policy_refusal(keys: &Value) -> Option<&'static str> {
    let text = keys.to_string();
    if text.contains("\"kty\":\"oct\"") {
        Some("HMAC keys are never taken from a JWKS")
    } else {
        None
    }
}

fn run(file: &str) -> (usize, usize, usize) {
    let path = format!(
        "{}/tests/vectors/wycheproof/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("vectors")).expect("json");
    let (mut valid_ok, mut invalid_ok, mut by_policy) = (0, 0, 0);
    let mut failures = Vec::new();
    for group in doc["testGroups"].as_array().into_iter().flatten() {
        let keys = group.get("public").unwrap_or(&group["private"]);
        for test in group["tests"].as_array().into_iter().flatten() {
            let id = test["tcId"].as_u64().unwrap_or(0);
            let Some(jws) = test["jws"].as_str() else {
                // JSON serialization (or a JWE): only compact JWS is accepted.
                if test["result"] == "valid" && test.get("jws").is_some() {
                    by_policy += 1;
                }
                continue;
            };
            let accepted = accepts(keys, jws);
            let labelled_valid = test["result"] == "valid" && !MISLABELLED_VALID.contains(&id);
            match (labelled_valid, accepted) {
                (true, true) => valid_ok += 1,
                (false, false) => invalid_ok += 1,
                (true, false) if policy_refusal(keys).is_some() => by_policy += 1,
                _ => failures.push(format!(
                    "{file} tcId {id} ({}): expected {}",
                    test["comment"], test["result"]
                )),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} vectors disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
    (valid_ok, invalid_ok, by_policy)
}

#[test]
fn json_web_signature_vectors() {
    let (valid, invalid, policy) = run("json_web_signature_test.json");
    eprintln!("wycheproof JWS: {valid} valid accepted, {invalid} invalid refused, {policy} refused by policy");
    assert!(
        valid >= 30 && invalid >= 300,
        "too few vectors ran: {valid} / {invalid}"
    );
}

#[test]
fn json_web_key_vectors() {
    let (valid, invalid, policy) = run("json_web_key_test.json");
    eprintln!("wycheproof JWK: {valid} valid accepted, {invalid} invalid refused, {policy} refused by policy");
    assert!(
        valid >= 1 && invalid >= 15,
        "too few vectors ran: {valid} / {invalid}"
    );
}

#[test]
fn json_web_crypto_vectors() {
    let (valid, invalid, policy) = run("json_web_crypto_test.json");
    eprintln!("wycheproof JWS+JWE: {valid} valid accepted, {invalid} invalid refused, {policy} refused by policy");
    assert!(invalid >= 30, "too few vectors ran: {invalid}");
}
