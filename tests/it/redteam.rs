//! Red-team findings: each test is a request that gets past tokengate's decision (or breaks a
//! guarantee of SECURITY.md), asserted on what the real proxy and a real upstream did. Every
//! test here states what should happen; the ones that fail are the findings.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpStream;

use crate::support::raw::{RawMode, RawUpstream};
use crate::support::{client, Stack};

const ROUTES: &str = "routes:
  - { path: /public/**, auth: none }
  - { path: /optional/**, auth: optional }
  - { path: /admin/**, scopes: [admin] }
";

/// Issuer, proxy with [`ROUTES`] and `extra`, in front of `upstream_url`.
async fn stack(upstream_url: &str, extra: &str) -> Stack {
    Stack::builder()
        .upstream_url(upstream_url)
        .routes(ROUTES)
        .extra(extra)
        .start()
        .await
}

/// Writes `request` on a fresh connection and returns the status and text of the answer.
async fn raw_status(addr: std::net::SocketAddr, request: &[u8]) -> (u16, String) {
    let answer = client::exchange(addr, request).await;
    (answer.status, answer.text)
}

// ---------------------------------------------------------------------------------------------
// Finding 1: a NUL after the parameter name. PHP reads query (and form) parameter names as C
// strings after percent-decoding (`php_default_treat_data`: `php_url_decode(var, strlen(var))`,
// then `php_register_variable_ex` takes `strlen`), so `access_token%00=X` is
// `$_GET['access_token']`. tokengate's `names_access_token` does not see it.

/// Guarantee 7: beside a header token the parameter is a second method (400), alone it is
/// 401 even on an `optional` route, and it is never forwarded.
#[tokio::test]
async fn redteam_a_nul_terminated_access_token_parameter_is_still_a_credential() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    let client = reqwest::Client::new();
    let other = s.token_with(json!({"sub": "someone-else", "scp": ["admin"]}));

    let r = client
        .get(s.proxy.url(&format!("/api/x?access_token%00={other}")))
        .bearer_auth(s.token())
        .send()
        .await
        .expect("send");
    let beside = r.status().as_u16();
    let r = client
        .get(
            s.proxy
                .url(&format!("/optional/x?access_token%00junk={other}")),
        )
        .send()
        .await
        .expect("send");
    let alone = r.status().as_u16();
    let reached: Vec<String> = upstream
        .requests()
        .iter()
        .map(|r| r.line().to_owned())
        .collect();
    assert_eq!(
        (beside, alone, reached.clone()),
        (400, 401, Vec::<String>::new()),
        "a second credential reached the upstream in the URL: {reached:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 2: with `cors: { mode: upstream }`, "a well-formed preflight (no body)" goes to the
// upstream without a token. Over HTTP/2 a body needs neither `Content-Length` nor
// `Transfer-Encoding`, so an OPTIONS with DATA frames passes `is_well_formed_preflight` and
// reaches the upstream, re-framed as chunked, on a route that needs the `admin` scope.

#[tokio::test]
async fn redteam_an_http2_options_with_a_body_is_no_preflight_in_mode_upstream() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "cors: { mode: upstream }\n").await;
    let tcp = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let frames = vec![Ok::<_, std::convert::Infallible>(Frame::data(
        Bytes::from_static(b"{\"delete\":\"everything\"}"),
    ))];
    let request = http::Request::builder()
        .method("OPTIONS")
        .uri(format!("http://{}/admin/users", s.proxy.addr))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "DELETE")
        .header("content-type", "application/json")
        .body(StreamBody::new(futures_util::stream::iter(frames)))
        .expect("request");
    let response = sender.send_request(request).await.expect("send");
    let status = response.status().as_u16();
    let _ = response.into_body().collect().await;
    let reached: Vec<(String, Vec<u8>)> = upstream
        .requests()
        .iter()
        .map(|r| (r.head.clone(), r.body.clone()))
        .collect();
    assert!(
        reached.iter().all(|(_, body)| body.is_empty()),
        "an unauthenticated OPTIONS with a body reached the upstream (status {status}): {reached:?}"
    );
    assert_eq!(status, 401, "{reached:?}");
}

// ---------------------------------------------------------------------------------------------
// Finding 3: `X-Forwarded-For` from a trusted proxy that adds its own field line (HAProxy's
// `option forwardfor` appends a new `X-Forwarded-For` line; RFC 9110 §5.3 makes two lines the
// same list as one joined by commas). `inject` reads only the first line and replaces all of
// them: the hop the trusted proxy vouched for is dropped, and the client's own value becomes
// the nearest untrusted address.

#[tokio::test]
async fn redteam_every_x_forwarded_for_line_from_a_trusted_proxy_stays_in_the_chain() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "trusted_proxies: [127.0.0.0/8]\n").await;
    let (status, text) = raw_status(
        s.proxy.addr,
        b"GET /public/ip HTTP/1.1\r\nHost: gate.test\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-For: 203.0.113.50\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let chain = upstream.last().values("x-forwarded-for").join(", ");
    assert_eq!(
        chain, "6.6.6.6, 203.0.113.50, 127.0.0.1",
        "the address the trusted proxy added is gone; the upstream's nearest untrusted hop is the client's spoof"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 4: list claims joined by the default separator (a space) are checked for the
// separator and ASCII control characters only. An element with Unicode white space (U+00A0,
// U+0085, U+2028, U+3000, ...) is joined as is, and every common "split on white space"
// (Go's strings.Fields, Python's str.split(), JavaScript's split(/\s+/), Rust's
// split_whitespace) splits it: `["Everyone", "not\u{a0}admin"]` reads as containing `admin`.

#[tokio::test]
async fn redteam_list_claims_with_unicode_white_space_are_not_joined_ambiguously() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(
        &upstream.url(),
        "forward:\n  headers:\n    X-Groups: groups\n",
    )
    .await;
    let mut ambiguous = Vec::new();
    for space in ['\u{a0}', '\u{85}', '\u{2028}', '\u{3000}', '\u{2003}'] {
        let groups = vec!["Everyone".to_owned(), format!("not{space}admin")];
        let token = s.token_with(json!({ "groups": groups }));
        assert_eq!(s.status("/api/g", Some(&token)).await, 200);
        let seen = upstream.last().values("x-groups");
        if let Some(value) = seen.first() {
            let read: Vec<&str> = value.split_whitespace().collect();
            if read != groups {
                ambiguous.push(format!(
                    "U+{:04X}: sent {value:?}, read back {read:?}",
                    space as u32
                ));
            }
        }
    }
    assert!(ambiguous.is_empty(), "{ambiguous:#?}");
}

/// The same with a separator of `", "`: an element containing `,` is not withheld, and an
/// HTTP list parser (RFC 9110 §5.6.1: split on commas, trim; Spring's `@RequestHeader
/// List<String>`) reads one more element than the issuer signed.
#[tokio::test]
async fn redteam_list_claims_are_not_ambiguous_for_a_comma_space_separator() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(
        &upstream.url(),
        "forward:\n  separator: \", \"\n  headers:\n    X-Groups: groups\n",
    )
    .await;
    let token = s.token_with(json!({"groups": ["Everyone", "users,admin"]}));
    assert_eq!(s.status("/api/g", Some(&token)).await, 200);
    if let Some(value) = upstream.last().values("x-groups").first() {
        let read: Vec<&str> = value.split(',').map(str::trim).collect();
        assert_eq!(read, ["Everyone", "users,admin"], "sent {value:?}");
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 5: methods are matched case-sensitively (RFC 9110 §9.1), but rules are written in
// upper case (validate.rs refuses anything else) and Django (`environ["REQUEST_METHOD"].upper()`),
// Werkzeug/Flask (`method.upper()`) and Symfony/Laravel (`strtoupper(REQUEST_METHOD)`) upper-case
// the method. With the README's reference rule `/admin/**, methods: [GET, POST], scopes:
// [admin]`, a `post` from a token without `admin` falls through to the default rule and is
// forwarded as `post`: such an upstream runs POST.

#[tokio::test]
async fn redteam_a_lower_case_method_does_not_fall_through_a_method_rule() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = Stack::builder()
        .upstream_url(&upstream.url())
        .routes("routes:\n  - { path: /admin/**, methods: [GET, POST], scopes: [admin] }\ndefault: { auth: required }\n")
        .start()
        .await;
    let token = s.token(); // scp: [read], no admin
    for method in ["POST", "post", "Post"] {
        let body = "{\"role\":\"admin\"}";
        let request = format!(
            "{method} /admin/users HTTP/1.1\r\nHost: gate.test\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let (status, text) = raw_status(s.proxy.addr, request.as_bytes()).await;
        let reached: Vec<String> = upstream
            .requests()
            .iter()
            .map(|r| r.line().to_owned())
            .collect();
        assert!(
            reached.is_empty() && status != 200,
            "{method}: status {status}, the upstream got {reached:?}\n{text}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Finding 6: guarantee 12 says a missing `Host` over HTTP/1.1 is a 400 (RFC 9112 §3.2: "any
// HTTP/1.1 request message that lacks a Host header field"). With an absolute-form target it
// is forwarded.

#[tokio::test]
async fn redteam_an_absolute_form_http11_request_without_host_is_refused() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    let (status, text) = raw_status(
        s.proxy.addr,
        b"GET http://gate.test/public/x HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(
        status,
        400,
        "{text}\nupstream got {:?}",
        upstream.requests()
    );
    assert!(upstream.requests().is_empty());
}

// ---------------------------------------------------------------------------------------------
// Finding 7: from a trusted proxy, forwarding headers are kept (by design), but so is every
// other spelling of the ones tokengate itself sets: `X_Forwarded_For` and `X_Forwarded_Host`
// pass beside tokengate's `X-Forwarded-For`/`-Host`, and an upstream reading `_` as `-` (CGI,
// PHP, Rack) sees a client-chosen value under that name. The request id had this very problem
// (SECURITY.md, "Problems found"); the forwarding headers tokengate sets still have it.

#[tokio::test]
async fn redteam_other_spellings_of_the_forwarding_headers_tokengate_sets_never_pass() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "trusted_proxies: [127.0.0.0/8]\n").await;
    let (status, text) = raw_status(
        s.proxy.addr,
        b"GET /public/ip HTTP/1.1\r\nHost: gate.test\r\nX_Forwarded_For: 6.6.6.6\r\nx_forwarded_host: evil.example\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    let head = upstream.last().head;
    assert!(
        !head.to_ascii_lowercase().contains("x_forwarded_"),
        "client-chosen spellings of tokengate's forwarding headers reached the upstream:\n{head}"
    );
}

// ---------------------------------------------------------------------------------------------
// Finding 8: a spliced WebSocket leaves every bound behind. Once hyper hands the upgraded
// socket over, `serve_io` returns and `server::run`'s task drops the connection's
// `max_connections` permit and its descriptor; the splice (`forward::splice`,
// `copy_bidirectional`) has no idle or send timeout. README "Limits": "Every resource an
// anonymous client can make tokengate hold is bounded".

async fn open_websocket(
    s: &Stack,
) -> Option<
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("ws://{}/ws", s.proxy.addr)
        .into_client_request()
        .expect("ws request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", s.token()).parse().expect("header"),
    );
    match tokio::time::timeout(
        Duration::from_secs(3),
        tokio_tungstenite::connect_async(request),
    )
    .await
    {
        Ok(Ok((ws, _))) => Some(ws),
        _ => None,
    }
}

#[tokio::test]
async fn redteam_spliced_websockets_count_against_max_connections() {
    let upstream = crate::support::upstream::EchoUpstream::start().await;
    let s = stack(&upstream.url(), "limits: { max_connections: 2 }\n").await;
    // Let the readiness probe's connection go.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut open = Vec::new();
    for _ in 0..6 {
        match open_websocket(&s).await {
            Some(ws) => open.push(ws),
            None => break,
        }
    }
    assert!(
        open.len() <= 2,
        "{} client connections are open through tokengate at once with max_connections: 2",
        open.len()
    );
}

#[tokio::test]
async fn redteam_an_idle_spliced_websocket_is_closed_after_idle_timeout() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let upstream = crate::support::upstream::EchoUpstream::start().await;
    let s = stack(
        &upstream.url(),
        "limits: { idle_timeout: 1s, send_timeout: 1s, body_read_timeout: 1s }\n",
    )
    .await;
    let mut ws = open_websocket(&s).await.expect("handshake");
    // No byte either way for three times every timeout.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sent = ws.send(Message::text("still here?")).await.is_ok();
    let echoed = matches!(
        tokio::time::timeout(Duration::from_secs(2), ws.next()).await,
        Ok(Some(Ok(Message::Text(_))))
    );
    assert!(
        !(sent && echoed),
        "a WebSocket idle for 3 s with every timeout at 1 s still holds its client and upstream connections"
    );
}
