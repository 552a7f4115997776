//! Stage 6 (upstream): the pooled client, streaming both ways, upgrades, timeouts.
//!
//! Bodies are never buffered whole: the client's body stream is the upstream request body and
//! the upstream's body stream is the response body. If the upstream resets mid-body the
//! stream errors and hyper closes the client connection, so a truncated body is never
//! presented as complete.
//!
//! An HTTP/1 client connection keeps its own upstream connection ([`Affinity`]): its requests
//! come one at a time, so the connection it used last is free again for the next one. That
//! skips the shared pool's checkout, its return to the pool and the task the pooled client
//! spawns per request to wait for the connection to become idle. Upgrades, HTTP/2 upstreams
//! and a client connection whose upstream connection is still busy use the shared pool.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper::upgrade::OnUpgrade;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::sync::OwnedSemaphorePermit;
use tracing::debug;

use crate::authz::Permit;
use crate::body::Body;
use crate::config::UpstreamSettings;
use crate::mutate::{self, TrailerFilter, TrailerRules};
use crate::route::CanonicalPath;

/// Why the upstream gave no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Connection refused, DNS failure, TLS failure, connect timeout: 502.
    #[error("the upstream could not be reached")]
    Unreachable(String),
    /// No response headers within `upstream.timeout`: 504.
    #[error("the upstream did not answer in time")]
    Timeout,
    /// The upstream broke the exchange: 502.
    #[error("the upstream's response was invalid")]
    Protocol(String),
    /// The client stopped sending its request body for `limits.body_read_timeout`: 408.
    #[error("the request body did not arrive in time")]
    ClientBodyTimeout,
    /// No file descriptor could be had for an upstream connection in time: 503.
    #[error("the proxy is at its connection limit")]
    Overloaded,
}

impl UpstreamError {
    /// A stable code for logs and metrics (the access log's and `tokengate_requests_total`'s
    /// `reason`).
    pub fn reason(&self) -> &'static str {
        match self {
            UpstreamError::Unreachable(_) => "upstream_unreachable",
            UpstreamError::Timeout => "upstream_timeout",
            UpstreamError::Protocol(_) => "upstream_protocol_error",
            UpstreamError::ClientBodyTimeout => "body_read_timeout",
            UpstreamError::Overloaded => "over_capacity",
        }
    }
}

/// The upstream connection one client connection keeps between its requests.
#[derive(Default)]
pub struct Affinity {
    /// The connection, and the [`Upstream::id`] it belongs to: after a reload, a connection
    /// to the previous upstream is never used again.
    sender: Mutex<Option<Held>>,
}

/// A kept upstream connection: the upstream it belongs to, its sender, and the file
/// descriptor it draws from the process's budget (`crate::fdlimit`).
type Held = (u64, SendRequest<Body>, OwnedSemaphorePermit);

/// Tells one [`Upstream`] (one configuration's) from another.
static NEXT_UPSTREAM_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// What [`Affinity`] has to offer a request.
enum Kept {
    /// An idle connection: use it.
    Ready(SendRequest<Body>, OwnedSemaphorePermit),
    /// None yet, or the upstream closed it: open one.
    Nothing,
    /// Still streaming an earlier response: use the shared pool this once.
    Busy,
}

impl Affinity {
    fn take(&self, upstream: u64) -> Kept {
        let Ok(mut slot) = self.sender.lock() else {
            return Kept::Busy;
        };
        match slot.take() {
            Some((id, sender, fd)) if id == upstream && sender.is_ready() => {
                Kept::Ready(sender, fd)
            }
            Some((id, sender, fd)) if id == upstream && !sender.is_closed() => {
                *slot = Some((id, sender, fd));
                Kept::Busy
            }
            // None yet, closed, or another configuration's (dropped: it closes).
            _ => Kept::Nothing,
        }
    }

    fn keep(&self, upstream: u64, sender: SendRequest<Body>, fd: OwnedSemaphorePermit) {
        if let Ok(mut slot) = self.sender.lock() {
            *slot = Some((upstream, sender, fd));
        }
    }
}

/// The configured upstream and its connection pool.
pub struct Upstream {
    client: Client<HttpsConnector<HttpConnector>, Body>,
    /// For the connections an [`Affinity`] keeps (HTTP/1 upstreams only).
    connector: Option<HttpsConnector<HttpConnector>>,
    id: u64,
    /// `Host` for requests on those connections: the upstream's authority.
    host: HeaderValue,
    scheme: Scheme,
    authority: Authority,
    /// The URL's path without a trailing `/`, prefixed to every forwarded path.
    base_path: String,
    timeout: Duration,
    /// How long a request waits for a file descriptor for a new upstream connection.
    connect_timeout: Duration,
    preserve_host: bool,
    /// A spliced WebSocket with no bytes either way for this long is closed
    /// (`limits.idle_timeout`).
    splice_idle: Duration,
}

impl Upstream {
    /// The upstream of `settings`; spliced WebSockets are closed after `splice_idle` without a
    /// byte either way.
    pub fn new(settings: &UpstreamSettings, splice_idle: Duration) -> Result<Upstream, String> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(settings.connect_timeout));
        let tls = tls_config(settings)?;
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http();
        let builder = match &settings.server_name {
            Some(name) => {
                builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(
                    rustls_pki_types::ServerName::try_from(name.clone())
                        .map_err(|e| format!("upstream.server_name: {e}"))?,
                ))
            }
            None => builder,
        };
        let connector = if settings.http2 {
            builder.enable_http2().wrap_connector(http)
        } else {
            builder.enable_http1().wrap_connector(http)
        };
        let affine_connector = (!settings.http2).then(|| connector.clone());
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(settings.pool_idle_timeout)
            // Idle connections are kept outside the descriptor budget: bounded here.
            .pool_max_idle_per_host(settings.pool_max_idle)
            .http1_writev(false)
            .http2_only(settings.http2)
            .build(connector);
        let url = &settings.url;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        Ok(Upstream {
            client,
            connector: affine_connector,
            id: NEXT_UPSTREAM_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
            scheme: if url.scheme() == "https" {
                Scheme::HTTPS
            } else {
                Scheme::HTTP
            },
            host: HeaderValue::from_str(&authority)
                .map_err(|e| format!("upstream authority: {e}"))?,
            authority: authority
                .parse()
                .map_err(|e| format!("upstream authority: {e}"))?,
            base_path: url.path().trim_end_matches('/').to_owned(),
            timeout: settings.timeout,
            connect_timeout: settings.connect_timeout,
            preserve_host: settings.preserve_host,
            splice_idle,
        })
    }

    /// Sends a request (headers already mutated) to the canonical `path` + `query` on the
    /// upstream. The [`Permit`] is the proof that the route's rule let the request through
    /// (only `authz::authorize` makes one), and `path` the [`CanonicalPath`] the rule matched:
    /// the types, not a convention, say that nothing is forwarded unauthorised or elsewhere.
    /// `client_upgrade` is the client side of a WebSocket handshake, spliced on a 101.
    /// `affinity` is the client connection's own upstream connection, if it keeps one.
    pub async fn forward(
        &self,
        mut request: Request<Body>,
        _permit: &Permit,
        path: &CanonicalPath,
        query: Option<&str>,
        client_upgrade: Option<OnUpgrade>,
        affinity: Option<&Affinity>,
    ) -> Result<(Response<Body>, Duration), UpstreamError> {
        let path = &path.path;
        let target = match query {
            Some(q) => format!("{}{path}?{q}", self.base_path),
            None => format!("{}{path}", self.base_path),
        };
        let path_and_query =
            PathAndQuery::try_from(target).map_err(|e| UpstreamError::Protocol(e.to_string()))?;
        let kept = match (affinity, &self.connector, &client_upgrade) {
            (Some(affinity), Some(_), None) => Some((affinity, affinity.take(self.id))),
            _ => None,
        };
        // A connection of the client connection's own is sent the origin-form target; the
        // pool needs the absolute URI to choose a connection.
        let own_connection = matches!(kept, Some((_, Kept::Ready(..) | Kept::Nothing)));
        let uri = if own_connection {
            Uri::from(path_and_query)
        } else {
            Uri::builder()
                .scheme(self.scheme.clone())
                .authority(self.authority.clone())
                .path_and_query(path_and_query)
                .build()
                .map_err(|e| UpstreamError::Protocol(e.to_string()))?
        };
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_11;
        let headers = request.headers_mut();
        // An HTTP/2 client's :authority was written as Host on arrival (`app`).
        if !self.preserve_host {
            headers.remove(http::header::HOST);
        }
        // The pooled client adds `Host` from the URI; an own connection's request says it here.
        if own_connection && !headers.contains_key(http::header::HOST) {
            headers.insert(http::header::HOST, self.host.clone());
        }

        let started = Instant::now();
        // A pooled request holds a descriptor of the budget for as long as its response
        // (or the upgraded connection) lasts.
        let mut pooled_fd = None;
        let sent = match kept {
            Some((affinity, Kept::Ready(sender, fd))) => {
                tokio::time::timeout(self.timeout, self.send_kept(affinity, sender, fd, request))
                    .await
            }
            // Boxed: opening a connection (connector, TLS, handshake) is a large future and
            // happens once per connection, while every request's future would carry its size.
            Some((affinity, Kept::Nothing)) => {
                tokio::time::timeout(self.timeout, Box::pin(self.send_fresh(affinity, request)))
                    .await
            }
            Some((_, Kept::Busy)) | None => {
                pooled_fd = Some(self.descriptor().await?);
                tokio::time::timeout(self.timeout, self.send_pooled(request)).await
            }
        };
        let upstream_latency = started.elapsed();
        let mut response = match sent {
            Err(_) => return Err(UpstreamError::Timeout),
            Ok(Err(e)) => return Err(e),
            Ok(Ok(response)) => response,
        };
        let switching = response.status() == StatusCode::SWITCHING_PROTOCOLS;
        if switching {
            // Only a WebSocket handshake tokengate forwarded as one is spliced, and only to a
            // WebSocket: any other 101 would open a tunnel past every route rule.
            match client_upgrade {
                Some(client_side) if upgrades_to_websocket(response.headers()) => {
                    let upstream_side = hyper::upgrade::on(&mut response);
                    let fd = pooled_fd.take();
                    let idle = self.splice_idle;
                    tokio::spawn(async move {
                        splice(client_side, upstream_side, idle).await;
                        drop(fd);
                    });
                }
                Some(_) => {
                    return Err(UpstreamError::Protocol(
                        "a 101 to a WebSocket handshake switched to another protocol".into(),
                    ))
                }
                None => return Err(UpstreamError::Protocol("unexpected 101 response".into())),
            }
        }
        mutate::strip_response(response.headers_mut(), switching);
        let response = response.map(|body| {
            let body = TrailerFilter::new(
                body.map_err(|e| Box::new(e) as crate::body::BoxError),
                TrailerRules::Response,
            );
            match pooled_fd {
                Some(fd) => Holding { body, _fd: fd }.boxed(),
                None => body.boxed(),
            }
        });
        Ok((response, upstream_latency))
    }

    /// A descriptor of the budget for a new upstream connection, waiting up to
    /// `upstream.connect_timeout`.
    async fn descriptor(&self) -> Result<OwnedSemaphorePermit, UpstreamError> {
        crate::fdlimit::for_upstream(self.connect_timeout)
            .await
            .ok_or(UpstreamError::Overloaded)
    }

    async fn send_pooled(
        &self,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        self.client.request(request).await.map_err(|e| {
            if crate::stall::is_body_read_timeout(&e) {
                UpstreamError::ClientBodyTimeout
            } else if e.is_connect() {
                UpstreamError::Unreachable(error_chain(&e))
            } else {
                UpstreamError::Protocol(error_chain(&e))
            }
        })
    }

    /// Sends on the connection the client connection kept. If the upstream had closed it
    /// before the request went out (an idle keep-alive timeout), a fresh one is opened.
    async fn send_kept(
        &self,
        affinity: &Affinity,
        mut sender: SendRequest<Body>,
        fd: OwnedSemaphorePermit,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        match sender.try_send_request(request).await {
            Ok(response) => {
                affinity.keep(self.id, sender, fd);
                Ok(response)
            }
            Err(mut e) => match e.take_message() {
                Some(unsent) => {
                    // The closed connection's descriptor is free again.
                    drop(fd);
                    Box::pin(self.send_fresh(affinity, unsent)).await
                }
                None => Err(sent_error(e.error())),
            },
        }
    }

    /// Opens a connection for the client connection to keep, and sends on it.
    async fn send_fresh(
        &self,
        affinity: &Affinity,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        let fd = self.descriptor().await?;
        let mut sender = self.connect().await?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| sent_error(&e))?;
        affinity.keep(self.id, sender, fd);
        Ok(response)
    }

    async fn connect(&self) -> Result<SendRequest<Body>, UpstreamError> {
        use tower_service::Service;
        let Some(connector) = &self.connector else {
            return Err(UpstreamError::Unreachable("no HTTP/1 connector".into()));
        };
        let uri = Uri::builder()
            .scheme(self.scheme.clone())
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .map_err(|e| UpstreamError::Unreachable(e.to_string()))?;
        let io = connector
            .clone()
            .call(uri)
            .await
            .map_err(|e| UpstreamError::Unreachable(error_chain(e.as_ref())))?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(io)
            .await
            .map_err(|e| UpstreamError::Unreachable(error_chain(&e)))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%error, "upstream connection ended");
            }
        });
        Ok(sender)
    }
}

/// `Upgrade: websocket` (alone) on a 101.
fn upgrades_to_websocket(headers: &http::HeaderMap) -> bool {
    let mut values = headers.get_all(http::header::UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case("websocket")),
        _ => false,
    }
}

/// Why a request sent on a kept connection got no response.
fn sent_error(e: &hyper::Error) -> UpstreamError {
    if crate::stall::is_body_read_timeout(e) {
        UpstreamError::ClientBodyTimeout
    } else {
        UpstreamError::Protocol(error_chain(e))
    }
}

/// A response body that keeps a file descriptor of the budget until it is dropped.
struct Holding<B> {
    body: B,
    _fd: OwnedSemaphorePermit,
}

impl<B> http_body::Body for Holding<B>
where
    B: http_body::Body + Unpin,
{
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<B::Data>, B::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Copies bytes both ways between the two upgraded connections until either side closes, or
/// no byte has moved either way for `idle` (a peer that stopped reading stalls both ways,
/// so this also bounds how long one can hold the tunnel).
async fn splice(client: OnUpgrade, upstream: OnUpgrade, idle: Duration) {
    let (client, upstream) = match tokio::join!(client, upstream) {
        (Ok(c), Ok(u)) => (c, u),
        (c, u) => {
            debug!(
                client_ok = c.is_ok(),
                upstream_ok = u.is_ok(),
                "upgrade failed"
            );
            return;
        }
    };
    let moved = Arc::new(Moved::new());
    let mut client = Touching::new(TokioIo::new(client), moved.clone());
    let mut upstream = Touching::new(TokioIo::new(upstream), moved.clone());
    let copy = tokio::io::copy_bidirectional(&mut client, &mut upstream);
    tokio::pin!(copy);
    loop {
        tokio::select! {
            ended = &mut copy => {
                if let Err(e) = ended {
                    debug!(error = %e, "upgraded connection ended");
                }
                return;
            }
            () = tokio::time::sleep(idle / 4) => {
                if moved.quiet_for() >= idle {
                    debug!(idle_s = idle.as_secs(), "closing an idle upgraded connection");
                    return;
                }
            }
        }
    }
}

/// When a byte last moved through a splice.
struct Moved {
    start: Instant,
    /// Milliseconds since `start`.
    last: std::sync::atomic::AtomicU64,
}

impl Moved {
    fn new() -> Moved {
        Moved {
            start: Instant::now(),
            last: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let now = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last.store(now, std::sync::atomic::Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(std::sync::atomic::Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// An upgraded connection that records in [`Moved`] every read or write that moved bytes.
struct Touching<IO> {
    inner: IO,
    moved: Arc<Moved>,
}

impl<IO> Touching<IO> {
    fn new(inner: IO, moved: Arc<Moved>) -> Touching<IO> {
        Touching { inner, moved }
    }
}

impl<IO: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Touching<IO> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.moved.touch();
        }
        polled
    }
}

impl<IO: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Touching<IO> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        if matches!(polled, std::task::Poll::Ready(Ok(n)) if n > 0) {
            this.moved.touch();
        }
        polled
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

fn tls_config(settings: &UpstreamSettings) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = &settings.ca_file {
        use rustls_pki_types::pem::PemObject;
        let certs = rustls_pki_types::CertificateDer::pem_file_iter(path)
            .map_err(|e| format!("upstream.ca_file {}: {e}", path.display()))?;
        for cert in certs {
            let cert = cert.map_err(|e| format!("upstream.ca_file {}: {e}", path.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("upstream.ca_file {}: {e}", path.display()))?;
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    // ALPN is set by the connector builder from the enabled HTTP versions.
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// The error and its causes, for logs (hyper's top-level message alone says little).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
