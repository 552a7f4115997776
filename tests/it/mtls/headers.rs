//! Certificates from a TLS-terminating proxy: the `client_certificate` header in each
//! format, believed from `trusted_proxies` only (the test client connects from 127.0.0.1),
//! stripped from everyone, and refused (400) when repeated, misspelled or unreadable.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use reqwest::Method;

use super::{outcome, seen_in_any_spelling, url_escaped, MtlsStack, Pki};
use crate::support::tls::ClientCert;

/// How each format writes a certificate.
fn rfc9440(cert: &ClientCert) -> String {
    format!(":{}:", STANDARD.encode(&cert.der))
}

fn xfcc_hash(cert: &ClientCert) -> String {
    format!("Hash={}", cert.sha256_hex())
}

fn xfcc_cert(cert: &ClientCert) -> String {
    format!(
        "By=spiffe://proxy.internal;Hash={};Cert=\"{}\"",
        cert.sha256_hex(),
        url_escaped(&cert.cert_pem)
    )
}

fn nginx(cert: &ClientCert) -> String {
    url_escaped(&cert.cert_pem)
}

type Writer = fn(&ClientCert) -> String;

/// Header fields as sent, in order.
type Fields = Vec<(String, String)>;

/// (format, header, how the proxy writes a certificate).
const FORMATS: [(&str, &str, Writer); 4] = [
    ("rfc9440", "client-cert", rfc9440),
    ("xfcc", "x-forwarded-client-cert", xfcc_hash),
    ("xfcc", "x-forwarded-client-cert", xfcc_cert),
    ("nginx", "x-ssl-client-cert", nginx),
];

fn config(trusted: &str, format: &str, header: &str) -> String {
    format!("trusted_proxies: [{trusted}]\nclient_certificate: {{ format: {format}, header: {header} }}\n")
}

async fn get(s: &MtlsStack, token: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(Method::GET, s.proxy.url("/api/x"))
        .bearer_auth(token);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request to the proxy")
}

#[tokio::test]
async fn each_format_from_a_trusted_proxy_binds() {
    let pki = Pki::new();
    for (format, header, write) in FORMATS {
        let s = MtlsStack::start(&config("127.0.0.1", format, header)).await;
        let token = s.bound(&pki.alice);
        let what = format!("{format}: {}", write(&pki.alice));

        let response = get(&s, &token, &[(header, &write(&pki.alice))]).await;
        assert_eq!(outcome(response).await, (200, String::new()), "{what}");
        let seen = s.last();
        assert_eq!(seen.header("x-auth-token-binding"), Some("mtls"), "{what}");
        assert!(
            seen_in_any_spelling(&seen, header).is_empty(),
            "{what}: forwarded"
        );

        let before = s.upstream.count();
        let response = get(&s, &token, &[(header, &write(&pki.mallory))]).await;
        assert_eq!(
            outcome(response).await,
            (401, "invalid_token".into()),
            "{what}"
        );
        let response = get(&s, &token, &[]).await;
        assert_eq!(
            outcome(response).await,
            (401, "invalid_token".into()),
            "{what}"
        );
        assert_eq!(s.upstream.count(), before, "{what}");
    }
}

#[tokio::test]
async fn from_an_untrusted_peer_the_header_is_stripped_and_never_believed() {
    let pki = Pki::new();
    for (format, header, write) in FORMATS {
        // 127.0.0.1 (the test client) is not the trusted proxy.
        let s = MtlsStack::start(&config("10.0.0.7", format, header)).await;
        let value = write(&pki.alice);
        let what = format!("{format}: {value}");
        let underscored = header.replace('-', "_");
        let before = s.upstream.count();
        let response = get(&s, &s.bound(&pki.alice), &[(header, &value)]).await;
        assert_eq!(
            outcome(response).await,
            (401, "invalid_token".into()),
            "{what}"
        );
        assert_eq!(s.upstream.count(), before, "{what}");
        // Not even read: repeated, misspelled or garbage is no 400, and none of it is
        // forwarded with an unbound token.
        let response = get(
            &s,
            &s.token(),
            &[
                (header, &value),
                (header, "garbage"),
                (&underscored, &value),
                (&header.to_uppercase(), &value),
            ],
        )
        .await;
        assert_eq!(response.status(), 200, "{what}");
        let seen = s.last();
        assert!(
            seen_in_any_spelling(&seen, header).is_empty(),
            "{what}: {seen:?}"
        );
        assert_eq!(seen.header("x-auth-token-binding"), None, "{what}");
    }
}

#[tokio::test]
async fn a_trusted_proxy_sends_the_header_once_and_readable() {
    let pki = Pki::new();
    let alice = &pki.alice;
    let cases: Vec<(&str, &str, Fields)> = vec![
        (
            "rfc9440",
            "client-cert",
            vec![
                ("client-cert".into(), rfc9440(alice)),
                ("client-cert".into(), rfc9440(alice)),
            ],
        ),
        (
            "rfc9440",
            "client-cert",
            vec![
                ("client-cert".into(), rfc9440(alice)),
                ("client_cert".into(), rfc9440(alice)),
            ],
        ),
        (
            "rfc9440",
            "client-cert",
            vec![("client_cert".into(), rfc9440(alice))],
        ),
        (
            "rfc9440",
            "client-cert",
            vec![(
                "client-cert".into(),
                format!("{}, {}", rfc9440(alice), rfc9440(alice)),
            )],
        ),
        (
            "rfc9440",
            "client-cert",
            vec![("client-cert".into(), "garbage".into())],
        ),
        (
            "xfcc",
            "x-forwarded-client-cert",
            vec![
                ("x-forwarded-client-cert".into(), xfcc_hash(alice)),
                ("x-forwarded-client-cert".into(), xfcc_hash(alice)),
            ],
        ),
        (
            "xfcc",
            "x-forwarded-client-cert",
            vec![(
                "x-forwarded-client-cert".into(),
                format!("{};DNS=x.example", xfcc_hash(alice)),
            )],
        ),
        (
            "xfcc",
            "x-forwarded-client-cert",
            vec![(
                "x-forwarded-client-cert".into(),
                format!(
                    "Hash={};Cert=\"{}\"",
                    alice.sha256_hex(),
                    url_escaped(&pki.mallory.cert_pem)
                ),
            )],
        ),
        (
            "nginx",
            "x-ssl-client-cert",
            vec![(
                "x-ssl-client-cert".into(),
                url_escaped("-----BEGIN CERTIFICATE-----\nAAAA"),
            )],
        ),
    ];
    for (format, header, fields) in cases {
        let s = MtlsStack::start(&config("127.0.0.1", format, header)).await;
        let pairs: Vec<(&str, &str)> = fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let what = format!("{format}: {pairs:?}");
        let response = get(&s, &s.bound(alice), &pairs).await;
        assert_eq!(
            outcome(response).await,
            (400, "invalid_request".into()),
            "{what}"
        );
        // Also for an unbound token: the request is ambiguous whatever the token.
        let response = get(&s, &s.token(), &pairs).await;
        assert_eq!(response.status(), 400, "{what}");
        assert_eq!(s.upstream.count(), 0, "{what}");
    }
}

#[tokio::test]
async fn forward_auth_decides_with_the_ingress_certificate_header() {
    let pki = Pki::new();
    let s = MtlsStack::start(&format!(
        "{}forward_auth: {{ mode: nginx, path: /_auth, trusted_proxies: [127.0.0.1/32] }}\n",
        config("127.0.0.1", "nginx", "x-ssl-client-cert")
    ))
    .await;
    let token = s.bound(&pki.alice);
    let ask = |cert: &ClientCert| {
        let value = nginx(cert);
        let token = token.clone();
        let url = s.proxy.url("/_auth");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(token)
                .header("x-original-uri", "/api/x")
                .header("x-original-method", "GET")
                .header("x-ssl-client-cert", value)
                .send()
                .await
                .expect("request")
        }
    };
    let allowed = ask(&pki.alice).await;
    assert_eq!(allowed.status(), 200);
    assert_eq!(
        allowed
            .headers()
            .get("x-auth-token-binding")
            .and_then(|v| v.to_str().ok()),
        Some("mtls")
    );
    assert_eq!(
        outcome(ask(&pki.mallory).await).await,
        (401, "invalid_token".into())
    );
}
