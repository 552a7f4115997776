//! EchoUpstream: a service behind the proxy that records what reached it and answers with it.
//!
//! Paths with a meaning: `/status/{code}`, `/slow/{ms}`, `/big/{bytes}` (streams that many
//! bytes), `/upload` (hashes the streamed body), `/reset` (dies mid-body), `/trailers`,
//! `/ws` (WebSocket echo), `/cors/...` (answers like Express `cors({origin: true,
//! credentials: true})`, preflights included). Anything else echoes the request as JSON; its
//! request trailers are recorded too.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::json;
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, std::io::Error>;

/// What one request looked like when it arrived.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Path and query exactly as received.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub version: String,
    /// The request's trailer fields (echoed requests only; filled once the body is read).
    pub trailers: Vec<(String, String)>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

pub struct EchoUpstream {
    pub addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<Recorded>>>,
    count: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    /// Connections open now (plaintext upstreams only).
    open: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EchoUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EchoUpstream {
    pub async fn start() -> EchoUpstream {
        EchoUpstream::start_with(false).await
    }

    /// `http2`: speak HTTP/2 prior knowledge only.
    pub async fn start_with(http2: bool) -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let (seen2, count2, connections2) = (seen.clone(), count.clone(), connections.clone());
        let open2 = open.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections2.fetch_add(1, Ordering::SeqCst);
                let (seen, count) = (seen2.clone(), count2.clone());
                let open = open2.clone();
                open.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let (seen, count) = (seen.clone(), count.clone());
                        async move { Ok::<_, Infallible>(answer(req, &seen, &count).await) }
                    });
                    let mut builder =
                        hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                    if http2 {
                        builder = builder.http2_only();
                    }
                    let _ = builder
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                    open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        EchoUpstream {
            addr,
            seen,
            count,
            connections,
            open,
            task,
        }
    }

    /// An upstream speaking TLS with this server configuration.
    pub async fn start_tls(config: std::sync::Arc<rustls::ServerConfig>) -> EchoUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let (seen2, count2, connections2) = (seen.clone(), count.clone(), connections.clone());
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                connections2.fetch_add(1, Ordering::SeqCst);
                let (seen, count, acceptor) = (seen2.clone(), count2.clone(), acceptor.clone());
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(stream).await else {
                        return;
                    };
                    let service = service_fn(move |req| {
                        let (seen, count) = (seen.clone(), count.clone());
                        async move { Ok::<_, Infallible>(answer(req, &seen, &count).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        EchoUpstream {
            addr,
            seen,
            count,
            connections,
            open: Arc::new(AtomicUsize::new(0)),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests arrived.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// How many connections it accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// How many connections are open now (plaintext upstreams; TLS ones always say 0).
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// The last request that arrived.
    pub fn last(&self) -> Option<Recorded> {
        self.seen.lock().expect("lock").last().cloned()
    }
}

fn full(body: impl Into<Bytes>) -> Body {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

fn respond(status: u16, body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    r
}

async fn answer(
    mut req: Request<Incoming>,
    seen: &Mutex<Vec<Recorded>>,
    count: &AtomicUsize,
) -> Response<Body> {
    count.fetch_add(1, Ordering::SeqCst);
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let recorded = Recorded {
        method: req.method().to_string(),
        target: target.clone(),
        headers: req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_owned(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        version: format!("{:?}", req.version()),
        trailers: Vec::new(),
    };
    let index = {
        let mut seen = seen.lock().expect("lock");
        seen.push(recorded.clone());
        seen.len() - 1
    };
    let path = req.uri().path().to_owned();
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (first, arg) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    // `/cors` anywhere in the path, so it also sits under a public prefix.
    let first = if path.split('/').any(|segment| segment == "cors") {
        "cors"
    } else {
        first
    };
    match first {
        "status" => {
            let code = arg.parse().unwrap_or(200);
            let body = if code == 204 || code == 304 {
                full("")
            } else {
                full(format!("status {code}"))
            };
            let mut r = respond(code, body);
            if code == 304 {
                r.headers_mut()
                    .insert("etag", "\"v1\"".parse().expect("etag"));
            }
            r
        }
        "slow" => {
            tokio::time::sleep(Duration::from_millis(arg.parse().unwrap_or(1000))).await;
            respond(200, full("slow"))
        }
        "big" => {
            let total: u64 = arg.parse().unwrap_or(0);
            let chunk = Bytes::from(pattern_chunk());
            let chunks = total / chunk.len() as u64;
            let stream = futures_util::stream::iter(0..chunks)
                .map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone())));
            respond(200, BodyExt::boxed(StreamBody::new(stream)))
        }
        "upload" => {
            let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
            let mut bytes = 0u64;
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            digest.update(data);
                            bytes += data.len() as u64;
                        }
                    }
                    Err(_) => return respond(400, full("body error")),
                }
            }
            let hash = hex(digest.finish().as_ref());
            respond(
                200,
                full(json!({"bytes": bytes, "sha256": hash}).to_string()),
            )
        }
        "reset" => {
            // Promise 1 MiB, send 10 bytes, then fail the stream: the connection is cut.
            let stream = futures_util::stream::iter(vec![
                Ok(Frame::data(Bytes::from_static(b"0123456789"))),
                Err(std::io::Error::other("upstream died")),
            ])
            .then(|item| async move {
                // Let the headers and the first bytes go out before dying.
                if item.is_err() {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                item
            });
            let mut r = respond(200, BodyExt::boxed(StreamBody::new(stream)));
            r.headers_mut()
                .insert("content-length", "1048576".parse().expect("cl"));
            r
        }
        "trailers" => {
            let stream = futures_util::stream::iter(vec![
                Ok::<_, std::io::Error>(Frame::data(Bytes::from_static(b"with trailers"))),
                Ok(Frame::trailers({
                    let mut t = http::HeaderMap::new();
                    t.insert("x-checksum", "abc123".parse().expect("trailer"));
                    t
                })),
            ]);
            let mut r = respond(200, BodyExt::boxed(StreamBody::new(stream)));
            // hyper sends only the trailer fields a response declares.
            r.headers_mut()
                .insert("trailer", "x-checksum".parse().expect("trailer"));
            r
        }
        "ws" => websocket(&mut req),
        "cors" => {
            // A service with its own permissive CORS: reflects any origin, with credentials.
            let origin = req.headers().get("origin").cloned();
            let mut r = respond(200, full("cors upstream"));
            let h = r.headers_mut();
            if let Some(origin) = origin {
                h.insert("access-control-allow-origin", origin);
            }
            h.insert(
                "access-control-allow-credentials",
                "true".parse().expect("h"),
            );
            h.insert(
                "access-control-allow-methods",
                "GET,PUT,DELETE".parse().expect("h"),
            );
            h.insert(
                "access-control-expose-headers",
                "x-secret".parse().expect("h"),
            );
            h.insert("vary", "Accept-Encoding".parse().expect("h"));
            r
        }
        _ => {
            let collected = req.into_body().collect().await.ok();
            let trailers: Vec<(String, String)> = collected
                .as_ref()
                .and_then(|c| c.trailers())
                .map(|t| {
                    t.iter()
                        .map(|(n, v)| {
                            (
                                n.as_str().to_owned(),
                                String::from_utf8_lossy(v.as_bytes()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            if let Some(entry) = seen.lock().expect("lock").get_mut(index) {
                entry.trailers = trailers;
            }
            let body = collected.map(|c| c.to_bytes()).unwrap_or_default();
            let mut headers: BTreeMap<String, Vec<String>> = BTreeMap::new();
            for (n, v) in &recorded.headers {
                headers.entry(n.clone()).or_default().push(v.clone());
            }
            let echo = json!({
                "method": recorded.method,
                "target": target,
                "headers": headers,
                "body": String::from_utf8_lossy(&body),
                "version": recorded.version,
            });
            let mut r = respond(200, full(echo.to_string()));
            r.headers_mut()
                .insert("content-type", "application/json".parse().expect("ct"));
            // Hop-by-hop headers the proxy must not pass back.
            r.headers_mut()
                .insert("connection", "x-upstream-private".parse().expect("conn"));
            r.headers_mut()
                .insert("x-upstream-private", "secret".parse().expect("priv"));
            r.headers_mut()
                .insert("keep-alive", "timeout=5".parse().expect("ka"));
            r
        }
    }
}

/// Accepts a WebSocket handshake and echoes every message back.
fn websocket(req: &mut Request<Incoming>) -> Response<Body> {
    let Some(key) = req.headers().get("sec-websocket-key").cloned() else {
        return respond(400, full("not a websocket handshake"));
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
            TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = ws.next().await {
            if message.is_close() {
                break;
            }
            if ws.send(message).await.is_err() {
                break;
            }
        }
    });
    let mut r = respond(101, full(""));
    let h = r.headers_mut();
    h.insert("connection", "upgrade".parse().expect("h"));
    h.insert("upgrade", "websocket".parse().expect("h"));
    h.insert("sec-websocket-accept", accept.parse().expect("h"));
    r
}

/// 64 KiB of a fixed, non-repeating-looking pattern.
pub fn pattern_chunk() -> Vec<u8> {
    (0..64 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
