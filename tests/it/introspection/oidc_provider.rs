//! Introspection against a real authorization server: oidc-provider (`tests/peers/
//! oidc-provider`, installed by `.ci/install-node-peers`) issuing opaque access tokens by
//! client_credentials, with RFC 7662 introspection, RFC 9701 JWT answers and RFC 7009
//! revocation. The introspection endpoint comes from the peer's discovery document. Calls
//! are counted on the peer's side.

use std::time::Duration;

use serde_json::Value;

use super::file;
use crate::support::oidc_provider::{OidcProvider, AUDIENCE, RS_SECRET};
use crate::support::process;
use crate::support::upstream::EchoUpstream;
use crate::support::TestProxy;

/// One issuer entry for `peer`, introspecting with `fields` added to `introspection:`.
fn issuer_entry(peer: &OidcProvider, secret: &tempfile::NamedTempFile, fields: &str) -> String {
    format!(
        "  - issuer: {}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n    introspection: {{ client_id: \"{AUDIENCE}\", client_secret_file: {}{fields} }}\n",
        peer.issuer(),
        secret.path().display()
    )
}

/// A proxy for `peer` in front of an echo upstream, with `routes`.
async fn proxy(
    peer: &OidcProvider,
    fields: &str,
    routes: &str,
) -> (TestProxy, EchoUpstream, tempfile::NamedTempFile) {
    let secret = file(RS_SECRET);
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n{}upstream: {{ url: {} }}\n{routes}",
        issuer_entry(peer, &secret, fields),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    (proxy, upstream, secret)
}

#[tokio::test]
async fn oidc_provider_active_token_passes_and_unknown_token_is_401() {
    let peer = OidcProvider::start(600);
    let (proxy, upstream, _secret) = proxy(&peer, "", "").await;
    let token = peer.token("read write").await;
    assert!(!token.contains('.'), "the peer's access tokens are opaque");
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
    let seen = upstream.last().expect("the upstream saw the request");
    assert_eq!(seen.header("x-auth-issuer"), Some(peer.issuer()));
    assert_eq!(seen.header("x-auth-scopes"), Some("read write"));
    assert_eq!(seen.header("x-auth-client-id"), Some("app"));
    let r = proxy
        .get_with("/api/x", "never-issued-by-the-peer-0123456789")
        .await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error_description"], "the token is not active");
    assert_eq!(upstream.count(), 1);
}

#[tokio::test]
async fn oidc_provider_client_secret_post() {
    let peer = OidcProvider::start(600);
    let secret = file(RS_SECRET);
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n  - issuer: {}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n    introspection: {{ client_id: \"{AUDIENCE}-post\", auth: client_secret_post, client_secret_file: {} }}\nupstream: {{ url: {} }}\n",
        peer.issuer(),
        secret.path().display(),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let token = peer.token("read").await;
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
}

/// A wrong client secret is the endpoint refusing us (401 invalid_client): 503 with
/// Retry-After and a warning naming the issuer, never a pass and never "inactive"; the
/// token is in no log line.
#[tokio::test]
async fn oidc_provider_wrong_client_secret_is_503_and_logged() {
    let peer = OidcProvider::start(600);
    let secret = file("not-the-secret");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("tokengate.yaml");
    std::fs::write(
        &config,
        format!("issuers:\n{}", issuer_entry(&peer, &secret, "")),
    )
    .expect("config written");
    let mut running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let client = reqwest::Client::new();
    let ready = crate::support::eventually(10, async || {
        client
            .get(format!("{}/readyz", running.base))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the proxy never became ready");
    let token = peer.token("read").await;
    let r = client
        .get(format!("{}/api/messages", running.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 503);
    assert_eq!(
        r.headers().get("retry-after").and_then(|v| v.to_str().ok()),
        Some("5")
    );
    let mut warned = None;
    let mut lines = Vec::new();
    while let Ok(line) = running.logs.recv_timeout(Duration::from_secs(5)) {
        assert!(!line.contains(&token), "a log line holds the token: {line}");
        if line.contains("introspection failed") {
            warned = Some(line.clone());
        }
        let access = line.contains("\"status\":503");
        lines.push(line);
        if warned.is_some() && access {
            break;
        }
    }
    let warned = warned.unwrap_or_else(|| panic!("no warning in:\n{}", lines.join("\n")));
    let event: Value = serde_json::from_str(&warned).unwrap_or_default();
    assert_eq!(event["level"], "WARN", "{warned}");
    assert_eq!(event["issuer"], peer.issuer(), "{warned}");
    assert!(
        event["error"].as_str().is_some_and(|e| e.contains("401")),
        "{warned}"
    );
    running.terminate();
}

#[tokio::test]
async fn oidc_provider_signed_introspection_answers() {
    let peer = OidcProvider::start(600);
    let (proxy, upstream, _secret) = proxy(&peer, ", response: jwt", "").await;
    let token = peer.token("read").await;
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
    let seen = upstream.last().expect("the upstream saw the request");
    assert_eq!(seen.header("x-auth-client-id"), Some("app"));
    assert_eq!(
        proxy
            .get_with("/api/x", "never-issued-by-the-peer-0123456789")
            .await
            .status(),
        401
    );
}

/// Oathkeeper's first cache advisory, against the real server: the same token under a route
/// that needs another scope is still refused, and the answer (not the decision) was cached.
#[tokio::test]
async fn oidc_provider_a_cached_answer_never_passes_another_scope() {
    let peer = OidcProvider::start(600);
    let routes = "routes:\n  - { path: /admin/**, scopes: [admin] }\n  - { path: /api/**, scopes: [read] }\n";
    let (proxy, _upstream, _secret) = proxy(&peer, "", routes).await;
    let token = peer.token("read").await;
    let before = peer.introspections().await;
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
    assert_eq!(proxy.get_with("/admin/x", &token).await.status(), 403);
    assert_eq!(proxy.get_with("/admin/x", &token).await.status(), 403);
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
    assert_eq!(peer.introspections().await - before, 1);
    let admin = peer.token("read admin").await;
    assert_eq!(proxy.get_with("/admin/x", &admin).await.status(), 200);
}

/// Oathkeeper's second cache advisory, against two real servers: each token is asked of
/// each endpoint in `opaque_tokens` order, each answer cached under its own endpoint, and the
/// claims always come from the server that issued the token.
#[tokio::test]
async fn oidc_provider_answers_of_one_server_are_never_another_servers() {
    let (p1, p2) = (OidcProvider::start(600), OidcProvider::start(600));
    let (s1, s2) = (file(RS_SECRET), file(RS_SECRET));
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n{}{}opaque_tokens: [{}, {}]\nupstream: {{ url: {} }}\n",
        issuer_entry(&p1, &s1, ""),
        issuer_entry(&p2, &s2, ""),
        p2.issuer(),
        p1.issuer(),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let t1 = p1.token("read").await;
    let t2 = p2.token("read").await;
    let counts = async || (p1.introspections().await, p2.introspections().await);
    let start = counts().await;
    let issuer_seen = async |token: &str| {
        let r = proxy.get_with("/api/x", token).await;
        assert_eq!(r.status(), 200);
        upstream
            .last()
            .and_then(|s| s.header("x-auth-issuer").map(str::to_owned))
    };
    // t1: p2 says inactive, p1 says active.
    assert_eq!(issuer_seen(&t1).await.as_deref(), Some(p1.issuer()));
    assert_eq!(counts().await, (start.0 + 1, start.1 + 1));
    // t2: p2 (first) says active; p1 is not asked.
    assert_eq!(issuer_seen(&t2).await.as_deref(), Some(p2.issuer()));
    assert_eq!(counts().await, (start.0 + 1, start.1 + 2));
    // Both again: every answer from the cache, each still its own server's.
    assert_eq!(issuer_seen(&t1).await.as_deref(), Some(p1.issuer()));
    assert_eq!(issuer_seen(&t2).await.as_deref(), Some(p2.issuer()));
    assert_eq!(counts().await, (start.0 + 1, start.1 + 2));
}

/// Revoked at the server: refused once the cached answer's cache_ttl has passed.
#[tokio::test]
async fn oidc_provider_revocation_is_seen_after_cache_ttl() {
    let peer = OidcProvider::start(600);
    let (proxy, _upstream, _secret) = proxy(&peer, ", cache_ttl: 1s", "").await;
    let token = peer.token("read").await;
    assert_eq!(proxy.get_with("/api/x", &token).await.status(), 200);
    peer.revoke(&token).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = proxy.get_with("/api/x", &token).await;
    assert_eq!(r.status(), 401);
    let body: Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error_description"], "the token is not active");
}

/// 500 concurrent requests with one new opaque token: one introspection call.
#[tokio::test]
async fn oidc_provider_single_flight() {
    let peer = OidcProvider::start(600);
    let (proxy, upstream, _secret) = proxy(&peer, "", "").await;
    let token = peer.token("read").await;
    let before = peer.introspections().await;
    let client = reqwest::Client::new();
    let url = proxy.url("/api/x");
    let requests = (0..500).map(|_| {
        let (client, url, token) = (client.clone(), url.clone(), token.clone());
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    });
    let statuses = futures_util::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    assert_eq!(ok, 500);
    assert_eq!(upstream.count(), 500);
    assert_eq!(peer.introspections().await - before, 1);
}

/// `check --online` finds the peer's introspection endpoint by discovery, as the proxy will.
#[tokio::test]
async fn oidc_provider_check_online_names_the_discovered_endpoint() {
    let peer = OidcProvider::start(600);
    let secret = file(RS_SECRET);
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("tokengate.yaml");
    std::fs::write(
        &config,
        format!("issuers:\n{}", issuer_entry(&peer, &secret, "")),
    )
    .expect("config written");
    let out = std::process::Command::new(process::BIN)
        .args(["check", "--online", "--config"])
        .arg(&config)
        .output()
        .expect("tokengate check --online runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "introspection: {}/token/introspection (from discovery)",
            peer.issuer()
        )),
        "{stdout}"
    );
}
