//! TestProxy: the real app and server, in-process on an ephemeral port.

use std::path::Path;
use std::sync::Arc;

use tokengate::config::{self, Overrides};
use tokengate::{App, Gateway};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use super::issuer::{TestIssuer, ALL_ALGORITHMS, AUDIENCE};

pub struct TestProxy {
    pub addr: std::net::SocketAddr,
    pub gateway: Arc<Gateway>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl TestProxy {
    /// Starts a proxy on the given configuration text (its `listen` is replaced by an
    /// ephemeral loopback port, and the text `{{proxy_url}}` by `http://127.0.0.1:PORT`
    /// of that port, e.g. for `dpop.external_url`).
    pub async fn start(yaml: &str) -> TestProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        TestProxy::start_on(listener, yaml).await
    }

    /// As [`TestProxy::start`], on a listener bound already (so that the configuration can
    /// name the proxy's own address, as a resource identifier does).
    pub async fn start_on(listener: TcpListener, yaml: &str) -> TestProxy {
        let overrides = Overrides {
            listen: Some("127.0.0.1:0".into()),
            log_format: None,
            upstream: None,
        };
        let addr = listener.local_addr().expect("addr");
        let yaml = yaml.replace("{{proxy_url}}", &format!("http://{addr}"));
        let settings = config::load_str(Path::new("test.yaml"), &yaml, &overrides)
            .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n{yaml}"));
        let gateway = Arc::new(Gateway::new(settings).expect("gateway"));
        gateway.start();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(tokengate::run(listener, gateway.clone(), async move {
            let _ = rx.await;
        }));
        TestProxy {
            addr,
            gateway,
            shutdown: Some(tx),
            task: Some(task),
        }
    }

    /// Stops accepting and drains, as SIGTERM does; the returned task ends when the drain
    /// is over.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.task
            .take()
            .expect("the proxy is running (shutdown is called once)")
    }

    /// The configuration serving now.
    pub fn app(&self) -> Arc<App> {
        self.gateway.app()
    }

    /// As [`TestProxy::for_issuer`], with `extra` top-level configuration after the issuer.
    pub async fn for_issuer_with(issuer: &TestIssuer, extra: &str) -> TestProxy {
        TestProxy::start(&format!("{}{extra}", issuer_config(issuer, ""))).await
    }

    /// A proxy trusting `issuer` (over http) for every supported algorithm.
    pub async fn for_issuer(issuer: &TestIssuer) -> TestProxy {
        TestProxy::start(&issuer_config(issuer, "")).await
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Waits (up to 10 s) until `/readyz` says every issuer has keys.
    pub async fn wait_ready(&self) {
        let client = reqwest::Client::new();
        for _ in 0..200 {
            if let Ok(r) = client.get(self.url("/readyz")).send().await {
                if r.status() == 200 {
                    return;
                }
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("proxy never became ready");
    }

    /// GET `path` with `Authorization: Bearer <token>`.
    pub async fn get_with(&self, path: &str, token: &str) -> reqwest::Response {
        reqwest::Client::new()
            .get(self.url(path))
            .header("authorization", format!("Bearer {token}"))
            .send()
            .await
            .expect("request")
    }
}

/// One issuer entry for `issuer`, plus `extra` lines indented under it.
pub fn issuer_config(issuer: &TestIssuer, extra: &str) -> String {
    format!(
        "issuers:\n  - issuer: {}\n    audiences: [{AUDIENCE}]\n    algorithms: {ALL_ALGORITHMS}\n    allow_http: true\n{extra}",
        issuer.url()
    )
}
