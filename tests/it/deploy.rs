//! The deployment artifacts in deploy/: the Kubernetes manifests against the API schemas
//! (kubernetes-validate, installed by .ci/install-python) and against what the README
//! promises (ordering, probes, hardening, ports); the systemd unit with systemd-analyze; and
//! the sidecar lifecycle with real processes, stopped in the order the kubelet stops them.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_yaml::Value;

use crate::support::process::{self, BIN, ROOT};

fn path(relative: &str) -> PathBuf {
    Path::new(ROOT).join(relative)
}

/// kubernetes-validate from the test venv; panics, naming the install script, without it.
fn kubernetes_validate() -> PathBuf {
    let venv = std::env::var("TOKENGATE_VENV").unwrap_or_else(|_| format!("{ROOT}/.ci/venv"));
    let tool = Path::new(&venv).join("bin/kubernetes-validate");
    assert!(
        tool.is_file(),
        "DEPLOY TESTS CANNOT RUN: {} is missing; run `bash .ci/install-python`",
        tool.display()
    );
    tool
}

fn validates(file: &str, version: &str) -> (bool, String) {
    let out = Command::new(kubernetes_validate())
        .args(["--strict", "-k", version, file])
        .current_dir(ROOT)
        .output()
        .expect("run kubernetes-validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success() && !text.contains("ERROR"), text)
}

/// Strict schema validation: the native sidecar from 1.29 (the first schema with both
/// `restartPolicy` on init containers and the preStop sleep action) to the newest; the
/// legacy manifest from 1.28. The native one fails on 1.28, which shows the check is real.
#[test]
fn manifests_validate_against_the_kubernetes_schemas() {
    for (file, versions) in [
        ("deploy/k8s/sidecar.yaml", ["1.29.0", "1.37.0"]),
        ("deploy/k8s/legacy-sidecar.yaml", ["1.28.0", "1.37.0"]),
    ] {
        for version in versions {
            let (ok, text) = validates(file, version);
            assert!(ok, "{file} against {version}:\n{text}");
        }
    }
    let (ok, text) = validates("deploy/k8s/sidecar.yaml", "1.28.0");
    assert!(!ok && text.contains("sleep"), "{text}");
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(path(file)).expect("manifest");
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde_yaml::Value::deserialize(d).expect("YAML document"))
        .collect()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> &'a Value {
    docs.iter()
        .find(|d| d["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind}"))
}

fn seconds(text: &str) -> u64 {
    text.trim_end_matches('s').parse().expect("seconds")
}

/// Runs `tokengate check` on `yaml` (with OKTA_DOMAIN set) and returns its summary.
fn checked(yaml: &str) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("proxy.yaml");
    std::fs::write(&file, yaml).expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&file)
        .env("OKTA_DOMAIN", "dev-123456.okta.com")
        .output()
        .expect("check");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// What the README says of the native sidecar holds in the manifest: tokengate is an init
/// container with `restartPolicy: Always` (so it starts first and stops last), gated by a
/// startup probe on `/readyz`, with readiness on `/readyz` and liveness on `/healthz` of the
/// admin port, a preStop sleep, a termination grace period longer than preStop plus
/// `shutdown_timeout`, the hardened security context, and a Service that points at
/// tokengate's port only. Its configuration passes `tokengate check`, and the ports agree.
#[test]
fn the_native_sidecar_manifest_orders_probes_and_hardens_tokengate() {
    let docs = documents("deploy/k8s/sidecar.yaml");
    let config = kind(&docs, "ConfigMap")["data"]["proxy.yaml"]
        .as_str()
        .expect("proxy.yaml in the ConfigMap");
    let summary = checked(config);
    assert!(summary.contains("valid"), "{summary}");
    let settings: Value = serde_yaml::from_str(config).expect("config");
    let port_of = |listen: &Value| -> u64 {
        listen
            .as_str()
            .and_then(|l| l.rsplit(':').next())
            .and_then(|p| p.parse().ok())
            .expect("listen port")
    };
    let shutdown = seconds(
        settings["shutdown_timeout"]
            .as_str()
            .expect("shutdown_timeout"),
    );

    let pod = &kind(&docs, "Deployment")["spec"]["template"]["spec"];
    let sidecar = &pod["initContainers"][0];
    assert_eq!(sidecar["name"], "tokengate");
    assert_eq!(sidecar["restartPolicy"], "Always");
    assert!(
        pod["containers"]
            .as_sequence()
            .is_some_and(|c| c.iter().all(|c| c["name"] != "tokengate")),
        "tokengate must not also be an ordinary container"
    );
    let ports = sidecar["ports"].as_sequence().expect("ports");
    let port = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"] == name)
            .and_then(|p| p["containerPort"].as_u64())
            .unwrap_or_else(|| panic!("no port {name}"))
    };
    assert_eq!(port("proxy"), port_of(&settings["listen"]));
    assert_eq!(port("admin"), port_of(&settings["admin"]["listen"]));
    for (probe, path) in [
        ("startupProbe", "/readyz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/healthz"),
    ] {
        assert_eq!(sidecar[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(sidecar[probe]["httpGet"]["port"], "admin", "{probe}");
    }
    let pre_stop = sidecar["lifecycle"]["preStop"]["sleep"]["seconds"]
        .as_u64()
        .expect("a preStop sleep action");
    let grace = pod["terminationGracePeriodSeconds"]
        .as_u64()
        .expect("grace");
    assert!(
        grace > pre_stop + shutdown,
        "terminationGracePeriodSeconds {grace} <= preStop {pre_stop} + shutdown_timeout {shutdown}"
    );
    let security = &sidecar["securityContext"];
    assert_eq!(security["runAsNonRoot"], true);
    assert_eq!(security["runAsUser"], 65532);
    assert_eq!(security["readOnlyRootFilesystem"], true);
    assert_eq!(security["allowPrivilegeEscalation"], false);
    assert_eq!(security["capabilities"]["drop"][0], "ALL");
    assert_eq!(security["seccompProfile"]["type"], "RuntimeDefault");
    assert!(sidecar["resources"]["requests"]["memory"].is_string());
    assert!(sidecar["resources"]["limits"]["memory"].is_string());
    // Secrets come from the environment, never the ConfigMap.
    assert!(config.contains("${OKTA_DOMAIN}"));
    assert_eq!(
        sidecar["env"][0]["valueFrom"]["secretKeyRef"]["key"],
        "okta-domain"
    );

    let service = &kind(&docs, "Service")["spec"]["ports"];
    let targets: Vec<&Value> = service
        .as_sequence()
        .expect("service ports")
        .iter()
        .map(|p| &p["targetPort"])
        .collect();
    assert_eq!(targets, [&Value::from("proxy")]);
}

/// The legacy manifest (clusters before native sidecars) runs tokengate as an ordinary
/// container, with the same probes and hardening, and says why it is second best.
#[test]
fn the_legacy_manifest_runs_tokengate_beside_the_app() {
    let docs = documents("deploy/k8s/legacy-sidecar.yaml");
    let pod = &kind(&docs, "Deployment")["spec"]["template"]["spec"];
    assert!(pod["initContainers"].is_null());
    let names: Vec<&str> = pod["containers"]
        .as_sequence()
        .expect("containers")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(names, ["tokengate", "app"]);
    let tokengate = &pod["containers"][0];
    assert_eq!(tokengate["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert_eq!(tokengate["securityContext"]["readOnlyRootFilesystem"], true);
    let text = std::fs::read_to_string(path("deploy/k8s/legacy-sidecar.yaml")).expect("read");
    assert!(
        text.contains("in no guaranteed order"),
        "the caveat is written down"
    );
}

/// The unit verifies, and `systemd-analyze security` rates its exposure 2.0 or better; it
/// stops slower than tokengate drains.
#[test]
fn the_systemd_unit_verifies_and_is_sandboxed() {
    let unit = std::fs::read_to_string(path("deploy/systemd/tokengate.service")).expect("unit");
    // verify checks that ExecStart exists: point it at the binary under test.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("tokengate.service");
    std::fs::write(&file, unit.replace("/usr/local/bin/tokengate", BIN)).expect("write");
    let analyze = |args: &[&str]| {
        Command::new("systemd-analyze")
            .args(args)
            .arg(&file)
            .output()
            .unwrap_or_else(|e| {
                panic!("DEPLOY TESTS CANNOT RUN: systemd-analyze ({e}); apt-get install systemd")
            })
    };
    let verify = analyze(&["verify"]);
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {}",
        String::from_utf8_lossy(&verify.stderr)
    );
    let security = analyze(&["security", "--offline=yes"]);
    let text = String::from_utf8_lossy(&security.stdout);
    let score: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for tokengate.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{text}");
    let stop = unit
        .lines()
        .find_map(|l| l.strip_prefix("TimeoutStopSec="))
        .map(seconds)
        .expect("TimeoutStopSec");
    assert!(
        stop > 30,
        "TimeoutStopSec {stop} is not above the 30 s drain"
    );
    for needed in [
        "DynamicUser=yes",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "CapabilityBoundingSet=\n",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.contains(needed), "the unit lacks {needed:?}");
    }
}

/// The sidecar lifecycle with real processes, stopped as the kubelet stops a pod with a
/// native sidecar: the app first (SIGTERM; it drains), then tokengate (preStop sleep, then
/// SIGTERM). A request in flight through tokengate when the pod is told to stop completes,
/// and tokengate exits within its shutdown_timeout.
#[tokio::test]
async fn the_sidecar_lifecycle_drains_a_request_in_flight() {
    // The app: a real process with a graceful SIGTERM.
    let mut app = Command::new("python3")
        .arg(path("tests/deploy/app.py"))
        .stdout(Stdio::piped())
        .spawn()
        .expect("DEPLOY TESTS CANNOT RUN: python3 is needed for tests/deploy/app.py");
    let mut app_out = BufReader::new(app.stdout.take().expect("stdout")).lines();
    let app_port: u16 = app_out
        .next()
        .and_then(Result::ok)
        .and_then(|l| l.trim().parse().ok())
        .expect("the app's port");

    // tokengate, started after the app's port is known (a native sidecar starts first in a
    // pod; here the order of starting only matters for the port).
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("proxy.yaml");
    std::fs::write(
        &config,
        format!(
            "dev_issuer: {{ audience: api://default }}\nupstream: {{ url: http://127.0.0.1:{app_port} }}\nroutes:\n  - {{ path: /slow/**, auth: none }}\nshutdown_timeout: 5s\n"
        ),
    )
    .expect("write");
    let mut tokengate = process::spawn(&["--config", config.to_str().unwrap_or_default()]);
    let url = format!("{}/slow/2000", tokengate.base);
    let in_flight = tokio::spawn(async move {
        reqwest::get(url)
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The kubelet: main containers first.
    let pid = app.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .is_ok_and(|s| s.success()));
    let app_exit = tokio::task::spawn_blocking(move || app.wait())
        .await
        .expect("join")
        .expect("app exit");
    assert!(app_exit.success(), "the app did not drain cleanly");
    // Then the sidecar: its preStop sleep (shortened here), then SIGTERM.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let code = tokio::task::spawn_blocking(move || tokengate.terminate())
        .await
        .expect("join");
    assert_eq!(code, Some(0), "tokengate did not exit cleanly");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "tokengate took {:?}, more than its shutdown_timeout",
        started.elapsed()
    );
    assert_eq!(
        in_flight.await.expect("join"),
        200,
        "the request in flight when the pod was stopped did not complete"
    );
}
