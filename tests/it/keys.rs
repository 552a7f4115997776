//! Key sources and the refetch rules of the foundation: discovery, jwks_uri, jwks_file,
//! one single-flight refetch per unknown kid, limited per issuer.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::{issuer_config, read, Mode, TestIssuer, TestKey, TestProxy};

#[tokio::test]
async fn a_new_kid_triggers_one_refetch_and_then_verifies() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    let before = issuer.jwks_fetches();

    issuer.publish(b.clone()); // the issuer rotates in a new key
    let r = proxy.get_with("/api/messages", &issuer.token(&b)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(issuer.jwks_fetches(), before + 1);
    // Known now: no further fetch.
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&b))
            .await
            .status(),
        200
    );
    assert_eq!(issuer.jwks_fetches(), before + 1);
}

#[tokio::test]
async fn a_burst_with_a_new_kid_causes_exactly_one_fetch() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("ec-p256", "b", Algorithm::ES256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = Arc::new(TestProxy::for_issuer(&issuer).await);
    proxy.wait_ready().await;
    let before = issuer.jwks_fetches();
    issuer.publish(b.clone());
    issuer.set_mode(Mode::Slow(std::time::Duration::from_millis(300)));

    let token = issuer.token(&b);
    let client = reqwest::Client::new();
    let requests = (0..200).map(|_| {
        let (client, url, token) = (client.clone(), proxy.url("/api/messages"), token.clone());
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let statuses: Vec<u16> = futures_join(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    assert_eq!(
        issuer.jwks_fetches(),
        before + 1,
        "refetch was not single-flight"
    );
}

#[tokio::test]
async fn random_kids_never_cause_more_fetches_than_the_limit() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = TestProxy::start(&format!(
        "{}keys: {{ refetch_per_minute: 3 }}\n",
        issuer_config(&issuer, "")
    ))
    .await;
    proxy.wait_ready().await;
    let before = issuer.jwks_fetches();
    for i in 0..40 {
        let forged = issuer.token_with_header(&a, json!({"kid": format!("random-{i}")}));
        let (status, _, body) = read(proxy.get_with("/api/messages", &forged).await).await;
        assert_eq!(status, 401);
        assert!(body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("kid"));
    }
    assert_eq!(issuer.jwks_fetches() - before, 3);
    // Known keys keep working while the limit is exhausted.
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn jwks_uri_skips_discovery() {
    let a = TestKey::load("ec-p384", "a", Algorithm::ES384);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let yaml = issuer_config(&issuer, &format!("    jwks_uri: {}/keys\n", issuer.url()));
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status(),
        200
    );
    assert_eq!(issuer.discovery_fetches(), 0);
}

#[tokio::test]
async fn jwks_file_is_read_at_start_and_reread_when_replaced() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("ed25519", "b", Algorithm::EdDSA);
    // The issuer serves nothing here; it only mints.
    let issuer = TestIssuer::start(vec![]).await;
    issuer.set_mode(Mode::Down(500));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, json!({"keys": [a.jwk]}).to_string()).expect("write");
    let yaml = issuer_config(&issuer, &format!("    jwks_file: {}\n", path.display()));
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status(),
        200
    );
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&b))
            .await
            .status(),
        401
    );

    // Rename a new set into place.
    let staged = dir.path().join("jwks.json.new");
    std::fs::write(&staged, json!({"keys": [a.jwk, b.jwk]}).to_string()).expect("write");
    std::fs::rename(&staged, &path).expect("rename");
    let mut status = 0;
    for _ in 0..100 {
        status = proxy
            .get_with("/api/messages", &issuer.token(&b))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    assert_eq!(issuer.jwks_fetches() + issuer.discovery_fetches(), 0);
}

#[tokio::test]
async fn discovery_must_name_the_configured_issuer() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    issuer.set_discovery_issuer("https://evil.example.com");
    let proxy = TestProxy::for_issuer(&issuer).await;
    let r = proxy.get_with("/api/messages", &issuer.token(&a)).await;
    assert_eq!(r.status(), 503);
    assert_eq!(
        issuer.jwks_fetches(),
        0,
        "keys were fetched from an unverified discovery document"
    );
}

#[tokio::test]
async fn jwks_uri_from_discovery_must_be_https_unless_allowed() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    // allow_http lets the issuer itself be http, but a config without it is refused outright.
    let yaml = issuer_config(&issuer, "").replace("    allow_http: true\n", "");
    let result =
        tokengate::config::load_str(std::path::Path::new("t.yaml"), &yaml, &Default::default());
    let message = result.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(message.contains("is not https"), "{message}");
}

#[tokio::test]
async fn a_jwks_with_no_usable_key_never_replaces_good_keys() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    issuer.set_mode(Mode::Body(
        json!({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "x"}]}).to_string(),
    ));
    // An unknown kid forces a refetch, which returns the unusable set.
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&b))
            .await
            .status(),
        401
    );
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status(),
        200
    );
    issuer.set_mode(Mode::Body("not json".into()));
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&b))
            .await
            .status(),
        401
    );
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status(),
        200
    );
}

async fn futures_join(
    handles: impl Iterator<Item = tokio::task::JoinHandle<Result<u16, reqwest::Error>>>,
) -> Vec<u16> {
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.ok().and_then(Result::ok).unwrap_or(0));
    }
    out
}
