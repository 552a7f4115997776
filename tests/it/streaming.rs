//! Bodies stream through the proxy; they are never buffered whole. Run against the built
//! binary, so the memory measured is the proxy's alone.

use std::time::Instant;

use bytes::Bytes;
use futures_util::StreamExt;
use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::support::process;
use crate::support::upstream::{hex, pattern_chunk, EchoUpstream};
use crate::support::{issuer_config, TestIssuer, TestKey};

const MIB: u64 = 1024 * 1024;
const SIZE: u64 = 256 * MIB;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_both_ways_in_bounded_memory() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    std::fs::write(&config, yaml).expect("write config");
    let running = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let client = reqwest::Client::new();
    let token = issuer.token(&key);

    // Warm up: keys loaded, pool connection made, buffers at their working size.
    let mut ready = false;
    for _ in 0..100 {
        let r = client
            .get(format!("{}/warm", running.base))
            .bearer_auth(&token)
            .send()
            .await;
        if r.is_ok_and(|r| r.status() == 200) {
            ready = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ready, "the proxy never served a request");
    let before = running.peak_rss_kib();

    let chunk = Bytes::from(pattern_chunk());
    let chunks = SIZE / chunk.len() as u64;
    let mut expected = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for _ in 0..chunks {
        expected.update(&chunk);
    }
    let expected = hex(expected.finish().as_ref());

    // Up: 256 MiB streamed from the client, hashed by the upstream as it arrives.
    let started = Instant::now();
    let upload = {
        let chunk = chunk.clone();
        futures_util::stream::iter(0..chunks).map(move |_| Ok::<_, std::io::Error>(chunk.clone()))
    };
    let response = client
        .post(format!("{}/upload", running.base))
        .bearer_auth(&token)
        .body(reqwest::Body::wrap_stream(upload))
        .send()
        .await
        .expect("upload");
    assert_eq!(response.status(), 200);
    let result: Value = response.json().await.expect("upload result");
    assert_eq!(result["bytes"], SIZE);
    assert_eq!(result["sha256"], expected.as_str());
    let up = started.elapsed();

    // Down: 256 MiB streamed from the upstream, hashed by the client as it arrives.
    let started = Instant::now();
    let response = client
        .get(format!("{}/big/{SIZE}", running.base))
        .bearer_auth(&token)
        .send()
        .await
        .expect("download");
    assert_eq!(response.status(), 200);
    let mut digest = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut received = 0u64;
    let mut body = response.bytes_stream();
    while let Some(part) = body.next().await {
        let part = part.expect("body chunk");
        received += part.len() as u64;
        digest.update(&part);
    }
    assert_eq!(received, SIZE);
    assert_eq!(hex(digest.finish().as_ref()), expected);
    let down = started.elapsed();

    let after = running.peak_rss_kib();
    let growth_mib = after.saturating_sub(before) as f64 / 1024.0;
    eprintln!(
        "streaming: 256 MiB up in {:.1}s, 256 MiB down in {:.1}s; proxy peak RSS {:.1} MiB before, {:.1} MiB after (+{growth_mib:.1} MiB)",
        up.as_secs_f64(),
        down.as_secs_f64(),
        before as f64 / 1024.0,
        after as f64 / 1024.0
    );
    assert!(before > 0, "could not read the proxy's memory");
    assert!(growth_mib < 64.0, "peak RSS grew by {growth_mib:.1} MiB");
}
