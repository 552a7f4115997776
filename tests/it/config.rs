//! Configuration errors name the file, the line, the field, and what would be valid.

use std::path::Path;

use tokengate::config::{load_str, Overrides};

fn problems(yaml: &str) -> String {
    match load_str(Path::new("proxy.yaml"), yaml, &Overrides::default()) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn unknown_fields_are_errors_with_line_and_valid_names() {
    let text = problems("listen: 127.0.0.1:3000\nissuers:\n  - issuer: https://idp.example.com\n    audience: [a]\n");
    assert!(
        text.contains("proxy.yaml:4: issuers[0].audience: unknown field `audience`"),
        "{text}"
    );
    assert!(text.contains("`audiences`"), "{text}");
    let top = problems("listn: 127.0.0.1:3000\n");
    assert!(
        top.contains("proxy.yaml:1") && top.contains("unknown field `listn`"),
        "{top}"
    );
}

#[test]
fn every_validation_problem_is_reported_at_once() {
    let yaml = "\
listen: not-an-address
issuers:
  - issuer: https://idp.example.com
    audiences: []
    algorithms: [none, HS256, RS1024]
    leeway: 10m
  - issuer: http://plain.example.com
    audiences: [api]
log: { format: xml }
";
    let text = problems(yaml);
    for expected in [
        "proxy.yaml:1: listen: `not-an-address` is not an address",
        "proxy.yaml:4: issuers[0].audiences: at least one non-empty audience",
        "proxy.yaml:5: issuers[0].algorithms[0]: unsigned tokens are never accepted",
        "issuers[0].algorithms[1]: HMAC needs a shared secret",
        "issuers[0].algorithms[2]: `RS1024` is not a supported algorithm",
        "proxy.yaml:6: issuers[0].leeway",
        "proxy.yaml:7: issuers[1].issuer: `http://plain.example.com` is not https",
        "proxy.yaml:9: log.format: `xml` is not a log format",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(text.contains("hint:"), "{text}");
}

#[test]
fn environment_variables_are_substituted_and_unset_ones_are_errors() {
    std::env::set_var("TOKENGATE_TEST_AUD", "api://from-env");
    let ok = load_str(
        Path::new("p.yaml"),
        "issuers:\n  - issuer: https://idp.example.com\n    audiences: [${TOKENGATE_TEST_AUD}]\n",
        &Overrides::default(),
    );
    assert_eq!(
        ok.map(|s| s.issuers[0].audiences.clone()).ok(),
        Some(vec!["api://from-env".to_string()])
    );
    let text = problems(
        "issuers:\n  - issuer: https://${TOKENGATE_TEST_UNSET_VAR}/x\n    audiences: [a]\n",
    );
    assert!(
        text.contains("proxy.yaml:2: environment variable TOKENGATE_TEST_UNSET_VAR is not set"),
        "{text}"
    );
}

#[test]
fn the_dev_issuer_is_refused_off_loopback() {
    let text = problems("listen: 0.0.0.0:3000\ndev_issuer: {}\n");
    assert!(
        text.contains("proxy.yaml:1: listen: the dev issuer") && text.contains("loopback"),
        "{text}"
    );
    let cli = load_str(
        Path::new("proxy.yaml"),
        "listen: 127.0.0.1:3000\ndev_issuer: {}\n",
        &Overrides {
            listen: Some("0.0.0.0:8080".into()),
            log_format: None,
            upstream: None,
        },
    );
    assert!(cli
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
        .contains("--listen: the dev issuer"));
    assert!(problems("listen: '[::1]:3000'\ndev_issuer: {}\n").is_empty());
}

#[test]
fn an_issuer_is_required() {
    let text = problems("listen: 127.0.0.1:3000\n");
    assert!(text.contains("no issuer is configured"), "{text}");
}

#[test]
fn claims_predicates_are_checked() {
    let text = problems(
        "issuers:\n  - issuer: https://idp.example.com\n    audiences: [a]\n    claims:\n      cid: { include: x }\n      groups: { includes: [] }\n",
    );
    assert!(
        text.contains("proxy.yaml:5: issuers[0].claims.cid: `include` is not a claim predicate"),
        "{text}"
    );
    assert!(
        text.contains("proxy.yaml:6: issuers[0].claims.groups: the list of values is empty"),
        "{text}"
    );
}

#[test]
fn shipped_configurations_are_valid() {
    let root = env!("CARGO_MANIFEST_DIR");
    let proxy = std::fs::read_to_string(format!("{root}/proxy.yaml")).unwrap_or_default();
    assert!(problems(&proxy).is_empty(), "{}", problems(&proxy));
    std::env::set_var("OKTA_DOMAIN", "dev-123456.okta.com");
    std::env::set_var("OKTA_CLIENT_ID", "0oa1example");
    let okta = std::fs::read_to_string(format!("{root}/examples/okta.yaml")).unwrap_or_default();
    let settings = load_str(Path::new("okta.yaml"), &okta, &Overrides::default());
    let settings = settings.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        settings.issuers[0].issuer,
        "https://dev-123456.okta.com/oauth2/default"
    );
    assert_eq!(
        settings.issuers[0].audiences,
        vec!["api://default".to_string()]
    );
    assert_eq!(settings.issuers[0].claims[0].name, "cid");
    let sidecar =
        std::fs::read_to_string(format!("{root}/examples/sidecar.yaml")).unwrap_or_default();
    let settings = load_str(Path::new("sidecar.yaml"), &sidecar, &Overrides::default());
    let settings = settings.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.rules.routes.len(), 5);
    assert!(settings.upstream.is_some() && settings.admin_listen.is_some());
}
