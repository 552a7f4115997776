//! CORS as the quickstart's `app.use(cors())`.

use crate::support::{issuer_config, rsa_setup, TestIssuer, TestKey, TestProxy};

#[tokio::test]
async fn preflight_is_answered_without_a_token() {
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key]).await;
    let proxy = TestProxy::start(&format!(
        "{}cors: {{ allow_origins: [\"*\"], max_age: 10m }}\n",
        issuer_config(&issuer, "")
    ))
    .await;
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, proxy.url("/api/messages"))
        .header("origin", "http://app.test")
        .header("access-control-request-method", "GET")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    let h = r.headers();
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    assert_eq!(get("access-control-allow-origin"), "*");
    assert!(get("access-control-allow-methods").contains("GET"));
    assert_eq!(get("access-control-allow-headers"), "authorization");
    assert_eq!(get("access-control-max-age"), "600");
}

#[tokio::test]
async fn a_401_carries_cors_headers_so_the_browser_can_read_it() {
    let key = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::start(&format!(
        "{}cors: {{ allow_origins: [\"https://app.example.com\"] }}\n",
        issuer_config(&issuer, "")
    ))
    .await;
    let r = reqwest::Client::new()
        .get(proxy.url("/api/messages"))
        .header("origin", "https://app.example.com")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 401);
    let h = r.headers();
    let get = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned()
    };
    assert_eq!(
        get("access-control-allow-origin"),
        "https://app.example.com"
    );
    assert_eq!(
        get("access-control-expose-headers"),
        "WWW-Authenticate, Retry-After, X-Request-Id, DPoP-Nonce"
    );
    assert_eq!(get("vary"), "Origin");

    // Another origin gets no CORS headers, even on a success.
    proxy.wait_ready().await;
    let r = reqwest::Client::new()
        .get(proxy.url("/api/messages"))
        .header("origin", "https://evil.example.com")
        .bearer_auth(issuer.token(&key))
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn without_cors_options_is_not_special() {
    let (_issuer, _key, proxy) = rsa_setup().await;
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, proxy.url("/api/messages"))
        .header("origin", "http://app.test")
        .header("access-control-request-method", "GET")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 405);
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
