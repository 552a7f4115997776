//! DPoP through real ingresses in forward-auth mode.
//!
//! openid-client, holding a token oidc-provider bound to its key, calls the app through each
//! shipped example (nginx, Traefik, Envoy, Caddy). tokengate decides with nonces on, so the
//! ingress must hand tokengate's 401 `use_dpop_nonce` and its `DPoP-Nonce` back to the
//! client for the client's retry to succeed; behind Traefik and Caddy with no
//! `dpop.external_url`, so a proof's `htu` is checked against the origin the ingress reports
//! (`X-Forwarded-Proto` and `-Host`), behind nginx and Envoy (which report none) with the
//! ingress's URL as `external_url`.
//!
//! Through each of the four examples, what the app gets (README "Forward-auth"): never the
//! `DPoP` header, `X-Auth-Token-Binding: dpop` for a DPoP request and none for a bearer one
//! whatever the client sent, and `Authorization: Bearer <token>` where the example rewrites
//! the DPoP scheme (nginx, Caddy), the client's `DPoP <token>` where it cannot (Traefik, Envoy).

use jsonwebtoken::Algorithm;
use serde_json::json;

use super::{caddy, envoy, free_port, nginx, traefik, values, Ingress, Stack};
use crate::forward_auth::ROUTES;
use crate::support::dpop::DpopKey;
use crate::support::dpop_clients::{dpop_peer, openid_client};
use crate::support::oidc_provider::{OidcProvider, AUDIENCE};
use crate::support::upstream::{EchoUpstream, Recorded};
use crate::support::{TestIssuer, TestKey, TestProxy};

/// tokengate deciding for `mode` on `peer`'s tokens, with `dpop` (a `dpop:` section, or
/// nothing), the ingress to listen on `listen`. The ingress helpers read a [`Stack`] for its
/// ports only: its test issuers stand unused here.
async fn stack(peer: &OidcProvider, mode: &str, listen: u16, dpop: &str) -> Stack {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let down = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n  - issuer: {}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n{ROUTES}\
         forward_auth: {{ mode: {mode}, {prefix}: /_auth, trusted_proxies: [127.0.0.1/32] }}\n{dpop}",
        peer.issuer(),
        prefix = if mode == "envoy" { "path_prefix" } else { "path" },
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    Stack {
        issuer,
        down,
        key,
        upstream,
        proxy,
        listen,
    }
}

/// The `external_url:` line (under `dpop:`) for `mode` listening on `listen`: nginx and
/// Envoy report no origin, so tokengate is told the ingress's; Traefik and Caddy report
/// theirs (`X-Forwarded-Proto` and `-Host`), and none is configured.
fn external_url(mode: &str, listen: u16) -> String {
    match mode {
        "nginx" | "envoy" => format!("  external_url: http://127.0.0.1:{listen}\n"),
        _ => String::new(),
    }
}

/// The ingress of `mode`, running its shipped example in front of `stack`.
async fn ingress(mode: &str, stack: &Stack) -> Ingress {
    match mode {
        "nginx" => nginx(stack).await,
        "traefik" => traefik(stack).await,
        "envoy" => envoy(stack).await,
        "caddy" => caddy(stack).await,
        other => panic!("no ingress {other}"),
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
    let listen = free_port();
    let dpop = format!(
        "dpop:\n{}  nonce: {{ secret_file: {}, lifetime: 60s }}\n",
        external_url(mode, listen),
        secret.path().display()
    );
    let stack = stack(&peer, mode, listen, &dpop).await;
    let ingress = ingress(mode, &stack).await;
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
    let token = result["access_token"].as_str().unwrap_or_default();
    assert_token_reached_the_app(mode, &seen, "DPoP", token, "dpop");

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

/// Whether the example of `mode` gives the app a DPoP-scheme token as `Bearer` (README
/// "Forward-auth": nginx by a `map`, Caddy by `request_header`; Traefik and Envoy cannot
/// without a plugin or script, and pass the client's scheme on).
fn rewrites_the_dpop_scheme(mode: &str) -> bool {
    matches!(mode, "nginx" | "caddy")
}

/// What the app got of a request tokengate let through, sent with `Authorization: <scheme>
/// <token>`, bound as `binding` ("" for a bearer token): never a `DPoP` header; tokengate's
/// binding and no other (absent or empty for none); the token under the scheme the README
/// says for `mode`.
fn assert_token_reached_the_app(
    mode: &str,
    seen: &Recorded,
    scheme: &str,
    token: &str,
    binding: &str,
) {
    assert!(!token.is_empty(), "{mode}: no token");
    assert_eq!(
        values(seen, "dpop"),
        Vec::<String>::new(),
        "{mode}: {seen:?}"
    );
    let got = values(seen, "x-auth-token-binding");
    if binding.is_empty() {
        assert!(
            got.is_empty() || got == [""],
            "{mode}: a bearer token's binding reached the app as {got:?}"
        );
    } else {
        assert_eq!(got, [binding], "{mode}: {seen:?}");
    }
    let expected = if !binding.is_empty() && rewrites_the_dpop_scheme(mode) {
        format!("Bearer {token}")
    } else {
        format!("{scheme} {token}")
    };
    assert_eq!(
        values(seen, "authorization"),
        [expected],
        "{mode}: the app's Authorization"
    );
}

/// DPoP and bearer requests through the shipped example of `mode`, with the client's own
/// `X-Auth-Token-Binding` and `DPoP` headers, and what the app gets of each. nginx and Envoy
/// report no origin, so tokengate checks `htu` against `dpop.external_url`, the ingress's URL
/// (Traefik and Caddy: the origin they report).
async fn what_the_app_gets(mode: &str) {
    let peer = dpop_peer();
    let listen = free_port();
    let dpop = format!("dpop:\n{}", external_url(mode, listen));
    let stack = stack(&peer, mode, listen, &dpop).await;
    let ingress = ingress(mode, &stack).await;
    let client = reqwest::Client::new();
    let key = DpopKey::es256();
    let bound = peer.dpop_token("read", &key).await;
    let count = || stack.upstream.count();
    let last = || stack.upstream.last().expect("the app saw the request");

    // A DPoP request, the client claiming another binding: the app gets tokengate's, and
    // never the proof. Both spellings of the scheme (RFC 9110 §11.1: case-insensitive).
    for scheme in ["DPoP", "dpop"] {
        let before = count();
        let proof = key.proof("GET", &ingress.url("/api/orders"), &bound);
        let r = client
            .get(ingress.url("/api/orders?page=2"))
            .header("authorization", format!("{scheme} {bound}"))
            .header("dpop", proof)
            .header("x-auth-token-binding", "mtls")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{mode}: {e}"));
        assert_eq!(
            r.status(),
            200,
            "{mode}: a DPoP request ({scheme})\n{}",
            ingress.log()
        );
        assert_eq!(count(), before + 1, "{mode}");
        let seen = last();
        assert_eq!(seen.target, "/api/orders?page=2", "{mode}");
        assert_token_reached_the_app(mode, &seen, scheme, &bound, "dpop");
    }

    // Refused before the app: a proof for another origin (htu is the configured or reported
    // origin, never the client's), and the bound token without its proof.
    let before = count();
    let proof = key.proof("GET", "http://elsewhere.example/api/orders", &bound);
    let r = client
        .get(ingress.url("/api/orders"))
        .header("authorization", format!("DPoP {bound}"))
        .header("dpop", proof)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(r.status(), 401, "{mode}: a proof for another origin");
    let r = client
        .get(ingress.url("/api/orders"))
        .bearer_auth(&bound)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(r.status(), 401, "{mode}: a DPoP-bound token as Bearer");
    assert_eq!(count(), before, "{mode}: a refused request reached the app");

    // A bearer token, the client claiming a DPoP binding: the app gets none.
    let bearer = peer.token("read").await;
    let r = client
        .get(ingress.url("/api/orders"))
        .bearer_auth(&bearer)
        .header("x-auth-token-binding", "dpop")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(r.status(), 200, "{mode}: a bearer token\n{}", ingress.log());
    assert_eq!(count(), before + 1, "{mode}");
    assert_token_reached_the_app(mode, &last(), "Bearer", &bearer, "");

    // A public route, tokengate verifying nothing: a client's DPoP header and binding never
    // reach the app, and its Authorization passes unchanged (not rewritten: nothing was
    // proven), as in proxy mode.
    let r = client
        .get(ingress.url("/public/page"))
        .header("authorization", "DPoP not-a-token")
        .header("dpop", "not-a-proof")
        .header("x-auth-token-binding", "dpop")
        .send()
        .await
        .unwrap_or_else(|e| panic!("{mode}: {e}"));
    assert_eq!(r.status(), 200, "{mode}: a public route\n{}", ingress.log());
    assert_eq!(count(), before + 2, "{mode}");
    assert_token_reached_the_app(mode, &last(), "DPoP", "not-a-token", "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_gives_the_app_the_binding_and_a_bearer_token_never_the_proof() {
    what_the_app_gets("nginx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_gives_the_app_the_binding_and_the_clients_scheme_never_the_proof() {
    what_the_app_gets("traefik").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_gives_the_app_the_binding_and_the_clients_scheme_never_the_proof() {
    what_the_app_gets("envoy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_gives_the_app_the_binding_and_a_bearer_token_never_the_proof() {
    what_the_app_gets("caddy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request_with_dpop_nonces_and_openid_client() {
    dpop_through("nginx").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_ext_authz_with_dpop_nonces_and_openid_client() {
    dpop_through("envoy").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_forward_auth_with_dpop_nonces_and_openid_client() {
    dpop_through("traefik").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth_with_dpop_nonces_and_openid_client() {
    dpop_through("caddy").await;
}
