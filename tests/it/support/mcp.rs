//! The MCP peers of `tests/peers/mcp`: an MCP server built on the official Python SDK
//! (`mcp`, pinned in `.ci/requirements.txt`, Streamable HTTP at `/mcp`) as a child process,
//! and the official TypeScript SDK client (`@modelcontextprotocol/sdk`, pinned in the
//! folder's package-lock.json), run once per call. `.ci/install-python` and
//! `.ci/install-node-peers` install them; without them, starting one panics saying so.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

/// The peers' folder.
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/peers/mcp");

/// The Python of the tests' virtual environment (`$TOKENGATE_VENV`, else `.ci/venv`).
fn python() -> String {
    let venv = std::env::var("TOKENGATE_VENV")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/venv").to_owned());
    format!("{venv}/bin/python")
}

/// The Python SDK's MCP server (`server.py`), killed when dropped.
pub struct McpServer {
    child: Child,
    /// Where it listens on 127.0.0.1.
    pub port: u16,
}

impl Drop for McpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl McpServer {
    /// Starts the server and waits (up to 30 s) for its port. Panics, naming what to
    /// install, when the virtual environment or the `mcp` package is missing.
    pub fn start() -> McpServer {
        let python = python();
        if !std::path::Path::new(&python).exists() {
            panic!(
                "the MCP server needs {python}: run `bash .ci/install-python` (a venv with the \
                 pinned `mcp` Python SDK from .ci/requirements.txt; Python >= 3.10)"
            );
        }
        let mut child = Command::new(&python)
            .arg("server.py")
            .current_dir(DIR)
            .env("PORT", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {python} ({e}): run `bash .ci/install-python`"));
        let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
            let _ = child.kill();
            panic!("the MCP server has no stdout or stderr");
        };
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let (etx, erx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            let _ = etx.send(text);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| {
                let _ = child.kill();
                let stderr = erx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
                panic!(
                "the MCP server never said its port; is the `mcp` package installed in the venv \
                 (`bash .ci/install-python`)? Its stderr:\n{stderr}"
            )
            });
        let ready: Value = serde_json::from_str(&line).unwrap_or_default();
        let port = ready["port"]
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("the MCP server said {line:?}, not its port"));
        McpServer { child, port }
    }
}

/// Runs the TypeScript SDK client (`client.mjs`) with `env` and returns the JSON line it
/// prints (`{"error": ...}` when it failed), waiting at most `timeout`. Blocking: call it
/// from `spawn_blocking`. Panics, naming what to install, without node or the SDK.
pub fn client(env: &[(&str, &str)], timeout: Duration) -> Value {
    let sdk = format!("{DIR}/node_modules/@modelcontextprotocol/sdk/package.json");
    if !std::path::Path::new(&sdk).exists() {
        panic!(
            "the MCP TypeScript SDK is not installed ({sdk} is missing): run `bash \
             .ci/install-node-peers` (npm ci in tests/peers/mcp; needs Node.js >= 20 and npm)"
        );
    }
    let mut child = Command::new("node")
        .arg("client.mjs")
        .current_dir(DIR)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node ({e}): install Node.js >= 20 and npm, then `bash .ci/install-node-peers`")
        });
    let Some(stdout) = child.stdout.take() else {
        let _ = child.kill();
        panic!("the MCP client has no stdout");
    };
    let (tx, rx) = mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let line = rx.recv_timeout(timeout);
    let _ = child.kill();
    let _ = child.wait();
    let line = line.unwrap_or_else(|_| panic!("the MCP client said nothing within {timeout:?}"));
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("the MCP client said {line:?}: {e}"))
}
