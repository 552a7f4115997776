//! Hostile clients cannot exhaust tokengate (issue 13): clients that stop reading (HTTP/1.1
//! socket, HTTP/2 flow-control window, HTTP/2 with the windows wide open and the socket not
//! read: CVE-2019-9517), request bodies that stop arriving, header floods over HTTP/2, and
//! many slow readers under a low open-files limit. Limits that are per process (memory, file
//! descriptors) are tested against the built binary.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::Empty;
use hyper_util::rt::{TokioExecutor, TokioIo};
use jsonwebtoken::Algorithm;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpSocket, TcpStream};

use crate::support::process::{self, Running};
use crate::support::upstream::EchoUpstream;
use crate::support::{eventually, issuer_config, TestIssuer, TestKey, TestProxy};

const MIB: u64 = 1024 * 1024;
/// What a hostile reader asks for: far more than every socket buffer on the way holds.
const FIFTY_MIB: u64 = 50 * MIB;
/// The send timeout these tests configure, and what they allow on top of it: the time to
/// fill the socket buffers, the watchdog's tick and a noisy machine.
const SEND_TIMEOUT: Duration = Duration::from_secs(2);
const SLACK: Duration = Duration::from_secs(10);

/// Everything public (`auth: none`): these holes are open to anonymous clients.
fn public_config(issuer: &TestIssuer, upstream: &EchoUpstream, limits: &str) -> String {
    format!(
        "{}upstream: {{ url: {} }}\nroutes:\n  - {{ path: /**, auth: none }}\nlimits: {{ {limits} }}\n",
        issuer_config(issuer, ""),
        upstream.url()
    )
}

async fn setup(limits: &str) -> (TestIssuer, EchoUpstream, TestProxy) {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key]).await;
    let upstream = EchoUpstream::start().await;
    let proxy = TestProxy::start(&public_config(&issuer, &upstream, limits)).await;
    (issuer, upstream, proxy)
}

/// A well-behaved client asking every 200 ms until stopped; counts answers and failures.
struct NormalClient {
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl NormalClient {
    fn start(url: String) -> NormalClient {
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let (s, ok, bad) = (stop.clone(), served.clone(), failed.clone());
        let task = tokio::spawn(async move {
            let client = reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("client");
            while !s.load(Ordering::SeqCst) {
                let answered = match client.get(&url).send().await {
                    Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if answered {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    bad.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        NormalClient {
            stop,
            served,
            failed,
            task,
        }
    }

    /// Stops it and returns (served, failed).
    async fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.task.await;
        (
            self.served.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }
}

/// A TCP connection with a tiny receive buffer that sends `request` and then never reads.
async fn never_reading(addr: std::net::SocketAddr, request: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stream = socket.connect(addr).await.expect("connect");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    stream
}

/// Reads until the proxy closes the connection; returns the bytes read, or panics when it
/// stays open for `limit`.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> u64 {
    let mut total = 0u64;
    let mut buf = vec![0u8; 256 * 1024];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return total,
            Ok(Ok(n)) => total += n as u64,
            Err(_) => panic!("the connection was still open after {limit:?} ({total} bytes read)"),
        }
    }
}

/// Waits until the upstream has at most `count` connections open; returns how long it took.
async fn upstream_back_to(upstream: &EchoUpstream, count: usize, limit: Duration) -> Duration {
    let started = Instant::now();
    while upstream.open_connections() > count {
        assert!(
            started.elapsed() < limit,
            "the upstream still has {} connections open (idle count {count}) after {limit:?}",
            upstream.open_connections()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_never_reading_http1_client_is_cut_off_and_its_upstream_released() {
    let (_issuer, upstream, proxy) = setup("send_timeout: 2s").await;
    let normal = NormalClient::start(proxy.url("/ok"));
    assert!(eventually(10, async || upstream.open_connections() >= 1).await);
    let idle = upstream.open_connections();

    let started = Instant::now();
    let mut reader = never_reading(
        proxy.addr,
        &format!("GET /big/{FIFTY_MIB} HTTP/1.1\r\nHost: hostile\r\n\r\n"),
    )
    .await;
    assert!(
        eventually(10, async || upstream.open_connections() > idle).await,
        "the request never reached the upstream"
    );
    let released = upstream_back_to(&upstream, idle, SEND_TIMEOUT + SLACK).await;
    let cut_after = started.elapsed();
    let read = read_until_closed(&mut reader, SLACK).await;
    assert!(read < FIFTY_MIB, "the whole response was delivered");
    let (served, failed) = normal.finish().await;
    eprintln!(
        "HTTP/1.1 never-reading client: upstream released {:.1}s after the request \
         (send_timeout {SEND_TIMEOUT:?}), {read} bytes had been sent; normal client {served} served, {failed} failed",
        cut_after.as_secs_f64()
    );
    assert!(released <= SEND_TIMEOUT + SLACK);
    assert_eq!(failed, 0, "the normal client was not served throughout");
    assert!(served >= 5, "the normal client was served {served} times");
}

/// The send timeout is about progress, not speed: a client that keeps reading, far slower
/// than loopback allows (about 2 MiB a second), keeps its download for four send timeouts.
/// Progress is counted in writes the kernel accepts, so the client must drain a part of
/// the socket's send buffer within each send timeout (README "Limits").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_http1_reader_that_keeps_reading_is_not_cut_off() {
    let (_issuer, upstream, proxy) = setup("send_timeout: 2s").await;
    let mut reader = TcpStream::connect(proxy.addr).await.expect("connect");
    reader
        .write_all(format!("GET /big/{FIFTY_MIB} HTTP/1.1\r\nHost: slow\r\n\r\n").as_bytes())
        .await
        .expect("send");
    assert!(eventually(10, async || upstream.open_connections() >= 1).await);
    let mut total = 0usize;
    let mut buf = vec![0u8; 64 * 1024];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(8) {
        let n = tokio::time::timeout(Duration::from_secs(5), reader.read(&mut buf))
            .await
            .expect("no data for 5 s")
            .expect("read");
        assert!(
            n > 0,
            "cut off after {total} bytes and {:?}",
            started.elapsed()
        );
        total += n;
        // 64 KiB every 30 ms at most: about 2 MiB/s.
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert_eq!(
        upstream.open_connections(),
        1,
        "the upstream connection was released while the client was reading"
    );
    eprintln!("slow HTTP/1.1 reader: {total} bytes over 8 s, still served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zero_window_http2_client_is_cut_off_and_cannot_pin_more_upstreams_than_its_streams() {
    let (_issuer, upstream, proxy) =
        setup("send_timeout: 2s, http2_max_concurrent_streams: 20").await;
    let normal = NormalClient::start(proxy.url("/ok"));
    assert!(eventually(10, async || upstream.open_connections() >= 1).await);
    let idle = upstream.open_connections();

    // A window of zero: the proxy may send headers but no byte of any body.
    let stream = TcpStream::connect(proxy.addr).await.expect("connect");
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(0)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(stream))
        .await
        .expect("h2 handshake");
    let connection = tokio::spawn(connection);
    let heads = Arc::new(AtomicUsize::new(0));
    let mut streams = Vec::new();
    for _ in 0..50 {
        let mut sender = sender.clone();
        let heads = heads.clone();
        let uri = format!("http://{}/big/{FIFTY_MIB}", proxy.addr);
        streams.push(tokio::spawn(async move {
            let request = http::Request::get(uri)
                .body(Empty::<Bytes>::new())
                .expect("request");
            if let Ok(response) = sender.send_request(request).await {
                heads.fetch_add(1, Ordering::SeqCst);
                // Held, never read: the window stays shut.
                tokio::time::sleep(Duration::from_secs(60)).await;
                drop(response);
            }
        }));
    }
    let mut most = 0;
    let started = Instant::now();
    while heads.load(Ordering::SeqCst) < 20 && started.elapsed() < SLACK {
        most = most.max(upstream.open_connections());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        heads.load(Ordering::SeqCst),
        20,
        "20 streams should get their heads"
    );
    let stalled_at = Instant::now();
    let closed = tokio::time::timeout(SEND_TIMEOUT + SLACK, async {
        let mut connection = connection;
        loop {
            most = most.max(upstream.open_connections());
            tokio::select! {
                _ = &mut connection => return,
                () = tokio::time::sleep(Duration::from_millis(20)) => {}
            }
        }
    })
    .await;
    let cut_after = stalled_at.elapsed();
    assert!(
        closed.is_ok(),
        "the zero-window connection was still open {:?} after its streams stalled",
        SEND_TIMEOUT + SLACK
    );
    let released = upstream_back_to(&upstream, idle, SLACK).await;
    for s in streams {
        s.abort();
    }
    let (served, failed) = normal.finish().await;
    eprintln!(
        "HTTP/2 zero-window client: at most {} upstream connections for 50 requests on 20 streams; \
         connection closed {:.1}s after the 20th head (send_timeout {SEND_TIMEOUT:?}), upstream idle {:.1}s later; \
         normal client {served} served, {failed} failed",
        most - idle,
        cut_after.as_secs_f64(),
        released.as_secs_f64()
    );
    assert!(
        most <= idle + 20,
        "one HTTP/2 connection pinned {} upstream connections with 20 streams allowed",
        most - idle
    );
    assert_eq!(failed, 0, "the normal client was not served throughout");
    assert!(served >= 5, "the normal client was served {served} times");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_request_body_is_408_and_releases_the_upstream() {
    let (_issuer, upstream, proxy) = setup("body_read_timeout: 2s").await;
    let mut client = never_reading(
        proxy.addr,
        "POST /upload HTTP/1.1\r\nHost: hostile\r\nContent-Length: 1000000\r\n\r\n0123456789",
    )
    .await;
    assert!(eventually(10, async || upstream.open_connections() >= 1).await);
    let started = Instant::now();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(SEND_TIMEOUT + SLACK, client.read_to_end(&mut answer)).await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the connection stayed open");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    upstream_back_to(&upstream, 0, SLACK).await;
    eprintln!(
        "stalled request body: 408 after {:.1}s (body_read_timeout 2s)",
        elapsed.as_secs_f64()
    );
}

#[tokio::test]
async fn an_http2_request_with_1000_headers_is_refused_like_its_http1_twin() {
    let (_issuer, _upstream, proxy) = setup("send_timeout: 60s").await;
    let h1 = reqwest::Client::builder()
        .http1_only()
        .build()
        .expect("client");
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    for (name, client) in [("HTTP/1.1", &h1), ("HTTP/2", &h2)] {
        for (count, expected) in [(90, 200), (1000, 431)] {
            let mut request = client.get(proxy.url("/echo"));
            for i in 0..count {
                request = request.header(format!("x-h-{i}"), "v");
            }
            let status = request.send().await.expect("send").status().as_u16();
            assert_eq!(status, expected, "{name} with {count} headers");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_pooled_upstream_connections_are_capped() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {}, pool_max_idle: 2 }}\nroutes:\n  - {{ path: /**, auth: none }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    // Twenty streams at once on one HTTP/2 connection: twenty pooled upstream connections.
    let requests = (0..20).map(|_| {
        let r = client.get(proxy.url("/slow/300")).send();
        async move { r.await.map(|r| r.status().as_u16()) }
    });
    let statuses = futures_util::future::join_all(requests).await;
    assert!(
        statuses.iter().all(|s| matches!(s, Ok(200))),
        "{statuses:?}"
    );
    assert!(
        upstream.connections() >= 10,
        "the burst did not use many connections"
    );
    assert!(
        eventually(5, async || upstream.open_connections() <= 2).await,
        "{} idle upstream connections kept; pool_max_idle is 2",
        upstream.open_connections()
    );
}

/// A socket whose reading can be stopped: the client that opens its windows wide and then
/// stops reading at the TCP level (CVE-2019-9517).
struct Pausable {
    inner: TcpStream,
    paused: Arc<AtomicBool>,
}

impl AsyncRead for Pausable {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        if this.paused.load(Ordering::SeqCst) {
            // Never woken: this client reads nothing more.
            return Poll::Pending;
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for Pausable {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// Opens one HTTP/2 connection with the largest windows, stops reading, and starts
/// `streams` downloads of `size` bytes; returns once they reached `upstream`, with the
/// handles to keep.
async fn open_wide_and_stop_reading(
    addr: std::net::SocketAddr,
    upstream: &EchoUpstream,
    streams: usize,
    size: u64,
) -> Vec<tokio::task::JoinHandle<()>> {
    let paused = Arc::new(AtomicBool::new(false));
    let io = Pausable {
        inner: TcpStream::connect(addr).await.expect("connect"),
        paused: paused.clone(),
    };
    let (sender, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .initial_stream_window_size(i32::MAX as u32)
        .initial_connection_window_size(i32::MAX as u32)
        .handshake::<_, Empty<Bytes>>(TokioIo::new(io))
        .await
        .expect("h2 handshake");
    // From here on nothing is read: not a response head, not a PING.
    paused.store(true, Ordering::SeqCst);
    let mut tasks = vec![tokio::spawn(async move {
        let _ = connection.await;
    })];
    let arrived = upstream.count();
    for _ in 0..streams {
        let mut sender = sender.clone();
        let uri = format!("http://{addr}/big/{size}");
        tasks.push(tokio::spawn(async move {
            let request = http::Request::get(uri)
                .body(Empty::<Bytes>::new())
                .expect("request");
            let _ = sender.send_request(request).await;
        }));
    }
    let started = Instant::now();
    while upstream.count() < arrived + streams {
        assert!(
            started.elapsed() < SLACK,
            "only {} of {streams} requests reached the upstream",
            upstream.count() - arrived
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tasks
}

/// Starts the binary with everything public in front of `upstream`, `limits` added.
fn spawn_public(
    wrapper: &[&str],
    issuer: &TestIssuer,
    upstream: &EchoUpstream,
    extra: &str,
    dir: &tempfile::TempDir,
) -> Running {
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "{}{extra}",
            public_config(issuer, upstream, "send_timeout: 5s")
        ),
    )
    .expect("write config");
    process::spawn_under(wrapper, &["--config", config.to_str().unwrap_or_default()])
}

/// The memory one hostile HTTP/2 connection can make the proxy hold, in MiB: the bound
/// README "Limits" documents for the default limits (100 streams, 64 KiB send buffer each).
const MIB_PER_HOSTILE_CONNECTION: f64 = 32.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_held_for_http2_clients_that_stop_reading_is_bounded() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key]).await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = spawn_public(&[], &issuer, &upstream, "", &dir);
    let addr: std::net::SocketAddr = running
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    // Warm up both protocols, so what is measured is what the hostile clients add.
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    for _ in 0..20 {
        let _ = h2
            .get(format!("{}/big/{MIB}", running.base))
            .send()
            .await
            .map(|r| r.bytes());
        let _ = reqwest::get(format!("{}/ok", running.base)).await;
    }
    for connections in [1usize, 10] {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let idle = upstream.open_connections();
        let before = running.peak_rss_kib();
        let mut held = Vec::new();
        for _ in 0..connections {
            held.extend(open_wide_and_stop_reading(addr, &upstream, 100, 4 * MIB).await);
        }
        // The proxy buffers what it may, the send timeout (5 s) closes the connections.
        upstream_back_to(&upstream, idle, Duration::from_secs(5) + SLACK * 2).await;
        let after = running.peak_rss_kib();
        for t in held {
            t.abort();
        }
        let growth = after.saturating_sub(before) as f64 / 1024.0;
        let bound = MIB_PER_HOSTILE_CONNECTION * connections as f64;
        eprintln!(
            "CVE-2019-9517 pattern, {connections} connection(s) x 100 streams x 4 MiB: proxy peak RSS {:.1} -> {:.1} MiB (+{growth:.1} MiB, {:.1} MiB per connection; bound {bound} MiB)",
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            growth / connections as f64
        );
        assert!(before > 0, "could not read the proxy's memory");
        assert!(growth < bound, "peak RSS grew by {growth:.1} MiB");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_an_open_files_limit_of_1024_slow_readers_cannot_stop_metrics_or_clients() {
    let _ = rlimit::increase_nofile_limit(4096);
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key]).await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let running = spawn_public(
        &["prlimit", "--nofile=1024:1024", "--"],
        &issuer,
        &upstream,
        "admin: { listen: 127.0.0.1:0 }\n",
        &dir,
    );
    let limit_line = running
        .startup
        .iter()
        .find(|l| l.contains("open files limit"))
        .unwrap_or_else(|| panic!("no open-files line in {:?}", running.startup))
        .clone();
    assert!(limit_line.contains("\"hard\":1024"), "{limit_line}");
    let mut logged = Vec::new();
    let admin = loop {
        let line = running
            .logs
            .recv_timeout(Duration::from_secs(10))
            .expect("no admin listener line");
        let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
        logged.push(line.clone());
        if let Some(a) = event["admin"].as_str() {
            break format!("http://{a}");
        }
    };
    let addr: std::net::SocketAddr = running
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");

    let mut readers = Vec::new();
    for _ in 0..600 {
        readers.push(
            never_reading(
                addr,
                &format!("GET /big/{} HTTP/1.1\r\nHost: slow\r\n\r\n", 8 * MIB),
            )
            .await,
        );
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let metrics = tokio::time::timeout(
        Duration::from_secs(5),
        client.get(format!("{admin}/metrics")).send(),
    )
    .await
    .expect("/metrics did not answer within 5 s")
    .expect("/metrics");
    assert_eq!(metrics.status(), 200);
    let metrics_after = started.elapsed();
    let served = tokio::time::timeout(
        Duration::from_secs(5) + SLACK * 3,
        client.get(format!("{}/ok", running.base)).send(),
    )
    .await
    .expect("a normal client was not served")
    .expect("request");
    assert_eq!(served.status(), 200);
    let served_after = started.elapsed();
    while let Ok(line) = running.logs.recv_timeout(Duration::from_millis(200)) {
        logged.push(line);
    }
    drop(readers);
    eprintln!(
        "prlimit --nofile=1024, 600 slow readers: /metrics in {:.2}s, a normal client in {:.1}s; {limit_line}",
        metrics_after.as_secs_f64(),
        served_after.as_secs_f64()
    );
    assert!(
        !logged.iter().any(|l| l.contains("Too many open files")),
        "the proxy ran out of descriptors: {:?}",
        logged
            .iter()
            .filter(|l| l.contains("Too many open files"))
            .take(3)
            .collect::<Vec<_>>()
    );
    assert!(
        logged.iter().any(|l| l.contains("connection limit")),
        "the effective connection limit was not logged"
    );
}

#[test]
fn check_warns_when_max_connections_exceeds_the_open_files_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        "dev_issuer: {}\nupstream: { url: http://127.0.0.1:9 }\nlimits: { max_connections: 25000 }\n",
    )
    .expect("write");
    let out = std::process::Command::new("prlimit")
        .args([
            "--nofile=1024:1024",
            "--",
            process::BIN,
            "check",
            "--config",
        ])
        .arg(&config)
        .output()
        .expect("prlimit (util-linux) must be installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains(
            "warning: limits.max_connections is 25000 but the open-files limit (1024) holds 432"
        ),
        "{stdout}"
    );
    std::fs::write(
        &config,
        "dev_issuer: {}\nlimits:\n  max_connections: 100\n  send_timeout: 0s\n",
    )
    .expect("write");
    let quiet = std::process::Command::new("prlimit")
        .args([
            "--nofile=1024:1024",
            "--",
            process::BIN,
            "check",
            "--config",
        ])
        .arg(&config)
        .output()
        .expect("prlimit");
    let stderr = String::from_utf8_lossy(&quiet.stderr);
    assert_eq!(quiet.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("proxy.yaml:4: limits.send_timeout: timeouts must be above zero"),
        "{stderr}"
    );
}

/// The admin listener serves 32 connections at once: clients that connect and then send
/// nothing, half a request head, or only the HTTP/2 preface must not hold those slots for
/// ever, or one of them stops `/metrics` and `/readyz` (Prometheus and the kubelet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_admin_connections_do_not_keep_metrics_from_answering() {
    let proxy = TestProxy::start(
        "dev_issuer: { audience: api://default }\nlimits: { header_read_timeout: 1s, send_timeout: 1s }\n",
    )
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let admin = listener.local_addr().expect("addr");
    tokio::spawn(tokengate::run_admin(
        listener,
        proxy.gateway.clone(),
        std::future::pending(),
    ));
    let mut held = Vec::new();
    for i in 0..tokengate::fdlimit::ADMIN_CONNECTIONS + 8 {
        let mut stream = TcpStream::connect(admin).await.expect("connect admin");
        let opening: &[u8] = match i % 3 {
            0 => b"",
            1 => b"GET /metrics HTTP/1.1\r\nHost: a",
            _ => b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        };
        stream.write_all(opening).await.expect("write");
        held.push(stream);
    }
    // Every slot is taken now: without a limit on how long an admin connection may sit
    // there, this request waits for ever.
    let started = Instant::now();
    let metrics = tokio::time::timeout(
        Duration::from_secs(3) + SLACK,
        reqwest::get(format!("http://{admin}/metrics")),
    )
    .await
    .expect("/metrics did not answer while silent clients held the admin listener")
    .expect("/metrics");
    assert_eq!(metrics.status(), 200);
    eprintln!(
        "/metrics answered {:.1}s after {} silent admin connections",
        started.elapsed().as_secs_f64(),
        held.len()
    );
}
