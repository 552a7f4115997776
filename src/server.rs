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

use crate::body::{full, Body, Metered};
use crate::builtin::json_response;
use crate::forward::Affinity;
use crate::gateway::Gateway;

/// How long an accept error (usually: out of file descriptors) pauses the loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Serves the gateway's current configuration on an already-bound listener until `shutdown`
/// resolves, then stops accepting and lets in-flight requests finish for up to
/// `shutdown_timeout` (keep-alive connections are told `Connection: close`).
pub async fn run(listener: TcpListener, gateway: Arc<Gateway>, shutdown: impl Future<Output = ()>) {
    let settings = gateway.app().settings().clone();
    let limits = settings.limits.clone();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // Small responses go out in one write(2) instead of a writev(2) of several pieces.
        .writev(false)
        .timer(TokioTimer::new())
        // Also bounds how long an idle keep-alive connection waits for its next request.
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    tokio::pin!(shutdown);

    loop {
        // Beyond max_connections, new connections wait in the kernel's backlog.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let gateway = gateway.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let metrics_gateway = gateway.clone();
            let metrics = metrics_gateway.metrics();
            metrics.connections.inc();
            serve_connection(
                stream,
                peer,
                gateway.clone(),
                &builder,
                watcher,
                limits.idle_timeout,
                limits.header_read_timeout,
            )
            .await;
            metrics.connections.dec();
            drop(permit);
        });
    }
    drop(listener);
    info!("shutting down: draining in-flight requests");
    tokio::select! {
        () = graceful.shutdown() => info!("drained"),
        () = tokio::time::sleep(settings.shutdown_timeout) => warn!("shutdown_timeout reached; closing the remaining connections"),
    }
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

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    idle_timeout: Duration,
    handshake_timeout: Duration,
) {
    match gateway.tls() {
        None => {
            serve_io(
                stream,
                peer,
                gateway,
                builder,
                watcher,
                idle_timeout,
                "http",
            )
            .await
        }
        Some(acceptor) => {
            match tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    serve_io(tls, peer, gateway, builder, watcher, idle_timeout, "https").await
                }
                Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        }
    }
}

async fn serve_io<IO>(
    io: IO,
    peer: SocketAddr,
    gateway: Arc<Gateway>,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    idle_timeout: Duration,
    proto: &'static str,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity {
        active: AtomicUsize::new(0),
        last: AtomicU64::new(0),
        opened: Instant::now(),
    });
    let tracked = activity.clone();
    let affinity = Arc::new(Affinity::default());
    let service = service_fn(move |request: Request<Incoming>| {
        // Each request is served by the configuration current when it starts.
        let app = gateway.app();
        let activity = tracked.clone();
        // HTTP/2 streams run side by side: they share the pool instead.
        let affinity = (request.version() < http::Version::HTTP_2).then(|| affinity.clone());
        activity.active.fetch_add(1, Ordering::Relaxed);
        activity.touch();
        async move {
            let response = app
                .handle_with(request, peer, proto, affinity.as_deref())
                .await;
            let done = Box::new(move |_| {
                activity.active.fetch_sub(1, Ordering::Relaxed);
                activity.touch();
            });
            Ok::<_, Infallible>(
                response.map(|b| Metered::new(b, Arc::new(AtomicU64::new(0)), Some(done)).boxed()),
            )
        }
    });
    let connection = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    let connection = watcher.watch(connection.into_owned());
    tokio::pin!(connection);
    loop {
        tokio::select! {
            result = &mut connection => {
                if let Err(error) = result {
                    debug!(%peer, %error, "connection ended with an error");
                }
                return;
            }
            () = tokio::time::sleep(idle_timeout / 4) => {
                if activity.idle_for().is_some_and(|idle| idle >= idle_timeout) {
                    debug!(%peer, "closing an idle connection");
                    return;
                }
            }
        }
    }
}

/// Serves `/metrics`, `/healthz` and `/readyz` on the admin listener until `shutdown`.
pub async fn run_admin(
    listener: TcpListener,
    gateway: Arc<Gateway>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
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
        tokio::spawn(async move {
            let service = service_fn(move |request: Request<Incoming>| {
                let gateway = gateway.clone();
                async move { Ok::<_, Infallible>(admin(&gateway, &request)) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn admin(gateway: &Gateway, request: &Request<Incoming>) -> Response<Body> {
    let app = gateway.app();
    match (request.method(), request.uri().path()) {
        (&http::Method::GET, "/metrics") => {
            let text = gateway.metrics().render(&app.keys().status(), app.cache());
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
