//! The accept loops: the public listener (HTTP/1.1 and HTTP/2, cleartext or TLS) and the
//! admin listener (metrics and health). Every connection is watched for a graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

use crate::app::Connection;
use crate::body::{full, Body, Metered};
use crate::builtin::json_response;
use crate::forward::Affinity;
use crate::gateway::Gateway;
use crate::stall::{Responses, SocketProgress, WatchedIo};

/// How long an accept error first pauses the loop; it doubles, up to [`ACCEPT_BACKOFF_MAX`],
/// while accepting keeps failing (out of descriptors: waiting beats spinning on `EMFILE`).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_secs(1);

/// HTTP/2 PINGs: sent after this long without a frame from the client...
pub const HTTP2_KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// ...and the connection closed when one is not answered within this long (a client that
/// stopped reading its socket cannot answer).
pub const HTTP2_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(20);
/// Request data an HTTP/2 client may send on one stream before tokengate has passed it on
/// (the stream's flow-control window), in bytes.
pub const HTTP2_STREAM_WINDOW: u32 = 256 * 1024;
/// The same for all streams of one connection together, in bytes.
pub const HTTP2_CONNECTION_WINDOW: u32 = 1024 * 1024;
/// Streams a client may reset before tokengate has accepted them (rapid reset, CVE-2023-44487).
pub const HTTP2_MAX_PENDING_RESETS: usize = 20;

/// Serves the gateway's current configuration on an already-bound listener until `shutdown`
/// resolves, then stops accepting and lets in-flight requests finish for up to
/// `shutdown_timeout` (keep-alive connections are told `Connection: close`).
pub async fn run(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let settings = gateway.app().settings().clone();
    // Per-connection limits come from the configuration current when a connection is
    // accepted, so a reload applies them to new connections; these two size process-wide
    // pools once (a reload that changes them says a restart is needed).
    let mut connections = ConnectionConfig::new(&settings);
    let slots = Arc::new(Semaphore::new(settings.limits.max_connections));
    let pool_max_idle = settings.upstream.as_ref().map_or(0, |u| u.pool_max_idle);
    let descriptors = crate::fdlimit::budget(pool_max_idle);
    log_connection_limit(
        settings.limits.max_connections,
        descriptors.available_permits(),
        pool_max_idle,
    );
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    let mut backoff = ACCEPT_BACKOFF;

    loop {
        // Beyond max_connections, or with the descriptor budget spent, new connections wait
        // in the kernel's backlog.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let descriptor = tokio::select! {
            permit = descriptors.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of descriptors despite the budget (something else holds them):
                    // wait, longer each time, instead of spinning.
                    if backoff == ACCEPT_BACKOFF {
                        warn!(%error, "accept failed; backing off");
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        backoff = ACCEPT_BACKOFF;
        let _ = stream.set_nodelay(true);
        connections.refresh(&gateway.app());
        let (builder, limits) = (connections.builder.clone(), connections.limits.clone());
        let gateway = gateway.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let metrics_gateway = gateway.clone();
            let metrics = metrics_gateway.metrics();
            metrics.connections.inc();
            // The slot and the descriptor live as long as the socket (an upgraded one too).
            let admitted = vec![permit, descriptor];
            serve_connection(
                stream,
                peer,
                admitted,
                gateway.clone(),
                &builder,
                watcher,
                &limits,
            )
            .await;
            metrics.connections.dec();
        });
    }
    drop(listener);
    // Listening event streams end at their next event boundary instead of holding the drain.
    gateway.app().drain().begin();
    // The drain honours the shutdown_timeout of the configuration serving now.
    let shutdown_timeout = gateway.app().settings().shutdown_timeout;
    info!(
        shutdown_timeout_s = shutdown_timeout.as_secs_f64(),
        "shutting down: draining in-flight requests"
    );
    tokio::select! {
        () = graceful.shutdown() => info!("drained"),
        () = tokio::time::sleep(shutdown_timeout) => warn!("shutdown_timeout reached; closing the remaining connections"),
    }
}

/// The hyper connection builder and limits for new connections, rebuilt when a reload brings
/// a new configuration (compared by its generation).
struct ConnectionConfig {
    generation: u64,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: Arc<crate::config::Limits>,
}

impl ConnectionConfig {
    fn new(settings: &crate::config::Settings) -> ConnectionConfig {
        ConnectionConfig {
            generation: settings.generation,
            builder: Arc::new(connection_builder(&settings.limits)),
            limits: Arc::new(settings.limits.clone()),
        }
    }

    /// Takes `app`'s limits when they come from another configuration than the last.
    fn refresh(&mut self, app: &crate::app::App) {
        if app.settings().generation != self.generation {
            *self = ConnectionConfig::new(app.settings());
        }
    }
}

/// hyper's server builder for one configuration's limits.
fn connection_builder(limits: &crate::config::Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Small responses go out in one write(2) instead of a writev(2) of several pieces.
        .writev(false)
        .timer(TokioTimer::new())
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(limits.max_header_bytes.max(8192));
    // RFC 9113 §10.5: every resource a client can make the server hold is bounded.
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        .max_send_buf_size(limits.http2_max_send_buffer)
        .initial_stream_window_size(HTTP2_STREAM_WINDOW)
        .initial_connection_window_size(HTTP2_CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(HTTP2_MAX_PENDING_RESETS)
        .keep_alive_interval(HTTP2_KEEP_ALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEP_ALIVE_TIMEOUT);
    builder
}

/// What the idle watchdog knows about a connection.
struct Activity {
    /// Requests whose response has not finished.
    active: AtomicUsize,
    /// Milliseconds since `opened` at the last request start or finish.
    last: AtomicU64,
    opened: Instant,
}

impl Activity {
    fn touch(&self) {
        self.last
            .store(self.opened.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    fn idle_for(&self) -> Option<Duration> {
        if self.active.load(Ordering::Relaxed) > 0 {
            return None;
        }
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        Some(self.opened.elapsed().saturating_sub(last))
    }
}

/// Says what the connection limit is, and warns when the open-files limit cannot hold it.
fn log_connection_limit(max_connections: usize, descriptors: usize, pool_max_idle: usize) {
    let effective = max_connections.min(descriptors);
    let with_upstream = descriptors / 2;
    info!(
        max_connections,
        effective,
        descriptor_budget = descriptors,
        "connection limit"
    );
    if max_connections > with_upstream {
        warn!(
            max_connections,
            with_upstream,
            pool_max_idle,
            "the open-files limit holds only {with_upstream} client connections that each keep an upstream connection; beyond that, requests wait for a descriptor (then 503) and new connections wait in the backlog"
        );
    }
}

/// The per-connection limits the watchdog applies.
struct Watch {
    idle_timeout: Duration,
    send_timeout: Duration,
    max_headers: usize,
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    admitted: Vec<tokio::sync::OwnedSemaphorePermit>,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    limits: &crate::config::Limits,
) {
    let watch = Watch {
        idle_timeout: limits.idle_timeout,
        send_timeout: limits.send_timeout,
        max_headers: limits.max_headers,
    };
    // Watched below TLS: what counts is whether the client takes bytes off the socket.
    let socket = SocketProgress::new();
    let stream = WatchedIo::new(stream, socket.clone(), admitted);
    match gateway.tls() {
        None => {
            let connection = Connection {
                peer,
                proto: "http",
                client_certificate: None,
            };
            serve_io(stream, connection, gateway, builder, watcher, watch, socket).await
        }
        // Boxed: a TLS connection's state (rustls's, and the stream around it) is large, and
        // unboxed it would be part of every cleartext connection's task too.
        Some(acceptor) => {
            Box::pin(async move {
                match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream))
                    .await
                {
                    Ok(Ok(tls)) => {
                        let connection = Connection {
                            peer,
                            proto: "https",
                            client_certificate: crate::tls::client_certificate(tls.get_ref().1),
                        };
                        serve_io(tls, connection, gateway, builder, watcher, watch, socket).await
                    }
                    Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                }
            })
            .await
        }
    }
}

async fn serve_io<IO>(
    io: IO,
    connection: Connection,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    watch: Watch,
    socket: Arc<SocketProgress>,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let peer = connection.peer;
    let activity = Arc::new(Activity {
        active: AtomicUsize::new(0),
        last: AtomicU64::new(0),
        opened: Instant::now(),
    });
    let tracked = activity.clone();
    let affinity = Arc::new(Affinity::default());
    let responses = Responses::new();
    let watched = responses.clone();
    let max_headers = watch.max_headers;
    let http2 = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let saw_http2 = http2.clone();
    let service = service_fn(move |request: Request<Incoming>| {
        // Each request is served by the configuration current when it starts.
        let app = gateway.app();
        let activity = tracked.clone();
        let responses = watched.clone();
        let is_http2 = request.version() >= http::Version::HTTP_2;
        saw_http2.store(is_http2, Ordering::Relaxed);
        // HTTP/2 streams run side by side: they share the pool instead.
        let affinity = (!is_http2).then(|| affinity.clone());
        activity.active.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        async move {
            // hyper's HTTP/1.1 parser refuses more than max_headers with a 431; HTTP/2 has
            // no such count, so the same limit is applied here.
            // Runs when the response body has been sent or dropped.
            let done: Box<dyn FnOnce() + Send + Sync> = Box::new(move || {
                activity.active.fetch_sub(1, Ordering::Relaxed);
                activity.touch();
            });
            let response = if is_http2 && request.headers().len() > max_headers {
                too_many_headers().map(|b| {
                    Metered::new(b, Arc::new(AtomicU64::new(0)), Some(Box::new(|_| done()))).boxed()
                })
            } else {
                // The app meters the response (access log, in-flight count) and runs `done`.
                app.handle_with(request, &connection, affinity.as_deref(), done)
                    .await
            };
            // HTTP/1.1 needs no per-body watch: its socket tells (see serve_io).
            Ok::<_, Infallible>(if is_http2 {
                response.map(|b| responses.watch(b).boxed())
            } else {
                response
            })
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let connection = watcher.watch(connection.into_owned());
    tokio::pin!(connection);
    let tick = (watch.idle_timeout.min(watch.send_timeout) / 4).max(Duration::from_millis(50));
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(error) = result {
                    debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(tick) => {
                if activity.idle_for().is_some_and(|idle| idle >= watch.idle_timeout) {
                    debug!(%peer, "closing an idle connection");
                    return;
                }
                // Returning drops the connection: for HTTP/2 that ends every stream, and
                // with them the upstream connections they held.
                if socket.blocked_for().is_some_and(|t| t >= watch.send_timeout) {
                    info!(%peer, "closing a connection whose client stopped reading (send_timeout)");
                    return;
                }
                // HTTP/1.1 sends one response at a time and hyper takes its next frame
                // whenever the socket has room, so the socket says all (and a slow reader
                // that still makes progress is never cut). HTTP/2 streams stall on their
                // own flow-control windows while the socket is free: each is watched.
                if !http2.load(Ordering::Relaxed) {
                    continue;
                }
                let sweep = responses.sweep(watch.send_timeout);
                let all_waiting_on_client = sweep.live > 0
                    && sweep.cut == sweep.live
                    && activity.active.load(Ordering::Relaxed) <= sweep.live;
                if all_waiting_on_client {
                    info!(%peer, streams = sweep.cut, "closing a connection whose client took no response data (send_timeout)");
                    return;
                }
            }
        }
    }
}

/// 431 for an HTTP/2 request with more header fields than `limits.max_headers`.
fn too_many_headers() -> Response<Body> {
    json_response(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        &serde_json::json!({
            "error": "request_header_fields_too_large",
            "error_description": "the request has more header fields than limits.max_headers"
        }),
    )
}

/// Serves `/metrics`, `/healthz` and `/readyz` on the admin listener until `shutdown`. Each
/// connection lives at most `limits.header_read_timeout` + `limits.send_timeout` (a scrape
/// takes milliseconds; a scraper that keeps its connection open reconnects).
/// At most [`crate::fdlimit::ADMIN_CONNECTIONS`] at once: their descriptors are part of the
/// reserve kept outside the public listener's budget.
pub async fn run_admin(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let slots = Arc::new(Semaphore::new(crate::fdlimit::ADMIN_CONNECTIONS));
    loop {
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => return,
            },
            () = &mut shutdown => return,
        };
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(_) => {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        let gateway = gateway.clone();
        // A slot is held for at most one exchange's worth of time: a client that connects and
        // sends nothing, half a head or only the HTTP/2 preface gives it back then, so 32 of
        // them cannot stop `/metrics` and `/readyz`. Read per connection: a reload applies.
        let limits = gateway.app().settings().limits.clone();
        let lifetime = limits.header_read_timeout + limits.send_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |request: Request<Incoming>| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(admin(&gateway, &request)) }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
            // Dropping the connection closes it, whatever state it is in.
            let _ = tokio::time::timeout(lifetime, connection).await;
        });
    }
}

fn admin(gateway: &Gateway, request: &Request<Incoming>) -> Response<Body> {
    let app = gateway.app();
    match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/metrics") => {
            let text = gateway
                .metrics()
                .render(&app.keys().status(), app.cache().len());
            let mut r = Response::new(full(Bytes::from(text)));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            r
        }
        (&http::Method::GET, "/healthz") => {
            json_response(StatusCode::OK, &serde_json::json!({"status": "ok"}))
        }
        (&http::Method::GET, "/readyz") => app.readiness(),
        _ => json_response(
            StatusCode::NOT_FOUND,
            &serde_json::json!({"error": "not_found"}),
        ),
    }
}
