//! Reverse proxying: what reaches the upstream, what comes back, and every failure.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::tls::TestCa;
use crate::support::upstream::EchoUpstream;
use crate::support::{client, issuer_config, read, Stack, TestIssuer, TestKey, TestProxy};

/// An issuer, an echo upstream, and a proxy between them configured with `extra` YAML.
async fn setup(extra: &str) -> Stack {
    Stack::start(extra).await
}

async fn echo(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn verified_requests_reach_the_upstream_with_the_claims_as_headers() {
    let s = setup("").await;
    let token = s
        .issuer
        .token_with(&s.key, json!({"scp": ["read", "write"]}));
    let r = client()
        .post(s.proxy.url("/orders/42?expand=items&sort=-date"))
        .bearer_auth(&token)
        .body("hello upstream")
        .send()
        .await
        .expect("request");
    let (status, echoed) = echo(r).await;
    assert_eq!(status, 200);
    assert_eq!(echoed["method"], "POST");
    assert_eq!(echoed["target"], "/orders/42?expand=items&sort=-date");
    assert_eq!(echoed["body"], "hello upstream");
    let h = &echoed["headers"];
    assert_eq!(h["x-auth-subject"], json!(["user-1"]));
    assert_eq!(h["x-auth-issuer"], json!([s.issuer.url()]));
    assert_eq!(h["x-auth-scopes"], json!(["read write"]));
    assert_eq!(h["x-auth-client-id"], json!(["client-1"]));
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert_eq!(h["x-forwarded-host"], json!([s.proxy.addr.to_string()]));
    // The token is passed on by default (many services want it).
    assert_eq!(h["authorization"], json!([format!("Bearer {token}")]));
    // preserve_host (the default) keeps the client's Host.
    assert_eq!(h["host"], json!([s.proxy.addr.to_string()]));
}

#[tokio::test]
async fn without_a_valid_token_nothing_reaches_the_upstream() {
    let s = setup("").await;
    assert_eq!(
        client()
            .get(s.proxy.url("/x"))
            .send()
            .await
            .expect("r")
            .status(),
        401
    );
    let expired = s.issuer.token_with(&s.key, json!({"exp": 1}));
    assert_eq!(s.status("/x", Some(&expired)).await, 401);
    assert_eq!(s.upstream().count(), 0);
    assert_eq!(s.status("/x", Some(&s.issuer.token(&s.key))).await, 200);
    assert_eq!(s.upstream().count(), 1);
}

#[tokio::test]
async fn client_sent_identity_headers_never_reach_the_upstream() {
    let s = setup("routes:\n  - { path: /public/**, auth: none }\n").await;
    let token = s.issuer.token(&s.key);
    for (name, value) in [
        ("X-Auth-Subject", "admin"),
        ("x-auth-subject", "admin"),
        ("X-AUTH-SUBJECT", "admin"),
        ("X_Auth_Subject", "admin"),
        ("x_auth_subject", "admin"),
        ("X-Auth-Admin", "true"),
        ("X_Auth_Roles", "admin"),
    ] {
        for (path, token) in [
            ("/private", Some(&token)),
            ("/public/page", None),
            ("/public/page", Some(&token)),
        ] {
            let mut request = client().get(s.proxy.url(path)).header(name, value);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let (status, echoed) = echo(request.send().await.expect("request")).await;
            assert_eq!(status, 200, "{name} on {path}");
            let headers = echoed["headers"].as_object().cloned().unwrap_or_default();
            let leaked: Vec<&String> = headers
                .keys()
                .filter(|k| {
                    k.to_ascii_lowercase()
                        .replace('_', "-")
                        .starts_with("x-auth-")
                })
                .collect();
            if path == "/private" {
                // Only tokengate's own, with the token's values.
                assert_eq!(headers["x-auth-subject"], json!(["user-1"]), "{name}");
                assert!(
                    !headers.contains_key("x-auth-admin") && !headers.contains_key("x_auth_roles"),
                    "{name}: {leaked:?}"
                );
                assert!(!headers.contains_key("x_auth_subject"), "{name}");
            } else {
                // Public route: no identity at all, even with a valid token.
                assert!(leaked.is_empty(), "{name} on {path}: {leaked:?}");
            }
        }
    }
}

#[tokio::test]
async fn spoofed_identity_on_a_preflight_never_reaches_the_upstream() {
    let s = setup("cors: { allow_origins: [\"*\"] }\n").await;
    let r = client()
        .request(reqwest::Method::OPTIONS, s.proxy.url("/private"))
        .header("origin", "https://app.test")
        .header("access-control-request-method", "GET")
        .header("x-auth-subject", "admin")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 204);
    assert_eq!(
        s.upstream().count(),
        0,
        "tokengate answers preflights itself"
    );
}

#[tokio::test]
async fn forwarding_headers_from_untrusted_peers_are_replaced() {
    let s = setup("").await;
    let r = client()
        .get(s.proxy.url("/x"))
        .bearer_auth(s.issuer.token(&s.key))
        .header("x-forwarded-for", "10.9.8.7")
        .header("X_Forwarded_For", "10.9.8.7")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "admin.internal")
        .header("x-forwarded-uri", "/public")
        .header("forwarded", "for=10.9.8.7")
        .header("x-real-ip", "10.9.8.7")
        .header("x-original-url", "/public")
        .header("x-rewrite-url", "/public")
        .send()
        .await
        .expect("request");
    let (_, echoed) = echo(r).await;
    let h = &echoed["headers"];
    assert_eq!(h["x-forwarded-for"], json!(["127.0.0.1"]));
    assert_eq!(h["x-forwarded-proto"], json!(["http"]));
    assert_eq!(h["x-forwarded-host"], json!([s.proxy.addr.to_string()]));
    for gone in [
        "x_forwarded_for",
        "x-forwarded-uri",
        "forwarded",
        "x-real-ip",
        "x-original-url",
        "x-rewrite-url",
    ] {
        assert!(h.get(gone).is_none(), "{gone} leaked");
    }
}

#[tokio::test]
async fn a_trusted_proxy_chain_is_extended() {
    let s = setup("trusted_proxies: [127.0.0.0/8]\n").await;
    let r = client()
        .get(s.proxy.url("/x"))
        .bearer_auth(s.issuer.token(&s.key))
        .header("x-forwarded-for", "198.51.100.7")
        .header("x-forwarded-proto", "https")
        .send()
        .await
        .expect("request");
    let (_, echoed) = echo(r).await;
    assert_eq!(
        echoed["headers"]["x-forwarded-for"],
        json!(["198.51.100.7, 127.0.0.1"])
    );
    assert_eq!(echoed["headers"]["x-forwarded-proto"], json!(["https"]));
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed_both_ways() {
    let s = setup("").await;
    let r = client()
        .get(s.proxy.url("/x"))
        .bearer_auth(s.issuer.token(&s.key))
        .header("connection", "keep-alive, x-secret-hop")
        .header("x-secret-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic eDp5")
        .send()
        .await
        .expect("request");
    assert!(
        r.headers().get("x-upstream-private").is_none(),
        "Connection-listed response header leaked"
    );
    assert!(r.headers().get("keep-alive").is_none());
    let (_, echoed) = echo(r).await;
    for gone in ["x-secret-hop", "keep-alive", "proxy-authorization"] {
        assert!(
            echoed["headers"].get(gone).is_none(),
            "{gone} leaked upstream"
        );
    }
}

#[tokio::test]
async fn connection_cannot_remove_what_tokengate_injects() {
    let s = setup("").await;
    let r = client()
        .get(s.proxy.url("/x"))
        .bearer_auth(s.issuer.token(&s.key))
        .header("connection", "close, X-Auth-Subject, X-Forwarded-For")
        .send()
        .await
        .expect("request");
    let (_, echoed) = echo(r).await;
    assert_eq!(echoed["headers"]["x-auth-subject"], json!(["user-1"]));
    assert_eq!(echoed["headers"]["x-forwarded-for"], json!(["127.0.0.1"]));
}

#[tokio::test]
async fn configured_claim_headers_render_every_claim_shape() {
    let s = setup(
        "forward:\n  headers:\n    X-User: sub\n    X-Roles: realm_access.roles\n    X-Level: level\n    X-Admin: admin\n    X-Meta: meta\n    X-Client: [client_id, cid]\n    X-Evil: evil\n  separator: \",\"\n  payload_header: X-Auth-Claims\n",
    )
    .await;
    let token = s.issuer.token_with(
        &s.key,
        json!({"realm_access": {"roles": ["admin", "ops"]}, "level": 3, "admin": true, "meta": {"team": "a"}, "evil": "x\r\nX-User: root"}),
    );
    let (status, echoed) = echo(s.proxy.get_with("/x", &token).await).await;
    assert_eq!(status, 200);
    let h = &echoed["headers"];
    assert_eq!(h["x-user"], json!(["user-1"]));
    assert_eq!(h["x-roles"], json!(["admin,ops"]));
    assert_eq!(h["x-level"], json!(["3"]));
    assert_eq!(h["x-admin"], json!(["true"]));
    assert_eq!(h["x-meta"], json!([r#"{"team":"a"}"#]));
    assert_eq!(h["x-client"], json!(["client-1"]));
    assert!(
        h.get("x-evil").is_none(),
        "a value with control characters was forwarded"
    );
    // The configured set replaces the defaults.
    assert!(h.get("x-auth-subject").is_none());
    let payload = h["x-auth-claims"][0].as_str().unwrap_or_default();
    let decoded =
        base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
            .unwrap_or_default();
    let claims: Value = serde_json::from_slice(&decoded).unwrap_or_default();
    assert_eq!(claims["sub"], "user-1");
    assert_eq!(claims["level"], 3);
}

#[tokio::test]
async fn strip_authorization_and_preserve_host_are_honoured() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {}, preserve_host: false }}\nforward: {{ strip_authorization: true }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let (_, echoed) = echo(proxy.get_with("/x", &issuer.token(&key)).await).await;
    assert!(echoed["headers"].get("authorization").is_none());
    assert_eq!(
        echoed["headers"]["host"],
        json!([upstream.addr.to_string()])
    );
    assert_eq!(echoed["headers"]["x-auth-subject"], json!(["user-1"]));
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let yaml = format!(
        "{}upstream: {{ url: http://{closed} }}\n",
        issuer_config(&issuer, "")
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let (status, _, body) = read(proxy.get_with("/x", &issuer.token(&key)).await).await;
    assert_eq!(status, 502);
    assert_eq!(body["error"], "bad_gateway");
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let upstream = EchoUpstream::start().await;
    let s = Stack::builder()
        .upstream_url(&format!("{}, timeout: 300ms", upstream.url()))
        .start()
        .await;
    let (status, _, body) = read(s.proxy.get_with("/slow/3000", &s.token()).await).await;
    assert_eq!(status, 504);
    assert_eq!(body["error"], "upstream_timeout");
    assert_eq!(s.status("/fast", Some(&s.token())).await, 200);
}

#[tokio::test]
async fn an_upstream_reset_mid_body_is_never_a_complete_response() {
    let s = setup("").await;
    let r = s.proxy.get_with("/reset", &s.issuer.token(&s.key)).await;
    assert_eq!(r.status(), 200, "headers were already sent");
    assert!(
        r.bytes().await.is_err(),
        "a truncated body was presented as complete"
    );
    // The proxy is unharmed.
    assert_eq!(s.status("/x", Some(&s.issuer.token(&s.key))).await, 200);
}

#[tokio::test]
async fn head_204_and_304_have_no_body() {
    let s = setup("").await;
    let token = s.issuer.token(&s.key);
    let head = client()
        .head(s.proxy.url("/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("head");
    assert_eq!(head.status(), 200);
    assert_eq!(
        s.upstream().last().map(|r| r.method),
        Some("HEAD".to_string())
    );
    assert!(head.bytes().await.map(|b| b.is_empty()).unwrap_or(false));
    for code in [204u16, 304] {
        let r = s.proxy.get_with(&format!("/status/{code}"), &token).await;
        assert_eq!(r.status().as_u16(), code);
        assert!(
            r.bytes().await.map(|b| b.is_empty()).unwrap_or(false),
            "{code} had a body"
        );
    }
}

/// A raw HTTP/1.1 exchange, for framing the client libraries would tidy up: everything
/// that came back, as text.
async fn raw(addr: std::net::SocketAddr, request: &[u8]) -> String {
    client::exchange(addr, request).await.text
}

#[tokio::test]
async fn chunked_request_bodies_stream_through() {
    let s = setup("").await;
    let token = s.issuer.token(&s.key);
    let request = format!(
        "POST /upload HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    );
    let response = raw(s.proxy.addr, request.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    // sha256("hello world")
    assert!(
        response.contains("b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"),
        "{response}"
    );
}

#[tokio::test]
async fn expect_100_continue_is_honoured() {
    let s = setup("").await;
    let token = s.issuer.token(&s.key);
    let mut stream = tokio::net::TcpStream::connect(s.proxy.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /echo HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("write");
    let mut first = [0u8; 25];
    tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut first))
        .await
        .expect("no 100 Continue")
        .expect("read");
    assert_eq!(&first, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"abcde").await.expect("body");
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest)).await;
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.starts_with("HTTP/1.1 200"), "{rest}");
    assert!(rest.contains("\"body\":\"abcde\""), "{rest}");
}

#[tokio::test]
async fn an_unauthenticated_expect_100_gets_401_without_the_body() {
    let s = setup("").await;
    let head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n";
    let response = raw(s.proxy.addr, head.as_bytes()).await;
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert_eq!(s.upstream().count(), 0);
}

#[tokio::test]
async fn trailers_pass_through_when_the_client_accepts_them() {
    use http_body_util::BodyExt;
    let s = setup("").await;
    let stream = tokio::net::TcpStream::connect(s.proxy.addr)
        .await
        .expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("handshake");
    tokio::spawn(connection);
    let request = http::Request::get("/trailers")
        .header("host", "x")
        .header("te", "trailers")
        .header(
            "authorization",
            format!("Bearer {}", s.issuer.token(&s.key)),
        )
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    assert_eq!(response.status(), 200);
    let collected = response.into_body().collect().await.expect("body");
    let trailers = collected.trailers().cloned().unwrap_or_default();
    assert_eq!(collected.to_bytes(), "with trailers");
    assert_eq!(
        trailers.get("x-checksum").and_then(|v| v.to_str().ok()),
        Some("abc123")
    );
    assert_eq!(
        s.upstream()
            .last()
            .and_then(|r| r.header("te").map(str::to_owned)),
        Some("trailers".to_string())
    );
}

#[tokio::test]
async fn websocket_upgrades_are_spliced() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let s = setup("").await;
    let mut request = format!("ws://{}/ws", s.proxy.addr)
        .into_client_request()
        .expect("ws request");
    let bearer = format!("Bearer {}", s.issuer.token(&s.key));
    request
        .headers_mut()
        .insert("authorization", bearer.parse().expect("header"));
    let (mut ws, response) = tokio_tungstenite::connect_async(request)
        .await
        .expect("handshake through the proxy");
    assert_eq!(response.status(), 101);
    for text in ["hello", "through", "tokengate"] {
        ws.send(Message::text(text)).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("echo")
            .expect("frame")
            .expect("ok");
        assert_eq!(reply, Message::text(text));
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .await
        .expect("send");
    let reply = ws.next().await.expect("frame").expect("ok");
    assert_eq!(reply, Message::binary(vec![0u8, 1, 2, 255]));
    let _ = ws.close(None).await;
    let recorded = s.upstream().last().expect("upstream saw the handshake");
    assert_eq!(recorded.header("x-auth-subject"), Some("user-1"));
    assert_eq!(recorded.header("upgrade"), Some("websocket"));

    // Without a token the handshake is refused before the upstream.
    let anonymous = tokio_tungstenite::connect_async(format!("ws://{}/ws", s.proxy.addr)).await;
    assert!(anonymous.is_err());
}

#[tokio::test]
async fn http2_clients_are_served() {
    let s = setup("").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let r = h2
        .get(s.proxy.url("/x?y=1"))
        .bearer_auth(s.issuer.token(&s.key))
        .send()
        .await
        .expect("h2 request");
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    let (status, echoed) = echo(r).await;
    assert_eq!(status, 200);
    assert_eq!(echoed["target"], "/x?y=1");
    assert_eq!(
        echoed["version"], "HTTP/1.1",
        "the upstream is spoken to over HTTP/1.1"
    );
    assert_eq!(echoed["headers"]["host"], json!([s.proxy.addr.to_string()]));
}

#[tokio::test]
async fn the_upstream_can_be_spoken_to_over_http2() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start_with(true).await;
    let yaml = format!(
        "{}upstream: {{ url: {}, http2: true }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let (status, echoed) = echo(proxy.get_with("/x", &issuer.token(&key)).await).await;
    assert_eq!(status, 200);
    assert_eq!(echoed["version"], "HTTP/2.0");
}

#[tokio::test]
async fn a_tls_upstream_with_a_private_ca_and_server_name() {
    let ca = TestCa::new();
    let upstream = EchoUpstream::start_tls(ca.server_config(&["upstream.internal"])).await;
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).expect("write ca");
    let yaml = format!(
        "{}upstream: {{ url: https://{}, ca_file: {}, server_name: upstream.internal }}\n",
        issuer_config(&issuer, ""),
        upstream.addr,
        ca_file.display()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let (status, echoed) = echo(proxy.get_with("/tls", &issuer.token(&key)).await).await;
    assert_eq!(status, 200);
    assert_eq!(echoed["target"], "/tls");

    // Without the CA (system roots only) the certificate is not trusted: 502.
    let untrusted = format!(
        "{}upstream: {{ url: https://{}, server_name: upstream.internal }}\n",
        issuer_config(&issuer, ""),
        upstream.addr
    );
    let proxy = TestProxy::start(&untrusted).await;
    proxy.wait_ready().await;
    assert_eq!(
        proxy.get_with("/tls", &issuer.token(&key)).await.status(),
        502
    );
}

#[tokio::test]
async fn the_upstream_url_can_come_from_the_command_line() {
    let upstream = EchoUpstream::start().await;
    let overrides = tokengate::config::Overrides {
        upstream: Some(upstream.url()),
        ..Default::default()
    };
    let settings = tokengate::config::load_str(
        std::path::Path::new("p.yaml"),
        "issuers:\n  - { issuer: https://idp.example.com, audiences: [a] }\nupstream: { url: http://127.0.0.1:1 }\n",
        &overrides,
    )
    .expect("valid");
    assert_eq!(
        settings.upstream.map(|u| u.url.to_string()),
        Some(format!("{}/", upstream.url()))
    );
}

#[tokio::test]
async fn an_upstream_base_path_prefixes_the_forwarded_path() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {}/base/ }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let (_, echoed) = echo(proxy.get_with("/a/b?c=d", &issuer.token(&key)).await).await;
    assert_eq!(echoed["target"], "/base/a/b?c=d");
}

/// A client connection keeps one upstream connection for its requests, one after another.
#[tokio::test]
async fn each_client_connection_keeps_one_upstream_connection() {
    let s = setup("").await;
    let bearer = format!("Bearer {}", s.issuer.token(&s.key));
    for _ in 0..2 {
        // One keep-alive connection per client.
        let client = reqwest::Client::builder()
            .http1_only()
            .pool_max_idle_per_host(1)
            .build()
            .expect("client");
        for _ in 0..5 {
            let r = client
                .get(s.proxy.url("/items"))
                .header("authorization", &bearer)
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200);
            r.bytes().await.expect("body");
        }
    }
    assert_eq!(s.upstream().count(), 10);
    assert_eq!(s.upstream().connections(), 2);
}

/// An upstream that answers one request per connection and then closes it, without saying
/// `Connection: close` (as an upstream's idle keep-alive timeout does).
async fn one_request_per_connection_upstream() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                // Dropped: closed.
            });
        }
    });
    (url, connections)
}

#[tokio::test]
async fn a_kept_upstream_connection_the_upstream_closed_is_replaced() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let (url, connections) = one_request_per_connection_upstream().await;
    let proxy = TestProxy::for_issuer_with(&issuer, &format!("upstream: {{ url: {url} }}\n")).await;
    proxy.wait_ready().await;
    let bearer = format!("Bearer {}", issuer.token(&key));
    let client = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    for _ in 0..3 {
        let r = client
            .get(proxy.url("/items"))
            .header("authorization", &bearer)
            .send()
            .await
            .expect("request");
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.expect("body"), "ok");
        // Let the proxy see the close before the next request.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(connections.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn after_a_reload_a_kept_connection_never_reaches_the_old_upstream() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let (old, new) = (EchoUpstream::start().await, EchoUpstream::start().await);
    let config = |upstream: &EchoUpstream| {
        format!(
            "{}upstream: {{ url: {} }}\n",
            issuer_config(&issuer, ""),
            upstream.url()
        )
    };
    let proxy = TestProxy::start(&config(&old)).await;
    proxy.wait_ready().await;
    let bearer = format!("Bearer {}", issuer.token(&key));
    let client = reqwest::Client::builder()
        .http1_only()
        .pool_max_idle_per_host(1)
        .build()
        .expect("client");
    let send = || {
        client
            .get(proxy.url("/items"))
            .header("authorization", &bearer)
            .send()
    };
    assert_eq!(send().await.expect("request").status(), 200);
    assert_eq!(old.count(), 1);

    let same_listener = tokengate::config::Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let settings = tokengate::config::load_str(
        std::path::Path::new("t.yaml"),
        &config(&new),
        &same_listener,
    )
    .expect("valid");
    proxy.gateway.reload(settings).expect("reload");
    for _ in 0..3 {
        assert_eq!(send().await.expect("request").status(), 200);
    }
    assert_eq!(old.count(), 1, "a request reached the old upstream");
    assert_eq!(new.count(), 3);
}
