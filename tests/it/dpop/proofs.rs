//! DPoP at the resource server (RFC 9449), in-process: each §4.3 check, the downgrade rules
//! of §7.2, the challenges of §7.1, nonces (§8), replay (§11.1) across requests and reloads,
//! and what the upstream receives.

use std::path::Path;

use jsonwebtoken::Algorithm;
use reqwest::Method;
use serde_json::{json, Value};

use crate::support::dpop::{ath, DpopKey};
use crate::support::keys::{now, raw_token, sign_raw};
use crate::support::Stack;

const ROUTES: &str = "routes:\n  - { path: /required/**, dpop: required }\n  - { path: /off/**, dpop: off }\n  - { path: /**, auth: required }\n";

/// A stack whose `dpop.external_url` is its own address, with `extra` configuration.
async fn stack(extra: &str) -> Stack {
    Stack::builder()
        .routes(ROUTES)
        .extra(&format!(
            "dpop:\n  external_url: \"{{{{proxy_url}}}}\"\n{extra}"
        ))
        .start()
        .await
}

/// A token bound to `key`.
fn bound(s: &Stack, key: &DpopKey) -> String {
    s.token_with(json!({ "cnf": { "jkt": key.jkt() } }))
}

/// `method path` with `Authorization: DPoP token` and each proof as a `DPoP` header.
async fn send(
    s: &Stack,
    method: Method,
    path: &str,
    token: &str,
    proofs: &[&str],
) -> reqwest::Response {
    let mut request = reqwest::Client::new()
        .request(method, s.proxy.url(path))
        .header("authorization", format!("DPoP {token}"));
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    request.send().await.expect("request to the proxy")
}

/// Status, every `WWW-Authenticate` field, and the body's `error`.
async fn outcome(response: reqwest::Response) -> (u16, Vec<String>, String) {
    let status = response.status().as_u16();
    let challenges = response
        .headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        challenges,
        body["error"].as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_valid_proof_passes_and_the_upstream_gets_a_bearer_token_without_the_proof() {
    let s = stack("").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    let proof = key.proof("GET", &url, &token);
    let response = send(&s, Method::GET, "/api/items?page=2", &token, &[&proof]).await;
    assert_eq!(response.status(), 200);
    let seen = s.last();
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "the upstream gets the token under the scheme it knows"
    );
    assert_eq!(seen.header("dpop"), None, "the proof stays at tokengate");
    assert_eq!(seen.header("x-auth-token-binding"), Some("dpop"));
    // The other algorithms of the default list.
    for (name, alg) in [("rsa-b", Algorithm::RS256), ("ed25519", Algorithm::EdDSA)] {
        let key = DpopKey::load(name, alg);
        let token = bound(&s, &key);
        let proof = key.proof("POST", &url, &token);
        let response = send(&s, Method::POST, "/api/items", &token, &[&proof]).await;
        assert_eq!(response.status(), 200, "{name}");
    }
}

#[tokio::test]
async fn a_client_cannot_claim_a_binding_header_of_its_own() {
    let s = stack("").await;
    let token = s.token();
    let response = s
        .send(
            Method::GET,
            "/api/x",
            Some(&token),
            &[
                ("x-auth-token-binding", "dpop"),
                ("x_auth_token_binding", "mtls"),
            ],
        )
        .await;
    assert_eq!(response.status(), 200);
    let seen = s.last();
    assert_eq!(seen.header("x-auth-token-binding"), None);
    assert_eq!(seen.header("x_auth_token_binding"), None);
}

#[tokio::test]
async fn each_proof_check_refuses_with_invalid_dpop_proof() {
    let s = stack("").await;
    let key = DpopKey::es256();
    let other = DpopKey::load("ed25519", Algorithm::EdDSA);
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    let hmac = jsonwebtoken::EncodingKey::from_secret(&[7; 32]);
    let mut private_jwk = key.jwk();
    private_jwk["d"] = json!("AAAA");
    let good_header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk()});
    let good_claims =
        json!({"jti": "x1", "htm": "GET", "htu": url, "iat": now(), "ath": ath(&token)});
    let unsigned = raw_token(
        &json!({"typ": "dpop+jwt", "alg": "none", "jwk": key.jwk()}).to_string(),
        &good_claims.to_string(),
        "",
    );
    let tampered = {
        let p = key.proof("GET", &url, &token);
        let (rest, sig) = p.rsplit_once('.').unwrap_or_default();
        let flipped = if sig.starts_with('A') { "B" } else { "A" };
        format!("{rest}.{flipped}{}", &sig[1..])
    };
    let cases: Vec<(&str, String)> = vec![
        (
            "typ missing",
            key.proof_with("GET", &url, &token, json!({"typ": null}), json!({})),
        ),
        (
            "typ jwt",
            key.proof_with("GET", &url, &token, json!({"typ": "JWT"}), json!({})),
        ),
        ("alg none", unsigned),
        (
            "HMAC",
            sign_raw(
                &json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": {"kty": "oct", "k": "BwcH"}}),
                &good_claims,
                &hmac,
                Algorithm::HS256,
            ),
        ),
        (
            "ES384 not allowed",
            key.proof_with("GET", &url, &token, json!({"alg": "ES384"}), json!({})),
        ),
        (
            "private jwk",
            sign_raw(
                &json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": private_jwk}),
                &good_claims,
                &key.key.encoding,
                Algorithm::ES256,
            ),
        ),
        (
            "no jwk",
            key.proof_with("GET", &url, &token, json!({"jwk": null}), json!({})),
        ),
        ("bad signature", tampered),
        ("wrong htm", key.proof("POST", &url, &token)),
        (
            "htu of another host",
            key.proof("GET", "https://evil.example/api/items", &token),
        ),
        (
            "htu of another path",
            key.proof("GET", &s.proxy.url("/api/other"), &token),
        ),
        ("htu not a URL", key.proof("GET", "/api/items", &token)),
        (
            "stale iat",
            key.proof_with("GET", &url, &token, json!({}), json!({"iat": now() - 120})),
        ),
        (
            "future iat",
            key.proof_with("GET", &url, &token, json!({}), json!({"iat": now() + 60})),
        ),
        (
            "iat as text",
            key.proof_with(
                "GET",
                &url,
                &token,
                json!({}),
                json!({"iat": now().to_string()}),
            ),
        ),
        ("wrong ath", key.proof("GET", &url, "another-token")),
        (
            "no ath",
            key.proof_with("GET", &url, &token, json!({}), json!({"ath": null})),
        ),
        (
            "no jti",
            key.proof_with("GET", &url, &token, json!({}), json!({"jti": null})),
        ),
        (
            "jti of 300 bytes",
            key.proof_with(
                "GET",
                &url,
                &token,
                json!({}),
                json!({"jti": "j".repeat(300)}),
            ),
        ),
        (
            "oversize",
            key.proof_with(
                "GET",
                &url,
                &token,
                json!({}),
                json!({"pad": "p".repeat(9000)}),
            ),
        ),
        ("another key than cnf.jkt", other.proof("GET", &url, &token)),
        ("not a JWS", "not-a-proof".to_owned()),
        (
            "good header, payload not JSON",
            raw_token(&good_header.to_string(), "{", "AAAA"),
        ),
    ];
    for (what, proof) in &cases {
        let (status, challenges, error) =
            outcome(send(&s, Method::GET, "/api/items", &token, &[proof]).await).await;
        assert_eq!(
            (status, error.as_str()),
            (401, "invalid_dpop_proof"),
            "{what}"
        );
        assert!(
            challenges
                .iter()
                .any(|c| c.starts_with("DPoP ") && c.contains("error=\"invalid_dpop_proof\"")),
            "{what}: {challenges:?}"
        );
    }
    // Two DPoP headers (§4.3 check 1), each a good proof.
    let a = key.proof("GET", &url, &token);
    let b = key.proof("GET", &url, &token);
    let (status, _, error) =
        outcome(send(&s, Method::GET, "/api/items", &token, &[&a, &b]).await).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_dpop_proof"),
        "two DPoP headers"
    );
    // No DPoP header at all.
    let (status, _, error) = outcome(send(&s, Method::GET, "/api/items", &token, &[]).await).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_dpop_proof"),
        "no proof"
    );
    assert!(
        s.upstream().last().is_none(),
        "nothing reached the upstream"
    );
    // The query and fragment are not part of htu (§4.3 check 9), and a proof naming them
    // still passes.
    let proof = key.proof("GET", &format!("{url}?page=1#top"), &token);
    let response = send(&s, Method::GET, "/api/items?page=2", &token, &[&proof]).await;
    assert_eq!(response.status(), 200, "query and fragment ignored");
}

#[tokio::test]
async fn a_proof_is_accepted_once() {
    let s = stack("").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    let proof = key.proof("GET", &url, &token);
    assert_eq!(
        send(&s, Method::GET, "/api/items", &token, &[&proof])
            .await
            .status(),
        200
    );
    let (status, _, error) =
        outcome(send(&s, Method::GET, "/api/items", &token, &[&proof]).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_dpop_proof"));
    // A fresh proof for the same token (which the cache now holds) passes: the binding is
    // checked on every request, cached token or not.
    let fresh = key.proof("GET", &url, &token);
    assert_eq!(
        send(&s, Method::GET, "/api/items", &token, &[&fresh])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn a_reload_does_not_forget_used_proofs() {
    let s = stack("").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    let proof = key.proof("GET", &url, &token);
    assert_eq!(
        send(&s, Method::GET, "/api/items", &token, &[&proof])
            .await
            .status(),
        200
    );
    // An unrelated change, same replay settings.
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n{ROUTES}dpop:\n  external_url: \"http://{}\"\nlimits: {{ max_header_bytes: 8192 }}\n",
        crate::support::issuer_config(&s.issuer, ""),
        s.upstream().url(),
        s.proxy.addr
    );
    let settings =
        tokengate::config::load_str(Path::new("reload.yaml"), &yaml, &Default::default())
            .unwrap_or_else(|e| panic!("reload config: {e}"));
    s.proxy.gateway.reload(settings).expect("reload");
    let (status, _, error) =
        outcome(send(&s, Method::GET, "/api/items", &token, &[&proof]).await).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_dpop_proof"),
        "replayed after a reload"
    );
}

#[tokio::test]
async fn bound_tokens_never_work_as_bearer_tokens_and_proofs_need_bound_tokens() {
    let s = stack("").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    // §7.2: a DPoP-bound token sent as Bearer.
    for path in ["/api/items", "/off/items"] {
        let (status, challenges, error) = outcome(s.get(path, Some(&token)).await).await;
        assert_eq!((status, error.as_str()), (401, "invalid_token"), "{path}");
        assert!(
            challenges[0].starts_with("Bearer ")
                && challenges[0].contains("error=\"invalid_token\""),
            "{path}: the error is on the scheme used: {challenges:?}"
        );
    }
    // Bearer beside a DPoP proof: which one was meant cannot be known.
    let proof = key.proof("GET", &url, &token);
    let (status, _, error) = outcome(
        s.send(Method::GET, "/api/items", Some(&token), &[("dpop", &proof)])
            .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (400, "invalid_request"));
    // A proof with a token that is not bound to a key.
    let plain = s.token();
    let proof = key.proof("GET", &url, &plain);
    let (status, challenges, error) =
        outcome(send(&s, Method::GET, "/api/items", &plain, &[&proof]).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));
    assert!(
        challenges
            .iter()
            .any(|c| c.starts_with("DPoP ") && c.contains("invalid_token")),
        "{challenges:?}"
    );
    // A cnf that binds the token some way tokengate cannot check.
    let odd = s.token_with(json!({ "cnf": { "jwk": key.jwk() } }));
    let (status, _, error) = outcome(s.get("/api/items", Some(&odd)).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));
    // A certificate-bound token with no certificate.
    let mtls = s.token_with(
        json!({ "cnf": { "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2" } }),
    );
    let (status, _, error) = outcome(s.get("/api/items", Some(&mtls)).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));
    assert!(
        s.upstream().last().is_none(),
        "nothing reached the upstream"
    );
}

#[tokio::test]
async fn challenges_name_the_schemes_each_route_takes() {
    let s = stack("").await;
    let algs = "algs=\"ES256 EdDSA PS256 RS256\"";
    // No credentials: a bare challenge per scheme, no error.
    let (status, challenges, _) = outcome(s.get("/api/items", None).await).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenges,
        [
            "Bearer realm=\"tokengate\"".to_owned(),
            format!("DPoP realm=\"tokengate\", {algs}")
        ]
    );
    let (_, challenges, _) = outcome(s.get("/required/x", None).await).await;
    assert_eq!(challenges, [format!("DPoP realm=\"tokengate\", {algs}")]);
    let (_, challenges, _) = outcome(s.get("/off/x", None).await).await;
    assert_eq!(challenges, ["Bearer realm=\"tokengate\"".to_owned()]);
    // A bearer token where only DPoP is taken.
    let (status, challenges, error) = outcome(s.get("/required/x", Some(&s.token())).await).await;
    assert_eq!((status, error.as_str()), (401, "invalid_token"));
    assert_eq!(challenges.len(), 1);
    assert!(challenges[0].starts_with("DPoP ") && challenges[0].contains("invalid_token"));
    // `Authorization: DPoP` where DPoP is off: not a scheme the route knows, so no token.
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let proof = key.proof("GET", &s.proxy.url("/off/x"), &token);
    let (status, challenges, error) =
        outcome(send(&s, Method::GET, "/off/x", &token, &[&proof]).await).await;
    assert_eq!((status, error.as_str()), (401, "unauthorized"));
    assert_eq!(challenges, ["Bearer realm=\"tokengate\"".to_owned()]);
    // And where it is required, a good proof passes.
    let proof = key.proof("GET", &s.proxy.url("/required/x"), &token);
    assert_eq!(
        send(&s, Method::GET, "/required/x", &token, &[&proof])
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn nonces_are_asked_for_and_then_accepted() {
    std::env::set_var(
        "TOKENGATE_TEST_DPOP_NONCE",
        "0123456789abcdef0123456789abcdef",
    );
    let s = stack("  nonce: { secret_env: TOKENGATE_TEST_DPOP_NONCE }\n").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    let response = send(
        &s,
        Method::GET,
        "/api/items",
        &token,
        &[&key.proof("GET", &url, &token)],
    )
    .await;
    let nonce = response
        .headers()
        .get("dpop-nonce")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a DPoP-Nonce header");
    let (status, challenges, error) = outcome(response).await;
    assert_eq!((status, error.as_str()), (401, "use_dpop_nonce"));
    assert!(challenges
        .iter()
        .any(|c| c.starts_with("DPoP ") && c.contains("error=\"use_dpop_nonce\"")));
    let with = |n: &str| key.proof_with("GET", &url, &token, json!({}), json!({ "nonce": n }));
    let response = send(&s, Method::GET, "/api/items", &token, &[&with(&nonce)]).await;
    assert_eq!(response.status(), 200);
    let (status, _, error) = outcome(
        send(
            &s,
            Method::GET,
            "/api/items",
            &token,
            &[&with("forged-nonce")],
        )
        .await,
    )
    .await;
    assert_eq!((status, error.as_str()), (401, "use_dpop_nonce"));
}

#[tokio::test]
async fn a_full_memory_store_refuses_with_503() {
    let s = stack("  replay: { store: memory, max_entries: 1 }\n").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    assert_eq!(
        send(
            &s,
            Method::GET,
            "/api/items",
            &token,
            &[&key.proof("GET", &url, &token)]
        )
        .await
        .status(),
        200
    );
    let response = send(
        &s,
        Method::GET,
        "/api/items",
        &token,
        &[&key.proof("GET", &url, &token)],
    )
    .await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"5"[..])
    );
}

#[tokio::test]
async fn without_an_external_url_bound_tokens_are_refused() {
    let s = Stack::builder().start().await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let proof = key.proof("GET", &s.proxy.url("/api/items"), &token);
    let response = send(&s, Method::GET, "/api/items", &token, &[&proof]).await;
    let body: Value = response.json().await.unwrap_or(Value::Null);
    assert_eq!(body["error"], "invalid_dpop_proof");
    assert!(body["error_description"]
        .as_str()
        .unwrap_or_default()
        .contains("dpop.external_url"));
}

#[tokio::test]
async fn without_an_external_url_a_trusted_proxy_reports_the_origin_and_a_client_cannot() {
    // The proxy trusts 127.0.0.2 (the "load balancer") and nobody else.
    let s = Stack::builder()
        .extra("trusted_proxies: [127.0.0.2/32]\n")
        .start()
        .await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let proof = || key.proof("GET", "https://api.example.com/api/items", &token);
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .expect("client")
    };
    let ask = |client: reqwest::Client, proof: String| {
        client
            .get(s.proxy.url("/api/items"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .header("x-forwarded-proto", "https")
            .header("x-forwarded-host", "api.example.com")
            .send()
    };
    let trusted = ask(from([127, 0, 0, 2]), proof()).await.expect("request");
    assert_eq!(trusted.status(), 200, "the trusted proxy's origin");
    let (status, _, error) =
        outcome(ask(from([127, 0, 0, 1]), proof()).await.expect("request")).await;
    assert_eq!(
        (status, error.as_str()),
        (401, "invalid_dpop_proof"),
        "a client's own X-Forwarded-Host is not believed"
    );
}

#[test]
fn check_prints_each_routes_dpop_mode_and_the_dpop_settings() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("dpop.yaml");
    std::fs::write(
        &path,
        "issuers:\n  - issuer: https://idp.example.com\n    audiences: [api]\nroutes:\n  - { path: /pay/**, dpop: required }\ndpop:\n  external_url: https://api.example.com\n  replay: { store: redis, url: \"redis://:secret@cache.internal:6379/0\" }\n",
    )
    .expect("written");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tokengate"))
        .arg("check")
        .arg("--config")
        .arg(&path)
        .output()
        .expect("tokengate check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains("route /pay/**: auth Required, dpop Required"),
        "{text}"
    );
    assert!(
        text.contains("dpop: htu origin https://api.example.com; algs ES256 EdDSA PS256 RS256"),
        "{text}"
    );
    assert!(
        text.contains("replay store redis at cache.internal"),
        "{text}"
    );
    assert!(
        !text.contains("secret"),
        "the Redis password is never printed: {text}"
    );
}

/// A nonce as tokengate makes one (the format `authn::dpop::nonce` documents): base64url of
/// the time step (8 bytes, big-endian) and the first 16 bytes of its HMAC-SHA-256.
fn nonce_for(secret: &[u8], step: u64) -> String {
    use base64::Engine;
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
    let tag = aws_lc_rs::hmac::sign(&key, &step.to_be_bytes());
    let mut bytes = step.to_be_bytes().to_vec();
    bytes.extend_from_slice(&tag.as_ref()[..16]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn a_proof_with_the_previous_steps_nonce_passes_and_gets_a_fresh_one_not_cached() {
    const SECRET: &str = "0123456789abcdef0123456789abcdef";
    std::env::set_var("TOKENGATE_TEST_DPOP_NONCE", SECRET);
    let s = stack("  nonce: { secret_env: TOKENGATE_TEST_DPOP_NONCE, lifetime: 60s }\n").await;
    let key = DpopKey::es256();
    let token = bound(&s, &key);
    let url = s.proxy.url("/api/items");
    let with = |n: &str| key.proof_with("GET", &url, &token, json!({}), json!({ "nonce": n }));
    // Retried if the 60 s step turns over between reading the clock and the answer.
    for _ in 0..3 {
        let step = now() / 60;
        let previous = nonce_for(SECRET.as_bytes(), step - 1);
        let response = send(&s, Method::GET, "/api/items", &token, &[&with(&previous)]).await;
        if now() / 60 != step {
            continue;
        }
        assert_eq!(
            response.status(),
            200,
            "the previous step's nonce is still good"
        );
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        assert_eq!(
            header("dpop-nonce"),
            Some(nonce_for(SECRET.as_bytes(), step)),
            "the response hands out the current nonce"
        );
        assert_eq!(header("cache-control").as_deref(), Some("no-store"));
        // With the current nonce: accepted, and nothing new to hand out.
        let current = nonce_for(SECRET.as_bytes(), step);
        let response = send(&s, Method::GET, "/api/items", &token, &[&with(&current)]).await;
        if now() / 60 != step {
            continue;
        }
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("dpop-nonce").is_none());
        // Two steps back: refused, with the current one.
        let old = nonce_for(SECRET.as_bytes(), step - 2);
        let (status, _, error) =
            outcome(send(&s, Method::GET, "/api/items", &token, &[&with(&old)]).await).await;
        assert_eq!((status, error.as_str()), (401, "use_dpop_nonce"));
        return;
    }
    panic!("the nonce step kept turning over during the test");
}
