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

/// Origins are compared byte for byte with what a browser sends: an entry a browser never
/// sends could never match, so `check` refuses it and shows the form that would.
#[test]
fn cors_origins_must_be_written_as_browsers_send_them() {
    let yaml = "\
dev_issuer: { audience: a }
cors:
  allow_origins:
    - https://App.Example.com
    - https://app.example.com:443
    - http://app.example.com:80
    - https://user:pw@app.example.com
    - https://app.example.com/path
    - https://app.example.com/
    - app.example.com
    - https://good.example.com:8443
";
    let text = problems(yaml);
    for expected in [
        "proxy.yaml:4: cors.allow_origins[0]: a browser never sends the origin `https://App.Example.com`",
        "hint: write `https://app.example.com`",
        "proxy.yaml:5: cors.allow_origins[1]: a browser never sends the origin `https://app.example.com:443`",
        "proxy.yaml:6: cors.allow_origins[2]",
        "cors.allow_origins[3]: `https://user:pw@app.example.com` is not an origin",
        "cors.allow_origins[4]: `https://app.example.com/path` is not an origin",
        "cors.allow_origins[5]: a browser never sends the origin `https://app.example.com/`",
        "cors.allow_origins[6]: `app.example.com` is not an origin",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    assert!(!text.contains("allow_origins[7]"), "{text}");
}

#[test]
fn cors_mode_upstream_takes_no_policy_and_needs_an_upstream() {
    let text =
        problems("dev_issuer: { audience: a }\ncors: { mode: upstream, allow_origins: [\"*\"] }\n");
    assert!(
        text.contains(
            "cors.allow_origins: with mode: upstream the upstream's own CORS headers decide"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "cors.mode: mode: upstream hands CORS to the upstream, and none is configured"
        ),
        "{text}"
    );
    let text = problems("dev_issuer: { audience: a }\ncors: { mode: browser }\n");
    assert!(
        text.contains("cors.mode: `browser` is not a CORS mode"),
        "{text}"
    );
    assert_eq!(
        problems("dev_issuer: { audience: a }\nupstream: { url: http://127.0.0.1:9 }\ncors: { mode: upstream }\n"),
        ""
    );
}

#[test]
fn identity_header_settings_are_checked() {
    let yaml = "\
dev_issuer: { audience: a }
forward:
  headers:
    X-Groups: { claim: groups, array_format: csv }
    X-Roles: { claims: [roles], colour: red }
  array_format: yaml
  strip_headers: [X-Legacy-User, X-Tenant-*, \"*\", Host, X-Forwarded-*, \"bad name\"]
  trusted_identity_headers: [X-Forwarded-User, X-Auth-Subject, X-Custom-Thing]
";
    let text = problems(yaml);
    for expected in [
        "forward.headers.X-Groups.array_format: `csv` is not an array format",
        "forward.headers.X-Roles: unknown field `colour`",
        "forward.array_format: `yaml` is not an array format",
        "forward.strip_headers[2]: `*` is not a header name or Prefix* pattern",
        "forward.strip_headers[3]: `Host` would strip a header the request needs",
        "forward.strip_headers[4]: `X-Forwarded-*` would strip a header the request needs",
        "forward.strip_headers[5]",
        "forward.trusted_identity_headers[1]: X-Auth-Subject is one of tokengate's own identity headers",
        "forward.trusted_identity_headers[2]: X-Custom-Thing is not a stripped identity header",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    for fine in [
        "strip_headers[0]",
        "strip_headers[1]",
        "trusted_identity_headers[0]",
    ] {
        assert!(!text.contains(fine), "{fine} refused:\n{text}");
    }
}

#[test]
fn max_lifetime_is_a_positive_duration() {
    let base = "issuers:\n  - issuer: https://idp.example.com\n    audiences: [a]\n";
    assert!(problems(&format!("{base}    max_lifetime: 24h\n")).is_empty());
    let text = problems(&format!("{base}    max_lifetime: forever\n"));
    assert!(
        text.contains("proxy.yaml:4: issuers[0].max_lifetime: `forever` is not a duration"),
        "{text}"
    );
    let text = problems(&format!("{base}    max_lifetime: 0s\n"));
    assert!(text.contains("would refuse every token"), "{text}");
}

#[test]
fn a_repeated_key_is_refused_in_every_kind_of_mapping() {
    let issuer = "issuers:\n  - issuer: https://idp.example.com\n    audiences: [a]\n";
    for (yaml, line, path, key) in [
        (
            format!("{issuer}    claims: {{cid: good-client, cid: other-client}}\n"),
            4,
            "issuers[0].claims.cid",
            "cid",
        ),
        (
            format!("{issuer}    claims:\n      cid: good-client\n      cid: other-client\n"),
            6,
            "issuers[0].claims.cid",
            "cid",
        ),
        (
            format!("{issuer}forward:\n  headers:\n    X-User: sub\n    X-User: email\n"),
            7,
            "forward.headers.X-User",
            "X-User",
        ),
        (
            format!("listen: 127.0.0.1:3000\n{issuer}listen: 0.0.0.0:80\n"),
            5,
            "listen",
            "listen",
        ),
        (
            format!("{issuer}    audiences: [b]\n"),
            4,
            "issuers[0].audiences",
            "audiences",
        ),
        (
            format!("{issuer}routes:\n  - {{ path: /a, auth: none, auth: required }}\n"),
            5,
            "routes[0].auth",
            "auth",
        ),
    ] {
        let text = problems(&yaml);
        let expected = format!("proxy.yaml:{line}: {path}: `{key}` is repeated in this mapping");
        assert!(
            text.contains(&expected),
            "missing {expected:?} in:\n{text}\n{yaml}"
        );
        assert!(text.contains("hint:"), "{text}");
    }
}

/// A claim header may not take the name of a header tokengate sets itself.
#[test]
fn a_claim_cannot_be_sent_as_the_request_id() {
    let text =
        problems("dev_issuer: { audience: a }\nforward:\n  headers: { X-Request-Id: jti }\n");
    assert!(
        text.contains("forward.headers.X-Request-Id: X-Request-Id cannot carry a claim"),
        "{text}"
    );
}
