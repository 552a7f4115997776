//! The README's worked rules example, run against the shipped examples/sidecar.yaml routes.

use jsonwebtoken::Algorithm;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::upstream::EchoUpstream;
use crate::support::{issuer_config, TestIssuer, TestKey, TestProxy};

/// Method, path, token, expected status, and the target the upstream saw (None: nothing).
type Row<'a> = (&'a str, &'a str, Option<&'a str>, u16, Option<&'a str>);

/// The `routes:` block of examples/sidecar.yaml, as shipped.
fn shipped_routes() -> String {
    let text = std::fs::read_to_string(format!(
        "{}/examples/sidecar.yaml",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("example");
    let start = text.find("\nroutes:\n").expect("routes block") + 1;
    let rest = &text[start..];
    let end = rest.find("\n\n").unwrap_or(rest.len());
    format!("{}\n", &rest[..end])
}

async fn raw_status(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> u16 {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: api.test\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out)
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn the_worked_rules_example_behaves_as_documented() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n{}",
        issuer_config(&issuer, ""),
        upstream.url(),
        shipped_routes()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let read = issuer.token_with(&key, json!({"scp": ["read"]}));
    let rows: &[Row] = &[
        ("GET", "/docs/intro", None, 200, Some("/docs/intro")),
        ("GET", "/docs/../admin/users", None, 401, None),
        ("GET", "/admin/users", Some(&read), 403, None),
        ("GET", "/api/orders", Some(&read), 200, Some("/api/orders")),
        ("POST", "/api/orders", Some(&read), 403, None),
        ("GET", "/api%2Forders", Some(&read), 400, None),
        (
            "GET",
            "/anything-else",
            Some(&read),
            200,
            Some("/anything-else"),
        ),
    ];
    for (method, path, token, status, reached) in rows {
        let before = upstream.count();
        assert_eq!(
            raw_status(proxy.addr, method, path, *token).await,
            *status,
            "{method} {path}"
        );
        match reached {
            Some(target) => assert_eq!(
                upstream.last().map(|r| r.target),
                Some(target.to_string()),
                "{method} {path}"
            ),
            None => assert_eq!(
                upstream.count(),
                before,
                "{method} {path} reached the upstream"
            ),
        }
    }
    // The public docs route never carries identity, even with a token.
    assert_eq!(
        raw_status(proxy.addr, "GET", "/docs/intro", Some(&read)).await,
        200
    );
    assert_eq!(
        upstream
            .last()
            .and_then(|r| r.header("x-auth-subject").map(str::to_owned)),
        None
    );
}
