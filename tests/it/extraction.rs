//! RFC 6750 §2.1 through the proxy: where the token may be and what is malformed.

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION};

use crate::support::{read, rsa_setup};

#[tokio::test]
async fn the_scheme_is_case_insensitive() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    for scheme in ["Bearer", "bearer", "BEARER", "bEaReR"] {
        let r = reqwest::Client::new()
            .get(proxy.url("/api/messages"))
            .header(AUTHORIZATION, format!("{scheme} {token}"))
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200, "{scheme}");
    }
}

#[tokio::test]
async fn malformed_headers_are_400_invalid_request() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    for value in [
        "Bearer".to_string(),
        "Bearer ".to_string(),
        format!("Bearer {token} extra"),
        format!("Bearer {token},x"),
        "Bearer a\"b".to_string(),
    ] {
        let r = reqwest::Client::new()
            .get(proxy.url("/api/messages"))
            .header(AUTHORIZATION, value.clone())
            .send()
            .await
            .expect("request");
        let (status, challenge, body) = read(r).await;
        assert_eq!(status, 400, "{value:.20}");
        assert_eq!(body["error"], "invalid_request");
        assert!(challenge
            .unwrap_or_default()
            .contains("error=\"invalid_request\""));
    }
}

#[tokio::test]
async fn two_authorization_headers_are_400() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    let mut headers = HeaderMap::new();
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("header");
    headers.append(AUTHORIZATION, value.clone());
    headers.append(AUTHORIZATION, value);
    let r = reqwest::Client::new()
        .get(proxy.url("/api/messages"))
        .headers(headers)
        .send()
        .await
        .expect("request");
    let (status, _, body) = read(r).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
}

/// RFC 6750 §2: one method per request, so a header token beside the query parameter is 400;
/// §3.1: a method the resource server does not support (the query) is no authentication, so
/// alone it is 401 with a bare challenge. Either way the token is never echoed.
#[tokio::test]
async fn a_token_in_the_query_is_400_beside_the_header_and_401_alone() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    let with_header = proxy
        .get_with(&format!("/api/messages?access_token={token}"), &token)
        .await;
    let (status, challenge, body) = read(with_header).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    assert!(challenge.unwrap_or_default().contains("invalid_request"));
    for query in [
        format!("access_token={token}"),
        format!("ACCESS_TOKEN={token}"),
        format!("Access%5FToken={token}"),
        format!("x=1;access_token={token}"),
    ] {
        let alone = reqwest::get(proxy.url(&format!("/api/messages?{query}")))
            .await
            .expect("request");
        let (status, challenge, body) = read(alone).await;
        assert_eq!(status, 401, "{query}: {body}");
        assert_eq!(
            challenge.as_deref(),
            Some("Bearer realm=\"tokengate\""),
            "{query}"
        );
        assert!(
            !body.to_string().contains(&token),
            "the token must not be echoed"
        );
    }
}

#[tokio::test]
async fn basic_with_a_bearer_inside_is_not_a_bearer_token() {
    let (issuer, key, proxy) = rsa_setup().await;
    let token = issuer.token(&key);
    let r = reqwest::Client::new()
        .get(proxy.url("/api/messages"))
        .header(AUTHORIZATION, format!("Basic xyz Bearer {token}"))
        .send()
        .await
        .expect("request");
    let (status, challenge, _) = read(r).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"tokengate\""));
}
