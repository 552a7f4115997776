//! DESIGN.md "Token verification rules", each through the proxy with real keys.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use crate::support::issuer::{header, merge};
use crate::support::keys::{now, raw_token, sign_raw};
use crate::support::{issuer_config, read, rsa_setup, TestIssuer, TestKey, TestProxy};

/// Status and error description of GET /secure with this token.
async fn verdict(proxy: &TestProxy, token: &str) -> (u16, String) {
    let (status, challenge, body) = read(proxy.get_with("/secure", token).await).await;
    if status == 401 {
        let challenge = challenge.unwrap_or_default();
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
        assert!(
            !challenge.contains(token) && !body.to_string().contains(token),
            "token echoed"
        );
    }
    (
        status,
        body["error_description"].as_str().unwrap_or("").to_owned(),
    )
}

async fn assert_rejected(proxy: &TestProxy, token: &str, needle: &str) {
    let (status, description) = verdict(proxy, token).await;
    assert_eq!(
        status, 401,
        "accepted a token that should fail with {needle:?}"
    );
    assert!(
        description.contains(needle),
        "description {description:?} lacks {needle:?}"
    );
}

#[tokio::test]
async fn every_supported_algorithm_verifies_when_allowed() {
    let keys = vec![
        TestKey::load("rsa-a", "rs256", Algorithm::RS256),
        TestKey::load("rsa-a", "rs384", Algorithm::RS384),
        TestKey::load("rsa-a", "rs512", Algorithm::RS512),
        TestKey::load("rsa-b", "ps256", Algorithm::PS256),
        TestKey::load("rsa-b", "ps384", Algorithm::PS384),
        TestKey::load("rsa-b", "ps512", Algorithm::PS512),
        TestKey::load("ec-p256", "es256", Algorithm::ES256),
        TestKey::load("ec-p384", "es384", Algorithm::ES384),
        TestKey::load("ed25519", "eddsa", Algorithm::EdDSA),
    ];
    let issuer = TestIssuer::start(keys.clone()).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    for key in &keys {
        assert_eq!(
            verdict(&proxy, &issuer.token(key)).await.0,
            200,
            "{}",
            key.kid
        );
    }
}

#[tokio::test]
async fn the_default_allow_list_is_rs256_only() {
    let rs = TestKey::load("rsa-a", "rs", Algorithm::RS256);
    let ps = TestKey::load("rsa-a", "ps", Algorithm::PS256);
    let es = TestKey::load("ec-p256", "es", Algorithm::ES256);
    let issuer = TestIssuer::start(vec![rs.clone(), ps.clone(), es.clone()]).await;
    let yaml = format!(
        "issuers:\n  - issuer: {}\n    audiences: [api://test]\n    allow_http: true\n",
        issuer.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    assert_eq!(verdict(&proxy, &issuer.token(&rs)).await.0, 200);
    assert_rejected(&proxy, &issuer.token(&ps), "algorithm").await;
    assert_rejected(&proxy, &issuer.token(&es), "algorithm").await;
}

#[tokio::test]
async fn alg_none_is_refused_in_every_spelling() {
    let (issuer, key, proxy) = rsa_setup().await;
    let claims = issuer.claims().to_string();
    for alg in ["none", "None", "NONE", "nOnE", ""] {
        let header = json!({"alg": alg, "kid": key.kid}).to_string();
        for signature in ["", "c2ln"] {
            let token = raw_token(&header, &claims, signature);
            assert_eq!(
                verdict(&proxy, &token).await.0,
                401,
                "alg {alg:?} sig {signature:?}"
            );
        }
    }
}

#[tokio::test]
async fn hmac_keyed_with_the_public_key_is_refused() {
    let (issuer, key, proxy) = rsa_setup().await;
    let n = key.jwk["n"].as_str().unwrap_or_default().to_owned();
    let der = URL_SAFE_NO_PAD.decode(&n).unwrap_or_default();
    let secrets: Vec<Vec<u8>> = vec![
        key.pem.clone().into_bytes(),
        key.jwk.to_string().into_bytes(),
        der,
    ];
    for (alg, name) in [
        (Algorithm::HS256, "HS256"),
        (Algorithm::HS384, "HS384"),
        (Algorithm::HS512, "HS512"),
    ] {
        for secret in &secrets {
            let header = json!({"alg": name, "kid": key.kid, "typ": "JWT"});
            let token = sign_raw(
                &header,
                &issuer.claims(),
                &EncodingKey::from_secret(secret),
                alg,
            );
            assert_rejected(&proxy, &token, "algorithm").await;
        }
    }
}

#[tokio::test]
async fn algorithm_must_fit_the_key_type_and_the_jwk_alg() {
    let rsa = TestKey::load("rsa-a", "rsa", Algorithm::RS256);
    let ec = TestKey::load("ec-p256", "ec", Algorithm::ES256);
    let issuer = TestIssuer::start(vec![rsa.clone(), ec.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    // PS256 with an RSA key whose JWK says RS256.
    assert_rejected(
        &proxy,
        &issuer.token(&rsa.signing_as(Algorithm::PS256)),
        "kid",
    )
    .await;
    // ES384 claimed for a P-256 key (the signature is really ES256).
    let forged = {
        let t = issuer.token(&ec);
        let mut parts: Vec<String> = t.split('.').map(str::to_owned).collect();
        parts[0] =
            URL_SAFE_NO_PAD.encode(json!({"alg": "ES384", "kid": "ec", "typ": "JWT"}).to_string());
        parts.join(".")
    };
    assert_eq!(verdict(&proxy, &forged).await.0, 401);
}

#[tokio::test]
async fn headers_naming_their_own_keys_are_ignored() {
    let (issuer, key, proxy) = rsa_setup().await;
    let attacker = TestKey::load("attacker-rsa", "rsa-a", Algorithm::RS256);
    for (name, value) in [
        ("jku", json!("http://127.0.0.1:1/keys")),
        ("x5u", json!("http://127.0.0.1:1/cert")),
        ("jwk", attacker.jwk.clone()),
        (
            "x5c",
            json!(["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]),
        ),
    ] {
        let forged = issuer.token_with_header(&attacker, json!({ name: value }));
        assert_rejected(&proxy, &forged, "signature").await;
    }
    // The same headers on a genuine token change nothing.
    let genuine = issuer.token_with_header(&key, json!({"jku": "http://127.0.0.1:1/keys"}));
    assert_eq!(verdict(&proxy, &genuine).await.0, 200);
}

#[tokio::test]
async fn crit_headers_are_refused() {
    let (issuer, key, proxy) = rsa_setup().await;
    for crit in [json!(["exp"]), json!(["b64"]), json!([]), json!("x")] {
        let token = issuer.token_with_header(&key, json!({ "crit": crit, "exp": 1 }));
        assert_rejected(&proxy, &token, "critical").await;
    }
}

#[tokio::test]
async fn time_claims_with_leeway() {
    let (issuer, key, proxy) = rsa_setup().await;
    let now = now() as i64;
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"exp": now - 61})),
        "expired",
    )
    .await;
    assert_eq!(
        verdict(&proxy, &issuer.token_with(&key, json!({"exp": now - 30})))
            .await
            .0,
        200
    );
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"nbf": now + 120})),
        "not valid yet",
    )
    .await;
    assert_eq!(
        verdict(&proxy, &issuer.token_with(&key, json!({"nbf": now + 30})))
            .await
            .0,
        200
    );
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"iat": now + 120})),
        "issued in the future",
    )
    .await;
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"exp": null})),
        "exp",
    )
    .await;
}

#[tokio::test]
async fn claim_types_are_strict() {
    let (issuer, key, proxy) = rsa_setup().await;
    let exp = now() + 300;
    for (changes, needle) in [
        (json!({"exp": exp.to_string()}), "exp"),
        (json!({"exp": [exp]}), "exp"),
        (json!({"nbf": "0"}), "nbf"),
        (json!({"iss": [issuer.url()]}), "iss"),
        (json!({"aud": {"aud": "api://test"}}), "aud"),
        (json!({"sub": 42}), "sub"),
        (json!({"scp": "read write"}), "-"),
    ] {
        let token = issuer.token_with(&key, changes.clone());
        if needle == "-" {
            // A space-separated scp string is a valid (if unusual) shape.
            assert_eq!(verdict(&proxy, &token).await.0, 200, "{changes}");
        } else {
            assert_rejected(&proxy, &token, needle).await;
        }
    }
}

#[tokio::test]
async fn audience_is_any_of_the_configured_ones() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let yaml = issuer_config(&issuer, "").replace(
        "audiences: [api://test]",
        "audiences: [api://test, api://second]",
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    assert_eq!(
        verdict(
            &proxy,
            &issuer.token_with(&key, json!({"aud": "api://second"}))
        )
        .await
        .0,
        200
    );
    assert_eq!(
        verdict(
            &proxy,
            &issuer.token_with(&key, json!({"aud": ["x", "api://test"]}))
        )
        .await
        .0,
        200
    );
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"aud": "api://other"})),
        "audience",
    )
    .await;
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"aud": ["x", "y"]})),
        "audience",
    )
    .await;
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"aud": null})),
        "audience",
    )
    .await;
}

#[tokio::test]
async fn an_unknown_issuer_is_401_and_fetches_nothing() {
    let (issuer, key, proxy) = rsa_setup().await;
    let (jwks, discovery) = (issuer.jwks_fetches(), issuer.discovery_fetches());
    let stranger = TestIssuer::start(vec![key.clone()]).await;
    assert_rejected(&proxy, &stranger.token(&key), "issuer").await;
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"iss": format!("{}/", issuer.url())})),
        "issuer",
    )
    .await;
    assert_rejected(
        &proxy,
        &issuer.token_with(&key, json!({"iss": null})),
        "issuer",
    )
    .await;
    assert_eq!(
        (stranger.jwks_fetches(), stranger.discovery_fetches()),
        (0, 0)
    );
    assert_eq!(
        (issuer.jwks_fetches(), issuer.discovery_fetches()),
        (jwks, discovery)
    );
}

#[tokio::test]
async fn claim_assertions_equals_and_includes() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let yaml = issuer_config(
        &issuer,
        "    claims:\n      cid: client-1\n      groups: { includes: Everyone }\n      scope: { includes: [read] }\n",
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let good = json!({"groups": ["Everyone", "Admins"], "scope": "write read"});
    assert_eq!(
        verdict(&proxy, &issuer.token_with(&key, good.clone()))
            .await
            .0,
        200
    );
    for (changes, claim) in [
        (json!({"cid": "client-2"}), "cid"),
        (json!({"cid": null}), "cid"),
        (json!({"groups": ["EveryoneElse"]}), "groups"),
        (json!({"groups": "Everyone-ish"}), "groups"),
        (json!({"scope": "unread"}), "scope"),
    ] {
        // Overlay the change on the good claims, keeping a null (which removes the claim).
        let mut overlay = good.clone();
        if let (Value::Object(o), Value::Object(c)) = (&mut overlay, changes) {
            o.extend(c);
        }
        let token = issuer.token_with(&key, overlay);
        assert_rejected(&proxy, &token, &format!("`{claim}`")).await;
    }
}

#[tokio::test]
async fn signatures_and_segments_must_be_exact() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    let (head, sig) = token.rsplit_once('.').unwrap_or_default();
    let mut flipped = sig.as_bytes().to_vec();
    flipped[10] = if flipped[10] == b'A' { b'B' } else { b'A' };
    let flipped = format!("{head}.{}", String::from_utf8_lossy(&flipped));
    assert_rejected(&proxy, &flipped, "signature").await;
    // Claims changed after signing.
    let parts: Vec<&str> = token.split('.').collect();
    let other_claims =
        URL_SAFE_NO_PAD.encode(merge(issuer.claims(), json!({"sub": "admin"})).to_string());
    assert_rejected(
        &proxy,
        &format!("{}.{other_claims}.{}", parts[0], parts[2]),
        "signature",
    )
    .await;
    for bad in [
        format!("{head}."),
        head.to_string(),
        format!("{token}.x"),
        format!("{token}.x.y"),
        format!("{token}="),
        format!(
            "{}.{}.{}",
            parts[0],
            parts[1],
            parts[2].replace('-', "+").replace('_', "/")
        ),
    ] {
        assert_eq!(verdict(&proxy, &bad).await.0, 401, "{bad:.40}");
    }
}

#[tokio::test]
async fn a_key_under_2048_bits_is_never_used() {
    // aws-lc cannot sign with a 1024-bit key: the token was made once with openssl.
    let fixtures = format!("{}/tests/fixtures/keys", env!("CARGO_MANIFEST_DIR"));
    let small_jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/rsa-1024.jwk.json")).unwrap_or_default(),
    )
    .unwrap_or_default();
    let small_token =
        std::fs::read_to_string(format!("{fixtures}/rsa-1024.token")).unwrap_or_default();
    let good = TestKey::load("rsa-a", "good", Algorithm::RS256);
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [small_jwk, good.jwk]}).to_string()).expect("write");
    let yaml = format!(
        "issuers:\n  - issuer: https://idp.small.test\n    audiences: [api://test]\n    jwks_file: {}\n",
        jwks.display()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let claims = json!({"iss": "https://idp.small.test", "aud": "api://test", "sub": "u", "exp": now() + 60});
    let good_token = sign_raw(&header(&good), &claims, &good.encoding, good.alg);
    assert_eq!(verdict(&proxy, &good_token).await.0, 200);
    assert_rejected(&proxy, small_token.trim(), "kid").await;
}

#[tokio::test]
async fn a_token_without_kid_needs_exactly_one_fitting_key() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    let no_kid = |key: &TestKey| {
        sign_raw(
            &merge(header(key), json!({"kid": null})),
            &issuer.claims(),
            &key.encoding,
            key.alg,
        )
    };
    assert_eq!(verdict(&proxy, &no_kid(&a)).await.0, 200);

    let issuer2 = TestIssuer::start(vec![a.clone(), b.clone()]).await;
    let proxy2 = TestProxy::for_issuer(&issuer2).await;
    proxy2.wait_ready().await;
    let token = sign_raw(
        &merge(header(&a), json!({"kid": null})),
        &issuer2.claims(),
        &a.encoding,
        a.alg,
    );
    assert_rejected(&proxy2, &token, "kid").await;
}

#[tokio::test]
async fn duplicate_members_and_non_object_payloads_are_malformed() {
    let (issuer, key, proxy) = rsa_setup().await;
    let claims = issuer.claims();
    let Value::Object(map) = &claims else {
        panic!("the good claims are not a JSON object: {claims}");
    };
    let mut text = String::from("{");
    for (k, v) in map {
        text += &format!("\"{k}\":{v},");
    }
    text += "\"aud\":\"api://other\"}";
    let header_text = header(&key).to_string();
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header_text),
        URL_SAFE_NO_PAD.encode(&text)
    );
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, key.alg)
        .unwrap_or_default();
    assert_rejected(&proxy, &format!("{signing_input}.{sig}"), "malformed").await;

    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(&header_text),
        URL_SAFE_NO_PAD.encode("[1,2]")
    );
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, key.alg)
        .unwrap_or_default();
    assert_rejected(&proxy, &format!("{signing_input}.{sig}"), "malformed").await;
}

#[tokio::test]
async fn an_over_long_token_is_refused_without_parsing() {
    let (_issuer, _key, proxy) = rsa_setup().await;
    let long = format!(
        "{}.{}.{}",
        "a".repeat(10),
        "b".repeat(17 * 1024),
        "c".repeat(10)
    );
    assert_rejected(&proxy, &long, "longer").await;
}

#[tokio::test]
async fn max_lifetime_caps_how_long_a_token_is_valid() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let capped = TestProxy::start(&issuer_config(&issuer, "    max_lifetime: 24h\n")).await;
    let uncapped = TestProxy::for_issuer(&issuer).await;
    capped.wait_ready().await;
    uncapped.wait_ready().await;
    let now = now() as f64;
    let for_ever = issuer.token_with(&key, json!({"exp": 2e206}));
    // Without the cap, what the IdP signed is what counts (documented in SECURITY.md).
    assert_eq!(verdict(&uncapped, &for_ever).await.0, 200);
    assert_rejected(&capped, &for_ever, "lifetime is longer").await;
    let (_, _, body) = read(capped.get_with("/secure", &for_ever).await).await;
    assert_eq!(body["error"], "invalid_token");
    // Two days from now, issued now: beyond the cap either way.
    let two_days = issuer.token_with(&key, json!({"iat": now, "exp": now + 2.0 * 86400.0}));
    assert_rejected(&capped, &two_days, "lifetime is longer").await;
    // Issued a week ago for eight days: the remaining hour is fine, the lifetime is not.
    let old = issuer.token_with(
        &key,
        json!({"iat": now - 7.0 * 86400.0, "exp": now + 3600.0, "nbf": null}),
    );
    assert_rejected(&capped, &old, "lifetime is longer").await;
    // An hour, issued now: accepted.
    let hour = issuer.token_with(&key, json!({"iat": now, "exp": now + 3600.0}));
    assert_eq!(verdict(&capped, &hour).await.0, 200);
}

#[tokio::test]
async fn includes_any_asks_for_one_of_several_members_in_issuers_and_routes() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let asserting = TestProxy::start(&issuer_config(
        &issuer,
        "    claims:\n      groups: { includes_any: [Group1, Group2] }\n",
    ))
    .await;
    let routed = TestProxy::start(&format!(
        "{}routes:\n  - {{ path: /secure, claims: {{ scope: {{ includes_any: [admin, ops] }} }} }}\n",
        issuer_config(&issuer, "")
    ))
    .await;
    asserting.wait_ready().await;
    routed.wait_ready().await;
    for (groups, status) in [
        (json!(["Everyone", "Group2"]), 200),
        (json!("Group1 Everyone"), 200),
        (json!(["Everyone"]), 401),
        (json!("Group12"), 401),
        (json!([]), 401),
    ] {
        let token = issuer.token_with(&key, json!({ "groups": groups }));
        assert_eq!(verdict(&asserting, &token).await.0, status, "{groups}");
    }
    for (scope, status) in [("read ops", 200), ("read", 403), ("operations", 403)] {
        let token = issuer.token_with(&key, json!({ "scope": scope }));
        let got = routed.get_with("/secure", &token).await.status();
        assert_eq!(got, status, "{scope}");
    }
}

/// A token whose payload is exactly `payload` (signed by `key`).
fn with_payload_text(key: &TestKey, payload: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header(key).to_string()),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(signing_input.as_bytes(), &key.encoding, key.alg)
        .unwrap_or_default();
    format!("{signing_input}.{sig}")
}

#[tokio::test]
async fn a_malformed_payload_is_refused_with_its_true_reason() {
    let (issuer, key, proxy) = rsa_setup().await;
    let good = issuer.claims().to_string();
    let body = &good[1..good.len() - 1];
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let cases = [
        (
            format!("{{{body},\"sub\":\"again\"}}"),
            "the payload has a duplicate member",
        ),
        (
            format!("{{{body},\"n\":1e309}}"),
            "the payload has a number out of range",
        ),
        (
            format!("{{{body},\"name\":\"\\ud800\"}}"),
            "the payload has a lone surrogate or an invalid escape",
        ),
        (
            format!("{{{body},\"x\":{deep}}}"),
            "the payload nests too deeply",
        ),
        ("[1,2]".to_owned(), "the payload is not a JSON object"),
    ];
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk]}).to_string()).expect("write");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        issuer_config(&issuer, &format!("    jwks_file: {}\n", jwks.display())),
    )
    .expect("write");
    for (payload, reason) in cases {
        let token = with_payload_text(&key, &payload);
        assert_rejected(&proxy, &token, reason).await;
        // inspect says the same, and nothing about an issuer or signature it never reached.
        let out = std::process::Command::new(crate::support::process::BIN)
            .args([
                "inspect",
                "--config",
                config.to_str().unwrap_or_default(),
                &token,
            ])
            .output()
            .expect("inspect");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("FAIL  payload          {reason}")),
            "{text}"
        );
        assert!(
            !text.contains("FAIL  issuer") && !text.contains("FAIL  signature"),
            "{text}"
        );
        assert!(text.contains("REJECTED (1 check failed)"), "{text}");
    }
}

/// ES512 (RFC 7518 §3.4) with a P-521 key generated here: verified when the issuer allows it,
/// refused under the default allow-list, and refused with a tampered signature.
#[tokio::test]
async fn es512_with_a_p521_key_is_available_when_allowed() {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P521_SHA512_FIXED_SIGNING};
    let pair = EcdsaKeyPair::generate(&ECDSA_P521_SHA512_FIXED_SIGNING).expect("P-521 key");
    let point = pair.public_key().as_ref().to_vec();
    assert_eq!(point.len(), 133, "04 || x (66 bytes) || y (66 bytes)");
    let jwk = json!({
        "kty": "EC", "crv": "P-521", "kid": "p521", "use": "sig", "alg": "ES512",
        "x": URL_SAFE_NO_PAD.encode(&point[1..67]),
        "y": URL_SAFE_NO_PAD.encode(&point[67..]),
    });
    let issuer = TestIssuer::start(vec![]).await;
    issuer.set_mode(crate::support::Mode::Body(
        json!({ "keys": [jwk] }).to_string(),
    ));
    let sign = |claims: &Value| {
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(json!({"alg": "ES512", "kid": "p521"}).to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        assert_eq!(sig.as_ref().len(), 132, "R || S, 66 bytes each");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    };
    let token = sign(&issuer.claims());
    let allowed = TestProxy::start(
        &issuer_config(&issuer, "").replace("algorithms: [RS256,", "algorithms: [ES512, RS256,"),
    )
    .await;
    allowed.wait_ready().await;
    assert_eq!(verdict(&allowed, &token).await.0, 200);
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    assert_rejected(&allowed, &tampered, "signature").await;
    // Off by default, like the others: an issuer without ES512 in its list refuses it.
    let default = TestProxy::start(&format!(
        "issuers:\n  - {{ issuer: {}, audiences: [api://test], allow_http: true }}\n",
        issuer.url()
    ))
    .await;
    assert_rejected(&default, &token, "not allowed").await;
    // And a P-256 token cannot pass as ES512: the key's curve decides.
    let p256 = TestKey::load("ec-p256", "p521", Algorithm::ES256);
    let forged = sign_raw(
        &json!({"alg": "ES256", "kid": "p521"}),
        &issuer.claims(),
        &p256.encoding,
        Algorithm::ES256,
    );
    assert_eq!(verdict(&allowed, &forged).await.0, 401);
}
