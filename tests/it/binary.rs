//! The built binary: `check`, and serving the shipped `proxy.yaml`.

use std::process::Command;
use std::time::Duration;

use crate::support::process::{self, BIN, ROOT};

#[test]
fn check_accepts_the_shipped_config() {
    let out = Command::new(BIN)
        .args(["check", "--config", "proxy.yaml"])
        .current_dir(ROOT)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("proxy.yaml: valid"), "{stdout}");
    assert!(stdout.contains("dev issuer: ON"), "{stdout}");
}

#[test]
fn check_reports_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "listen: 127.0.0.1:3000\nissuers:\n  - issuer: https://idp.example.com\n    audiences: []\n    leeway: forever\n").expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("2 problems"), "{stderr}");
    assert!(
        stderr.contains("bad.yaml:4: issuers[0].audiences"),
        "{stderr}"
    );
    assert!(
        stderr.contains("bad.yaml:5: issuers[0].leeway: `forever` is not a duration"),
        "{stderr}"
    );
    let missing = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/proxy.yaml"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the file"));
}

/// Starts the binary on the shipped proxy.yaml (on an ephemeral port), mints a dev token over
/// HTTP, calls the quickstart routes, then stops it with SIGTERM.
#[tokio::test]
async fn the_binary_serves_the_shipped_config_with_the_dev_issuer() {
    let mut running = process::spawn(&["--config", "proxy.yaml"]);
    let saw_warning = running
        .startup
        .iter()
        .any(|line| line.contains("\"level\":\"WARN\"") && line.contains("DEV ISSUER ON"));
    assert!(
        saw_warning,
        "no loud warning about the dev issuer: {:?}",
        running.startup
    );
    let base = running.base.clone();

    let client = reqwest::Client::new();
    let minted: serde_json::Value = client
        .post(format!("{base}/_dev/token"))
        .form(&[("sub", "alice@example.com"), ("scope", "openid profile")])
        .send()
        .await
        .expect("mint")
        .json()
        .await
        .expect("json");
    let token = minted["access_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let messages = client
        .get(format!("{base}/api/messages"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("get");
    assert_eq!(messages.status(), 200);
    assert_eq!(
        messages.text().await.unwrap_or_default(),
        r#"[{"message":"Hello, word!"}]"#
    );
    let anonymous = client
        .get(format!("{base}/api/messages"))
        .send()
        .await
        .expect("get");
    assert_eq!(anonymous.status(), 401);

    // Access log lines name the request but never the token.
    let mut logged = Vec::new();
    while let Ok(line) = running.logs.recv_timeout(Duration::from_millis(500)) {
        logged.push(line);
    }
    assert!(
        logged
            .iter()
            .any(|l| l.contains("\"path\":\"/api/messages\"") && l.contains("\"status\":200")),
        "{logged:?}"
    );
    assert!(
        !logged.iter().any(|l| l.contains(&token)),
        "a token was logged"
    );

    assert_eq!(
        running.terminate(),
        Some(0),
        "did not exit cleanly on SIGTERM"
    );
}

/// `check` prints the identity headers of other systems it strips (the defaults and
/// `forward.strip_headers`), what trusted proxies may still send, and warns when a browser
/// app behind an upstream would have its preflights refused.
#[test]
fn check_prints_the_stripped_identity_headers_and_cors_warnings() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("sidecar.yaml");
    std::fs::write(
        &path,
        "dev_issuer: { audience: a }\nupstream: { url: http://127.0.0.1:9 }\ntrusted_proxies: [10.0.0.0/8]\nforward:\n  strip_headers: [X-Legacy-User]\n  trusted_identity_headers: [X-Forwarded-User]\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    for expected in [
        "identity headers of other systems stripped from every request: x-forwarded-user, ",
        "x-auth-request-*",
        "oidc-claim-*",
        "cf-access-*",
        "x-legacy-user",
        "kept from trusted_proxies only: x-forwarded-user",
        "warning: an upstream is configured and cors: is not",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
}

#[test]
fn check_warns_about_any_of_on_list_claims() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("groups.yaml");
    std::fs::write(
        &path,
        "issuers:\n  - issuer: https://idp.example.com\n    audiences: [a]\n    claims:\n      groups: { any_of: [Admins] }\n      tier: { any_of: [gold] }\nroutes:\n  - { path: /x, claims: { realm_access.roles: { any_of: [r] }, scp: { includes_any: [a] } } }\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("warning: issuers[0].claims.groups: any_of compares the whole value")
            && stdout.contains("includes_any"),
        "{stdout}"
    );
    assert!(
        stdout.contains("warning: routes[0].claims.realm_access.roles: any_of"),
        "{stdout}"
    );
    assert!(!stdout.contains("claims.tier"), "{stdout}");
    assert!(!stdout.contains("claims.scp"), "{stdout}");
}

/// The two injections reported against the shipped examples/okta.yaml: a client id that adds
/// a second trusted issuer, and a domain that turns on allow_http with a chosen jwks_uri.
#[test]
fn check_refuses_a_variable_that_would_change_the_structure() {
    let check = |vars: &[(&str, &str)], config: &std::path::Path| {
        let out = Command::new(BIN)
            .args(["check", "--config"])
            .arg(config)
            .current_dir(ROOT)
            .envs(vars.iter().copied())
            .output()
            .expect("run");
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let okta = std::path::Path::new("examples/okta.yaml");
    let (code, text) = check(
        &[
            ("OKTA_DOMAIN", "dev-1.okta.com"),
            ("OKTA_CLIENT_ID", "0oa1"),
        ],
        okta,
    );
    assert_eq!(code, Some(0), "{text}");
    let second_issuer = "0oa1\n  - issuer: https://evil.example\n    audiences: [api://default]";
    let (code, text) = check(
        &[
            ("OKTA_DOMAIN", "dev-1.okta.com"),
            ("OKTA_CLIENT_ID", second_issuer),
        ],
        okta,
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("okta.yaml:17: the value of `${OKTA_CLIENT_ID}` holds a newline"),
        "{text}"
    );
    assert!(!text.contains("evil.example"), "{text}");
    let domain = "evil.example/oauth2/default\n    allow_http: true\n    jwks_uri: http://evil.example/keys\n    x: https://x";
    let (code, text) = check(&[("OKTA_DOMAIN", domain), ("OKTA_CLIENT_ID", "0oa1")], okta);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("okta.yaml:12: the value of `${OKTA_DOMAIN}`"),
        "{text}"
    );
    // The same attacks without a newline, in flow style: the structure check refuses them.
    let dir = tempfile::tempdir().expect("tempdir");
    let flow = dir.path().join("flow.yaml");
    std::fs::write(
        &flow,
        "issuers:\n  - { issuer: \"https://${OKTA_DOMAIN}/oauth2/default\", audiences: [api://default], claims: { cid: \"${OKTA_CLIENT_ID}\" } }\n",
    )
    .expect("write");
    let (code, text) = check(
        &[
            (
                "OKTA_DOMAIN",
                "evil.example/x\", allow_http: true, jwks_uri: \"http://evil.example/keys",
            ),
            ("OKTA_CLIENT_ID", "0oa1"),
        ],
        &flow,
    );
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("flow.yaml:2: `${OKTA_DOMAIN}` would change the structure of the file"),
        "{text}"
    );
    assert!(text.contains("hint:"), "{text}");
    // A repeated key, refused by check too.
    let repeated = dir.path().join("repeated.yaml");
    std::fs::write(
        &repeated,
        "issuers:\n  - issuer: https://idp.example.com\n    audiences: [a]\n    claims: {cid: good-client, cid: other-client}\n",
    )
    .expect("write");
    let (code, text) = check(&[], &repeated);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("repeated.yaml:4: issuers[0].claims.cid: `cid` is repeated"),
        "{text}"
    );
}

/// `check --online` against a TestIssuer that is up, one that is down and one serving only an
/// unusable key: the same fetch code as at run time, per key usable or skipped with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_online_fetches_every_issuers_keys_as_at_run_time() {
    use crate::support::{issuer_config, Mode, TestIssuer, TestKey};
    let key = TestKey::load("rsa-a", "good-kid", jsonwebtoken::Algorithm::RS256);
    let up = TestIssuer::start(vec![key.clone()]).await;
    let down = TestIssuer::start(vec![key.clone()]).await;
    down.set_mode(Mode::Down(503));
    let unusable = TestIssuer::start(vec![]).await;
    unusable.set_mode(Mode::Body(
        serde_json::json!({"keys": [{"kty": "RSA", "kid": "enc-only", "use": "enc", "n": key.jwk["n"], "e": "AQAB"}]})
            .to_string(),
    ));
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |issuers: &[&TestIssuer]| {
        let mut yaml = String::from("keys: { fetch_timeout: 2s }\nissuers:\n");
        for i in issuers {
            yaml += &issuer_config(i, "").replace("issuers:\n", "");
        }
        let path = dir.path().join("online.yaml");
        std::fs::write(&path, yaml).expect("write");
        let out = Command::new(BIN)
            .args(["check", "--online", "--config"])
            .arg(&path)
            .output()
            .expect("run");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    let (code, text) = tokio::task::block_in_place(|| run(&[&up]));
    assert_eq!(code, Some(0), "{text}");
    for expected in [
        format!("discovery: {}/.well-known/openid-configuration", up.url()),
        format!("jwks: {}/keys", up.url()),
        "usable   kid \"good-kid\"  RSA 2048 bits  RS256".to_owned(),
        "every issuer has usable keys".to_owned(),
    ] {
        assert!(text.contains(&expected), "missing {expected:?} in\n{text}");
    }
    assert!(up.discovery_fetches() >= 1 && up.jwks_fetches() >= 1);

    let (code, text) = tokio::task::block_in_place(|| run(&[&up, &down, &unusable]));
    assert_eq!(code, Some(2), "{text}");
    for expected in [
        "/.well-known/openid-configuration (and RFC 8414's locations): HTTP status 503",
        "skipped  kid \"enc-only\"  use_not_sig: use is \"enc\", not \"sig\"",
        "FAILED: no usable signing key",
        "2 issuers without usable keys",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in\n{text}");
    }
}
