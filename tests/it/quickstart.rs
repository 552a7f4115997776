//! The routes of Okta's Express quickstart, and the endpoints that need no token.

use serde_json::json;

use jsonwebtoken::Algorithm;

use crate::support::dpop::DpopKey;
use crate::support::{read, rsa_setup, Mode, TestIssuer, TestKey, TestProxy};

#[tokio::test]
async fn api_messages_answers_the_quickstart_message_with_a_valid_token() {
    let (issuer, key, proxy) = rsa_setup().await;
    let response = proxy.get_with("/api/messages", &issuer.token(&key)).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/json")
    );
    assert_eq!(
        response.text().await.unwrap_or_default(),
        r#"[{"message":"Hello, word!"}]"#
    );
}

#[tokio::test]
async fn secure_echoes_the_verified_header_and_claims() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    let (status, _, body) = read(proxy.get_with("/secure", &token).await).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["header"],
        json!({"alg": "RS256", "kid": "rsa-a", "typ": "JWT"})
    );
    assert_eq!(body["claims"]["sub"], "user-1");
    assert_eq!(body["claims"]["iss"], issuer.url());
    assert_eq!(body["claims"]["scp"], json!(["read"]));
}

#[tokio::test]
async fn both_routes_need_a_token() {
    let (_issuer, _key, proxy) = rsa_setup().await;
    for path in ["/api/messages", "/secure"] {
        let response = reqwest::get(proxy.url(path)).await.expect("request");
        let (status, challenge, body) = read(response).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"tokengate\""),
            "{path}"
        );
        assert_eq!(body["error"], "unauthorized");
    }
}

#[tokio::test]
async fn unknown_routes_are_404_json_and_wrong_methods_405() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    let (status, _, body) = read(proxy.get_with("/nope", &token).await).await;
    assert_eq!((status, body["error"].as_str()), (404, Some("not_found")));
    let (status, _, _) = read(proxy.get_with("/secure/", &token).await).await;
    assert_eq!(status, 404);
    let response = reqwest::Client::new()
        .post(proxy.url("/api/messages"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 405);
    assert_eq!(
        response
            .headers()
            .get("allow")
            .and_then(|v| v.to_str().ok()),
        Some("GET, HEAD")
    );
}

#[tokio::test]
async fn head_is_answered_like_get_without_a_body() {
    let (issuer, key, proxy) = rsa_setup().await;
    let response = reqwest::Client::new()
        .head(proxy.url("/api/messages"))
        .bearer_auth(issuer.token(&key))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.map(|b| b.len()).unwrap_or(1), 0);
}

#[tokio::test]
async fn healthz_is_always_200_and_readyz_waits_for_keys() {
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    issuer.set_mode(Mode::Down(500));
    let proxy = TestProxy::for_issuer(&issuer).await;

    let health = reqwest::get(proxy.url("/healthz")).await.expect("request");
    assert_eq!(health.status(), 200);
    let (status, _, body) = read(reqwest::get(proxy.url("/readyz")).await.expect("request")).await;
    assert_eq!(status, 503);
    assert_eq!(body["issuers_without_keys"], json!([issuer.url()]));

    // A token for the issuer without keys is a 503 with Retry-After, never a 401 or 500.
    let response = proxy.get_with("/api/messages", &issuer.token(&key)).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));

    // Once the issuer answers, the same token works without a restart.
    issuer.set_mode(Mode::Up);
    let mut status = 0;
    for _ in 0..100 {
        status = proxy
            .get_with("/api/messages", &issuer.token(&key))
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, 200);
    proxy.wait_ready().await;
}

#[tokio::test]
async fn dev_issuer_mints_tokens_the_proxy_accepts() {
    let proxy = TestProxy::start("dev_issuer: { audience: api://default }\n").await;
    let client = reqwest::Client::new();
    let minted: serde_json::Value = client
        .post(proxy.url("/_dev/token"))
        .form(&[
            ("sub", "alice"),
            ("scope", "read write"),
            ("expires_in", "120"),
        ])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(minted["token_type"], "Bearer");
    assert_eq!(minted["expires_in"], 120);
    let token = minted["access_token"].as_str().expect("token");
    let (status, _, body) = read(proxy.get_with("/secure", token).await).await;
    assert_eq!(status, 200);
    assert_eq!(body["claims"]["sub"], "alice");
    assert_eq!(body["claims"]["scp"], json!(["read", "write"]));
    assert_eq!(body["claims"]["aud"], "api://default");

    // A token minted for another audience is refused, with the reason.
    let other: serde_json::Value = client
        .post(proxy.url("/_dev/token"))
        .form(&[("sub", "alice"), ("aud", "api://elsewhere")])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let (status, challenge, _) = read(
        proxy
            .get_with("/secure", other["access_token"].as_str().unwrap_or(""))
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap_or_default().contains("audience"));

    // Bad requests are 400s, not tokens.
    for form in [
        vec![("scope", "x")],
        vec![("sub", "a"), ("expires_in", "0")],
        vec![("sub", "a"), ("expires_in", "x")],
    ] {
        let r = client
            .post(proxy.url("/_dev/token"))
            .form(&form)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 400, "{form:?}");
    }
}

/// `jkt` binds a dev token to a DPoP key: it then works with that key's proofs (once each),
/// and not as a bearer token or with another key's proof.
#[tokio::test]
async fn dev_issuer_mints_a_dpop_bound_token_that_works_with_a_proof() {
    let proxy = TestProxy::start(
        "dev_issuer: { audience: api://default }\ndpop: { external_url: \"{{proxy_url}}\" }\n",
    )
    .await;
    let client = reqwest::Client::new();
    let key = DpopKey::es256();
    let minted: serde_json::Value = client
        .post(proxy.url("/_dev/token"))
        .form(&[("sub", "alice"), ("jkt", key.jkt().as_str())])
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(minted["token_type"], "DPoP");
    let token = minted["access_token"].as_str().expect("token");
    let dpop = |proof: &str| {
        client
            .get(proxy.url("/secure"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
    };

    let proof = key.proof("GET", &proxy.url("/secure"), token);
    let (status, _, body) = read(dpop(&proof).await.expect("request")).await;
    assert_eq!(status, 200);
    assert_eq!(body["claims"]["sub"], "alice");
    assert_eq!(body["claims"]["cnf"], json!({ "jkt": key.jkt() }));

    // The same proof again is a replay.
    let (status, _, body) = read(dpop(&proof).await.expect("request")).await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_dpop_proof"))
    );
    // Another key's proof does not fit the binding.
    let other = DpopKey::load("ed25519", Algorithm::EdDSA);
    let (status, _, body) = read(
        dpop(&other.proof("GET", &proxy.url("/secure"), token))
            .await
            .expect("request"),
    )
    .await;
    assert_eq!(
        (status, &body["error"]),
        (401, &json!("invalid_dpop_proof"))
    );
    // A bound token is no bearer token (RFC 9449 §7.2).
    let (status, _, body) = read(proxy.get_with("/secure", token).await).await;
    assert_eq!((status, &body["error"]), (401, &json!("invalid_token")));

    // A jkt that is no thumbprint is a 400, not a token.
    for jkt in ["", "abc", "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs=="] {
        let r = client
            .post(proxy.url("/_dev/token"))
            .form(&[("sub", "alice"), ("jkt", jkt)])
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 400, "{jkt:?}");
    }
}

#[tokio::test]
async fn dev_token_endpoint_does_not_exist_without_a_dev_issuer() {
    let (_issuer, _key, proxy) = rsa_setup().await;
    let r = reqwest::Client::new()
        .post(proxy.url("/_dev/token"))
        .form(&[("sub", "alice")])
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 404);
}
