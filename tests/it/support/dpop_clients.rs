//! The real DPoP clients, run as child processes against a URL: openid-client
//! (`tests/peers/dpop-client/client.mjs`, installed by `.ci/install-node-peers`) and
//! requests-oauth2client (`tests/peers/python/dpop_client.py`, in `.ci/venv` from
//! `.ci/install-python`). Each gets a DPoP-bound token from an [`OidcProvider`] by
//! client_credentials (client `app`, scope `read`), calls the URL once (retrying once on
//! `use_dpop_nonce`), and reports one JSON object: `token_type`, `access_token`, `status`,
//! `body`, `attempts` (the status of each request to the URL) and `nonces` (each answer's
//! `DPoP-Nonce`). A client that is not installed fails the test saying how to install it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::oidc_provider::{OidcProvider, Peer};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// oidc-provider issuing JWT access tokens, DPoP on.
pub fn dpop_peer() -> OidcProvider {
    OidcProvider::start_with(
        600,
        Peer {
            jwt: true,
            dpop: true,
            ..Peer::default()
        },
    )
}

/// Runs a peer client (`program args` in `dir`, with `env`) off the test's runtime, so the
/// in-process proxy keeps serving it, and returns the one JSON line it prints. Panics with
/// its output when it fails or takes more than 60 s.
async fn run_client(
    program: String,
    args: Vec<String>,
    dir: String,
    env: Vec<(String, String)>,
) -> Value {
    let describe = format!("{program} {}", args.join(" "));
    tokio::task::spawn_blocking(move || {
        let child = Command::new(&program)
            .args(&args)
            .current_dir(&dir)
            .envs(env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {program} ({e})"));
        let pid = child.id().to_string();
        // Read both pipes to the end on a thread of their own (a child blocked on a full pipe
        // would otherwise look like a hung one), and give up after 60 s.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let output = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(output) => output.expect("the client's output"),
            Err(_) => {
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("{program} took more than 60 s");
            }
        };
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let line = stdout.lines().last().unwrap_or_default();
        let result: Value = serde_json::from_str(line).unwrap_or(Value::Null);
        assert!(
            output.status.success() && result.is_object(),
            "{program} failed ({}):\nstdout: {stdout}\nstderr: {stderr}",
            output.status
        );
        result
    })
    .await
    .unwrap_or_else(|e| {
        std::panic::resume_unwind(e.try_into_panic().unwrap_or_else(|_| Box::new(describe)))
    })
}

/// The environment both client scripts read.
fn client_env(peer: &OidcProvider, resource_url: &str) -> Vec<(String, String)> {
    [
        ("ISSUER", peer.issuer()),
        ("CLIENT_ID", "app"),
        ("CLIENT_SECRET", "app-secret"),
        ("SCOPE", "read"),
        ("RESOURCE_URL", resource_url),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// openid-client's `client.mjs` (tests/peers/dpop-client) against `resource_url`.
pub async fn openid_client(peer: &OidcProvider, resource_url: &str) -> Value {
    let dir = format!("{ROOT}/tests/peers/dpop-client");
    let module = format!("{dir}/node_modules/openid-client/package.json");
    assert!(
        Path::new(&module).exists(),
        "openid-client is not installed ({module} is missing): run `bash .ci/install-node-peers` \
         (npm ci in tests/peers/dpop-client; needs Node.js >= 20 and npm)"
    );
    run_client(
        "node".into(),
        vec!["client.mjs".into()],
        dir,
        client_env(peer, resource_url),
    )
    .await
}

/// requests-oauth2client's `dpop_client.py` (tests/peers/python) against `resource_url`.
pub async fn python_client(peer: &OidcProvider, resource_url: &str) -> Value {
    let venv = std::env::var("TOKENGATE_VENV").unwrap_or_else(|_| format!("{ROOT}/.ci/venv"));
    let python = format!("{venv}/bin/python");
    assert!(
        Path::new(&python).exists(),
        "the test venv is missing ({python}): run `bash .ci/install-python` (installs \
         requests-oauth2client from .ci/requirements.txt)"
    );
    run_client(
        python,
        vec!["dpop_client.py".into()],
        format!("{ROOT}/tests/peers/python"),
        client_env(peer, resource_url),
    )
    .await
}
