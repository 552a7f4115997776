//! Route rules through the real proxy: ordered routes and the default, auth modes, scopes,
//! claims and issuers, methods, preflights, RFC 9728 metadata, and the canonical path that is
//! both matched and forwarded. reqwest normalises `..` and `//` before sending, so every
//! path-shape test writes its request line byte for byte over TCP.

use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::support::client::{self, RawResponse};
use crate::support::issuer::{ALL_ALGORITHMS, AUDIENCE};
use crate::support::upstream::{EchoUpstream, Recorded};
use crate::support::{issuer_config, read, Stack, TestIssuer, TestKey, TestProxy};

/// An issuer, an echo upstream and a proxy in front of it, ready; `rest` is the
/// configuration after `issuers:` and `upstream:` (routes, default, paths...).
async fn start(rest: &str) -> Stack {
    Stack::builder().routes(rest).start().await
}

/// The proxy still forwards an ordinary authorised request.
async fn assert_still_serving(setup: &Stack) {
    let before = setup.upstream().count();
    let token = setup.scoped(&["read", "admin", "api", "profile"]);
    let r = setup.get("/admin/after", Some(&token)).await;
    assert_eq!(r.status(), 200, "the proxy stopped serving valid requests");
    assert_eq!(setup.upstream().count(), before + 1);
    assert_eq!(setup.last().target, "/admin/after");
}

/// The configuration most tests share: one route of each pattern kind, each with a rule that
/// can be told apart from the others by its answer to a token holding only `read`.
const TABLE_ROUTES: &str = "\
routes:
  - { path: /health, auth: none }
  - { path: /public/**, auth: none }
  - { path: /users/*/profile, scopes: [profile] }
  - { path: /api/**, scopes: [api] }
  - { path: /admin/**, scopes: [admin] }
default: { scopes: [read] }
";

/// The exact challenge of a 403 for missing `scopes`.
fn scope_challenge(scopes: &str) -> String {
    format!("Bearer realm=\"tokengate\", error=\"insufficient_scope\", scope=\"{scopes}\"")
}

/// Writes `METHOD target HTTP/1.1` exactly as given (no client-side normalisation), with
/// `Host: x`, the extra headers and `Connection: close`, and reads the answer to the end.
async fn raw_request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
) -> RawResponse {
    let answer = client::exchange(addr, &client::request(method, target, headers)).await;
    assert!(
        !answer.timed_out,
        "no answer within 10 s to {method} {target:?}"
    );
    answer
}

/// How a row must come out.
#[derive(Debug, Clone, Copy)]
enum Decided {
    /// An `auth: none` route: forwarded without identity headers.
    Public,
    /// The default (`scopes: [read]`): forwarded with identity headers.
    DefaultRule,
    /// A route whose scope the token lacks: 403 naming this scope, nothing forwarded.
    Scope(&'static str),
    /// The path is refused: 400, nothing forwarded.
    Refused,
}

use Decided::{DefaultRule as Dflt, Public, Refused, Scope};

/// Sends every row (raw, with a token holding only `read`) and checks status, what the
/// upstream saw, and which rule decided. Reports every failing row at once.
async fn run_table(setup: &Stack, rows: &[(&str, u16, Option<&str>, Decided)]) {
    let token = setup.scoped(&["read"]);
    let auth = format!("Bearer {token}");
    let mut failures = Vec::new();
    for &(target, status, forwarded, decided) in rows {
        let before = setup.upstream().count();
        let r = raw_request(setup.proxy.addr, "GET", target, &[("Authorization", &auth)]).await;
        let after = setup.upstream().count();
        let mut problems = Vec::new();
        if r.status != status {
            problems.push(format!("status {} (want {status})", r.status));
        }
        match forwarded {
            Some(want) => {
                if after != before + 1 {
                    problems.push(format!("upstream saw {} requests (want 1)", after - before));
                } else {
                    let seen = setup.last();
                    if seen.target != want {
                        problems.push(format!("forwarded as {:?} (want {want:?})", seen.target));
                    }
                    let identity = seen.header("x-auth-subject");
                    match decided {
                        Public if identity.is_some() => {
                            problems.push("identity headers on an auth: none route".into())
                        }
                        Dflt if identity != Some("user-1") => {
                            problems.push(format!("identity {identity:?} (want the default rule)"))
                        }
                        _ => {}
                    }
                }
            }
            None => {
                if after != before {
                    problems.push(format!(
                        "upstream saw {} requests (want none): {:?}",
                        after - before,
                        setup.upstream().last().map(|l| l.target)
                    ));
                }
            }
        }
        if let Scope(scope) = decided {
            let want = scope_challenge(scope);
            if r.header("www-authenticate") != Some(want.as_str()) {
                problems.push(format!(
                    "challenge {:?} (want {want:?})",
                    r.header("www-authenticate")
                ));
            }
        }
        if !problems.is_empty() {
            failures.push(format!("{target:?}: {}", problems.join("; ")));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        rows.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn path_table_through_the_proxy() {
    let setup = start(TABLE_ROUTES).await;
    #[rustfmt::skip]
    let rows: &[(&str, u16, Option<&str>, Decided)] = &[
        // Exact.
        ("/health", 200, Some("/health"), Public),
        // A trailing slash falls under the exact rule too: upstreams often ignore it.
        ("/health/", 200, Some("/health/"), Public),
        ("/healthy", 200, Some("/healthy"), Dflt),
        ("/health/x", 200, Some("/health/x"), Dflt),
        // Prefix: the prefix itself and below, never a longer name.
        ("/public", 200, Some("/public"), Public),
        ("/public/", 200, Some("/public/"), Public),
        ("/public/a/b/c", 200, Some("/public/a/b/c"), Public),
        ("/publicity", 200, Some("/publicity"), Dflt),
        ("/api", 403, None, Scope("api")),
        ("/api/", 403, None, Scope("api")),
        ("/api/v1/x", 403, None, Scope("api")),
        ("/apix", 200, Some("/apix"), Dflt),
        ("/ap", 200, Some("/ap"), Dflt),
        ("/api/../apix", 200, Some("/apix"), Dflt),
        // One segment.
        ("/users/7/profile", 403, None, Scope("profile")),
        ("/users/7/profile/x", 200, Some("/users/7/profile/x"), Dflt),
        ("/users/7/8/profile", 200, Some("/users/7/8/profile"), Dflt),
        ("/users/profile", 200, Some("/users/profile"), Dflt),
        ("/users//profile", 200, Some("/users/profile"), Dflt),
        ("/users/%2e/profile", 200, Some("/users/profile"), Dflt),
        ("/users/7/./profile", 403, None, Scope("profile")),
        // Dot segments and slashes: matched (and forwarded) as the canonical path.
        ("/admin", 403, None, Scope("admin")),
        ("/admin/users", 403, None, Scope("admin")),
        ("/public/../admin", 403, None, Scope("admin")),
        ("/public/../admin/users", 403, None, Scope("admin")),
        ("/public/./../admin", 403, None, Scope("admin")),
        ("/public/x/../../admin/y", 403, None, Scope("admin")),
        ("/public//../admin", 403, None, Scope("admin")),
        ("/../../admin", 403, None, Scope("admin")),
        ("//admin", 403, None, Scope("admin")),
        ("///admin//x", 403, None, Scope("admin")),
        ("/public/./x", 200, Some("/public/x"), Public),
        ("/public/..", 200, Some("/"), Dflt),
        ("/public/x/..", 200, Some("/public/"), Public),
        // Encoded dots are dots; an encoded percent is not decoded a second time.
        ("/public/%2e%2e/admin", 403, None, Scope("admin")),
        ("/public/%2E%2E/admin", 403, None, Scope("admin")),
        ("/public/.%2e/admin", 403, None, Scope("admin")),
        ("/public/%2e./admin", 403, None, Scope("admin")),
        ("/public/%2e/x", 200, Some("/public/x"), Public),
        ("/%61dmin", 403, None, Scope("admin")),
        ("/public/%7euser", 200, Some("/public/~user"), Public),
        ("/public/%252e%252e/admin", 200, Some("/public/%252e%252e/admin"), Public),
        ("/public/%252E%252E/admin", 200, Some("/public/%252E%252E/admin"), Public),
        // Encoded separators, backslashes, control characters, bad escapes: refused.
        ("/public%2Fadmin", 400, None, Refused),
        ("/public/..%2fadmin", 400, None, Refused),
        ("/public/..%2Fadmin", 400, None, Refused),
        ("/public/..%5Cadmin", 400, None, Refused),
        ("/public/..%5cadmin", 400, None, Refused),
        ("/public/..\\admin", 400, None, Refused),
        ("/public\\..\\admin", 400, None, Refused),
        ("/public/%00/x", 400, None, Refused),
        ("/public/x%00", 400, None, Refused),
        ("/public/%0a/x", 400, None, Refused),
        ("/public/%0D%0AX-Auth-Subject:%20admin", 400, None, Refused),
        ("/public/\u{1}x", 400, None, Refused),
        ("/public/a b", 400, None, Refused),
        ("/public/%7f", 400, None, Refused),
        ("/public/%zz", 400, None, Refused),
        ("/public/%2", 400, None, Refused),
        // Path parameters are refused unless allowed.
        ("/admin;x=1/y", 400, None, Refused),
        ("/public/..;/admin", 400, None, Refused),
        ("/public;/x", 400, None, Refused),
        ("/public/x;jsessionid=1", 400, None, Refused),
        ("/public/%3b/x", 200, Some("/public/%3B/x"), Public),
        // An encoded # or ? is a literal character of a segment.
        ("/public%23/../admin", 403, None, Scope("admin")),
        ("/public/%23/../../admin", 403, None, Scope("admin")),
        ("/admin%23", 200, Some("/admin%23"), Dflt),
        ("/admin%3F/../public/x", 200, Some("/public/x"), Public),
        ("/public%3F/../admin", 403, None, Scope("admin")),
        // A raw # ends the path: the rest is a fragment, never matched nor forwarded.
        ("/public#/../admin", 200, Some("/public"), Public),
        ("/admin#/../public", 403, None, Scope("admin")),
        // The query is never matched against.
        ("/admin?x=/public", 403, None, Scope("admin")),
        ("/admin?/../public", 403, None, Scope("admin")),
        ("/public?x=/admin", 200, Some("/public?x=/admin"), Public),
        ("/public?/../admin", 200, Some("/public?/../admin"), Public),
        ("/public/x?y=1&z=%2F", 200, Some("/public/x?y=1&z=%2F"), Public),
        // Case matters by default.
        ("/ADMIN", 200, Some("/ADMIN"), Dflt),
        ("/Admin/users", 200, Some("/Admin/users"), Dflt),
        ("/PUBLIC/x", 200, Some("/PUBLIC/x"), Dflt),
        // Non-ASCII: percent-encoded, escapes upper-cased.
        ("/caf%C3%A9", 200, Some("/caf%C3%A9"), Dflt),
        ("/caf%c3%a9", 200, Some("/caf%C3%A9"), Dflt),
        ("/public/caf%c3%a9", 200, Some("/public/caf%C3%A9"), Public),
        ("/public/caf\u{e9}", 400, None, Refused),
        // An absolute-form target is matched by its path too.
        ("http://x/public/../admin", 403, None, Scope("admin")),
        ("http://x/public/x", 200, Some("/public/x"), Public),
        ("http://elsewhere/public/x", 400, None, Refused),
        ("*", 400, None, Refused),
    ];
    assert!(rows.len() >= 40);
    run_table(&setup, rows).await;
    assert_still_serving(&setup).await;
}

#[tokio::test]
async fn bypass_shapes_are_forwarded_as_the_canonical_path_under_the_stricter_rule() {
    let setup = start(TABLE_ROUTES).await;
    let shapes = [
        "/public/../admin",
        "//admin",
        "/public/%2e%2e/admin",
        "/public/%2E%2E/admin",
        "/public/./.././admin",
        "/public//..//admin",
        "/../admin",
        "/%61dmin",
        "/public%23/../admin",
        "http://x/public/../admin",
    ];
    // Without a token the admin rule asks for one: nothing reaches the upstream.
    for shape in shapes {
        let before = setup.upstream().count();
        let r = raw_request(setup.proxy.addr, "GET", shape, &[]).await;
        assert_eq!(r.status, 401, "{shape}: {}", r.body);
        assert_eq!(
            r.header("www-authenticate"),
            Some("Bearer realm=\"tokengate\""),
            "{shape}"
        );
        assert_eq!(
            setup.upstream().count(),
            before,
            "{shape} reached the upstream"
        );
    }
    // With the admin scope it is let through, and the upstream sees /admin, not the shape.
    let admin = format!("Bearer {}", setup.scoped(&["admin"]));
    for shape in shapes {
        let before = setup.upstream().count();
        let r = raw_request(setup.proxy.addr, "GET", shape, &[("Authorization", &admin)]).await;
        assert_eq!(r.status, 200, "{shape}: {}", r.body);
        assert_eq!(setup.upstream().count(), before + 1, "{shape}");
        let seen = setup.last();
        assert_eq!(seen.target, "/admin", "{shape}");
        assert_eq!(seen.header("x-auth-subject"), Some("user-1"), "{shape}");
        assert_eq!(seen.header("x-auth-scopes"), Some("admin"), "{shape}");
    }
    assert_still_serving(&setup).await;
}

#[tokio::test]
async fn refused_paths_are_json_400s_and_the_proxy_keeps_serving() {
    let setup = start(TABLE_ROUTES).await;
    let admin = format!("Bearer {}", setup.scoped(&["admin"]));
    for path in [
        "/public%2Fadmin",
        "/public/..%2fadmin",
        "/public/..%5Cadmin",
        "/public/%00/admin",
        "/admin;x=1/y",
        "/public/..;/admin",
        "/public/%zz",
    ] {
        let before = setup.upstream().count();
        let r = raw_request(setup.proxy.addr, "GET", path, &[("Authorization", &admin)]).await;
        assert_eq!(r.status, 400, "{path}");
        let body: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("{path}: the 400 body is not JSON ({e}): {:?}", r.body));
        assert_eq!(body["error"], "invalid_request", "{path}");
        assert!(r.header("www-authenticate").is_none(), "{path}");
        assert_eq!(
            setup.upstream().count(),
            before,
            "{path} reached the upstream"
        );
    }
    assert_still_serving(&setup).await;
}

#[tokio::test]
async fn allowed_parameters_are_matched_without_them_and_forwarded_with_them() {
    let setup = start(&format!(
        "{TABLE_ROUTES}paths: {{ allow_parameters: true }}\n"
    ))
    .await;
    #[rustfmt::skip]
    let rows: &[(&str, u16, Option<&str>, Decided)] = &[
        ("/admin;x=1/y", 403, None, Scope("admin")),
        ("/admin;x=1", 403, None, Scope("admin")),
        ("/public/..;/admin", 403, None, Scope("admin")),
        ("/public/..;x=1/admin", 403, None, Scope("admin")),
        ("/public/%2e%2e;/admin", 403, None, Scope("admin")),
        ("/public;/../admin", 403, None, Scope("admin")),
        ("/api;v=2/x", 403, None, Scope("api")),
        ("/users/7;v=2/profile", 403, None, Scope("profile")),
        ("/public;jsessionid=abc/x", 200, Some("/public;jsessionid=abc/x"), Public),
        ("/public/x;v=1", 200, Some("/public/x;v=1"), Public),
        ("/plain;x=1", 200, Some("/plain;x=1"), Dflt),
        ("/admin;x/../public/y", 200, Some("/public/y"), Public),
        // Everything else is still refused.
        ("/public/..%2fadmin", 400, None, Refused),
        ("/public/..%5Cadmin", 400, None, Refused),
        ("/public/%00;/admin", 400, None, Refused),
    ];
    run_table(&setup, rows).await;

    // Let through, the upstream gets the segments that were matched, each with its parameters
    // (a `..;` is a dot segment to Tomcat and Spring, so it is resolved, not passed on).
    let admin = format!("Bearer {}", setup.scoped(&["admin"]));
    for (sent, forwarded) in [
        ("/admin;x=1/y", "/admin;x=1/y"),
        ("/public/..;/admin", "/admin"),
        ("/admin/.;/x", "/admin/x"),
    ] {
        let r = raw_request(setup.proxy.addr, "GET", sent, &[("Authorization", &admin)]).await;
        assert_eq!(r.status, 200, "{sent}");
        let seen = setup.last();
        assert_eq!(seen.target, forwarded, "{sent}");
        assert_eq!(seen.header("x-auth-scopes"), Some("admin"), "{sent}");
    }
    assert_still_serving(&setup).await;
}

#[tokio::test]
async fn case_insensitive_paths_match_in_any_case_and_forward_as_sent() {
    let setup = start(&format!(
        "{TABLE_ROUTES}paths: {{ case_insensitive: true }}\n"
    ))
    .await;
    #[rustfmt::skip]
    let rows: &[(&str, u16, Option<&str>, Decided)] = &[
        ("/ADMIN", 403, None, Scope("admin")),
        ("/Admin/Users", 403, None, Scope("admin")),
        ("/%41DMIN", 403, None, Scope("admin")),
        ("/public/../ADMIN", 403, None, Scope("admin")),
        ("/API/x", 403, None, Scope("api")),
        ("/USERS/Me/PROFILE", 403, None, Scope("profile")),
        ("/PUBLIC/X", 200, Some("/PUBLIC/X"), Public),
        ("/Health", 200, Some("/Health"), Public),
        ("/APIX", 200, Some("/APIX"), Dflt),
        ("/caf%c3%a9", 200, Some("/caf%C3%A9"), Dflt),
    ];
    run_table(&setup, rows).await;
    assert_still_serving(&setup).await;
}

#[tokio::test]
async fn the_first_matching_route_decides() {
    let setup = start(
        "routes:
  - { path: /api/public/**, auth: none }
  - { path: /api/**, scopes: [api] }
  - { path: /api/public/secret, scopes: [admin] }
",
    )
    .await;
    let reader = setup.scoped(&["read"]);
    // The earlier, more lenient route wins even over a later, more specific one.
    let r = setup.get("/api/public/secret", None).await;
    assert_eq!(r.status(), 200);
    assert_eq!(setup.last().target, "/api/public/secret");
    assert_eq!(setup.status("/api/public", None).await, 200);
    let (status, challenge, _) = read(setup.get("/api/x", Some(&reader)).await).await;
    assert_eq!(status, 403);
    assert_eq!(challenge.as_deref(), Some(scope_challenge("api").as_str()));
    assert_eq!(setup.status("/api/x", None).await, 401);

    // The same routes in the other order: /api/** now decides for /api/public too.
    let reversed = start(
        "routes:
  - { path: /api/**, scopes: [api] }
  - { path: /api/public/**, auth: none }
",
    )
    .await;
    let before = reversed.upstream().count();
    assert_eq!(reversed.status("/api/public/x", None).await, 401);
    let reader = reversed.scoped(&["read"]);
    assert_eq!(reversed.status("/api/public/x", Some(&reader)).await, 403);
    assert_eq!(reversed.upstream().count(), before);
}

#[tokio::test]
async fn the_default_is_required_unless_configured() {
    // No routes, no default: every path needs a valid token.
    let setup = start("").await;
    let before = setup.upstream().count();
    let (status, challenge, body) = read(setup.get("/anything", None).await).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"tokengate\""));
    assert_eq!(body["error"], "unauthorized");
    let (status, challenge, _) = read(setup.get("/anything", Some("garbage")).await).await;
    assert_eq!(status, 401);
    assert!(challenge
        .unwrap_or_default()
        .contains("error=\"invalid_token\""));
    assert_eq!(setup.upstream().count(), before);
    let token = setup.scoped(&[]);
    assert_eq!(setup.status("/anything", Some(&token)).await, 200);
    assert_eq!(setup.last().header("x-auth-subject"), Some("user-1"));

    // A routes list without a default: unmatched paths still need a token.
    let setup = start("routes:\n  - { path: /public/**, auth: none }\n").await;
    assert_eq!(setup.status("/public/x", None).await, 200);
    assert_eq!(setup.status("/other", None).await, 401);

    // default: none makes unmatched paths public; the routes still apply.
    let setup =
        start("routes:\n  - { path: /admin/**, scopes: [admin] }\ndefault: { auth: none }\n").await;
    let reader = setup.scoped(&["read"]);
    assert_eq!(setup.status("/other", None).await, 200);
    assert_eq!(setup.status("/other", Some(&reader)).await, 200);
    assert_eq!(setup.last().header("x-auth-subject"), None);
    assert_eq!(setup.status("/admin/x", None).await, 401);
    assert_eq!(setup.status("/admin/x", Some(&reader)).await, 403);

    // The default can ask for scopes like any route.
    let setup = start("default: { any_scopes: [read, write] }\n").await;
    let none = setup.scoped(&["other"]);
    let (status, challenge, _) = read(setup.get("/x", Some(&none)).await).await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge.as_deref(),
        Some(scope_challenge("read write").as_str())
    );
    let write = setup.scoped(&["write"]);
    assert_eq!(setup.status("/x", Some(&write)).await, 200);
}

/// The names of the identity headers the upstream saw.
fn identity_headers(seen: &Recorded) -> Vec<String> {
    seen.headers
        .iter()
        .map(|(n, _)| n.to_ascii_lowercase())
        .filter(|n| n.starts_with("x-auth-") || n.starts_with("x_auth_"))
        .collect()
}

#[tokio::test]
async fn auth_none_never_verifies_a_token_nor_turns_it_into_identity() {
    let setup = start(TABLE_ROUTES).await;
    let expired = setup.token_with(json!({"exp": 1_000_000, "iat": 999_000}));
    let valid = setup.scoped(&["read", "admin"]);
    let cases: [(&str, &[(&str, &str)]); 6] = [
        ("no token", &[]),
        ("garbage token", &[("authorization", "Bearer garbage")]),
        (
            "malformed header",
            &[("authorization", "Bearer not a token!")],
        ),
        (
            "expired token",
            &[("authorization", &format!("Bearer {expired}"))],
        ),
        (
            "valid token",
            &[("authorization", &format!("Bearer {valid}"))],
        ),
        (
            "forged identity",
            &[
                ("authorization", &format!("Bearer {valid}")),
                ("x-auth-subject", "admin"),
                ("X_Auth_Scopes", "admin"),
                ("x-auth-issuer", "https://evil"),
            ],
        ),
    ];
    for (name, headers) in cases {
        for path in ["/public/x", "/health"] {
            let before = setup.upstream().count();
            let r = setup.send(reqwest::Method::GET, path, None, headers).await;
            assert_eq!(r.status(), 200, "{name} on {path}");
            assert_eq!(setup.upstream().count(), before + 1, "{name} on {path}");
            let seen = setup.last();
            assert_eq!(seen.target, path);
            assert!(
                identity_headers(&seen).is_empty(),
                "{name} on {path}: identity headers reached the upstream: {:?}",
                seen.headers
            );
        }
    }
    // The same garbage token on a required route is refused.
    let (status, challenge, _) = read(setup.get("/admin/x", Some("garbage")).await).await;
    assert_eq!(status, 401);
    assert!(challenge
        .unwrap_or_default()
        .contains("error=\"invalid_token\""));
}

#[tokio::test]
async fn auth_optional_verifies_a_token_if_there_is_one() {
    let setup = start(
        "routes:
  - { path: /maybe/**, auth: optional }
  - { path: /maybe-scoped/**, auth: optional, scopes: [read] }
",
    )
    .await;
    // Absent: anonymous, and forged identity headers are stripped.
    let r = setup
        .send(
            reqwest::Method::GET,
            "/maybe/x",
            None,
            &[("x-auth-subject", "admin")],
        )
        .await;
    assert_eq!(r.status(), 200);
    assert!(identity_headers(&setup.last()).is_empty());

    // Present and valid: verified, identity forwarded.
    let valid = setup.scoped(&["read"]);
    assert_eq!(setup.status("/maybe/x", Some(&valid)).await, 200);
    assert_eq!(setup.last().header("x-auth-subject"), Some("user-1"));

    // Present and invalid: refused, not downgraded to anonymous.
    let expired = setup.token_with(json!({"exp": 1_000_000, "iat": 999_000}));
    let wrong_audience = setup.token_with(json!({"aud": "api://other"}));
    for (name, token) in [
        ("garbage", "garbage"),
        ("expired", expired.as_str()),
        ("wrong audience", wrong_audience.as_str()),
    ] {
        let before = setup.upstream().count();
        let (status, challenge, body) = read(setup.get("/maybe/x", Some(token)).await).await;
        assert_eq!(status, 401, "{name}");
        assert!(
            challenge
                .unwrap_or_default()
                .contains("error=\"invalid_token\""),
            "{name}"
        );
        assert_eq!(body["error"], "invalid_token", "{name}");
        assert_eq!(setup.upstream().count(), before, "{name}");
    }

    // Optional with conditions only a token can meet: anonymous gets a challenge.
    let (status, challenge, _) = read(setup.get("/maybe-scoped/x", None).await).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"tokengate\""));
    assert_eq!(setup.status("/maybe-scoped/x", Some(&valid)).await, 200);
    let other = setup.scoped(&["other"]);
    assert_eq!(setup.status("/maybe-scoped/x", Some(&other)).await, 403);
}

#[tokio::test]
async fn scopes_all_of_and_any_of() {
    let setup = start(
        "routes:
  - { path: /both/**, scopes: [a, b] }
  - { path: /either/**, any_scopes: [a, b] }
  - { path: /mixed/**, scopes: [a], any_scopes: [x, y] }
",
    )
    .await;
    let scp = |s: &[&str]| setup.scoped(s);
    let scope = |s: &str| setup.token_with(json!({"scp": null, "scope": s}));
    let cases: Vec<(&str, String, Result<(), &str>)> = vec![
        ("/both/1", scp(&["a", "b"]), Ok(())),
        ("/both/1", scp(&["b", "c", "a"]), Ok(())),
        ("/both/1", scp(&["a"]), Err("a b")),
        ("/both/1", scp(&[]), Err("a b")),
        ("/both/1", scope("b a"), Ok(())),
        ("/both/1", scope("a"), Err("a b")),
        ("/both/1", scope("ab"), Err("a b")),
        (
            "/both/1",
            setup.token_with(json!({"scp": null})),
            Err("a b"),
        ),
        ("/either/1", scp(&["b"]), Ok(())),
        ("/either/1", scp(&["c"]), Err("a b")),
        ("/either/1", scope("c a"), Ok(())),
        ("/either/1", scope("aa bb"), Err("a b")),
        ("/mixed/1", scp(&["a", "y"]), Ok(())),
        // The challenge names every scope the route names, not only what is missing.
        ("/mixed/1", scp(&["a"]), Err("a x y")),
        ("/mixed/1", scp(&["x"]), Err("a x y")),
    ];
    for (path, token, expected) in &cases {
        let before = setup.upstream().count();
        let (status, challenge, body) = read(setup.get(path, Some(token)).await).await;
        match expected {
            Ok(()) => {
                assert_eq!(status, 200, "{path} {token}");
                assert_eq!(setup.upstream().count(), before + 1);
            }
            Err(scopes) => {
                assert_eq!(status, 403, "{path} {body}");
                assert_eq!(
                    challenge.as_deref(),
                    Some(scope_challenge(scopes).as_str()),
                    "{path}"
                );
                assert_eq!(body["error"], "insufficient_scope", "{path}");
                assert_eq!(setup.upstream().count(), before, "{path}");
            }
        }
    }
    // No token at all is a 401, not a 403.
    let (status, challenge, _) = read(setup.get("/both/1", None).await).await;
    assert_eq!(status, 401);
    assert_eq!(challenge.as_deref(), Some("Bearer realm=\"tokengate\""));
}

#[tokio::test]
async fn route_claims_are_403_access_denied_naming_the_claim() {
    let setup = start(
        "routes:
  - path: /gold/**
    claims: { tier: { equals: gold } }
  - path: /short/**
    claims: { tier: gold }
  - path: /staff/**
    claims: { groups: { includes: [admins, staff] } }
  - path: /region/**
    claims: { region: { any_of: [eu, us] } }
  - path: /realm/**
    claims: { realm_access.roles: { includes: [admin] } }
",
    )
    .await;
    let t = |claims: Value| setup.token_with(claims);
    let cases: Vec<(&str, String, Option<&str>)> = vec![
        ("/gold/1", t(json!({"tier": "gold"})), None),
        ("/gold/1", t(json!({"tier": "silver"})), Some("tier")),
        ("/gold/1", t(json!({"tier": ["gold"]})), Some("tier")),
        ("/gold/1", t(json!({})), Some("tier")),
        ("/short/1", t(json!({"tier": "gold"})), None),
        ("/short/1", t(json!({"tier": "golden"})), Some("tier")),
        (
            "/staff/1",
            t(json!({"groups": ["staff", "x", "admins"]})),
            None,
        ),
        ("/staff/1", t(json!({"groups": ["staff"]})), Some("groups")),
        ("/staff/1", t(json!({"groups": "admins staff"})), None),
        (
            "/staff/1",
            t(json!({"groups": "admins-staff"})),
            Some("groups"),
        ),
        ("/region/1", t(json!({"region": "us"})), None),
        ("/region/1", t(json!({"region": "apac"})), Some("region")),
        (
            "/realm/1",
            t(json!({"realm_access": {"roles": ["admin"]}})),
            None,
        ),
        (
            "/realm/1",
            t(json!({"realm_access": {"roles": ["user"]}})),
            Some("realm_access.roles"),
        ),
    ];
    for (path, token, denied) in &cases {
        let before = setup.upstream().count();
        let (status, _, body) = read(setup.get(path, Some(token)).await).await;
        match denied {
            None => {
                assert_eq!(status, 200, "{path} {body}");
                assert_eq!(setup.upstream().count(), before + 1, "{path}");
            }
            Some(claim) => {
                assert_eq!(status, 403, "{path} {body}");
                assert_eq!(body["error"], "access_denied", "{path}");
                let description = body["error_description"].as_str().unwrap_or("");
                assert!(
                    description.contains(&format!("`{claim}`")),
                    "{path}: {description:?} does not name {claim}"
                );
                assert_eq!(setup.upstream().count(), before, "{path}");
            }
        }
    }
    // Without a token the claim cannot be checked: 401.
    assert_eq!(setup.status("/gold/1", None).await, 401);
}

#[tokio::test]
async fn route_issuers_are_403_access_denied() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let first = TestIssuer::start(vec![key.clone()]).await;
    let second = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}  - issuer: {}\n    audiences: [{AUDIENCE}]\n    algorithms: {ALL_ALGORITHMS}\n    allow_http: true\n\
         upstream: {{ url: {} }}\nroutes:\n  - {{ path: /first/**, issuers: [\"{}\"] }}\n  - {{ path: /either/**, issuers: [\"{}\", \"{}\"] }}\n",
        issuer_config(&first, ""),
        second.url(),
        upstream.url(),
        first.url(),
        first.url(),
        second.url(),
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let from_first = first.token(&key);
    let from_second = second.token(&key);

    assert_eq!(proxy.get_with("/first/x", &from_first).await.status(), 200);
    let before = upstream.count();
    let (status, challenge, body) = read(proxy.get_with("/first/x", &from_second).await).await;
    assert_eq!(status, 403);
    assert_eq!(body["error"], "access_denied");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("issuer"),
        "{body}"
    );
    assert!(challenge.is_none(), "{challenge:?}");
    assert_eq!(upstream.count(), before);
    assert_eq!(
        proxy.get_with("/either/x", &from_second).await.status(),
        200
    );
    assert_eq!(proxy.get_with("/other", &from_second).await.status(), 200);
}

#[tokio::test]
async fn issuer_level_claims_stay_401_invalid_token() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\nroutes:\n  - path: /gold/**\n    claims: {{ tier: gold }}\n",
        issuer_config(&issuer, "    claims: { org: acme }\n"),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let good = issuer.token_with(&key, json!({"org": "acme", "tier": "gold"}));
    assert_eq!(proxy.get_with("/gold/x", &good).await.status(), 200);

    let before = upstream.count();
    for path in ["/gold/x", "/other"] {
        let wrong_org = issuer.token_with(&key, json!({"org": "evil", "tier": "gold"}));
        let (status, challenge, body) = read(proxy.get_with(path, &wrong_org).await).await;
        assert_eq!(status, 401, "{path}");
        assert_eq!(body["error"], "invalid_token", "{path}");
        assert_eq!(
            challenge.as_deref(),
            Some(
                "Bearer realm=\"tokengate\", error=\"invalid_token\", error_description=\"the claim `org` does not match\""
            ),
            "{path}"
        );
    }
    // The issuer's claim is checked before the route's: still 401.
    let neither = issuer.token_with(&key, json!({"org": "evil", "tier": "tin"}));
    assert_eq!(proxy.get_with("/gold/x", &neither).await.status(), 401);
    // The route's claim alone fails: 403.
    let tin = issuer.token_with(&key, json!({"org": "acme", "tier": "tin"}));
    assert_eq!(proxy.get_with("/gold/x", &tin).await.status(), 403);
    assert_eq!(upstream.count(), before);
}

#[tokio::test]
async fn methods_are_matched_with_the_path() {
    let setup = start(
        "routes:
  - { path: /docs/**, methods: [GET, HEAD], auth: none }
  - { path: /reports/**, methods: [GET], auth: none }
  - { path: /reports/**, methods: [POST, DELETE], scopes: [write] }
",
    )
    .await;
    let reader = setup.scoped(&["read"]);
    let cases: &[(&str, &str, Option<&str>, u16)] = &[
        ("GET", "/docs/x", None, 200),
        ("HEAD", "/docs/x", None, 200),
        ("POST", "/docs/x", None, 401),
        ("GET", "/reports/x", None, 200),
        // HEAD is not GET: the GET-only route does not match, the default decides.
        ("HEAD", "/reports/x", None, 401),
        ("HEAD", "/reports/x", Some(&reader), 200),
        ("POST", "/reports/x", None, 401),
        ("POST", "/reports/x", Some(&reader), 403),
        ("DELETE", "/reports/x", Some(&reader), 403),
        // A method no route lists: the default (required, any scope).
        ("PUT", "/reports/x", None, 401),
        ("PUT", "/reports/x", Some(&reader), 200),
        ("PATCH", "/docs/x", Some(&reader), 200),
    ];
    for &(method, path, token, status) in cases {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let before = setup.upstream().count();
        let r = setup.send(method.clone(), path, token, &[]).await;
        assert_eq!(
            r.status(),
            status,
            "{method} {path} with token: {}",
            token.is_some()
        );
        if status == 200 {
            assert_eq!(setup.upstream().count(), before + 1, "{method} {path}");
            assert_eq!(setup.last().method, method.as_str());
        } else {
            assert_eq!(setup.upstream().count(), before, "{method} {path}");
        }
    }
    // Methods are case-sensitive, and upstreams that upper-case them would run `get` as GET
    // past the rules that matched `get`: a method with lower-case letters is refused.
    let before = setup.upstream().count();
    let r = raw_request(setup.proxy.addr, "get", "/docs/x", &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(setup.upstream().count(), before);
}

#[tokio::test]
async fn preflight_with_cors_is_answered_without_a_token() {
    let setup = start(
        "cors: { allow_origins: [\"https://app.example.com\"] }
routes:
  - { path: /public/**, auth: none }
  - { path: /admin/**, scopes: [admin] }
",
    )
    .await;
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "DELETE"),
        ("access-control-request-headers", "authorization"),
    ];
    for path in ["/admin/x", "/anything", "/public/x"] {
        let before = setup.upstream().count();
        let r = setup
            .send(reqwest::Method::OPTIONS, path, None, &preflight)
            .await;
        assert_eq!(r.status(), 204, "{path}");
        assert_eq!(
            r.headers()
                .get("access-control-allow-origin")
                .and_then(|v| v.to_str().ok()),
            Some("https://app.example.com"),
            "{path}"
        );
        assert!(r.headers().get("www-authenticate").is_none(), "{path}");
        assert_eq!(
            setup.upstream().count(),
            before,
            "{path}: preflight forwarded"
        );
    }
    // A preflight through a dot segment is still only a preflight.
    let before = setup.upstream().count();
    let r = raw_request(
        setup.proxy.addr,
        "OPTIONS",
        "/public/../admin/x",
        &preflight,
    )
    .await;
    assert_eq!(r.status, 204);
    assert_eq!(setup.upstream().count(), before);

    // An OPTIONS that is not a preflight (no Access-Control-Request-Method) is a request.
    let r = setup
        .send(
            reqwest::Method::OPTIONS,
            "/admin/x",
            None,
            &[("origin", "https://app.example.com")],
        )
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(setup.upstream().count(), before);
}

#[tokio::test]
async fn without_cors_options_is_an_ordinary_request_under_the_rules() {
    let setup = start(TABLE_ROUTES).await;
    let preflight = [
        ("origin", "https://app.example.com"),
        ("access-control-request-method", "GET"),
    ];
    let before = setup.upstream().count();
    let r = setup
        .send(reqwest::Method::OPTIONS, "/admin/x", None, &preflight)
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(setup.upstream().count(), before);
    let reader = setup.scoped(&["read"]);
    let (status, challenge, _) = read(
        setup
            .send(
                reqwest::Method::OPTIONS,
                "/admin/x",
                Some(&reader),
                &preflight,
            )
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge.as_deref(),
        Some(scope_challenge("admin").as_str())
    );
    assert_eq!(setup.upstream().count(), before);

    // On an auth: none route it is forwarded like any other method.
    let r = setup
        .send(reqwest::Method::OPTIONS, "/public/x", None, &preflight)
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(setup.upstream().count(), before + 1);
    let seen = setup.last();
    assert_eq!(seen.method, "OPTIONS");
    assert_eq!(seen.target, "/public/x");
}

const RESOURCE: &str = "resource: { id: https://api.example.com, authorization_servers: [https://idp.example.com], scopes_supported: [read] }\n";
const METADATA_URL: &str = "https://api.example.com/.well-known/oauth-protected-resource";

#[tokio::test]
async fn protected_resource_metadata_is_public_and_named_in_every_401() {
    let setup = start(&format!("{TABLE_ROUTES}{RESOURCE}")).await;
    let before = setup.upstream().count();
    let r = setup
        .get("/.well-known/oauth-protected-resource", None)
        .await;
    assert_eq!(r.status(), 200);
    assert!(r
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .starts_with("application/json"));
    let doc: Value = r.json().await.expect("metadata is JSON");
    assert_eq!(
        doc,
        json!({
            "resource": "https://api.example.com",
            "authorization_servers": ["https://idp.example.com"],
            "scopes_supported": ["read"],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256", "EdDSA", "PS256", "RS256"],
            "dpop_bound_access_tokens_required": false,
        })
    );
    // Public even with a garbage token, and never forwarded.
    let r = setup
        .get("/.well-known/oauth-protected-resource", Some("garbage"))
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(setup.upstream().count(), before);

    let suffix = format!(", resource_metadata=\"{METADATA_URL}\"");
    // Missing token: the route's scope too (RFC 6750 §3), before the metadata.
    let (status, challenge, _) = read(setup.get("/admin/x", None).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(format!("Bearer realm=\"tokengate\", scope=\"admin\"{suffix}").as_str())
    );
    // Invalid token, on a required route and on the default.
    for path in ["/admin/x", "/anything"] {
        let (status, challenge, _) = read(setup.get(path, Some("garbage")).await).await;
        assert_eq!(status, 401, "{path}");
        let challenge = challenge.unwrap_or_default();
        assert!(
            challenge.starts_with("Bearer realm=\"tokengate\", error=\"invalid_token\"")
                && challenge.ends_with(&suffix),
            "{path}: {challenge}"
        );
    }
    let expired = setup.token_with(json!({"exp": 1_000_000, "iat": 999_000}));
    let (status, challenge, _) = read(setup.get("/anything", Some(&expired)).await).await;
    assert_eq!(status, 401);
    assert!(challenge.unwrap_or_default().ends_with(&suffix));
    assert_eq!(setup.upstream().count(), before);
}

#[tokio::test]
async fn protected_resource_metadata_of_a_resource_with_a_path() {
    let setup = start(
        "resource: { id: https://api.example.com/v1, authorization_servers: [https://idp.example.com] }\n",
    )
    .await;
    let before = setup.upstream().count();
    let r = setup
        .get("/.well-known/oauth-protected-resource/v1", None)
        .await;
    assert_eq!(r.status(), 200);
    let doc: Value = r.json().await.expect("metadata is JSON");
    assert_eq!(doc["resource"], "https://api.example.com/v1");
    // RFC 9728 §3.1: only the path-suffixed name is the metadata; the bare one is a request.
    let (status, challenge, _) = read(
        setup
            .get("/.well-known/oauth-protected-resource", None)
            .await,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge.as_deref(),
        Some(
            "Bearer realm=\"tokengate\", resource_metadata=\"https://api.example.com/.well-known/oauth-protected-resource/v1\""
        )
    );
    assert_eq!(setup.upstream().count(), before);
}

#[tokio::test]
async fn client_sent_rewrite_headers_never_decide_the_route() {
    let setup = start(TABLE_ROUTES).await;
    let reader = setup.scoped(&["read"]);
    let to_public = [
        ("x-forwarded-uri", "/public/x"),
        ("x-original-url", "/public/x"),
        ("x-original-uri", "/public/x"),
        ("x-rewrite-url", "/public/x"),
        ("x-forwarded-prefix", "/public"),
    ];
    let before = setup.upstream().count();
    let (status, challenge, _) = read(
        setup
            .send(reqwest::Method::GET, "/admin/x", Some(&reader), &to_public)
            .await,
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        challenge.as_deref(),
        Some(scope_challenge("admin").as_str())
    );
    let r = setup
        .send(reqwest::Method::GET, "/admin/x", None, &to_public)
        .await;
    assert_eq!(r.status(), 401);
    assert_eq!(setup.upstream().count(), before);

    // The other way round: a public request cannot smuggle an admin target upstream.
    let to_admin = [
        ("x-forwarded-uri", "/admin/x"),
        ("x-original-url", "/admin/x"),
        ("x-original-uri", "/admin/x"),
        ("x-rewrite-url", "/admin/x"),
        ("x-forwarded-prefix", "/admin"),
    ];
    let r = setup
        .send(reqwest::Method::GET, "/public/x", None, &to_admin)
        .await;
    assert_eq!(r.status(), 200);
    let seen = setup.last();
    assert_eq!(seen.target, "/public/x");
    for (name, _) in to_admin {
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
}

#[tokio::test]
async fn a_non_ascii_pattern_matches_its_percent_encoded_path() {
    let setup = start(
        "routes:\n  - { path: \"/caf\u{e9}/**\", scopes: [admin] }\ndefault: { auth: required }\n",
    )
    .await;
    let reader = format!("Bearer {}", setup.scoped(&["read"]));
    for path in ["/caf%C3%A9/menu", "/caf%c3%a9/menu", "/caf%C3%A9"] {
        let before = setup.upstream().count();
        let r = raw_request(setup.proxy.addr, "GET", path, &[("Authorization", &reader)]).await;
        assert_eq!(
            r.status, 403,
            "{path}: the /caf\u{e9}/** rule was not applied"
        );
        assert_eq!(
            r.header("www-authenticate"),
            Some(scope_challenge("admin").as_str()),
            "{path}"
        );
        assert_eq!(setup.upstream().count(), before, "{path}");
    }
}
