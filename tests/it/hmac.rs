//! HMAC issuers (`hmac: { secret_file | secret_env }`): HS256/384/512 only there, a secret at
//! least as long as the hash output, never logged, never mixed with asymmetric keys; and the
//! Wycheproof MAC vectors through the HMAC verification (library and `inspect --allow-hmac`).

use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use crate::support::keys::sign_raw;
use crate::support::process::{BIN, ROOT};
use crate::support::{issuer_config, read, TestIssuer, TestKey, TestProxy};

const SECRET_FILE: &str = "tests/fixtures/keys/hmac.secret";

fn secret() -> Vec<u8> {
    let text = std::fs::read_to_string(format!("{ROOT}/{SECRET_FILE}")).expect("secret");
    text.trim_end_matches('\n').as_bytes().to_vec()
}

fn hs_token(issuer: &TestIssuer, alg: Algorithm, name: &str, secret: &[u8]) -> String {
    sign_raw(
        &json!({"alg": name, "typ": "JWT"}),
        &issuer.claims(),
        &EncodingKey::from_secret(secret),
        alg,
    )
}

#[tokio::test]
async fn an_hmac_issuer_verifies_its_hs_algorithms_and_nothing_else() {
    let rsa = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    // The HMAC issuer's URL comes from a TestIssuer that serves nothing: no key is fetched.
    let hmac = TestIssuer::start(vec![]).await;
    let asym = TestIssuer::start(vec![rsa.clone()]).await;
    let yaml = format!(
        "issuers:\n  - {{ issuer: {}, audiences: [api://test], allow_http: true, algorithms: [HS256, HS512], hmac: {{ secret_file: {ROOT}/{SECRET_FILE} }} }}\n{}",
        hmac.url(),
        issuer_config(&asym, "").replace("issuers:\n", "")
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let secret = secret();
    let get = async |token: &str| read(proxy.get_with("/api/messages", token).await).await;

    for (alg, name) in [(Algorithm::HS256, "HS256"), (Algorithm::HS512, "HS512")] {
        let (status, _, body) = get(&hs_token(&hmac, alg, name, &secret)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "HS384 is not in the allow-list",
            hs_token(&hmac, Algorithm::HS384, "HS384", &secret),
            "not allowed",
        ),
        (
            "another secret",
            hs_token(&hmac, Algorithm::HS256, "HS256", &[b'x'; 64]),
            "signature is invalid",
        ),
        (
            "the secret with its final line break",
            hs_token(
                &hmac,
                Algorithm::HS256,
                "HS256",
                &[&secret[..], b"\n"].concat(),
            ),
            "signature is invalid",
        ),
        (
            "an RSA-signed token for the HMAC issuer",
            sign_raw(
                &json!({"alg": "RS256", "kid": "rsa-a"}),
                &hmac.claims(),
                &rsa.encoding,
                Algorithm::RS256,
            ),
            "not allowed",
        ),
        (
            "HS256 with the HMAC secret for the asymmetric issuer",
            hs_token(&asym, Algorithm::HS256, "HS256", &secret),
            "not supported",
        ),
    ];
    for (what, token, reason) in cases {
        let (status, _, body) = get(&token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains(reason),
            "{what}: {body}"
        );
    }
    // The asymmetric issuer is untouched.
    assert_eq!(get(&asym.token(&rsa)).await.0, 200);
    // The secret is in no Debug rendering of the configuration.
    let debug = format!("{:?}", proxy.app().settings());
    assert!(debug.contains("secret redacted"), "{debug}");
    assert!(
        !debug.contains(std::str::from_utf8(&secret).unwrap_or("?")),
        "the secret is in Debug"
    );
}

#[test]
fn hmac_settings_are_checked_and_the_secret_never_printed() {
    let check = |yaml: &str, env: &[(&str, &str)]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("hmac.yaml");
        std::fs::write(&path, yaml).expect("write");
        let out = std::process::Command::new(BIN)
            .args(["check", "--config"])
            .arg(&path)
            .current_dir(ROOT)
            .envs(env.iter().copied())
            .output()
            .expect("run");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let issuer = "issuers:\n  - issuer: https://idp.example.com\n    audiences: [a]\n";
    let long = "0123456789abcdef0123456789abcdef0123456789abcdef";
    let (code, text) = check(
        &format!("{issuer}    hmac: {{ secret_env: TG_TEST_HMAC }}\n"),
        &[("TG_TEST_HMAC", long)],
    );
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("secret redacted") && !text.contains(long),
        "{text}"
    );
    // A committed short secret: 16 bytes for HS256 (32 needed), 48 for HS512 (64 needed).
    for (algorithms, value, expected) in [
        (
            "",
            "0123456789abcdef",
            "16 bytes, shorter than HS256's 32-byte hash output",
        ),
        (
            "    algorithms: [HS512]\n",
            long,
            "48 bytes, shorter than HS512's 64-byte hash output",
        ),
    ] {
        let (code, text) = check(
            &format!("{issuer}{algorithms}    hmac: {{ secret_env: TG_TEST_HMAC }}\n"),
            &[("TG_TEST_HMAC", value)],
        );
        assert_eq!(code, Some(2), "{text}");
        assert!(
            text.contains("issuers[0].hmac") && text.contains(expected),
            "{text}"
        );
        assert!(text.contains("RFC 7518"), "{text}");
        assert!(!text.contains(value), "the secret was printed: {text}");
    }
    for (extra, expected) in [
        ("    algorithms: [HS256]\n", "issuers[0].algorithms[0]: HMAC needs a shared secret"),
        (
            "    algorithms: [HS256, RS256]\n    hmac: { secret_file: tests/fixtures/keys/hmac.secret }\n",
            "an HMAC issuer verifies HS256, HS384 or HS512 only, not RS256",
        ),
        (
            "    jwks_uri: https://idp.example.com/keys\n    hmac: { secret_file: tests/fixtures/keys/hmac.secret }\n",
            "an HMAC issuer takes its key from hmac:, not from jwks_uri or jwks_file",
        ),
        ("    hmac: { secret: inline-secret-value }\n", "unknown field `secret`"),
        ("    hmac: {}\n", "name exactly one of secret_file and secret_env"),
    ] {
        let (code, text) = check(&format!("{issuer}{extra}"), &[]);
        assert_eq!(code, Some(2), "{extra}: {text}");
        assert!(text.contains(expected), "{extra}: missing {expected:?} in {text}");
    }
}

/// Every Wycheproof vector keyed by a `kty: oct` key, through the HMAC verification tokengate
/// uses: labelled valid accepted, labelled invalid refused (short keys included: RFC 7518 §3.2).
#[test]
fn wycheproof_mac_vectors_pass_with_hmac_allowed() {
    use tokengate::authn::Jws;
    use tokengate::jwk::{KeySet, Selection, HMAC_ALGORITHMS, SUPPORTED_ALGORITHMS};
    let allowed = [&SUPPORTED_ALGORITHMS[..], &HMAC_ALGORITHMS[..]].concat();
    let (mut valid, mut invalid) = (0, 0);
    let mut failures = Vec::new();
    let mut first_valid: Option<(Value, String)> = None;
    for file in [
        "json_web_signature_test.json",
        "json_web_crypto_test.json",
        "json_web_key_test.json",
    ] {
        let path = format!("{ROOT}/tests/vectors/wycheproof/{file}");
        let doc: Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("vectors")).expect("json");
        for group in doc["testGroups"].as_array().into_iter().flatten() {
            let keys = group.get("public").unwrap_or(&group["private"]);
            let jwks = if keys.get("keys").is_some() {
                keys.clone()
            } else {
                json!({"keys": [keys]})
            };
            let is_mac = jwks["keys"]
                .as_array()
                .is_some_and(|k| k.iter().any(|k| k["kty"] == "oct" && k.get("k").is_some()));
            if !is_mac {
                continue;
            }
            for test in group["tests"].as_array().into_iter().flatten() {
                let Some(jws) = test["jws"].as_str() else {
                    // Only JWE vectors and the JWS JSON serialization (tokengate reads the
                    // compact one) come without a compact JWS.
                    assert!(
                        test.get("jwe").is_some() || test["jws"].is_object(),
                        "{file} tcId {} has neither a compact jws nor a jwe",
                        test["tcId"]
                    );
                    continue;
                };
                let accepted = KeySet::parse_with(jwks.to_string().as_bytes(), &allowed, true)
                    .ok()
                    .zip(Jws::parse(jws).ok())
                    .is_some_and(|((set, _), parsed)| {
                        match set.select(parsed.kid.as_deref(), parsed.alg) {
                            Selection::Found(key) => parsed.verify_signature(&key).is_ok(),
                            _ => false,
                        }
                    });
                // Mislabelled upstream (see tests/vectors/wycheproof/README.md).
                let id = test["tcId"].as_u64().unwrap_or(0);
                if file == "json_web_signature_test.json" && [367, 370, 372, 373].contains(&id) {
                    continue;
                }
                let labelled_valid = test["result"] == "valid";
                match (labelled_valid, accepted) {
                    (true, true) => {
                        valid += 1;
                        first_valid.get_or_insert((jwks.clone(), jws.to_owned()));
                    }
                    (false, false) => invalid += 1,
                    _ => {
                        failures.push(format!("{file} tcId {}: {}", test["tcId"], test["comment"]))
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    eprintln!("wycheproof MAC: {valid} valid accepted, {invalid} invalid refused");
    assert!(valid >= 8 && invalid >= 30, "too few: {valid} / {invalid}");

    // The same through the binary: refused without --allow-hmac, verified with it.
    let (jwks, jws) = first_valid.expect("a valid MAC vector");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("oct.json");
    std::fs::write(&path, jwks.to_string()).expect("write");
    let inspect = |extra: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args([
                "inspect",
                "--signature-only",
                "--jwks",
                path.to_str().unwrap_or_default(),
            ])
            .args(extra)
            .arg(&jws)
            .output()
            .expect("inspect");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = inspect(&[]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("symmetric_key"), "{text}");
    let (code, text) = inspect(&["--allow-hmac"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("PASS  signature"), "{text}");
}
