//! A reload (SIGHUP) applies every setting, or names it in a warning as needing a restart.
//! Against the real binary: one test per class of setting.

use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::process::{self, Running};
use crate::support::upstream::EchoUpstream;
use crate::support::{issuer_config, TestIssuer, TestKey};

struct Reloadable {
    _issuer: TestIssuer,
    _upstream: EchoUpstream,
    _dir: tempfile::TempDir,
    config: std::path::PathBuf,
    base: String,
    running: Running,
}

impl Reloadable {
    /// The binary on a file of `base` (issuer and upstream) plus `extra`.
    async fn start(extra: &str) -> Reloadable {
        let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
        let issuer = TestIssuer::start(vec![key]).await;
        let upstream = EchoUpstream::start().await;
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("proxy.yaml");
        let base = format!(
            "{}upstream: {{ url: {} }}\nroutes:\n  - {{ path: /public/**, auth: none }}\n  - {{ path: /slow/**, auth: none }}\n",
            issuer_config(&issuer, ""),
            upstream.url()
        );
        std::fs::write(&config, format!("{base}{extra}")).expect("write");
        let running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
        Reloadable {
            _issuer: issuer,
            _upstream: upstream,
            _dir: dir,
            config,
            base,
            running,
        }
    }

    /// Rewrites the file with `extra`, sends SIGHUP, and returns the log lines up to
    /// "configuration reloaded".
    fn reload(&self, extra: &str) -> Vec<String> {
        std::fs::write(&self.config, format!("{}{extra}", self.base)).expect("write");
        let pid = self.running.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .is_ok_and(|s| s.success()));
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(line) = self.running.logs.recv_timeout(Duration::from_millis(100)) {
                let done = line.contains("configuration reloaded")
                    || line.contains("configuration rejected");
                lines.push(line);
                if done {
                    return lines;
                }
            }
        }
        panic!("the reload never finished: {lines:?}");
    }

    fn addr(&self) -> String {
        self.base_url().trim_start_matches("http://").to_owned()
    }

    fn base_url(&self) -> &str {
        &self.running.base
    }
}

/// The status of `GET /public/x` with a `X-Big` header of `size` bytes, on a new connection.
async fn status_with_header(addr: &str, size: usize) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "GET /public/x HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(size)
    );
    let _ = stream.write_all(request.as_bytes()).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// `limits.*` apply to connections accepted after the reload (here `max_header_bytes`
/// lowered from 64 KiB to 8 KiB: a 30 KB header passes before and is 431 after).
#[tokio::test]
async fn a_reload_applies_connection_limits_to_new_connections() {
    let r = Reloadable::start("").await;
    assert_eq!(status_with_header(&r.addr(), 30_000).await, 200);
    let lines = r.reload("limits: { max_header_bytes: 8192 }\n");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("only a restart applies it")),
        "{lines:?}"
    );
    assert_eq!(status_with_header(&r.addr(), 30_000).await, 431);
    assert_eq!(status_with_header(&r.addr(), 1_000).await, 200);
}

/// What only a restart can apply is named, each in its own warning, by the reload that
/// changed it; everything else in the same file still applies.
#[tokio::test]
async fn a_reload_names_what_needs_a_restart() {
    let r = Reloadable::start("log: { level: info }\n").await;
    let lines = r.reload(
        "log: { level: debug }\nlimits: { max_connections: 77, max_header_bytes: 8192 }\nupstream_unused: x\n",
    );
    // An unknown field rejects the file: nothing applies, nothing is named.
    assert!(
        lines.iter().any(|l| l.contains("configuration rejected")),
        "{lines:?}"
    );
    let lines = r.reload(
        "log: { level: debug, format: text }\nlimits: { max_connections: 77, max_header_bytes: 8192 }\n",
    );
    for setting in ["limits.max_connections", "log.level"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains("only a restart applies it") && l.contains(setting)),
            "no warning names {setting}: {lines:?}"
        );
    }
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("only a restart applies it") && l.contains("max_header_bytes")),
        "{lines:?}"
    );
    // The rest of the file applied.
    assert_eq!(status_with_header(&r.addr(), 30_000).await, 431);
}

/// `shutdown_timeout` is read when the drain starts: a reload that shortens it makes SIGTERM
/// end a hung request after the new timeout, not the old one (30 s).
#[tokio::test]
async fn a_reload_applies_shutdown_timeout() {
    let mut r = Reloadable::start("").await;
    r.reload("shutdown_timeout: 1s\n");
    let slow = tokio::spawn({
        let url = format!("{}/slow/20000", r.base_url());
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || r.running.terminate())
        .await
        .expect("join");
    let took = started.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(8),
        "the drain took {took:?}: the reloaded shutdown_timeout (1 s) was not used"
    );
    assert!(
        took >= Duration::from_millis(900),
        "exited in {took:?}, before the shutdown_timeout"
    );
    slow.abort();
}
