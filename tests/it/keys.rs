//! Key sources and the refetch rules of the foundation: discovery, jwks_uri, jwks_file,
//! one single-flight refetch per unknown kid, limited per issuer.

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::{eventually, issuer_config, read, Mode, TestIssuer, TestKey, TestProxy};

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
    let proxy = TestProxy::for_issuer_with(&issuer, "keys: { refetch_per_minute: 3 }\n").await;
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

// --- The key lifecycle: several issuers, cache lifetime, rotation, outages, bad responses.

#[tokio::test]
async fn several_issuers_each_with_their_own_keys_audiences_and_algorithms() {
    let a_key = TestKey::load("rsa-a", "shared-kid", Algorithm::RS256);
    let b_key = TestKey::load("ec-p256", "shared-kid", Algorithm::ES256);
    let a = TestIssuer::start(vec![a_key.clone()]).await;
    let b = TestIssuer::start(vec![b_key.clone()]).await;
    let yaml = format!(
        "issuers:\n  - {{ issuer: {}, audiences: [api://a], allow_http: true }}\n  - {{ issuer: {}, audiences: [api://b], algorithms: [ES256], allow_http: true, claims: {{ cid: client-1 }} }}\n",
        a.url(),
        b.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let ok_a = a.token_with(&a_key, json!({"aud": "api://a"}));
    let ok_b = b.token_with(&b_key, json!({"aud": "api://b"}));
    assert_eq!(proxy.get_with("/api/messages", &ok_a).await.status(), 200);
    assert_eq!(proxy.get_with("/api/messages", &ok_b).await.status(), 200);
    // Each issuer's audience, algorithms and claims are its own.
    assert_eq!(
        proxy
            .get_with(
                "/api/messages",
                &a.token_with(&a_key, json!({"aud": "api://b"}))
            )
            .await
            .status(),
        401
    );
    assert_eq!(
        proxy
            .get_with(
                "/api/messages",
                &b.token_with(&b_key, json!({"aud": "api://b", "cid": "x"}))
            )
            .await
            .status(),
        401
    );
    // A token claiming issuer B but signed with A's key (same kid) is refused.
    let crossed = crate::support::keys::sign_raw(
        &crate::support::issuer::header(&a_key),
        &crate::support::issuer::merge(b.claims(), json!({"aud": "api://b"})),
        &a_key.encoding,
        a_key.alg,
    );
    assert_eq!(
        proxy.get_with("/api/messages", &crossed).await.status(),
        401
    );
}

#[tokio::test]
async fn cache_control_sets_the_refresh_and_refresh_happens_in_the_background() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    issuer.set_cache_control("public, max-age=2");
    let proxy = TestProxy::for_issuer_with(&issuer, "keys: { min_refresh: 1s }\n").await;
    proxy.wait_ready().await;
    let first = issuer.jwks_fetches();
    // No request at all: the refresh is scheduled (at 90% of max-age), not triggered.
    assert!(
        eventually(6, async || issuer.jwks_fetches() > first).await,
        "no background refresh"
    );
    let refreshed_after = issuer.jwks_fetches();
    assert!(
        refreshed_after <= first + 2,
        "refreshed too often: {first} -> {refreshed_after}"
    );
}

#[tokio::test]
async fn max_age_below_min_refresh_is_clamped() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    issuer.set_cache_control("max-age=0");
    let proxy = TestProxy::for_issuer_with(&issuer, "keys: { min_refresh: 3s }\n").await;
    proxy.wait_ready().await;
    let first = issuer.jwks_fetches();
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(
        issuer.jwks_fetches(),
        first,
        "max-age=0 must not cause a refetch storm"
    );
}

#[tokio::test]
async fn a_removed_key_stops_verifying_at_the_next_refresh() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone(), b.clone()]).await;
    issuer.set_cache_control("max-age=1");
    let proxy = TestProxy::for_issuer_with(&issuer, "keys: { min_refresh: 1s }\n").await;
    proxy.wait_ready().await;
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status(),
        200
    );
    issuer.unpublish("a");
    let token = issuer.token(&a);
    assert!(
        eventually(10, async || proxy
            .get_with("/api/messages", &token)
            .await
            .status()
            == 401)
        .await,
        "a key removed from the JWKS kept verifying"
    );
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token(&b))
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn during_an_outage_the_last_good_keys_are_served_until_max_stale() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    issuer.set_cache_control("max-age=1");
    let yaml = format!(
        "{}keys: {{ min_refresh: 1s, max_stale: 3s }}\n",
        issuer_config(&issuer, "")
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    issuer.set_mode(Mode::Down(503));
    let token = issuer.token(&a);
    // Past the 1 s lifetime, the refresh fails, and the stale keys still verify.
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    // Past lifetime + max_stale: no keys, so 503 (never a pass, never a 500).
    assert!(
        eventually(10, async || proxy
            .get_with("/api/messages", &token)
            .await
            .status()
            == 503)
        .await,
        "stale keys were served past max_stale"
    );
    let (status, _, body) = read(reqwest::get(proxy.url("/readyz")).await.expect("readyz")).await;
    assert_eq!(status, 503);
    assert_eq!(body["issuers_without_keys"], json!([issuer.url()]));
    // Recovery without a restart.
    issuer.set_mode(Mode::Up);
    assert!(
        eventually(30, async || proxy
            .get_with("/api/messages", &token)
            .await
            .status()
            == 200)
        .await
    );
}

#[tokio::test]
async fn oversized_slow_and_redirecting_jwks_responses_are_failures() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    for (name, mode) in [
        (
            "oversized",
            Mode::Body(format!(
                "{{\"keys\":[],\"pad\":\"{}\"}}",
                "x".repeat(2 * 1024 * 1024)
            )),
        ),
        ("slow", Mode::Slow(std::time::Duration::from_secs(10))),
        (
            "redirect to another host",
            Mode::Redirect("http://localhost:1/keys".into()),
        ),
    ] {
        let issuer = TestIssuer::start(vec![a.clone()]).await;
        issuer.set_mode(mode);
        let yaml = format!(
            "{}keys: {{ fetch_timeout: 1s }}\n",
            issuer_config(&issuer, "")
        );
        let proxy = TestProxy::start(&yaml).await;
        let started = std::time::Instant::now();
        let status = proxy
            .get_with("/api/messages", &issuer.token(&a))
            .await
            .status();
        assert_eq!(status, 503, "{name}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{name}: the request hung"
        );
        assert_eq!(
            reqwest::get(proxy.url("/readyz"))
                .await
                .expect("readyz")
                .status(),
            503,
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_burst_of_1000_concurrent_requests_with_a_new_kid_causes_one_fetch() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("ec-p384", "b", Algorithm::ES384);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = Arc::new(TestProxy::for_issuer(&issuer).await);
    proxy.wait_ready().await;
    let before = issuer.jwks_fetches();
    issuer.publish(b.clone());
    issuer.set_mode(Mode::Slow(std::time::Duration::from_millis(500)));
    let token = issuer.token(&b);
    // HTTP/2 multiplexes the burst over a few connections.
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let requests = (0..1000).map(|_| {
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
    let statuses = futures_join(requests).await;
    let ok = statuses.iter().filter(|s| **s == 200).count();
    let fetches = issuer.jwks_fetches() - before;
    eprintln!(
        "burst: 1000 concurrent requests with a new kid -> {ok} x 200, {fetches} JWKS fetch(es)"
    );
    assert_eq!(ok, 1000, "{statuses:?}");
    assert_eq!(fetches, 1, "refetch was not single-flight");
}

#[tokio::test]
async fn a_flood_of_random_kids_stays_within_the_default_limit() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = Arc::new(TestProxy::for_issuer(&issuer).await);
    proxy.wait_ready().await;
    let before = issuer.jwks_fetches();
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let requests = (0..500).map(|i| {
        let forged = issuer.token_with_header(&a, json!({"kid": format!("flood-{i}")}));
        let (client, url) = (client.clone(), proxy.url("/api/messages"));
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(forged)
                .send()
                .await
                .map(|r| r.status().as_u16())
        })
    });
    let statuses = futures_join(requests).await;
    let fetches = issuer.jwks_fetches() - before;
    eprintln!("flood: 500 tokens with random kids -> {fetches} JWKS fetches (limit 10 a minute)");
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert!(fetches <= 10, "{fetches} fetches");
    assert!(fetches >= 1);
}
