//! Paths and forwarding: RFC 3986 §5.2.4 and §6 (normalisation), the classic bypass shapes.

use super::{gate, gate_with, Attack};
use crate::support::client;
use crate::support::Stack;

/// Sends each raw target with a token holding only `read` and without one, and checks the
/// status and what the upstream saw. `forwarded` None: nothing may reach the upstream.
async fn path_rows(g: &Stack, rows: &[(&str, u16, u16, Option<&str>)]) {
    let bearer = format!("Bearer {}", g.token());
    let mut failures = Vec::new();
    for &(target, with_read, anonymous, forwarded) in rows {
        for (token, want) in [(Some(&bearer), with_read), (None, anonymous)] {
            let before = g.upstream().count();
            let headers: Vec<(&str, &str)> = token
                .map(|t| vec![("Authorization", t.as_str())])
                .unwrap_or_default();
            let answer = g.raw(&client::get(target, &headers)).await;
            let who = if token.is_some() {
                "read token"
            } else {
                "no token"
            };
            if answer.status != want {
                failures.push(format!(
                    "{target:?} ({who}): status {} (want {want})",
                    answer.status
                ));
            }
            let after = g.upstream().count();
            match (want, forwarded) {
                (200, Some(path)) => {
                    if after != before + 1 {
                        failures.push(format!("{target:?} ({who}): not forwarded"));
                    } else if g.last().target != path {
                        failures.push(format!(
                            "{target:?} ({who}): forwarded as {:?} (want {path:?})",
                            g.last().target
                        ));
                    }
                }
                _ => {
                    if after != before {
                        failures.push(format!(
                            "{target:?} ({who}): reached the upstream as {:?}",
                            g.upstream().last().map(|r| r.target)
                        ));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RFC 3986 §5.2.4 (dot segments) and CVE-2021-41773 (Apache path traversal): `..` cannot
/// climb out of the public prefix into the admin one; the rule that decides is the one for
/// the path the upstream is sent.
#[tokio::test]
async fn dot_segments_cannot_escape_the_public_prefix() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            ("/public/../admin", 403, 401, None),
            ("/public/../admin/users", 403, 401, None),
            ("/public/./../admin", 403, 401, None),
            ("/public/x/../../admin/y", 403, 401, None),
            ("/public/../../../admin", 403, 401, None),
            ("/public/x/..", 200, 200, Some("/public/")),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// Empty segments (RFC 3986 §3.3): `//admin` is `/admin` to most upstreams, so it is to the
/// rules too.
#[tokio::test]
async fn doubled_slashes_cannot_hide_the_admin_prefix() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            ("//admin", 403, 401, None),
            ("///admin//x", 403, 401, None),
            ("/public//../admin", 403, 401, None),
            ("//public//x", 200, 200, Some("/public/x")),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// RFC 3986 §2.3 and §6.2.2.2: `%2e` is `.`, so `%2e%2e` is a dot segment (the shape of
/// CVE-2021-42013 and countless WAF bypasses).
#[tokio::test]
async fn encoded_dots_cannot_escape_the_public_prefix() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            ("/public/%2e%2e/admin", 403, 401, None),
            ("/public/%2E%2E/admin", 403, 401, None),
            ("/public/.%2e/admin", 403, 401, None),
            ("/public/%2e./admin", 403, 401, None),
            ("/%61dmin", 403, 401, None),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// Encoded separators (CVE-2007-0450, Tomcat's `%2F`/`%5C`; CWE-22): an upstream may decode
/// `%2F` into a separator after the rules ran. Ambiguous, so refused with 400.
#[tokio::test]
async fn encoded_slashes_and_backslashes_are_refused() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            ("/public%2Fadmin", 400, 400, None),
            ("/public/..%2Fadmin", 400, 400, None),
            ("/public/..%2fadmin", 400, 400, None),
            ("/public/..%5Cadmin", 400, 400, None),
            ("/public/..%5cadmin", 400, 400, None),
            ("/public/..\\admin", 400, 400, None),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// Path parameters (RFC 3986 §3.3; CVE-2020-1957 Shiro, the Tomcat `..;` bypass): Tomcat and
/// Spring strip `;...` before routing, so `/public/..;/admin` is `/admin` to them. Refused
/// (400) unless `paths.allow_parameters` is on.
#[tokio::test]
async fn path_parameters_are_refused() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            ("/admin;x=1", 400, 400, None),
            ("/public/..;/admin", 400, 400, None),
            ("/public;/../admin", 400, 400, None),
            ("/public/x;jsessionid=1", 400, 400, None),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// The `..;` shapes with `paths.allow_parameters: true`: each segment is read without its
/// parameters, as Tomcat would, so `/public/..;/admin` is `/admin` and needs the scope.
/// (The bypass this setting still has is `parameter_on_a_dot_segment_cannot_hide_a_prefix`.)
#[tokio::test]
async fn dot_dot_semicolon_is_read_as_tomcat_reads_it_when_parameters_are_allowed() {
    let g = gate_with("paths: { allow_parameters: true }\n").await;
    path_rows(
        &g,
        &[
            ("/public/..;/admin", 403, 401, None),
            ("/public/..;x=1/admin", 403, 401, None),
            ("/public;/../admin", 403, 401, None),
            ("/admin;jsessionid=1/x", 403, 401, None),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// With `allow_parameters`, a parameter on a *dot* segment (`.;` or `..;`) is removed for the
/// rule match, so the dot segment counts there, but the forwarded path keeps it as an
/// ordinary segment and then lets a following `..` remove it: the rules see `/` while the
/// upstream is sent `/admin/`. The matched form and the forwarded path must agree.
#[tokio::test]
async fn parameter_on_a_dot_segment_cannot_hide_a_prefix() {
    // A parameter on a dot segment is still a dot segment (Tomcat and Spring read
    // `/admin/.;/..` as `/`), in the path that is matched and in the path that is forwarded:
    // the upstream never receives an /admin path that the /admin/** rule did not see.
    let g = gate_with("paths: { allow_parameters: true }\n").await;
    path_rows(
        &g,
        &[
            ("/admin/.;/..", 200, 401, Some("/")),
            ("/admin/x/..;/..", 200, 401, Some("/")),
            ("/admin/.;x=1/..", 200, 401, Some("/")),
            ("/public/..;/admin/x", 403, 401, None),
        ],
    )
    .await;
    g.assert_still_serving().await;
    // With a public default, the same shapes reach only `/`, never /admin/.
    let open = gate_with("paths: { allow_parameters: true }\ndefault: { auth: none }\n").await;
    path_rows(
        &open,
        &[
            ("/admin/.;/..", 200, 200, Some("/")),
            ("/admin/x/..;/..", 200, 200, Some("/")),
            ("/public/..;/admin/x", 403, 401, None),
        ],
    )
    .await;
}

/// CWE-174 (double decoding): `%252e` is the three characters `%2e` after one decoding, and
/// tokengate decodes once. It is forwarded exactly as `%252e`: an upstream that decodes twice
/// is outside tokengate's guarantee (SECURITY.md).
#[tokio::test]
async fn double_encoding_is_not_decoded_twice() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            (
                "/public/%252e%252e/admin",
                200,
                200,
                Some("/public/%252e%252e/admin"),
            ),
            (
                "/public/%252E%252E/admin",
                200,
                200,
                Some("/public/%252E%252E/admin"),
            ),
            ("/admin/%252e%252e/public", 403, 401, None),
            (
                "/public/%25%32%65%25%32%65/admin",
                200,
                200,
                Some("/public/%252e%252e/admin"),
            ),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// RFC 3986 §3.4 and §3.5: the query and the fragment are not the path. Rules never look at
/// them (`/private?x=/public` is the default rule), and a raw `#` ends the path.
#[tokio::test]
async fn the_query_and_fragment_never_choose_the_route() {
    let g = gate().await;
    path_rows(
        &g,
        &[
            ("/private?x=/public", 200, 401, Some("/private?x=/public")),
            ("/admin?x=/public", 403, 401, None),
            ("/admin?/../public/x", 403, 401, None),
            ("/public?x=/admin", 200, 200, Some("/public?x=/admin")),
            ("/admin#/../public", 403, 401, None),
            ("/public#/../admin", 200, 200, Some("/public")),
            ("/admin%3F/../public/x", 200, 200, Some("/public/x")),
            ("/public%23/../admin", 403, 401, None),
        ],
    )
    .await;
    g.assert_still_serving().await;
}

/// CVE-2018-14773 (Symfony `X-Original-URL`/`X-Rewrite-URL`), and `X-Forwarded-*`/`Forwarded`
/// (RFC 7239) from a peer that is not a trusted proxy: none of them reaches the upstream, and
/// none of them changes which rule decides.
#[tokio::test]
async fn client_forwarding_headers_never_reach_the_upstream_nor_route() {
    let g = gate().await;
    let spoofed = [
        ("X-Original-URL", "/public/x"),
        ("X-Original-URI", "/public/x"),
        ("X-Rewrite-URL", "/public/x"),
        ("X-Forwarded-Uri", "/public/x"),
        ("X-Forwarded-Prefix", "/public"),
        ("X-Forwarded-Path", "/public/x"),
        ("X-Forwarded-For", "10.0.0.1"),
        ("X_Forwarded_For", "10.0.0.1"),
        ("X-Forwarded-Host", "admin.internal"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Port", "443"),
        ("Forwarded", "for=10.0.0.1;host=admin.internal;proto=https"),
        ("X-Real-IP", "10.0.0.1"),
        ("X-Client-IP", "10.0.0.1"),
    ];
    // Toward the admin route without a token: still 401, nothing forwarded.
    let before = g.upstream().count();
    let r = g.get_headers("/admin/x", &spoofed).await;
    assert_eq!(r.status(), 401);
    assert_eq!(g.upstream().count(), before);
    // With a read token: still 403.
    let bearer = format!("Bearer {}", g.token());
    let mut with_token = spoofed.to_vec();
    with_token.push(("authorization", &bearer));
    assert_eq!(g.get_headers("/admin/x", &with_token).await.status(), 403);
    assert_eq!(g.upstream().count(), before);
    // Toward the public route, pointing at admin: forwarded as the public path, and clean.
    let toward_admin: Vec<(&str, &str)> = spoofed
        .iter()
        .map(|(n, v)| {
            (
                *n,
                if v.starts_with("/public") {
                    "/admin/x"
                } else {
                    *v
                },
            )
        })
        .collect();
    let r = g.get_headers("/public/x", &toward_admin).await;
    assert_eq!(r.status(), 200);
    assert_eq!(g.upstream().count(), before + 1);
    let seen = g.last();
    assert_eq!(seen.target, "/public/x");
    for (name, _) in spoofed {
        let lower = name.to_ascii_lowercase();
        if ["x-forwarded-for", "x-forwarded-host", "x-forwarded-proto"].contains(&lower.as_str()) {
            continue;
        }
        assert_eq!(seen.header(name), None, "{name} reached the upstream");
    }
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"));
    let proxy_host = g.proxy.addr.to_string();
    assert_eq!(seen.header("x-forwarded-host"), Some(proxy_host.as_str()));
    assert!(
        !seen.headers.iter().any(|(n, _)| n.contains('_')),
        "{:?}",
        seen.headers
    );
    g.assert_still_serving().await;
}
