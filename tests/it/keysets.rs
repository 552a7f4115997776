//! Key-set shapes that real identity providers have published: the same key twice under one
//! `kid`, two different keys under one `kid`, several key types under one `kid`, and sets whose
//! only key is unusable. Each asserts the status, the reason and what the operator is told.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::support::process::{self, Running};
use crate::support::{eventually, issuer_config, read, Mode, TestIssuer, TestKey, TestProxy};

/// An issuer serving exactly these JWKs (and minting with whatever key a test names).
async fn serving(jwks: Vec<Value>) -> TestIssuer {
    let issuer = TestIssuer::start(vec![]).await;
    issuer.set_mode(Mode::Body(json!({ "keys": jwks }).to_string()));
    issuer
}

fn with(mut jwk: Value, changes: Value) -> Value {
    if let (Value::Object(base), Value::Object(changes)) = (&mut jwk, changes) {
        for (k, v) in changes {
            if v.is_null() {
                base.remove(&k);
            } else {
                base.insert(k, v);
            }
        }
    }
    jwk
}

/// The binary on `yaml` (JSON logs), from a file in `dir`.
fn binary(dir: &tempfile::TempDir, yaml: &str) -> Running {
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, yaml).expect("write config");
    process::spawn(&["--config", config.to_str().unwrap_or_default()])
}

/// Log lines until one satisfies `wanted` (up to `seconds`), returned with all lines read.
fn wait_for_log(running: &Running, seconds: u64, wanted: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut seen: Vec<Value> = running
        .startup
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(seconds);
    while !seen.iter().any(&wanted) && std::time::Instant::now() < deadline {
        if let Ok(line) = running.logs.recv_timeout(Duration::from_millis(100)) {
            seen.extend(serde_json::from_str::<Value>(&line).ok());
        }
    }
    seen
}

#[tokio::test]
async fn the_same_key_twice_under_one_kid_counts_as_one() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    // Published twice, once without alg: still one key (RS256 and its other RSA algorithms).
    let issuer = serving(vec![
        a.jwk.clone(),
        with(a.jwk.clone(), json!({"alg": null})),
    ])
    .await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    let (status, _, body) = read(proxy.get_with("/api/messages", &issuer.token(&a)).await).await;
    assert_eq!(status, 200, "{body}");
    let ps = a.signing_as(Algorithm::PS256);
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&ps))
            .await
            .status(),
        200,
        "the algorithms of the two listings are merged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_keys_under_one_kid_make_that_kid_unusable_and_say_so() {
    let a = TestKey::load("rsa-a", "k", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "k", Algorithm::RS256);
    let c = TestKey::load("ec-p256", "c", Algorithm::ES256);
    let issuer = serving(vec![a.jwk.clone(), b.jwk.clone(), c.jwk.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = binary(&dir, &issuer_config(&issuer, ""));
    let client = reqwest::Client::new();
    let get = |token: String| {
        let (client, url) = (client.clone(), format!("{}/api/messages", running.base));
        async move {
            read(
                client
                    .get(url)
                    .bearer_auth(token)
                    .send()
                    .await
                    .expect("request"),
            )
            .await
        }
    };
    assert!(
        eventually(10, async || get(issuer.token(&c)).await.0 == 200).await,
        "the other kid never verified"
    );
    for key in [&a, &b] {
        let (status, challenge, body) = get(issuer.token(key)).await;
        assert_eq!(status, 401);
        assert_eq!(
            body["error_description"],
            "the issuer publishes two different keys under kid \"k\""
        );
        assert!(
            challenge.is_some_and(|c| c.contains("two different keys under kid 'k'")),
            "the challenge names the reason"
        );
    }
    let logs = wait_for_log(&running, 10, |e| e["reason"] == "kid_ambiguous");
    let warnings: Vec<&Value> = logs
        .iter()
        .filter(|e| {
            e["level"] == "WARN"
                && e["kid"] == "k"
                && e["issuer"] == issuer.url()
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("two different keys"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "one warning per load: {logs:?}");
    assert!(
        logs.iter()
            .any(|e| e["reason"] == "kid_ambiguous" && e["status"] == 401),
        "the access log names kid_ambiguous: {logs:?}"
    );
    assert!(
        !logs.iter().any(|e| e["kid"] == "c" && e["level"] == "WARN"),
        "the other kid is not named"
    );
}

#[tokio::test]
async fn keys_of_different_types_under_one_kid_stay_selectable_by_algorithm() {
    let rsa = TestKey::load("rsa-a", "shared", Algorithm::RS256);
    let ec = TestKey::load("ec-p256", "shared", Algorithm::ES256);
    let ed = TestKey::load("ed25519", "shared", Algorithm::EdDSA);
    let other = TestKey::load("rsa-b", "other", Algorithm::RS256);
    let issuer = serving(vec![
        rsa.jwk.clone(),
        ec.jwk.clone(),
        ed.jwk.clone(),
        other.jwk.clone(),
    ])
    .await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    for key in [&rsa, &ec, &ed] {
        let (status, _, body) =
            read(proxy.get_with("/api/messages", &issuer.token(key)).await).await;
        assert_eq!(status, 200, "{:?}: {body}", key.alg);
    }
    // No kid at all, and two RSA keys fit RS256: the other reason, with its own code.
    let (status, _, body) = read(
        proxy
            .get_with(
                "/api/messages",
                &issuer.token_with_header(&rsa, json!({"kid": null})),
            )
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error_description"],
        "the token names no kid and the issuer has several keys"
    );
}

/// One unusable key of each kind IdPs have published, each as its issuer's only key:
/// (kid, JWK, reason code, words the detail contains).
fn only_unusable_keys() -> Vec<(&'static str, Value, &'static str, &'static str)> {
    let rsa = TestKey::load("rsa-a", "x", Algorithm::RS256).jwk;
    let ec = TestKey::load("ec-p256", "x", Algorithm::ES256).jwk;
    let small: Value = serde_json::from_str(
        &std::fs::read_to_string(format!(
            "{}/tests/fixtures/keys/rsa-1024.jwk.json",
            process::ROOT
        ))
        .expect("fixture"),
    )
    .expect("json");
    // A coordinate with a leading zero byte (33 bytes for P-256), as some libraries write it.
    let x = base64::Engine::decode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        ec["x"].as_str().unwrap_or_default(),
    )
    .expect("x");
    let long_x = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        [vec![0u8], x].concat(),
    );
    let padded_n = format!("{}==", rsa["n"].as_str().unwrap_or_default());
    vec![
        (
            "ec-long",
            with(ec.clone(), json!({"kid": "ec-long", "x": long_x})),
            "ec_coordinates_length",
            "wrong length",
        ),
        (
            "padded",
            with(rsa.clone(), json!({"kid": "padded", "n": padded_n})),
            "base64url_padded",
            "padding",
        ),
        (
            "x5c-only",
            json!({"kty": "RSA", "kid": "x5c-only", "use": "sig", "x5c": ["MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"]}),
            "x5c_only",
            "x5c",
        ),
        (
            "small",
            with(small, json!({"kid": "small"})),
            "rsa_too_small",
            "1024 bits",
        ),
        (
            "enc",
            with(rsa, json!({"kid": "enc", "use": "enc"})),
            "use_not_sig",
            "not \"sig\"",
        ),
    ]
}

#[tokio::test]
async fn an_issuers_only_key_being_unusable_is_named_in_readyz_metrics_and_inspect() {
    let cases = only_unusable_keys();
    let mut issuers = Vec::new();
    for (_, jwk, _, _) in &cases {
        issuers.push(serving(vec![jwk.clone()]).await);
    }
    let mut yaml = String::from("issuers:\n");
    for issuer in &issuers {
        yaml += &issuer_config(issuer, "").replace("issuers:\n", "");
    }
    let proxy = TestProxy::start(&yaml).await;
    let ready = async || {
        let (status, _, body) =
            read(reqwest::get(proxy.url("/readyz")).await.expect("readyz")).await;
        (status, body)
    };
    assert!(
        eventually(10, async || ready().await.1["skipped_keys"]
            .as_array()
            .is_some_and(|a| a.len() == cases.len()))
        .await,
        "readyz never named every skipped key: {}",
        ready().await.1
    );
    let (status, body) = ready().await;
    assert_eq!(status, 503);
    for ((kid, _, reason, words), issuer) in cases.iter().zip(&issuers) {
        let named = body["skipped_keys"].as_array().is_some_and(|all| {
            all.iter().any(|s| {
                s["issuer"] == issuer.url()
                    && s["kid"] == *kid
                    && s["reason"] == *reason
                    && s["detail"].as_str().is_some_and(|d| d.contains(words))
            })
        });
        assert!(named, "{kid}: {body}");
    }

    // Counted by reason.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let admin = listener.local_addr().expect("addr");
    tokio::spawn(tokengate::run_admin(
        listener,
        proxy.gateway.clone(),
        std::future::pending(),
    ));
    let metrics = reqwest::get(format!("http://{admin}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for ((_, _, reason, _), issuer) in cases.iter().zip(&issuers) {
        let line = format!(
            "tokengate_jwks_keys_skipped_total{{issuer=\"{}\",reason=\"{reason}\"}}",
            issuer.url()
        );
        assert!(metrics.contains(&line), "{line} missing in\n{metrics}");
    }

    // inspect --jwks names the skipped key and its reason, not just "no usable key".
    let dir = tempfile::tempdir().expect("tempdir");
    let a = TestKey::load("rsa-a", "small", Algorithm::RS256);
    for (kid, jwk, reason, words) in &cases {
        let path = dir.path().join(format!("{kid}.json"));
        std::fs::write(&path, json!({"keys": [jwk]}).to_string()).expect("write");
        let out = std::process::Command::new(process::BIN)
            .args(["inspect", "--jwks", path.to_str().unwrap_or_default()])
            .arg(issuers[0].token(&a))
            .output()
            .expect("inspect");
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{text}");
        assert!(
            text.contains(&format!("key skipped: kid \"{kid}\""))
                && text.contains(reason)
                && text.contains(words),
            "{kid}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_skipped_key_is_logged_at_every_load_even_when_none_is_usable() {
    let cases = only_unusable_keys();
    let good = TestKey::load("rsa-b", "good", Algorithm::RS256);
    // One issuer whose only key is unusable, one with a usable key beside the unusable ones.
    let only = serving(vec![cases[3].1.clone()]).await;
    let mixed = serving(
        cases
            .iter()
            .map(|(_, jwk, _, _)| jwk.clone())
            .chain([good.jwk.clone()])
            .collect(),
    )
    .await;
    let yaml = format!(
        "{}{}",
        issuer_config(&only, ""),
        issuer_config(&mixed, "").replace("issuers:\n", "")
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let running = binary(&dir, &yaml);
    let skipped = |logs: &[Value], issuer: &str, kid: &str, reason: &str| {
        logs.iter().any(|e| {
            e["level"] == "WARN"
                && e["message"] == "JWK skipped"
                && e["issuer"] == issuer
                && e["kid"] == kid
                && e["reason"] == reason
        })
    };
    let logs = wait_for_log(&running, 15, |_| false);
    assert!(
        skipped(&logs, only.url(), "small", "rsa_too_small"),
        "the only key's reason was not logged: {logs:?}"
    );
    for (kid, _, reason, _) in &cases {
        assert!(skipped(&logs, mixed.url(), kid, reason), "{kid}: {logs:?}");
    }
}

/// A `kid` with a newline (forging a whole access-log line in the text format) and an ESC
/// byte (a terminal escape in the log file), published by the IdP in a key tokengate skips.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_from_the_identity_provider_are_escaped_in_both_log_formats() {
    // Under 64 characters: the whole kid is logged.
    let forged = "k\nFORGED  INFO tokengate::access: status=200\u{1b}[2J";
    let rsa = TestKey::load("rsa-a", "x", Algorithm::RS256).jwk;
    let issuer = serving(vec![with(rsa, json!({"kid": forged, "use": "enc"}))]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(&config, issuer_config(&issuer, "")).expect("write");
    for format in ["text", "json"] {
        let running =
            process::spawn_logging(&["--config", config.to_str().unwrap_or_default()], format);
        let mut lines: Vec<String> = running.startup.clone();
        let deadline = std::time::Instant::now() + Duration::from_secs(15);
        while !lines.iter().any(|l| l.contains("JWK skipped"))
            && std::time::Instant::now() < deadline
        {
            if let Ok(line) = running.logs.recv_timeout(Duration::from_millis(100)) {
                lines.push(line);
            }
        }
        let skipped = lines
            .iter()
            .find(|l| l.contains("JWK skipped"))
            .unwrap_or_else(|| panic!("{format}: no JWK skipped line: {lines:?}"));
        for line in &lines {
            assert!(
                !line.contains('\u{1b}'),
                "{format}: an ESC byte reached the log: {line:?}"
            );
            assert!(
                !line.starts_with("FORGED"),
                "{format}: a forged line: {lines:?}"
            );
        }
        if format == "json" {
            let event: Value = serde_json::from_str(skipped).expect("json");
            // The same escaped text in both formats, so one grep finds it in either.
            assert_eq!(
                event["kid"],
                "k\\nFORGED  INFO tokengate::access: status=200\\u{1b}[2J"
            );
        } else {
            assert!(
                skipped.contains("k\\nFORGED") && skipped.contains("\\u{1b}[2J"),
                "{skipped}"
            );
        }
    }
}
