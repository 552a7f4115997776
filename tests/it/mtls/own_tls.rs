//! Certificates from tokengate's own TLS listener: `required`, `optional` and `optional_any`,
//! with reqwest (rustls, HTTP/2 by ALPN) and the curl binary (OpenSSL).

use super::{curl, curl_get, outcome, MtlsStack, Pki};

#[tokio::test]
async fn a_certificate_bound_token_needs_the_certificate_of_the_handshake() {
    let pki = Pki::new();
    let s = MtlsStack::start(&pki.tls("required")).await;
    let token = s.bound(&pki.alice);
    let alice = pki.client(s.proxy.addr, Some(&pki.alice));
    let mallory = pki.client(s.proxy.addr, Some(&pki.mallory));

    let response = alice
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    assert_eq!(outcome(response).await, (200, String::new()));
    assert_eq!(s.last().header("x-auth-token-binding"), Some("mtls"));

    // New connections from the same client resume its TLS session: the certificate of the
    // first handshake still stands behind them (and the cached token is checked again).
    let fresh_connections = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pki.ca.pem().as_bytes()).expect("root")])
        .resolve("localhost", s.proxy.addr)
        .identity(pki.alice.identity())
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    for _ in 0..3 {
        let response = fresh_connections
            .get(s.https("/api/x"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(response.status(), 200);
    }

    // Another certificate from the same CA: the token is not its.
    let before = s.upstream.count();
    let response = mallory
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    let challenge = response
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert_eq!(outcome(response).await, (401, "invalid_token".into()));
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert_eq!(
        s.upstream.count(),
        before,
        "a refused request reached the upstream"
    );

    // An unbound token still works over mTLS, and is said to be unbound.
    let response = mallory
        .get(s.https("/api/x"))
        .bearer_auth(s.token())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(s.last().header("x-auth-token-binding"), None);
}

#[tokio::test]
async fn required_refuses_the_handshake_without_a_certificate() {
    let pki = Pki::new();
    let s = MtlsStack::start(&pki.tls("required")).await;
    let anonymous = pki.client(s.proxy.addr, None);
    assert!(
        anonymous.get(s.https("/public/x")).send().await.is_err(),
        "a client without a certificate was served"
    );
    // A self-signed certificate does not chain to client_ca.
    let selfsigned = pki.client(s.proxy.addr, Some(&pki.selfsigned));
    assert!(selfsigned.get(s.https("/public/x")).send().await.is_err());
}

/// `tls.client_auth` is re-read on reload, for the connections accepted after it.
#[tokio::test]
async fn a_reload_changes_the_client_certificate_mode_for_new_connections() {
    let pki = Pki::new();
    let s = MtlsStack::start(&pki.tls("required")).await;
    let anonymous = || pki.client(s.proxy.addr, None);
    let selfsigned = || pki.client(s.proxy.addr, Some(&pki.selfsigned));
    assert!(anonymous().get(s.https("/public/x")).send().await.is_err());
    assert!(selfsigned().get(s.https("/public/x")).send().await.is_err());
    s.reload(&pki.tls("optional_any"));
    let response = anonymous()
        .get(s.https("/public/x"))
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 200);
    let token = s.bound(&pki.selfsigned);
    let response = selfsigned()
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("served");
    assert_eq!(response.status(), 200);
    s.reload(&pki.tls("required"));
    assert!(anonymous().get(s.https("/public/x")).send().await.is_err());
}

#[tokio::test]
async fn optional_serves_clients_without_a_certificate_but_not_their_bound_tokens() {
    let pki = Pki::new();
    let s = MtlsStack::start(&pki.tls("optional")).await;
    let token = s.bound(&pki.alice);
    let anonymous = pki.client(s.proxy.addr, None);
    let response = anonymous
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(outcome(response).await, (401, "invalid_token".into()));
    let response = anonymous
        .get(s.https("/api/x"))
        .bearer_auth(s.token())
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    let alice = pki.client(s.proxy.addr, Some(&pki.alice));
    let response = alice
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(s.last().header("x-auth-token-binding"), Some("mtls"));
    // A certificate that is presented must still chain to client_ca.
    let selfsigned = pki.client(s.proxy.addr, Some(&pki.selfsigned));
    assert!(selfsigned.get(s.https("/public/x")).send().await.is_err());
}

#[tokio::test]
async fn optional_any_binds_self_signed_certificates() {
    let pki = Pki::new();
    let s = MtlsStack::start(&pki.tls("optional_any")).await;
    let token = s.bound(&pki.selfsigned);
    let holder = pki.client(s.proxy.addr, Some(&pki.selfsigned));
    let response = holder
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(s.last().header("x-auth-token-binding"), Some("mtls"));
    // Another self-signed certificate, or none: refused.
    for identity in [Some(&pki.stranger), Some(&pki.alice), None] {
        let client = pki.client(s.proxy.addr, identity);
        let response = client
            .get(s.https("/api/x"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("request");
        assert_eq!(outcome(response).await, (401, "invalid_token".into()));
    }
    // A certificate is never authentication by itself: no token, no entry.
    let response = holder.get(s.https("/api/x")).send().await.expect("request");
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn curl_with_the_right_and_a_wrong_certificate() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let alice = pki.alice.write(dir, "alice");
    let mallory = pki.mallory.write(dir, "mallory");
    let selfsigned = pki.selfsigned.write(dir, "selfsigned");
    let stranger = pki.stranger.write(dir, "stranger");

    let s = MtlsStack::start(&pki.tls("required")).await;
    let port = s.proxy.addr.port();
    let url = s.https("/api/x");
    let token = s.bound(&pki.alice);
    let run =
        |cert: Option<&(String, String)>| curl(curl_get(&url, port, &pki.ca_file, &token, cert));
    assert_eq!(run(Some(&alice)).await, (0, "200\n".into()));
    assert_eq!(s.last().header("x-auth-token-binding"), Some("mtls"));
    assert_eq!(run(Some(&mallory)).await, (0, "401\n".into()));
    // required: no certificate, no handshake (curl exits non-zero, no HTTP status).
    let (code, status) = run(None).await;
    assert!(code != 0 && status.starts_with("000"), "{code} {status}");

    // The shipped example of tokengate's own TLS (optional_any).
    let shipped = super::peers::example(
        "tokengate-tls.yaml",
        &[
            ("__SERVER_CERT__", pki.server_cert.clone()),
            ("__SERVER_KEY__", pki.server_key.clone()),
        ],
    );
    let s = MtlsStack::start(&shipped).await;
    let port = s.proxy.addr.port();
    let url = s.https("/api/x");
    let token = s.bound(&pki.selfsigned);
    let run =
        |cert: Option<&(String, String)>| curl(curl_get(&url, port, &pki.ca_file, &token, cert));
    assert_eq!(run(Some(&selfsigned)).await, (0, "200\n".into()));
    assert_eq!(run(Some(&stranger)).await, (0, "401\n".into()));
    assert_eq!(run(None).await, (0, "401\n".into()));
}

#[tokio::test]
async fn a_header_never_overrides_the_handshake_certificate() {
    let pki = Pki::new();
    let extra = format!(
        "{}trusted_proxies: [127.0.0.1]\nclient_certificate: {{ format: rfc9440 }}\n",
        pki.tls("optional_any")
    );
    let s = MtlsStack::start(&extra).await;
    let token = s.bound(&pki.alice);
    let claimed = format!(
        ":{}:",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &pki.alice.der)
    );
    // A trusted peer that presents another certificate cannot name alice's in a header.
    let mallory = pki.client(s.proxy.addr, Some(&pki.mallory));
    let response = mallory
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .header("client-cert", &claimed)
        .send()
        .await
        .expect("request");
    assert_eq!(outcome(response).await, (401, "invalid_token".into()));
    // Without a certificate of its own, the trusted peer's header is the certificate.
    let proxy_like = pki.client(s.proxy.addr, None);
    let response = proxy_like
        .get(s.https("/api/x"))
        .bearer_auth(&token)
        .header("client-cert", &claimed)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(
        s.last().header("client-cert"),
        None,
        "the header is never forwarded"
    );
}

/// A rustls client that presents `cert` and signs the handshake with `key` (whatever key
/// that is), speaking only `version`.
mod raw_client {
    use std::sync::Arc;

    use rustls::client::ResolvesClientCert;
    use rustls::sign::CertifiedKey;
    use rustls::SignatureScheme;
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[derive(Debug)]
    struct Presents(Arc<CertifiedKey>);

    impl ResolvesClientCert for Presents {
        fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
            Some(self.0.clone())
        }

        fn has_certs(&self) -> bool {
            true
        }
    }

    /// `GET /public/x` over a fresh TLS connection to `addr`: the first line of the
    /// response, or `None` when the handshake or the exchange failed.
    pub async fn status_line(
        addr: std::net::SocketAddr,
        ca_pem: &str,
        cert_pem: &str,
        key_pem: &str,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Option<String> {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).expect("ca"))
            .expect("root");
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("cert");
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key");
        let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).expect("signing key");
        // CertifiedKey::new checks nothing: the key need not be the certificate's.
        let presents = Presents(Arc::new(CertifiedKey::new(vec![cert], key)));
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_protocol_versions(&[version])
        .expect("versions")
        .with_root_certificates(roots)
        .with_client_cert_resolver(Arc::new(presents));
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
        let name = ServerName::try_from("localhost").expect("name");
        let mut tls = connector.connect(name, tcp).await.ok()?;
        tls.write_all(b"GET /public/x HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .ok()?;
        let mut response = Vec::new();
        let read = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            tls.read_to_end(&mut response),
        )
        .await;
        if !matches!(read, Ok(Ok(_))) && response.is_empty() {
            return None;
        }
        let text = String::from_utf8_lossy(&response);
        text.lines()
            .next()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
    }
}

/// RFC 8705 §2.2 rests on the handshake: a client that shows someone's certificate (no
/// secret: its thumbprint is in the token) without holding its key gets no connection, over
/// TLS 1.3 and TLS 1.2, in every mode that takes certificates.
#[tokio::test]
async fn a_certificate_without_its_key_gets_no_connection() {
    let pki = Pki::new();
    for mode in ["optional_any", "optional", "required"] {
        let s = MtlsStack::start(&pki.tls(mode)).await;
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            let what = format!("{mode} {version:?}");
            let own = raw_client::status_line(
                s.proxy.addr,
                &pki.ca.pem(),
                &pki.alice.cert_pem,
                &pki.alice.key_pem,
                version,
            )
            .await;
            assert_eq!(
                own.as_deref(),
                Some("HTTP/1.1 200 OK"),
                "{what}: the holder"
            );
            let impostor = raw_client::status_line(
                s.proxy.addr,
                &pki.ca.pem(),
                &pki.alice.cert_pem,
                &pki.mallory.key_pem,
                version,
            )
            .await;
            assert_eq!(
                impostor, None,
                "{what}: alice's certificate with mallory's key"
            );
        }
    }
}

/// A token bound both ways (`cnf` with `jkt` and `x5t#S256`) needs the DPoP proof and the
/// certificate, each of its own; the upstream hears `dpop mtls`.
#[tokio::test]
async fn a_token_bound_to_a_dpop_key_and_a_certificate_needs_both() {
    use crate::support::dpop::DpopKey;
    let pki = Pki::new();
    let s = MtlsStack::start(&format!(
        "{}dpop: {{ external_url: \"{{{{proxy_url}}}}\" }}\n",
        pki.tls("optional_any")
    ))
    .await;
    let key = DpopKey::es256();
    let token = s.issuer.token_with(
        &s.key,
        serde_json::json!({ "cnf": { "jkt": key.jkt(), "x5t#S256": pki.selfsigned.x5t() } }),
    );
    // htu is the configured external URL (the test connects by another name).
    let htu = format!("{}/api/x", s.proxy.url(""));
    let send = |identity: Option<&crate::support::tls::ClientCert>, proof: Option<String>| {
        let client = pki.client(s.proxy.addr, identity);
        let mut request = client
            .get(s.https("/api/x"))
            .header("authorization", format!("DPoP {token}"));
        if let Some(proof) = proof {
            request = request.header("dpop", proof);
        }
        async move { request.send().await.expect("request") }
    };
    let response = send(Some(&pki.selfsigned), Some(key.proof("GET", &htu, &token))).await;
    assert_eq!(response.status(), 200);
    assert_eq!(s.last().header("x-auth-token-binding"), Some("dpop mtls"));
    let response = send(Some(&pki.stranger), Some(key.proof("GET", &htu, &token))).await;
    assert_eq!(outcome(response).await, (401, "invalid_token".into()));
    let response = send(None, Some(key.proof("GET", &htu, &token))).await;
    assert_eq!(outcome(response).await, (401, "invalid_token".into()));
    let response = send(Some(&pki.selfsigned), None).await;
    assert_eq!(response.status(), 401);
}
