//! DPoP through real ingresses in forward-auth mode: openid-client, holding a token
//! oidc-provider bound to its key, calls the app through Traefik's ForwardAuth and Caddy's
//! forward_auth (the shipped examples). tokengate decides with no `dpop.external_url`, so a
//! proof's `htu` is checked against the origin the ingress reports (`X-Forwarded-Proto` and
//! `-Host`), and with nonces on, so the ingress must hand tokengate's 401 `use_dpop_nonce` and
//! its `DPoP-Nonce` back to the client for the client's retry to succeed.

use std::path::Path;

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::{caddy, traefik, values, Ingress, Stack};
use crate::forward_auth::ROUTES;
use crate::support::dpop::DpopKey;
use crate::support::dpop_clients::{dpop_peer, openid_client};
use crate::support::oidc_provider::{OidcProvider, AUDIENCE};
use crate::support::upstream::EchoUpstream;
use crate::support::{TestIssuer, TestKey, TestProxy};

/// tokengate deciding for `mode` on `peer`'s tokens, nonces from `secret`. The ingress
/// helpers read a [`Stack`] for its ports (tokengate's and the upstream's) only: its test
/// issuers stand unused here.
async fn stack(peer: &OidcProvider, mode: &str, secret: &Path) -> Stack {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let down = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n  - issuer: {}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n{ROUTES}\
         forward_auth: {{ mode: {mode}, path: /_auth, trusted_proxies: [127.0.0.1/32] }}\n\
         dpop:\n  nonce: {{ secret_file: {}, lifetime: 60s }}\n",
        peer.issuer(),
        secret.display()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    Stack {
        issuer,
        down,
        key,
        upstream,
        proxy,
    }
}

async fn dpop_through(mode: &str) {
    let peer = dpop_peer();
    let secret = tempfile::NamedTempFile::new().expect("a nonce secret file");
    std::fs::write(
        secret.path(),
        "0123456789abcdef0123456789abcdef-dpop-nonce-test",
    )
    .expect("the nonce secret written");
    let stack = stack(&peer, mode, secret.path()).await;
    let ingress: Ingress = match mode {
        "traefik" => traefik(&stack).await,
        _ => caddy(&stack).await,
    };
    let before = stack.upstream.count();

    let result = openid_client(&peer, &ingress.url("/api/orders?page=2")).await;
    assert_eq!(
        result["status"],
        200,
        "{mode}: openid-client through the ingress: {result}\n{}",
        ingress.log()
    );
    assert_eq!(
        result["attempts"],
        json!([401, 200]),
        "{mode}: the ingress passed use_dpop_nonce on, and the client retried once: {result}"
    );
    let nonce = result["nonces"][0]
        .as_str()
        .unwrap_or_else(|| panic!("{mode}: the ingress passed DPoP-Nonce on: {result}"))
        .to_owned();
    assert_eq!(
        stack.upstream.count(),
        before + 1,
        "{mode}: one request reached the app"
    );
    let seen = stack.upstream.last().expect("the app saw the request");
    assert_eq!(seen.target, "/api/orders?page=2", "{mode}");
    assert_eq!(
        values(&seen, "x-auth-client-id"),
        ["app"],
        "{mode}: {seen:?}"
    );

    // The origin is the ingress's: a proof for another host is refused, the same proof for
    // the ingress's origin passes (both with the current nonce).
    let key = DpopKey::es256();
    let token = peer.dpop_token("read", &key).await;
    let client = reqwest::Client::new();
    for (htu, expected) in [
        ("http://elsewhere.example/api/orders".to_owned(), 401),
        (ingress.url("/api/orders"), 200),
    ] {
        let proof = key.proof_with("GET", &htu, &token, json!({}), json!({ "nonce": nonce }));
        let r = client
            .get(ingress.url("/api/orders"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(r.status(), expected, "{mode}: a proof for {htu}");
    }
    assert_eq!(
        stack.upstream.count(),
        before + 2,
        "{mode}: the refused proof reached nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forward_auth_with_dpop_nonces_and_openid_client() {
    dpop_through("traefik").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_with_dpop_nonces_and_openid_client() {
    dpop_through("caddy").await;
}
