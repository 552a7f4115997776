//! No way around the gate: every path by which client bytes could reach the upstream (or the
//! upstream's CORS answer the browser) outside tokengate's decision. Upgrades, CONNECT,
//! trailers, `Connection`, HTTP/2 → HTTP/1.1 translation, foreign identity headers, list
//! claims, the dev issuer and CORS, each asserted on what a real peer received.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::client::{drain, send_and_read, status_of};
use crate::support::raw::{h2frames, RawMode, RawUpstream};
use crate::support::upstream::EchoUpstream;
use crate::support::{issuer_config, Stack, TestProxy};

const ROUTES: &str = "routes:
  - { path: /public/**, auth: none }
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

/// The smuggling sequence: an h2c upgrade on a public route, then HTTP/2 spoken on the same
/// socket to an admin path with a chosen identity.
fn h2c_upgrade(path: &str, upgrade: &str, connection: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: gate.test\r\nConnection: {connection}\r\nUpgrade: {upgrade}\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    )
    .into_bytes()
}

fn smuggled_h2_request() -> Vec<u8> {
    let mut bytes = h2frames::PREFACE.to_vec();
    bytes.extend(h2frames::settings());
    bytes.extend(h2frames::headers(
        3,
        &[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/admin/secret"),
            (":authority", "gate.test"),
            ("x-auth-subject", "admin"),
        ],
        true,
    ));
    bytes
}

/// The peer is real: spoken to directly, the h2c upstream upgrades and serves the smuggled
/// HTTP/2 request. (This is what tokengate spliced through before.)
#[tokio::test]
async fn the_h2c_upstream_really_upgrades_when_asked_directly() {
    let upstream = RawUpstream::start(RawMode::H2c).await;
    let mut stream = TcpStream::connect(upstream.addr).await.expect("connect");
    let answer = send_and_read(
        &mut stream,
        &h2c_upgrade("/public/x", "h2c", "Upgrade, HTTP2-Settings"),
    )
    .await;
    assert_eq!(status_of(&answer), 101, "{answer}");
    stream
        .write_all(&smuggled_h2_request())
        .await
        .expect("write h2");
    drain(&mut stream, Duration::from_millis(500)).await;
    let tunnelled: Vec<_> = upstream
        .requests()
        .into_iter()
        .filter(|r| r.via_h2c)
        .collect();
    assert_eq!(tunnelled.len(), 1, "{tunnelled:?}");
    assert!(tunnelled[0].line().contains("/admin/secret"));
}

/// RFC 9110 §7.8 lets tokengate ignore `Upgrade`: every value but a WebSocket handshake is
/// removed (with `HTTP2-Settings` and the `Connection` tokens naming them), the request is an
/// ordinary one, and the HTTP/2 bytes sent after it never reach the upstream.
#[tokio::test]
async fn h2c_smuggling_gets_no_tunnel() {
    let upstream = RawUpstream::start(RawMode::H2c).await;
    let s = stack(&upstream.url(), "").await;
    for (upgrade, connection) in [
        ("h2c", "Upgrade, HTTP2-Settings"),
        ("H2C", "upgrade"),
        ("foo/1, h2c", "keep-alive, Upgrade, HTTP2-Settings"),
        ("websocket, h2c", "Upgrade"),
        ("h2c", "Upgrade,HTTP2-Settings,close"),
    ] {
        let label = format!("Upgrade: {upgrade}, Connection: {connection}");
        let before = upstream.requests().len();
        let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
        let answer =
            send_and_read(&mut stream, &h2c_upgrade("/public/x", upgrade, connection)).await;
        assert_eq!(status_of(&answer), 200, "{label}: {answer}");
        let seen = upstream.last();
        assert_eq!(upstream.requests().len(), before + 1, "{label}");
        assert!(seen.values("upgrade").is_empty(), "{label}: {}", seen.head);
        assert!(
            seen.values("http2-settings").is_empty(),
            "{label}: {}",
            seen.head
        );
        assert!(
            !seen.head.to_ascii_lowercase().contains("h2c"),
            "{label}: {}",
            seen.head
        );
        // Then speak HTTP/2 on the same socket: it must never reach the upstream.
        let _ = stream.write_all(&smuggled_h2_request()).await;
        drain(&mut stream, Duration::from_millis(300)).await;
        assert!(
            upstream
                .requests()
                .iter()
                .all(|r| !r.via_h2c && !r.head.contains("/admin")),
            "{label}: smuggled request reached the upstream"
        );
    }
}

/// An upstream that switches protocols unasked is a 502, never a splice.
#[tokio::test]
async fn an_unasked_101_is_a_502() {
    let upstream = RawUpstream::start(RawMode::AlwaysSwitch).await;
    let s = stack(&upstream.url(), "").await;
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let answer = send_and_read(
        &mut stream,
        &h2c_upgrade("/public/x", "h2c", "Upgrade, HTTP2-Settings"),
    )
    .await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    // Even to a real WebSocket handshake, a 101 to anything but websocket is refused.
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let answer = send_and_read(
        &mut stream,
        b"GET /public/ws HTTP/1.1\r\nHost: gate.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 502, "{answer}");
    let _ = stream.write_all(&smuggled_h2_request()).await;
    drain(&mut stream, Duration::from_millis(300)).await;
    assert!(upstream.requests().iter().all(|r| !r.via_h2c));
}

/// A WebSocket handshake is forwarded as one only when it is one (RFC 6455 §4.1): a POST, a
/// missing key or version, or HTTP/1.0 is an ordinary request without `Upgrade`.
#[tokio::test]
async fn only_a_real_websocket_handshake_is_forwarded_as_an_upgrade() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    for (label, request) in [
        ("POST", "POST /public/ws HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n"),
        ("no key", "GET /public/ws HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        ("no version", "GET /public/ws HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"),
        ("HTTP/1.0", "GET /public/ws HTTP/1.0\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
        ("two protocols", "GET /public/ws HTTP/1.1\r\nHost: g\r\nConnection: Upgrade\r\nUpgrade: websocket, h2c\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"),
    ] {
        let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
        let answer = send_and_read(&mut stream, request.as_bytes()).await;
        assert_eq!(status_of(&answer), 200, "{label}: {answer}");
        let seen = upstream.last();
        assert!(seen.values("upgrade").is_empty(), "{label}: {}", seen.head);
        assert!(seen.values("connection").iter().all(|v| !v.to_ascii_lowercase().contains("upgrade")), "{label}: {}", seen.head);
    }
}

/// `CONNECT` opens a tunnel, which tokengate never does: 405 over HTTP/1.1 and HTTP/2, and an
/// RFC 8441 extended CONNECT is refused at the protocol level (tokengate does not advertise
/// SETTINGS_ENABLE_CONNECT_PROTOCOL), whatever the route.
#[tokio::test]
async fn connect_is_refused_in_every_form() {
    let upstream = EchoUpstream::start().await;
    let s = stack(&upstream.url(), "").await;
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let answer = send_and_read(
        &mut stream,
        b"CONNECT upstream.internal:443 HTTP/1.1\r\nHost: upstream.internal:443\r\n\r\n",
    )
    .await;
    assert_eq!(status_of(&answer), 405, "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("allow: get"),
        "{answer}"
    );

    // HTTP/2 CONNECT (authority only) through hyper's client.
    let tcp = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::connect("upstream.internal:443")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("h2 CONNECT");
    assert_eq!(response.status(), 405);

    // Extended CONNECT (a WebSocket over HTTP/2), in raw frames: hyper's client refuses to
    // send what the server did not allow.
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let mut bytes = h2frames::PREFACE.to_vec();
    bytes.extend(h2frames::settings());
    bytes.extend(h2frames::settings_ack());
    bytes.extend(h2frames::headers(
        1,
        &[
            (":method", "CONNECT"),
            (":protocol", "websocket"),
            (":scheme", "http"),
            (":path", "/public/ws"),
            (":authority", "gate.test"),
            ("sec-websocket-version", "13"),
        ],
        false,
    ));
    stream.write_all(&bytes).await.expect("write");
    let frames = h2frames::parse(&drain(&mut stream, Duration::from_millis(800)).await);
    // RST_STREAM (3) on stream 1, or GOAWAY (7): never a HEADERS (1) answer on stream 1.
    assert!(
        frames
            .iter()
            .any(|&(kind, _, stream)| (kind == 3 && stream == 1) || kind == 7),
        "{frames:?}"
    );
    assert!(
        !frames
            .iter()
            .any(|&(kind, _, stream)| kind == 1 && stream == 1),
        "{frames:?}"
    );
    assert_eq!(upstream.count(), 0);
}

/// Raw HTTP/2 frames, for what client libraries normalise away: a connection-specific field
/// (`connection`, `upgrade`, RFC 9113 §8.2.2) makes the stream malformed and nothing is
/// forwarded; an underscored identity name and split cookies arrive translated.
#[tokio::test]
async fn raw_http2_requests_are_translated_or_refused() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    let token = format!("Bearer {}", s.token());
    let exchange = |fields: Vec<(&'static str, String)>| {
        let addr = s.proxy.addr;
        async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let borrowed: Vec<(&str, &str)> =
                fields.iter().map(|(n, v)| (*n, v.as_str())).collect();
            let mut bytes = h2frames::PREFACE.to_vec();
            bytes.extend(h2frames::settings());
            bytes.extend(h2frames::settings_ack());
            bytes.extend(h2frames::headers(1, &borrowed, true));
            stream.write_all(&bytes).await.expect("write");
            h2frames::parse(&drain(&mut stream, Duration::from_millis(800)).await)
        }
    };
    let base = |extra: &[(&'static str, &str)]| {
        let mut fields: Vec<(&'static str, String)> = vec![
            (":method", "GET".into()),
            (":scheme", "http".into()),
            (":path", "/api/raw".into()),
            (":authority", "client.test".into()),
            ("authorization", token.clone()),
        ];
        fields.extend(extra.iter().map(|(n, v)| (*n, v.to_string())));
        fields
    };
    for field in [
        ("connection", "keep-alive"),
        ("upgrade", "h2c"),
        ("te", "gzip"),
    ] {
        let before = upstream.requests().len();
        let frames = exchange(base(&[field])).await;
        assert!(
            frames
                .iter()
                .any(|&(kind, _, id)| (kind == 3 && id == 1) || kind == 7),
            "{field:?}: {frames:?}"
        );
        assert_eq!(upstream.requests().len(), before, "{field:?} was forwarded");
    }
    let frames = exchange(base(&[
        ("x_auth_subject", "admin"),
        ("x-forwarded-user", "admin"),
        ("cookie", "a=1"),
        ("cookie", "b=2"),
    ]))
    .await;
    assert!(
        frames.iter().any(|&(kind, _, id)| kind == 1 && id == 1),
        "{frames:?}"
    );
    let seen = upstream.last();
    assert_eq!(seen.values("x-auth-subject"), ["user-1"], "{}", seen.head);
    assert!(seen.values("x_auth_subject").is_empty(), "{}", seen.head);
    assert!(seen.values("x-forwarded-user").is_empty(), "{}", seen.head);
    assert_eq!(seen.values("cookie"), ["a=1; b=2"], "{}", seen.head);
    assert_eq!(seen.values("host"), ["client.test"], "{}", seen.head);
}

/// A chunked POST declaring `trailer_decl` and sending `trailers` after its body.
fn chunked_with_trailers(token: &str, trailer_decl: &str, trailers: &str) -> Vec<u8> {
    format!(
        "POST /api/upload HTTP/1.1\r\nHost: gate.test\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: {trailer_decl}\r\n\r\n5\r\nhello\r\n0\r\n{trailers}\r\n"
    )
    .into_bytes()
}

/// RFC 9110 §6.5: trailer fields go through the header rules, and the fields §6.5.1 keeps out
/// of trailers are dropped; a `Trailer` declaration names only what may still come.
#[tokio::test]
async fn request_trailers_cannot_carry_identity_or_forwarding_headers() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let answer = send_and_read(
        &mut stream,
        &chunked_with_trailers(
            &s.token(),
            "X-Auth-Subject, X-Forwarded-For, X-Checksum, X_Auth_Scopes, Remote-User, Content-Length, Host, X-Request-Id",
            "X-Auth-Subject: admin\r\nX-Forwarded-For: 10.9.9.9\r\nX-Checksum: abc\r\nX_Auth_Scopes: admin\r\nRemote-User: admin\r\nContent-Length: 999\r\nHost: evil.test\r\nX-Request-Id: forged\r\n",
        ),
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = upstream.last();
    assert_eq!(seen.body, b"hello");
    assert_eq!(seen.trailer_values("x-checksum"), ["abc"], "{seen:?}");
    for name in [
        "x-auth-subject",
        "x_auth_scopes",
        "x-forwarded-for",
        "remote-user",
        "content-length",
        "host",
        "x-request-id",
    ] {
        assert!(
            seen.trailer_values(name).is_empty(),
            "{name} in {:?}",
            seen.trailers
        );
    }
    assert_eq!(seen.values("trailer"), ["x-checksum"], "{}", seen.head);
    assert_eq!(seen.values("x-auth-subject"), ["user-1"]);
    assert_eq!(seen.values("host"), ["gate.test"]);

    // Declaring only forbidden names leaves no declaration (and no trailers) at all.
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let answer = send_and_read(
        &mut stream,
        &chunked_with_trailers(&s.token(), "X-Auth-Subject", "X-Auth-Subject: admin\r\n"),
    )
    .await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let seen = upstream.last();
    assert!(seen.values("trailer").is_empty(), "{}", seen.head);
    assert!(seen.trailer_values("x-auth-subject").is_empty());
}

/// An HTTP/2 client's trailers reach an HTTP/1.1 upstream through the same filter.
#[tokio::test]
async fn http2_request_trailers_are_filtered_too() {
    let upstream = EchoUpstream::start().await;
    let s = stack(&upstream.url(), "").await;
    let tcp = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let mut trailers = http::HeaderMap::new();
    trailers.insert("x-auth-subject", "admin".parse().expect("v"));
    trailers.insert("x-forwarded-user", "admin".parse().expect("v"));
    trailers.insert("x-checksum", "abc".parse().expect("v"));
    let frames = vec![
        Ok::<_, std::convert::Infallible>(Frame::data(Bytes::from_static(b"hello"))),
        Ok(Frame::trailers(trailers)),
    ];
    let body = StreamBody::new(futures_util::stream::iter(frames));
    let request = http::Request::post(format!("http://{}/api/upload-echo", s.proxy.addr))
        .header("authorization", format!("Bearer {}", s.token()))
        .header("te", "trailers")
        .header("trailer", "x-auth-subject, x-forwarded-user, x-checksum")
        .body(body)
        .expect("request");
    let response = sender.send_request(request).await.expect("send");
    assert_eq!(response.status(), 200);
    let _ = response.into_body().collect().await;
    let seen = upstream.last().expect("reached");
    let names: Vec<&str> = seen.trailers.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x-checksum"], "{:?}", seen.trailers);
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
}

/// Response trailers lose the fields RFC 9110 §6.5.1 keeps out of trailers.
#[tokio::test]
async fn response_trailers_are_filtered() {
    // The echo upstream's /trailers sends `x-checksum`; a forbidden one is added through a
    // tiny upstream of its own here.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = stream.read(&mut buf).await;
                let _ = stream
                    .write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: X-Checksum, Set-Cookie, Access-Control-Allow-Origin, Content-Type\r\n\r\n2\r\nok\r\n0\r\nX-Checksum: abc\r\nSet-Cookie: session=evil\r\nAccess-Control-Allow-Origin: *\r\nContent-Type: text/evil\r\n\r\n")
                    .await;
            });
        }
    });
    let s = stack(&format!("http://{addr}"), "").await;
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    stream
        .write_all(
            b"GET /public/t HTTP/1.1\r\nHost: g\r\nTE: trailers\r\nConnection: close\r\n\r\n",
        )
        .await
        .expect("write");
    let answer = String::from_utf8_lossy(&drain(&mut stream, Duration::from_secs(3)).await)
        .to_ascii_lowercase();
    assert!(answer.starts_with("http/1.1 200"), "{answer}");
    let (_, tail) = answer.split_once("\r\n0\r\n").unwrap_or(("", ""));
    assert!(tail.contains("x-checksum: abc"), "{answer}");
    for gone in [
        "set-cookie",
        "access-control-allow-origin",
        "content-type: text/evil",
    ] {
        assert!(!tail.contains(gone), "{gone} in trailers: {answer}");
    }
}

/// RFC 9110 §7.6.1 lets `Connection` name hop-by-hop fields only: naming `Host`,
/// `X-Request-Id`, `Content-Length` or the forwarding headers changes nothing tokengate
/// decides, and the framing stays.
#[tokio::test]
async fn connection_cannot_remove_host_request_id_or_framing() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    let mut stream = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let request = format!(
        "POST /api/c HTTP/1.1\r\nHost: client.test:8443\r\nAuthorization: Bearer {}\r\nConnection: X-Request-Id, Host, Content-Length, X-Forwarded-Host, X-Forwarded-Proto, X-Forwarded-For, Transfer-Encoding\r\nX-Request-Id: client-chosen\r\nContent-Length: 5\r\n\r\nhello",
        s.token()
    );
    let answer = send_and_read(&mut stream, request.as_bytes()).await;
    assert_eq!(status_of(&answer), 200, "{answer}");
    let answered_id = answer
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .map(str::to_owned)
        .unwrap_or_default();
    let seen = upstream.last();
    assert_eq!(seen.values("host"), ["client.test:8443"], "{}", seen.head);
    assert_eq!(
        seen.values("x-request-id"),
        std::slice::from_ref(&answered_id),
        "{}",
        seen.head
    );
    assert_ne!(answered_id, "client-chosen");
    assert_eq!(seen.values("x-forwarded-host"), ["client.test:8443"]);
    assert_eq!(seen.values("x-forwarded-proto"), ["http"]);
    assert_eq!(seen.values("x-forwarded-for"), ["127.0.0.1"]);
    assert_eq!(seen.values("content-length"), ["5"], "{}", seen.head);
    assert!(seen.values("transfer-encoding").is_empty(), "{}", seen.head);
    assert_eq!(seen.body, b"hello");
}

/// RFC 9113 §8.2.3 and §8.3.1: an HTTP/2 client's split `cookie` fields reach an HTTP/1.1
/// upstream as one line joined with "; ", and `:authority` is its `Host` and
/// `X-Forwarded-Host`, exactly as for an HTTP/1.1 client.
#[tokio::test]
async fn http2_cookies_are_joined_and_authority_is_the_host() {
    let upstream = RawUpstream::start(RawMode::Ok).await;
    let s = stack(&upstream.url(), "").await;
    let tcp = TcpStream::connect(s.proxy.addr).await.expect("connect");
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .expect("h2 handshake");
    tokio::spawn(connection);
    let request = http::Request::get("http://client.test:8443/api/c")
        .header("authorization", format!("Bearer {}", s.token()))
        .header("cookie", "a=1")
        .header("cookie", "b=2")
        .header("cookie", "c=3")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let response = sender.send_request(request).await.expect("send");
    assert_eq!(response.status(), 200);
    let seen = upstream.last();
    assert_eq!(seen.values("cookie"), ["a=1; b=2; c=3"], "{}", seen.head);
    assert_eq!(seen.values("host"), ["client.test:8443"], "{}", seen.head);
    assert_eq!(
        seen.values("x-forwarded-host"),
        ["client.test:8443"],
        "{}",
        seen.head
    );
}

/// The same request over HTTP/1.1 and HTTP/2 reaches the upstream with the same header set,
/// whether tokengate speaks HTTP/1.1 or HTTP/2 to it.
#[tokio::test]
async fn the_same_request_over_http1_and_http2_reaches_the_upstream_alike() {
    for upstream_http2 in [false, true] {
        let upstream = EchoUpstream::start_with(upstream_http2).await;
        let s = stack(&format!("{}, http2: {upstream_http2}", upstream.url()), "").await;
        let token = s.token();
        let mut seen = Vec::new();
        for http2 in [false, true] {
            let builder = reqwest::Client::builder();
            let client = if http2 {
                builder.http2_prior_knowledge()
            } else {
                builder.http1_only()
            }
            .build()
            .expect("client");
            let r = client
                .post(s.proxy.url("/api/same?x=1"))
                .bearer_auth(&token)
                .header("cookie", "a=1; b=2")
                .header("x-custom", "v")
                .header("x-auth-subject", "forged")
                .header("content-type", "text/plain")
                .body("hello")
                .send()
                .await
                .expect("request");
            assert_eq!(r.status(), 200, "http2={http2}");
            let recorded = upstream.last().expect("reached");
            let mut headers: Vec<(String, String)> = recorded
                .headers
                .iter()
                .filter(|(n, _)| n != "x-request-id")
                .cloned()
                .collect();
            headers.sort();
            seen.push(headers);
        }
        assert_eq!(
            seen[0], seen[1],
            "upstream http2={upstream_http2}: HTTP/1.1 vs HTTP/2 clients"
        );
    }
}

/// The identity headers other auth proxies and platforms set never reach the upstream from a
/// client, on public routes too; a trusted proxy may pass the ones listed in
/// `forward.trusted_identity_headers`, and nobody else may.
#[tokio::test]
async fn foreign_identity_headers_are_stripped_unless_a_trusted_proxy_sends_listed_ones() {
    let upstream = EchoUpstream::start().await;
    let foreign = [
        ("X-Forwarded-User", "admin"),
        ("X_Forwarded_Email", "admin@corp"),
        ("X-Forwarded-Groups", "admins"),
        ("X-Forwarded-Preferred-Username", "admin"),
        ("X-Forwarded-Access-Token", "t"),
        ("X-Auth-Request-User", "admin"),
        ("Remote-User", "admin"),
        ("X-Remote-User", "admin"),
        ("X-User-Id", "1"),
        ("X-Userinfo", "e30"),
        ("X-Authenticated-User", "admin"),
        ("X-Id-Token", "t"),
        ("X-Jwt-Payload", "e30"),
        ("OIDC_CLAIM_email", "admin@corp"),
        ("OIDC-Claim-Groups", "admins"),
        ("OIDC_access_token", "t"),
        ("X-Consumer-Username", "admin"),
        ("X-Pomerium-Claim-Email", "admin@corp"),
        ("X-MS-CLIENT-PRINCIPAL-NAME", "admin"),
        ("X-Amzn-Oidc-Identity", "admin"),
        ("Cf-Access-Authenticated-User-Email", "admin@corp"),
        ("X-Goog-Authenticated-User-Email", "admin@corp"),
        ("X-Tenant-User", "admin"),
    ];
    let s = stack(
        &upstream.url(),
        "forward:\n  strip_headers: [X-Tenant-User]\n",
    )
    .await;
    for path in ["/public/p", "/api/a"] {
        let mut request = reqwest::Client::new()
            .get(s.proxy.url(path))
            .bearer_auth(s.token());
        for (name, value) in foreign {
            request = request.header(name, value);
        }
        let r = request.send().await.expect("request");
        assert_eq!(r.status(), 200, "{path}");
        let seen = upstream.last().expect("reached");
        for (name, _) in foreign {
            let normal = name.to_ascii_lowercase();
            assert!(
                seen.header(&normal).is_none(),
                "{path}: {name} reached the upstream"
            );
        }
    }
    // A trusted proxy (127.0.0.1 here) passes only the listed names.
    let trusted = TestProxy::start(&format!(
        "{}upstream: {{ url: {} }}\ntrusted_proxies: [127.0.0.1]\nforward:\n  trusted_identity_headers: [X-Forwarded-User]\n",
        issuer_config(&s.issuer, ""),
        upstream.url()
    ))
    .await;
    trusted.wait_ready().await;
    let r = reqwest::Client::new()
        .get(trusted.url("/a"))
        .bearer_auth(s.token())
        .header("x-forwarded-user", "alice")
        .header("remote-user", "admin")
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
    let seen = upstream.last().expect("reached");
    assert_eq!(seen.header("x-forwarded-user"), Some("alice"));
    assert_eq!(seen.header("remote-user"), None);
}

/// An array claim is never joined into something that splits differently: the header is
/// withheld when an element contains the separator, and `array_format: json` sends it exactly.
#[tokio::test]
async fn list_claims_are_sent_unambiguously_or_not_at_all() {
    let upstream = EchoUpstream::start().await;
    let s = stack(
        &upstream.url(),
        "forward:\n  headers:\n    X-Auth-Subject: sub\n    X-Groups: groups\n    X-Groups-Json: { claim: groups, array_format: json }\n",
    )
    .await;
    let token = s.token_with(json!({"groups": ["Everyone", "not admin"]}));
    assert_eq!(s.status("/api/g", Some(&token)).await, 200);
    let seen = upstream.last().expect("reached");
    assert_eq!(seen.header("x-groups"), None, "{:?}", seen.headers);
    assert_eq!(
        seen.header("x-groups-json"),
        Some(r#"["Everyone","not admin"]"#)
    );
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));

    let token = s.token_with(json!({"groups": ["Everyone", "admins"]}));
    assert_eq!(s.status("/api/g", Some(&token)).await, 200);
    let seen = upstream.last().expect("reached");
    assert_eq!(seen.header("x-groups"), Some("Everyone admins"));
}

/// `/_dev/token` answers local tools only: a loopback `Host` and no foreign `Origin`; never
/// with CORS headers, whatever `cors:` says.
#[tokio::test]
async fn the_dev_issuer_answers_local_tools_only() {
    let proxy = TestProxy::start(
        "dev_issuer: { audience: api://default }\ncors: { allow_origins: [\"*\"] }\n",
    )
    .await;
    let post = |host: &'static str, origin: Option<&'static str>| {
        let addr = proxy.addr;
        async move {
            let mut stream = TcpStream::connect(addr).await.expect("connect");
            let origin = origin
                .map(|o| format!("Origin: {o}\r\n"))
                .unwrap_or_default();
            let body = "sub=alice&scope=admin";
            let request = format!(
                "POST /_dev/token HTTP/1.1\r\nHost: {host}\r\n{origin}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            send_and_read(&mut stream, request.as_bytes()).await
        }
    };
    for (host, origin) in [
        ("127.0.0.1:3000", None),
        ("localhost:3000", None),
        ("localhost", Some("http://localhost:5173")),
        ("[::1]:3000", None),
    ] {
        let answer = post(host, origin).await;
        assert_eq!(status_of(&answer), 200, "{host} {origin:?}: {answer}");
        assert!(answer.contains("access_token"));
        assert!(
            !answer.to_ascii_lowercase().contains("access-control-"),
            "{answer}"
        );
    }
    for (host, origin) in [
        ("evil.example", None),
        ("rebound.evil.example:3000", None),
        ("localhost:3000", Some("https://evil.example")),
        ("127.0.0.1:3000", Some("null")),
    ] {
        let answer = post(host, origin).await;
        assert_eq!(status_of(&answer), 403, "{host} {origin:?}: {answer}");
        assert!(!answer.contains("access_token"), "{answer}");
        assert!(
            !answer.to_ascii_lowercase().contains("access-control-"),
            "{answer}"
        );
    }
    // A web page's preflight is not answered with CORS headers.
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, proxy.url("/_dev/token"))
        .header("origin", "https://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 405);
    assert!(r
        .headers()
        .keys()
        .all(|n| !n.as_str().starts_with("access-control-")));
}

/// `GET path` as a browser page on `origin` would send it (no credentials).
async fn get_from_origin(proxy: &TestProxy, path: &str, origin: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(proxy.url(path))
        .header("origin", origin)
        .send()
        .await
        .expect("request")
}

fn cors_header(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// With `cors:` tokengate's policy is the only one: the upstream's own `Access-Control-*`
/// headers are replaced on every route and status, and `Vary` is merged.
#[tokio::test]
async fn the_upstream_cannot_widen_the_cors_policy() {
    let upstream = EchoUpstream::start().await;
    let s = stack(
        &upstream.url(),
        "cors: { allow_origins: [\"https://app.example.com\"] }\n",
    )
    .await;
    // An unlisted origin on a public route: the upstream reflects it, tokengate removes it.
    let r = get_from_origin(&s.proxy, "/public/cors/x", "https://evil.example").await;
    assert_eq!(r.status(), 200);
    for name in [
        "access-control-allow-origin",
        "access-control-allow-credentials",
        "access-control-allow-methods",
        "access-control-expose-headers",
    ] {
        assert_eq!(cors_header(&r, name), None, "{name}");
    }
    let vary: Vec<_> = r.headers().get_all("vary").iter().collect();
    assert_eq!(vary.len(), 1, "{vary:?}");
    assert_eq!(
        cors_header(&r, "vary").as_deref(),
        Some("Accept-Encoding, Origin")
    );
    // The listed origin gets tokengate's answer: no credentials, tokengate's exposed list.
    let r = get_from_origin(&s.proxy, "/public/cors/x", "https://app.example.com").await;
    assert_eq!(
        cors_header(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(cors_header(&r, "access-control-allow-credentials"), None);
    assert_eq!(
        cors_header(&r, "access-control-expose-headers").as_deref(),
        Some("WWW-Authenticate, Retry-After, X-Request-Id, DPoP-Nonce")
    );

    // allow_origins: ["*"] never goes out with the upstream's Allow-Credentials.
    let star = stack(&upstream.url(), "cors: { allow_origins: [\"*\"] }\n").await;
    let r = get_from_origin(&star.proxy, "/public/cors/x", "https://anything.example").await;
    assert_eq!(
        cors_header(&r, "access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert_eq!(cors_header(&r, "access-control-allow-credentials"), None);
}

/// `cors: { mode: upstream }` hands CORS to the upstream: a well-formed preflight is
/// forwarded without a token and without identity, and the upstream's headers pass through.
#[tokio::test]
async fn cors_mode_upstream_forwards_preflights_without_a_token() {
    let upstream = EchoUpstream::start().await;
    let s = stack(&upstream.url(), "cors: { mode: upstream }\n").await;
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, s.proxy.url("/api/cors/x"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .header("authorization", "Bearer not-even-a-jwt")
        .header("x-auth-subject", "admin")
        .send()
        .await
        .expect("preflight");
    assert_eq!(r.status(), 200);
    assert_eq!(
        cors_header(&r, "access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        cors_header(&r, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    let seen = upstream.last().expect("reached");
    assert_eq!(seen.method, "OPTIONS");
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-auth-subject"), None);
    // An OPTIONS with a body is no preflight: it needs a token like any request.
    let before = upstream.count();
    let r = reqwest::Client::new()
        .request(reqwest::Method::OPTIONS, s.proxy.url("/api/cors/x"))
        .header("origin", "https://app.example.com")
        .header("access-control-request-method", "PUT")
        .body("smuggled")
        .send()
        .await
        .expect("options");
    assert_eq!(r.status(), 401);
    assert_eq!(upstream.count(), before);
}

// ---------------------------------------------------------------------------------------------
// The property: whatever the client sends, under whatever name, version or section.

mod generated {
    use super::*;
    use proptest::prelude::*;

    /// Names no client value may reach the upstream under (tokengate's own identity headers,
    /// other systems' identity headers, forwarding headers from an untrusted peer, the request
    /// id), written as a client might.
    const FORBIDDEN: &[&str] = &[
        "x-auth-subject",
        "x-auth-scopes",
        "x-auth-admin",
        "x-auth-request-user",
        "x-forwarded-user",
        "x-forwarded-email",
        "x-forwarded-groups",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
        "remote-user",
        "x-remote-user",
        "x-user",
        "x-userinfo",
        "x-authenticated-userid",
        "oidc-claim-email",
        "oidc-access-token",
        "x-consumer-username",
        "x-pomerium-jwt-assertion",
        "x-ms-client-principal-name",
        "x-amzn-oidc-identity",
        "cf-access-authenticated-user-email",
        "x-goog-authenticated-user-email",
        "x-request-id",
        "x-http-method-override",
        // The client_certificate header of the fixture (its trusted proxy is elsewhere).
        "x-ssl-client-cert",
    ];

    /// A name from `FORBIDDEN` with random letter case and `-` written as `_` at random.
    fn spelling() -> impl Strategy<Value = String> {
        (
            prop::sample::select(FORBIDDEN),
            prop::collection::vec(any::<(bool, bool)>(), 40),
        )
            .prop_map(|(name, coins)| {
                name.chars()
                    .zip(coins)
                    .map(|(c, (upper, underscore))| match c {
                        '-' if underscore => '_',
                        c if upper => c.to_ascii_uppercase(),
                        c => c,
                    })
                    .collect()
            })
    }

    #[derive(Debug, Clone)]
    struct Case {
        http2: bool,
        token: bool,
        public: bool,
        headers: Vec<String>,
        connection: Vec<String>,
        trailers: Vec<String>,
    }

    fn case() -> impl Strategy<Value = Case> {
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(spelling(), 0..8),
            prop::collection::vec(
                prop_oneof![
                    spelling(),
                    Just("host".to_string()),
                    Just("content-length".to_string()),
                    Just("x-benign".to_string()),
                    Just("upgrade".to_string()),
                    Just("close".to_string()),
                ],
                0..5,
            ),
            prop::collection::vec(spelling(), 0..4),
        )
            .prop_map(
                |(http2, token, public, headers, connection, trailers)| Case {
                    http2,
                    token,
                    public,
                    headers,
                    connection,
                    trailers,
                },
            )
    }

    struct Fixture {
        runtime: tokio::runtime::Runtime,
        stack: Stack,
        upstream: EchoUpstream,
    }

    async fn send(stack: &Stack, case: &Case, n: usize) -> (u16, String) {
        let tcp = TcpStream::connect(stack.proxy.addr).await.expect("connect");
        let path = if case.public { "/public/p" } else { "/api/p" };
        let mut request = http::Request::post(format!("http://gate.test:8080{path}"));
        if !case.http2 {
            request = request.header("host", "gate.test:8080");
        }
        if case.token {
            request = request.header("authorization", format!("Bearer {}", stack.token()));
        }
        for name in &case.headers {
            request = request.header(name.as_str(), format!("evil-{n}"));
        }
        if !case.connection.is_empty() {
            request = request.header("connection", case.connection.join(", "));
        }
        request = request.header("x-benign", format!("ok-{n}"));
        if !case.trailers.is_empty() {
            request = request
                .header("te", "trailers")
                .header("trailer", case.trailers.join(", "));
        }
        let mut trailers = http::HeaderMap::new();
        for name in &case.trailers {
            if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                trailers.append(name, format!("evil-{n}").parse().expect("value"));
            }
        }
        let mut frames = vec![Ok::<_, std::convert::Infallible>(Frame::data(
            Bytes::from_static(b"body"),
        ))];
        if !trailers.is_empty() {
            frames.push(Ok(Frame::trailers(trailers)));
        }
        let body = StreamBody::new(futures_util::stream::iter(frames));
        let request = request.body(body).expect("request");
        let response = if case.http2 {
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .expect("h2 handshake");
            tokio::spawn(connection);
            sender.send_request(request).await.expect("send h2")
        } else {
            let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                .await
                .expect("h1 handshake");
            tokio::spawn(connection);
            sender.send_request(request).await.expect("send h1")
        };
        let status = response.status().as_u16();
        let id = response
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let _ = response.into_body().collect().await;
        (status, id)
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 256,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// No generated request (identity-family names in any spelling, `Connection` lists
        /// naming anything, trailers, HTTP/1.1 or HTTP/2, public or protected route) delivers
        /// a client-chosen value under any of those names, in headers or trailers; and the
        /// upstream always receives tokengate's `Host`, `X-Request-Id` and `X-Forwarded-*`.
        #[test]
        fn no_client_value_reaches_the_upstream_under_an_identity_name(case in case()) {
            static FIXTURE: std::sync::OnceLock<Fixture> = std::sync::OnceLock::new();
            let fixture = FIXTURE.get_or_init(|| {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("runtime");
                let (stack, upstream) = runtime.block_on(async {
                    let upstream = EchoUpstream::start().await;
                    // A proxy-certificate header is configured; the test client is not
                    // that proxy.
                    let stack = stack(
                        &upstream.url(),
                        "trusted_proxies: [10.9.9.9]\nclient_certificate: { format: nginx, header: X-SSL-Client-Cert }\n",
                    )
                    .await;
                    (stack, upstream)
                });
                Fixture { runtime, stack, upstream }
            });
            static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let (status, id) = fixture.runtime.block_on(send(&fixture.stack, &case, n));
            if !case.public && !case.token {
                prop_assert_eq!(status, 401);
                return Ok(());
            }
            prop_assert_eq!(status, 200, "{:?}", case);
            let seen = fixture.upstream.last().expect("reached");
            // An ordinary header passes, unless the client made it hop-by-hop.
            let benign = format!("ok-{n}");
            let hop = case.connection.iter().any(|c| c == "x-benign");
            prop_assert_eq!(seen.header("x-benign"), (!hop).then_some(benign.as_str()));
            for (name, value) in seen.headers.iter().chain(seen.trailers.iter()) {
                prop_assert!(!value.contains("evil"), "{}: {} reached the upstream ({:?})", name, value, case);
            }
            let one = |name: &str| -> Vec<&str> {
                seen.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
            };
            prop_assert_eq!(one("x-request-id"), vec![id.as_str()]);
            prop_assert_eq!(one("host"), vec!["gate.test:8080"]);
            prop_assert_eq!(one("x-forwarded-host"), vec!["gate.test:8080"]);
            prop_assert_eq!(one("x-forwarded-for"), vec!["127.0.0.1"]);
            prop_assert_eq!(one("x-forwarded-proto"), vec!["http"]);
            // `auth: none` never turns a token into identity.
            if case.token && !case.public {
                prop_assert_eq!(one("x-auth-subject"), vec!["user-1"]);
            } else {
                prop_assert!(one("x-auth-subject").is_empty());
            }
        }
    }
}
