//! Opaque tokens (RFC 7662 introspection, RFC 9701 signed answers) against a tiny in-process
//! endpoint: every rule and failure mode, the cache (answers, never decisions), the two
//! Oathkeeper cache advisories and single-flight. `oidc_provider` runs the same against a
//! real authorization server.

mod oidc_provider;

use std::io::Write;
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::Algorithm;
use serde_json::{json, Value};

use crate::support::introspection::{active, Reply, TestIntrospection};
use crate::support::issuer::{merge, AUDIENCE};
use crate::support::keys::now;
use crate::support::{Stack, TestKey};

/// The client secret tokengate authenticates with: characters that RFC 6749 §2.3.1's
/// form-urlencoding changes.
const SECRET: &str = "s3cr:t/+ é";
/// `SECRET` form-urlencoded.
const SECRET_ENCODED: &str = "s3cr%3At%2F%2B+%C3%A9";
const OPAQUE: &str = "opaque-token-0123456789abcdefghijklmnop";

/// A file holding `text`, removed when dropped.
pub(crate) fn file(text: &str) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("a temporary file");
    f.write_all(text.as_bytes()).expect("written");
    f
}

/// A stack whose issuer introspects at `endpoint` with `fields` added to its
/// `introspection:` mapping, and these routes; the secret file lives as long as the stack.
async fn stack(endpoint: &str, fields: &str, routes: &str) -> (Stack, tempfile::NamedTempFile) {
    let secret = file(SECRET);
    let s = Stack::builder()
        .issuer_lines(&format!(
            "    introspection: {{ endpoint: {endpoint}, client_id: tokengate, client_secret_file: {}{fields} }}\n",
            secret.path().display()
        ))
        .routes(routes)
        .start()
        .await;
    (s, secret)
}

async fn body(r: reqwest::Response) -> (u16, Option<String>, Value) {
    let status = r.status().as_u16();
    let retry = r
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn an_active_opaque_token_passes_with_its_members_as_claims() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), "", "").await;
    ep.reply(OPAQUE, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    let seen = s.last();
    assert_eq!(seen.header("x-auth-subject"), Some("alice"));
    assert_eq!(seen.header("x-auth-issuer"), Some(s.issuer.url()));
    assert_eq!(seen.header("x-auth-scopes"), Some("read"));
    assert_eq!(seen.header("x-auth-client-id"), Some("client-1"));
    // RFC 7662 §2.1: a form POST with the token and its hint, the client authenticated with
    // HTTP Basic over the form-urlencoded id and secret (RFC 6749 §2.3.1).
    let call = ep.last();
    assert_eq!(call.form.get("token").map(String::as_str), Some(OPAQUE));
    assert_eq!(
        call.form.get("token_type_hint").map(String::as_str),
        Some("access_token")
    );
    assert_eq!(call.form.len(), 2, "{:?}", call.form);
    assert_eq!(
        call.authorization,
        Some(format!(
            "Basic {}",
            STANDARD.encode(format!("tokengate:{SECRET_ENCODED}"))
        ))
    );
    assert_eq!(
        call.content_type.as_deref(),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(call.accept.as_deref(), Some("application/json"));
}

#[tokio::test]
async fn an_unknown_token_is_401_inactive() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), "", "").await;
    let (status, _, json) = body(s.get("/api/x", Some("never-issued")).await).await;
    assert_eq!(status, 401);
    assert_eq!(json["error"], "invalid_token");
    assert_eq!(json["error_description"], "the token is not active");
    assert_eq!(s.upstream().count(), 0);
}

/// Each answer of the endpoint and the status it gives: what is not `active: true` with
/// members that pass every check is 401; what cannot be had or believed is 503 with
/// `Retry-After`, never a pass and never "inactive".
#[tokio::test]
async fn every_answer_is_a_pass_a_401_or_a_503() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), ", timeout: 500ms", "").await;
    let iss = s.issuer.url().to_owned();
    let good = active(&iss, AUDIENCE);
    let with = |changes: Value| Reply::Json(merge(good.clone(), changes));
    let rows: Vec<(&str, Reply, u16, &str)> = vec![
        ("ok", Reply::Json(good.clone()), 200, ""),
        (
            "inactive",
            Reply::Json(json!({"active": false})),
            401,
            "the token is not active",
        ),
        (
            "no-active",
            with(json!({"active": null})),
            401,
            "the token is not active",
        ),
        (
            "active-string",
            with(json!({"active": "true"})),
            401,
            "the token is not active",
        ),
        (
            "active-one",
            with(json!({"active": 1})),
            401,
            "the token is not active",
        ),
        (
            "wrong-iss",
            with(json!({"iss": "https://elsewhere.example"})),
            401,
            "the token's issuer is not the one that introspected it",
        ),
        (
            "wrong-aud",
            with(json!({"aud": "api://other"})),
            401,
            "the token is not meant for this audience",
        ),
        (
            "no-aud",
            with(json!({"aud": null})),
            401,
            "the token is not meant for this audience",
        ),
        (
            "expired",
            with(json!({"exp": now() - 3600})),
            401,
            "the token has expired",
        ),
        (
            "not-yet",
            with(json!({"nbf": now() + 3600})),
            401,
            "the token is not valid yet",
        ),
        (
            "refresh",
            with(json!({"token_type": "refresh_token"})),
            401,
            "the token's typ is not at+jwt",
        ),
        (
            "scope-array",
            with(json!({"scope": ["read"]})),
            401,
            "the claim `scope` has the wrong type",
        ),
        ("no-exp", with(json!({"exp": null})), 200, ""),
        ("500", Reply::Status(500), 503, ""),
        ("503", Reply::Status(503), 503, ""),
        ("401-to-us", Reply::Status(401), 503, ""),
        ("302", Reply::Status(302), 503, ""),
        ("bad-json", Reply::Raw("{\"active\": tru".into()), 503, ""),
        ("not-object", Reply::Raw("[true]".into()), 503, ""),
        (
            "duplicate-active",
            Reply::Raw("{\"active\": false, \"active\": true}".into()),
            503,
            "",
        ),
        (
            "slow",
            Reply::Slow(Duration::from_secs(3), Box::new(Reply::Json(good.clone()))),
            503,
            "",
        ),
    ];
    for (token, reply, status, description) in rows {
        ep.reply(token, reply);
        let (got, retry, json) = body(s.get("/api/x", Some(token)).await).await;
        assert_eq!(got, status, "{token}: {json}");
        match status {
            401 => {
                assert_eq!(json["error"], "invalid_token", "{token}");
                assert_eq!(json["error_description"], description, "{token}");
            }
            503 => {
                assert_eq!(retry.as_deref(), Some("5"), "{token}");
                assert_eq!(json["error"], "temporarily_unavailable", "{token}");
            }
            _ => {}
        }
    }
    assert_eq!(
        s.upstream().count(),
        2,
        "only the two passes reached the upstream"
    );
}

#[tokio::test]
async fn an_unreachable_endpoint_is_503() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port");
    let (s, _secret) = stack(&format!("http://127.0.0.1:{port}/introspect"), "", "").await;
    let (status, retry, _) = body(s.get("/api/x", Some(OPAQUE)).await).await;
    assert_eq!((status, retry.as_deref()), (503, Some("5")));
}

/// Oathkeeper's first cache advisory: an answer cached under one route is never a pass
/// under a route that needs another scope; the route's rule runs on every request.
#[tokio::test]
async fn a_cached_answer_is_re_judged_under_every_route() {
    let ep = TestIntrospection::start().await;
    let routes = "routes:\n  - { path: /admin/**, scopes: [admin] }\n  - { path: /api/**, scopes: [read] }\n";
    let (s, _secret) = stack(&ep.url(), "", routes).await;
    ep.reply(OPAQUE, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    assert_eq!(s.status("/admin/x", Some(OPAQUE)).await, 403);
    assert_eq!(s.status("/admin/x", Some(OPAQUE)).await, 403);
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    assert_eq!(
        ep.calls(OPAQUE),
        1,
        "the answer was cached, the decision was not"
    );
    // And the other order: the refusal under /admin is not cached as a refusal for /api.
    const OTHER: &str = "another-opaque-token-abcdefghijklmnop";
    ep.reply(OTHER, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/admin/x", Some(OTHER)).await, 403);
    assert_eq!(s.status("/api/x", Some(OTHER)).await, 200);
    assert_eq!(ep.calls(OTHER), 1);
}

/// Oathkeeper's second cache advisory: an answer cached for one introspection endpoint
/// (issuer) is never used as another endpoint's answer about the same token.
#[tokio::test]
async fn a_cached_answer_of_one_endpoint_is_never_used_for_another() {
    let a = TestIntrospection::start().await;
    let b = TestIntrospection::start().await;
    let (secret_a, secret_b) = (file(SECRET), file(SECRET));
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer_a = crate::support::TestIssuer::start(vec![key.clone()]).await;
    let issuer_b = crate::support::TestIssuer::start(vec![key.clone()]).await;
    let entry = |issuer: &str, endpoint: String, secret: &tempfile::NamedTempFile| {
        format!(
            "  - issuer: {issuer}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n    introspection: {{ endpoint: {endpoint}, client_id: tokengate, client_secret_file: {}, negative_cache_ttl: 1s }}\n",
            secret.path().display()
        )
    };
    // B is asked first.
    let yaml = format!(
        "issuers:\n{}{}opaque_tokens: [{}, {}]\n",
        entry(issuer_a.url(), a.url(), &secret_a),
        entry(issuer_b.url(), b.url(), &secret_b),
        issuer_b.url(),
        issuer_a.url()
    );
    let proxy = crate::support::TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    a.reply(OPAQUE, Reply::Json(active(issuer_a.url(), AUDIENCE)));
    let r = proxy.get_with("/secure", OPAQUE).await;
    assert_eq!(r.status(), 200);
    let secure: Value = r.json().await.unwrap_or_default();
    assert_eq!(secure["claims"]["iss"], issuer_a.url());
    assert_eq!((b.calls(OPAQUE), a.calls(OPAQUE)), (1, 1));
    // Both answers cached: B's "inactive" and A's "active" are two entries.
    assert_eq!(proxy.get_with("/secure", OPAQUE).await.status(), 200);
    assert_eq!((b.calls(OPAQUE), a.calls(OPAQUE)), (1, 1));
    // B changes its mind. Its negative answer expires after 1 s, and B is asked again:
    // A's cached "active" never stood in for B.
    b.reply(OPAQUE, Reply::Json(active(issuer_b.url(), AUDIENCE)));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let r = proxy.get_with("/secure", OPAQUE).await;
    assert_eq!(r.status(), 200);
    let secure: Value = r.json().await.unwrap_or_default();
    assert_eq!(
        secure["claims"]["iss"],
        issuer_b.url(),
        "B's own answer decides"
    );
    assert_eq!((b.calls(OPAQUE), a.calls(OPAQUE)), (2, 1));
}

#[tokio::test]
async fn answers_are_cached_for_cache_ttl_then_asked_again() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), ", cache_ttl: 1s", "").await;
    ep.reply(OPAQUE, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    // Revoked at the server: still served from the cache until cache_ttl...
    ep.reply(OPAQUE, Reply::Json(json!({"active": false})));
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    assert_eq!(ep.calls(OPAQUE), 1);
    // ...then asked again, and refused.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 401);
    assert_eq!(ep.calls(OPAQUE), 2);
    // The negative answer is cached too (10 s by default).
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 401);
    assert_eq!(ep.calls(OPAQUE), 2);
    // Metrics: calls by issuer and outcome, cache hits, latency.
    let metrics = s
        .proxy
        .gateway
        .metrics()
        .render(&s.proxy.app().keys().status(), 0);
    let iss = s.issuer.url();
    for line in [
        format!("tokengate_introspection_calls_total{{issuer=\"{iss}\",outcome=\"active\"}} 1"),
        format!("tokengate_introspection_calls_total{{issuer=\"{iss}\",outcome=\"inactive\"}} 1"),
        format!("tokengate_introspection_cache_hits_total{{issuer=\"{iss}\"}} 2"),
        "tokengate_introspection_duration_seconds_count 2".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line} not in\n{metrics}");
    }
}

#[tokio::test]
async fn a_cached_answer_never_outlives_its_exp() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), "", "").await;
    let iss = s.issuer.url().to_owned();
    ep.reply(
        OPAQUE,
        Reply::Json(merge(active(&iss, AUDIENCE), json!({"exp": now() + 1}))),
    );
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    // Past exp (and not within leeway): the cache is not asked for the old answer, the
    // endpoint is; it now says inactive.
    ep.reply(OPAQUE, Reply::Json(json!({"active": false})));
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 401);
    assert_eq!(ep.calls(OPAQUE), 2);
}

/// 500 concurrent requests with one new opaque token make one introspection call.
#[tokio::test]
async fn concurrent_requests_with_one_new_token_make_one_call() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), "", "").await;
    ep.reply(
        OPAQUE,
        Reply::Slow(
            Duration::from_millis(300),
            Box::new(Reply::Json(active(s.issuer.url(), AUDIENCE))),
        ),
    );
    let client = reqwest::Client::new();
    let url = s.proxy.url("/api/x");
    let requests = (0..500).map(|_| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            client
                .get(url)
                .bearer_auth(OPAQUE)
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        })
    });
    let statuses = futures_util::future::join_all(requests).await;
    let ok = statuses.iter().filter(|s| matches!(s, Ok(200))).count();
    assert_eq!(ok, 500, "{statuses:?}");
    assert_eq!(ep.calls(OPAQUE), 1);
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), ", auth: client_secret_post", "").await;
    ep.reply(OPAQUE, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    let call = ep.last();
    assert_eq!(call.authorization, None);
    assert_eq!(
        call.form.get("client_id").map(String::as_str),
        Some("tokengate")
    );
    assert_eq!(
        call.form.get("client_secret").map(String::as_str),
        Some(SECRET)
    );
}

/// RFC 7523 §3: a JWT assertion signed with the configured key, `iss` = `sub` = client id,
/// `aud` = the endpoint, a `jti`, a short `exp`.
#[tokio::test]
async fn private_key_jwt_signs_an_assertion() {
    let ep = TestIntrospection::start().await;
    let key_file = format!(
        "{}/tests/fixtures/keys/rsa-b.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let s = Stack::builder()
        .issuer_lines(&format!(
            "    introspection: {{ endpoint: {}, client_id: tokengate, auth: private_key_jwt, private_key_file: {key_file} }}\n",
            ep.url()
        ))
        .start()
        .await;
    ep.reply(OPAQUE, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/api/x", Some(OPAQUE)).await, 200);
    let call = ep.last();
    assert_eq!(call.authorization, None);
    assert_eq!(
        call.form.get("client_assertion_type").map(String::as_str),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    let assertion = call
        .form
        .get("client_assertion")
        .cloned()
        .unwrap_or_default();
    let public = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let decoding = jsonwebtoken::DecodingKey::from_jwk(
        &serde_json::from_value(public.jwk.clone()).expect("a JWK"),
    )
    .expect("a decoding key");
    let mut validation = jsonwebtoken::Validation::new(Algorithm::RS256);
    validation.set_audience(&[ep.url()]);
    validation.set_issuer(&["tokengate"]);
    let claims = jsonwebtoken::decode::<Value>(&assertion, &decoding, &validation)
        .unwrap_or_else(|e| panic!("the assertion does not verify: {e}"))
        .claims;
    assert_eq!(claims["sub"], "tokengate");
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let lifetime = claims["exp"].as_u64().unwrap_or(0) - claims["iat"].as_u64().unwrap_or(0);
    assert!(lifetime > 0 && lifetime <= 120, "{lifetime}");
}

/// RFC 9701: the answer is a JWT signed by the issuer with `typ` token-introspection+jwt,
/// `iss` the issuer, `aud` our client id, `iat`; the members under `token_introspection`.
/// Anything less is an answer that cannot be believed: 503.
#[tokio::test]
async fn signed_answers_are_checked_before_they_are_believed() {
    let ep = TestIntrospection::start().await;
    let (s, _secret) = stack(&ep.url(), ", response: jwt", "").await;
    let iss = s.issuer.url().to_owned();
    let claims = json!({
        "iss": iss,
        "aud": "tokengate",
        "iat": now(),
        "token_introspection": active(&iss, AUDIENCE),
    });
    let signed = |header: Value, changes: Value, key: &TestKey| Reply::Jwt {
        header,
        claims: merge(claims.clone(), changes),
        key: key.clone(),
    };
    let attacker = TestKey::load("attacker-rsa", "rsa-a", Algorithm::RS256);
    let rows: Vec<(&str, Reply, u16)> = vec![
        ("ok", signed(json!({}), json!({}), &s.key), 200),
        (
            "inactive",
            signed(
                json!({}),
                json!({"token_introspection": {"active": false}}),
                &s.key,
            ),
            401,
        ),
        (
            "wrong-typ",
            signed(json!({"typ": "JWT"}), json!({}), &s.key),
            503,
        ),
        (
            "no-typ",
            signed(json!({"typ": null}), json!({}), &s.key),
            503,
        ),
        (
            "wrong-aud",
            signed(json!({}), json!({"aud": "someone-else"}), &s.key),
            503,
        ),
        (
            "wrong-iss",
            signed(
                json!({}),
                json!({"iss": "https://elsewhere.example"}),
                &s.key,
            ),
            503,
        ),
        (
            "no-iat",
            signed(json!({}), json!({"iat": null}), &s.key),
            503,
        ),
        (
            "future-iat",
            signed(json!({}), json!({"iat": now() + 3600}), &s.key),
            503,
        ),
        (
            "no-members",
            signed(json!({}), json!({"token_introspection": null}), &s.key),
            503,
        ),
        ("wrong-key", signed(json!({}), json!({}), &attacker), 503),
        (
            "alg-none",
            signed(json!({"alg": "none"}), json!({}), &s.key),
            503,
        ),
        ("plain-json", Reply::Json(active(&iss, AUDIENCE)), 503),
    ];
    for (token, reply, status) in rows {
        ep.reply(token, reply);
        assert_eq!(s.status("/api/x", Some(token)).await, status, "{token}");
    }
    assert_eq!(
        ep.last().accept.as_deref(),
        Some("application/token-introspection+jwt")
    );
}

#[tokio::test]
async fn the_endpoint_can_come_from_discovery() {
    let ep = TestIntrospection::start().await;
    let secret = file(SECRET);
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = crate::support::TestIssuer::start(vec![key]).await;
    issuer.set_introspection_endpoint(&ep.url());
    let yaml = crate::support::issuer_config(
        &issuer,
        &format!(
            "    introspection: {{ client_id: tokengate, client_secret_file: {} }}\n",
            secret.path().display()
        ),
    );
    let proxy = crate::support::TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    ep.reply(OPAQUE, Reply::Json(active(issuer.url(), AUDIENCE)));
    assert_eq!(proxy.get_with("/api/messages", OPAQUE).await.status(), 200);
    assert_eq!(ep.calls(OPAQUE), 1);
}

/// With `introspect_jwts`, a JWT that verifies locally is still refused once the issuer says
/// it is no longer active (revocation before `exp`).
#[tokio::test]
async fn introspect_jwts_sees_a_revoked_jwt() {
    let ep = TestIntrospection::start().await;
    let secret = file(SECRET);
    let s = Stack::builder()
        .issuer_lines(&format!(
            "    introspect_jwts: true\n    introspection: {{ endpoint: {}, client_id: tokengate, client_secret_file: {} }}\n",
            ep.url(),
            secret.path().display()
        ))
        .start()
        .await;
    let jwt = s.token();
    assert_eq!(
        s.status("/api/x", Some(&jwt)).await,
        401,
        "inactive at the issuer"
    );
    assert_eq!(ep.calls(&jwt), 1);
    let other = s.token_with(json!({"sub": "user-2"}));
    ep.reply(&other, Reply::Json(active(s.issuer.url(), AUDIENCE)));
    assert_eq!(s.status("/api/x", Some(&other)).await, 200);
    // A token with no issuer's `iss` is never sent anywhere.
    let stranger = s.token_with(json!({"iss": "https://stranger.example"}));
    assert_eq!(s.status("/api/x", Some(&stranger)).await, 401);
    assert_eq!(ep.calls(&stranger), 0);
}

/// Without any introspecting issuer, an opaque token is refused as before and nothing is
/// asked; a JWS-shaped token never goes to introspection.
#[tokio::test]
async fn no_token_goes_to_an_endpoint_nobody_configured() {
    let ep = TestIntrospection::start().await;
    let s = Stack::start("").await;
    let (status, _, json) = body(s.get("/api/x", Some(OPAQUE)).await).await;
    assert_eq!(
        (status, json["error"].as_str()),
        (401, Some("invalid_token"))
    );
    let (s2, _secret) = stack(&ep.url(), "", "").await;
    let forged = format!(
        "{}.{}.c2ln",
        URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256"}"#),
        URL_SAFE_NO_PAD.encode(br#"{"iss":"x"}"#)
    );
    assert_eq!(s2.status("/api/x", Some(&forged)).await, 401);
    assert_eq!(ep.total(), 0);
}
