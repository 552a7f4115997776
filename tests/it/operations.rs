//! Operations: metrics, access log, reload, drain, TLS, limits, inspect.

use std::time::{Duration, Instant};

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::process;
use crate::support::tls::TestCa;
use crate::support::upstream::EchoUpstream;
use crate::support::{issuer_config, TestIssuer, TestKey, TestProxy};

/// Starts the admin listener of a test proxy and returns its base URL.
async fn admin(proxy: &TestProxy) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind admin");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(tokengate::run_admin(
        listener,
        proxy.gateway.clone(),
        std::future::pending(),
    ));
    format!("http://{addr}")
}

fn metric(text: &str, line_start: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(line_start))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_known_traffic_exactly() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    let admin = admin(&proxy).await;
    let token = issuer.token(&key);
    for _ in 0..3 {
        assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    }
    for _ in 0..2 {
        assert_eq!(
            reqwest::get(proxy.url("/secure"))
                .await
                .expect("r")
                .status(),
            401
        );
    }
    assert_eq!(proxy.get_with("/nope", &token).await.status(), 404);
    assert_eq!(
        proxy
            .get_with("/api/messages", &issuer.token_with(&key, json!({"exp": 1})))
            .await
            .status(),
        401
    );

    let text = reqwest::get(format!("{admin}/metrics"))
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    let requests = |status: &str, reason: &str| {
        metric(&text, &format!("tokengate_requests_total{{route=\"-\",method=\"read\",status=\"{status}\",reason=\"{reason}\"}}"))
    };
    assert_eq!(requests("200", "ok"), Some(3.0), "{text}");
    assert_eq!(requests("401", "token_missing"), Some(2.0), "{text}");
    assert_eq!(requests("404", "not_found"), Some(1.0), "{text}");
    assert_eq!(requests("401", "token_expired"), Some(1.0), "{text}");
    // The readiness polls of wait_ready are counted too, under reason "ready".
    assert!(requests("200", "ready").is_some_and(|n| n >= 1.0), "{text}");
    assert_eq!(
        metric(&text, "tokengate_token_cache_hits_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tokengate_token_cache_misses_total"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        metric(&text, "tokengate_token_cache_entries"),
        Some(1.0),
        "{text}"
    );
    let issuer_label = format!("{{issuer=\"{}\"}}", issuer.url());
    assert_eq!(
        metric(&text, &format!("tokengate_keys_loaded{issuer_label}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        metric(
            &text,
            &format!(
                "tokengate_jwks_fetches_total{{issuer=\"{}\",outcome=\"ok\"}}",
                issuer.url()
            )
        ),
        Some(issuer.jwks_fetches() as f64),
        "{text}"
    );
    assert!(metric(
        &text,
        &format!("tokengate_seconds_since_last_good_fetch{issuer_label}")
    )
    .is_some_and(|s| s < 60.0));
    assert_eq!(
        metric(&text, "tokengate_in_flight_requests"),
        Some(0.0),
        "{text}"
    );
    assert!(
        metric(&text, "tokengate_request_duration_seconds_count").is_some_and(|n| n >= 7.0),
        "{text}"
    );

    assert_eq!(
        reqwest::get(format!("{admin}/healthz"))
            .await
            .expect("h")
            .status(),
        200
    );
    assert_eq!(
        reqwest::get(format!("{admin}/readyz"))
            .await
            .expect("r")
            .status(),
        200
    );
}

#[tokio::test]
async fn the_access_log_names_the_request_and_never_the_token() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "{}upstream: {{ url: {} }}\n",
            issuer_config(&issuer, ""),
            upstream.url()
        ),
    )
    .expect("write");
    let running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let token = issuer.token(&key);
    let client = reqwest::Client::new();
    let mut response = None;
    for _ in 0..100 {
        let r = client
            .post(format!("{}/orders/../orders/7?secret=query", running.base))
            .bearer_auth(&token)
            .header("x-request-id", "client-chosen-id")
            .body("twelve bytes")
            .send()
            .await
            .expect("request");
        if r.status() == 200 {
            response = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let response = response.expect("the proxy never served the request");
    let id = response
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(
        id.len(),
        32,
        "an untrusted peer's request id is replaced: {id}"
    );
    assert_eq!(
        upstream
            .last()
            .and_then(|r| r.header("x-request-id").map(str::to_owned)),
        Some(id.clone())
    );
    let body = response.bytes().await.expect("body").len();

    let mut line = None;
    for _ in 0..50 {
        while let Ok(l) = running.logs.recv_timeout(Duration::from_millis(100)) {
            assert!(
                !l.contains(&token) && !l.contains("Bearer"),
                "a token was logged: {l}"
            );
            assert!(!l.contains("secret=query"), "the query was logged: {l}");
            if l.contains(&id) {
                line = Some(l);
            }
        }
        if line.is_some() {
            break;
        }
    }
    let event: Value =
        serde_json::from_str(&line.expect("no access log line for the request")).expect("json");
    assert_eq!(event["method"], "POST");
    assert_eq!(event["path"], "/orders/7");
    assert_eq!(event["status"], 200);
    assert_eq!(event["reason"], "ok");
    assert_eq!(event["issuer"], issuer.url());
    assert_eq!(event["sub"], "user-1");
    assert_eq!(event["bytes_in"], 12);
    assert_eq!(event["bytes_out"], body as u64);
    assert!(event["client"]
        .as_str()
        .is_some_and(|c| c.starts_with("127.0.0.1:")));
    assert!(
        event["upstream_us"].is_u64()
            && event["latency_us"].is_u64()
            && event["duration_us"].is_u64()
    );
}

#[tokio::test]
async fn a_trusted_proxy_keeps_its_request_id() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\ntrusted_proxies: [127.0.0.1]\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let r = reqwest::Client::new()
        .get(proxy.url("/x"))
        .bearer_auth(issuer.token(&key))
        .header("x-request-id", "edge-4711")
        .send()
        .await
        .expect("request");
    assert_eq!(
        r.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some("edge-4711")
    );
    assert_eq!(
        upstream
            .last()
            .and_then(|r| r.header("x-request-id").map(str::to_owned)),
        Some("edge-4711".to_string())
    );
}

#[tokio::test]
async fn a_reload_swaps_the_configuration_and_keeps_unchanged_issuers_keys() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let base = format!(
        "{}upstream: {{ url: {} }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&base).await;
    proxy.wait_ready().await;
    assert_eq!(
        reqwest::get(proxy.url("/public/x"))
            .await
            .expect("r")
            .status(),
        401
    );
    let fetches = issuer.jwks_fetches();

    let next = format!("{base}routes:\n  - {{ path: /public/**, auth: none }}\n");
    let same_listener = tokengate::config::Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let settings =
        tokengate::config::load_str(std::path::Path::new("t.yaml"), &next, &same_listener)
            .expect("valid");
    let needs = proxy.gateway.reload(settings).expect("reload");
    assert!(needs.0.is_empty(), "{needs:?}");
    assert_eq!(
        reqwest::get(proxy.url("/public/x"))
            .await
            .expect("r")
            .status(),
        200
    );
    assert_eq!(
        proxy
            .get_with("/private", &issuer.token(&key))
            .await
            .status(),
        200
    );
    // Keys of the unchanged issuer were kept, not refetched.
    assert_eq!(issuer.jwks_fetches(), fetches);
    // The verified-token cache starts empty with the new configuration.
    assert_eq!(proxy.app().cache().len(), 1);
}

#[tokio::test]
async fn sighup_applies_a_valid_file_and_rejects_an_invalid_one() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    let base = format!(
        "{}upstream: {{ url: {} }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    std::fs::write(&config, &base).expect("write");
    let running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let pid = running.child.id().to_string();
    let client = reqwest::Client::new();
    let status = |path: &'static str| {
        let (client, base) = (client.clone(), running.base.clone());
        async move {
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }
    };
    assert_eq!(status("/public/x").await, 401);

    // An invalid file: rejected with check's messages, the old configuration keeps serving.
    std::fs::write(
        &config,
        format!("{base}routes:\n  - {{ path: /public/**, auth: nobody }}\n"),
    )
    .expect("write");
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .is_ok_and(|s| s.success()));
    let mut rejected = false;
    for _ in 0..100 {
        if let Ok(l) = running.logs.recv_timeout(Duration::from_millis(100)) {
            if l.contains("configuration rejected") && l.contains("`nobody` is not an auth mode") {
                rejected = true;
                break;
            }
        }
    }
    assert!(rejected, "no rejection logged");
    assert_eq!(status("/public/x").await, 401);

    // A valid file: applied without a restart.
    std::fs::write(
        &config,
        format!("{base}routes:\n  - {{ path: /public/**, auth: none }}\n"),
    )
    .expect("write");
    assert!(std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .is_ok_and(|s| s.success()));
    let mut applied = false;
    for _ in 0..100 {
        if status("/public/x").await == 200 {
            applied = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(applied, "the new configuration was not applied");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_request_finish() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "{}upstream: {{ url: {} }}\n",
            issuer_config(&issuer, ""),
            upstream.url()
        ),
    )
    .expect("write");
    let mut running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let token = issuer.token(&key);
    let client = reqwest::Client::new();
    for _ in 0..100 {
        if client
            .get(format!("{}/warm", running.base))
            .bearer_auth(&token)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let slow = tokio::spawn({
        let (client, url, token) = (
            client.clone(),
            format!("{}/slow/1500", running.base),
            token.clone(),
        );
        async move {
            client
                .get(url)
                .bearer_auth(token)
                .send()
                .await
                .map(|r| r.status().as_u16())
        }
    });
    tokio::time::sleep(Duration::from_millis(400)).await;
    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || running.terminate())
        .await
        .expect("join");
    assert_eq!(
        slow.await.expect("join").ok(),
        Some(200),
        "the in-flight request did not complete"
    );
    assert_eq!(code, Some(0));
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "exited before the request finished"
    );
}

#[tokio::test]
async fn tls_with_alpn_h2_and_client_certificates() {
    let ca = TestCa::new();
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert_pem, key_pem) = ca.leaf_pem(&["localhost"]);
    let (cert, key_file, ca_file) = (
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &cert_pem).expect("write");
    std::fs::write(&key_file, &key_pem).expect("write");
    std::fs::write(&ca_file, ca.pem()).expect("write");
    let tls = format!(
        "tls: {{ cert: {}, key: {} }}\n",
        cert.display(),
        key_file.display()
    );
    let proxy = TestProxy::start(&format!("{}{tls}", issuer_config(&issuer, ""))).await;
    let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("root");
    let client = reqwest::Client::builder()
        .tls_certs_only([root.clone()])
        .build()
        .expect("client");
    let url = format!("https://localhost:{}/api/messages", proxy.addr.port());
    let mut served = None;
    for _ in 0..100 {
        if let Ok(r) = client
            .get(&url)
            .bearer_auth(issuer.token(&key))
            .send()
            .await
        {
            if r.status() == 200 {
                served = Some(r);
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = served.expect("no TLS response");
    assert_eq!(
        r.version(),
        reqwest::Version::HTTP_2,
        "ALPN h2 was not negotiated"
    );
    // Plain HTTP on the TLS port is not served.
    assert!(
        reqwest::get(format!("http://127.0.0.1:{}/healthz", proxy.addr.port()))
            .await
            .is_err()
    );

    // mTLS: the client CA is required.
    let (client_cert, client_key) = ca.leaf_pem(&["client.test"]);
    let mtls = format!(
        "tls: {{ cert: {}, key: {}, client_ca: {} }}\n",
        cert.display(),
        key_file.display(),
        ca_file.display()
    );
    let proxy = TestProxy::start(&format!("{}{mtls}", issuer_config(&issuer, ""))).await;
    let url = format!("https://localhost:{}/healthz", proxy.addr.port());
    let anonymous = reqwest::Client::builder()
        .tls_certs_only([root.clone()])
        .build()
        .expect("client");
    assert!(
        anonymous.get(&url).send().await.is_err(),
        "a client without a certificate was served"
    );
    let identity = reqwest::Identity::from_pem(format!("{client_cert}{client_key}").as_bytes())
        .expect("identity");
    let with_cert = reqwest::Client::builder()
        .tls_certs_only([root])
        .identity(identity)
        .build()
        .expect("client");
    assert_eq!(
        with_cert
            .get(&url)
            .send()
            .await
            .expect("mTLS request")
            .status(),
        200
    );
}

/// Reads from `stream` until it closes; the time it took, or None after `limit`.
async fn closed_within(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    let started = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            limit.saturating_sub(started.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => continue,
            Err(_) => return None,
        }
    }
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer_with(&issuer, "limits: { header_read_timeout: 1s }\n").await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .expect("write");
    let closed = closed_within(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed.is_some_and(|d| d < Duration::from_secs(3)),
        "{closed:?}"
    );
    // Others are still served.
    assert_eq!(
        reqwest::get(proxy.url("/healthz"))
            .await
            .expect("r")
            .status(),
        200
    );
}

#[tokio::test]
async fn oversized_headers_are_refused() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer_with(&issuer, "limits: { max_header_bytes: 16384 }\n").await;
    let mut stream = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let big = "a".repeat(64 * 1024);
    let _ = stream
        .write_all(format!("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n").as_bytes())
        .await;
    let mut response = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut response)).await;
    let text = String::from_utf8_lossy(&response);
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 431"),
        "{text:.100}"
    );
    assert_eq!(
        reqwest::get(proxy.url("/healthz"))
            .await
            .expect("r")
            .status(),
        200
    );
}

#[tokio::test]
async fn beyond_max_connections_new_ones_wait_and_are_served_later() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer_with(&issuer, "limits: { max_connections: 2 }\n").await;
    let first = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let second = tokio::net::TcpStream::connect(proxy.addr)
        .await
        .expect("connect");
    let third = tokio::spawn({
        let url = proxy.url("/healthz");
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !third.is_finished(),
        "a third connection was served beyond max_connections: 2"
    );
    drop(first);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), third)
            .await
            .ok()
            .and_then(|j| j.ok())
            .and_then(Result::ok),
        Some(200)
    );
    drop(second);
}

#[tokio::test]
async fn ten_thousand_idle_connections_do_not_stop_a_new_client() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!("{}log: {{ level: info }}\n", issuer_config(&issuer, "")),
    )
    .expect("write");
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let open_files: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        open_files >= 10_500,
        "this test needs `ulimit -n` of at least 10500 (it is {open_files}); .ci/run raises it"
    );
    let running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let addr: std::net::SocketAddr = running
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let mut idle = Vec::with_capacity(10_000);
    for _ in 0..10_000 {
        match tokio::net::TcpStream::connect(addr).await {
            Ok(s) => idle.push(s),
            Err(e) => panic!("connection {} failed: {e}", idle.len()),
        }
    }
    let started = Instant::now();
    let r = reqwest::get(format!("{}/healthz", running.base))
        .await
        .expect("a new client was not served");
    assert_eq!(r.status(), 200);
    eprintln!(
        "10,000 idle connections: a new client served in {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    drop(idle);
}

#[tokio::test]
async fn inspect_explains_each_check() {
    let key = TestKey::load("rsa-a", "kid-1", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [key.jwk]}).to_string()).expect("write");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        issuer_config(
            &issuer,
            &format!(
                "    jwks_file: {}\n    claims: {{ cid: client-1 }}\n",
                jwks.display()
            ),
        ),
    )
    .expect("write");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(process::BIN)
            .arg("inspect")
            .args(args)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let cfg = config.to_str().unwrap_or_default();
    let (code, text) = run(&["--config", cfg, &issuer.token(&key)]);
    assert_eq!(code, Some(0), "{text}");
    for line in [
        "PASS  signature        verified with kid kid-1 (RS256)",
        "PASS  audience",
        "PASS  assertion cid",
        "verdict: ACCEPTED",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let expired = issuer.token_with(&key, json!({"exp": 1_000, "cid": "other"}));
    let (code, text) = run(&["--config", cfg, &expired]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("FAIL  expiry           the token has expired"),
        "{text}"
    );
    assert!(text.contains("FAIL  assertion cid"), "{text}");
    assert!(
        text.contains("verdict: REJECTED (2 checks failed)"),
        "{text}"
    );
    // --jwks --signature-only: a JWS whose payload is not a claims set.
    let jws = crate::support::keys::sign_raw(
        &json!({"alg": "RS256", "kid": "kid-1"}),
        &json!("just a string"),
        &key.encoding,
        key.alg,
    );
    let (code, text) = run(&[
        "--jwks",
        jwks.to_str().unwrap_or_default(),
        "--signature-only",
        &jws,
    ]);
    assert_eq!(code, Some(0), "{text}");
    let (code, _) = run(&[
        "--jwks",
        jwks.to_str().unwrap_or_default(),
        "--signature-only",
        &format!("{jws}x"),
    ]);
    assert_eq!(code, Some(1));
}

#[tokio::test]
async fn a_reload_reads_the_tls_certificate_again() {
    let (old_ca, new_ca) = (TestCa::new(), TestCa::new());
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (cert, key_file) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let write = |ca: &TestCa| {
        let (c, k) = ca.leaf_pem(&["localhost"]);
        std::fs::write(&cert, c).expect("write cert");
        std::fs::write(&key_file, k).expect("write key");
    };
    write(&old_ca);
    let yaml = format!(
        "{}tls: {{ cert: {}, key: {} }}\n",
        issuer_config(&issuer, ""),
        cert.display(),
        key_file.display()
    );
    let proxy = TestProxy::start(&yaml).await;
    let trusting = |ca: &TestCa| {
        let root = reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("root");
        reqwest::Client::builder()
            .tls_certs_only([root])
            .build()
            .expect("client")
    };
    let url = format!("https://localhost:{}/healthz", proxy.addr.port());
    assert_eq!(
        trusting(&old_ca)
            .get(&url)
            .send()
            .await
            .expect("old cert")
            .status(),
        200
    );
    assert!(trusting(&new_ca).get(&url).send().await.is_err());

    write(&new_ca);
    let overrides = tokengate::config::Overrides {
        listen: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let settings = tokengate::config::load_str(std::path::Path::new("t.yaml"), &yaml, &overrides)
        .expect("valid");
    proxy.gateway.reload(settings).expect("reload");
    assert_eq!(
        trusting(&new_ca)
            .get(&url)
            .send()
            .await
            .expect("new cert")
            .status(),
        200
    );
    assert!(trusting(&old_ca).get(&url).send().await.is_err());
}
