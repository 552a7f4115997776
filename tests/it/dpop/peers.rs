//! DPoP end to end with real peers: oidc-provider (`tests/peers/oidc-provider`) issuing
//! DPoP-bound JWT access tokens, the DPoP clients openid-client (`tests/peers/dpop-client`)
//! and requests-oauth2client (`tests/peers/python`, from `.ci/venv`) calling through
//! tokengate, and two tokengate processes sharing one redis-server as their replay store.
//! Everything is installed by `.ci/install`; a missing peer fails the test saying what to
//! install. Also the oidc-provider side of RFC 8705: a certificate-bound token, for the mTLS
//! binding tests.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

use crate::support::dpop::DpopKey;
use crate::support::dpop_clients::{dpop_peer, openid_client, python_client};
use crate::support::oidc_provider::{ClientCert, OidcProvider, Peer, AUDIENCE};
use crate::support::process;
use crate::support::redis::RedisServer;
use crate::support::upstream::EchoUpstream;
use crate::support::{Stack, TestIssuer, TestKey, TestProxy};

/// tokengate trusting `peer`, in front of an echo upstream, `/api/**` requiring DPoP and
/// `/mixed/**` taking DPoP and bearer tokens (`dpop: allowed`, the default), with
/// `dpop_extra` lines under `dpop:` (its `external_url` is the proxy itself).
async fn dpop_proxy(peer: &OidcProvider, dpop_extra: &str) -> (TestProxy, EchoUpstream) {
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n  - issuer: {}\n    audiences: [{AUDIENCE}]\n    allow_http: true\n\
         upstream: {{ url: {} }}\n\
         dpop:\n  external_url: \"{{{{proxy_url}}}}\"\n{dpop_extra}\
         routes:\n  - path: /api/**\n    dpop: required\n  - path: /mixed/**\n    dpop: allowed\n",
        peer.issuer(),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    (proxy, upstream)
}

/// The claims of a compact JWS (unverified: the tests only read what the peer put there).
fn claims(jwt: &str) -> Value {
    let payload = jwt
        .split('.')
        .nth(1)
        .unwrap_or_else(|| panic!("not a JWT: {jwt}"));
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .unwrap_or_else(|e| panic!("the JWT's payload is not base64url ({e}): {jwt}"));
    serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("the JWT's payload is not JSON ({e})"))
}

/// What the upstream must see for a DPoP request tokengate let through: the token as a
/// bearer token, no proof, and the binding named.
fn assert_forwarded_as_bearer(upstream: &EchoUpstream, token: &str, who: &str) {
    let seen = upstream.last().expect("the upstream saw the request");
    assert_eq!(
        seen.header("authorization"),
        Some(format!("Bearer {token}").as_str()),
        "{who}: the upstream gets the DPoP token as `Authorization: Bearer`"
    );
    assert_eq!(
        seen.header("dpop"),
        None,
        "{who}: the DPoP proof never reaches the upstream"
    );
    assert_eq!(
        seen.header("x-auth-token-binding"),
        Some("dpop"),
        "{who}: the upstream is told the token was DPoP-bound"
    );
}

/// The harness itself, without tokengate: oidc-provider binds a token to the key of the
/// proof sent with the token request, and names the key by the same RFC 7638 thumbprint the
/// tests compute (so a refusal by tokengate is never a thumbprint mistake of the tests).
#[tokio::test]
async fn oidc_provider_binds_jwt_access_tokens_to_the_dpop_key() {
    let peer = dpop_peer();
    let key = DpopKey::es256();
    let token = peer.dpop_token("read", &key).await;
    let claims = claims(&token);
    assert_eq!(
        claims["cnf"]["jkt"],
        json!(key.jkt()),
        "cnf.jkt is the proof key's thumbprint: {claims}"
    );
    assert_eq!(
        claims["aud"], AUDIENCE,
        "aud is tokengate's audience: {claims}"
    );
    assert_eq!(claims["iss"], peer.issuer(), "iss: {claims}");
    let header: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD
            .decode(token.split('.').next().unwrap_or_default())
            .expect("the JWT's header is base64url"),
    )
    .expect("the JWT's header is JSON");
    assert_eq!(
        header["typ"], "at+jwt",
        "an RFC 9068 access token: {header}"
    );
    assert_eq!(header["alg"], "RS256", "signed RS256: {header}");
}

/// openid-client gets a DPoP-bound token from oidc-provider and calls a `dpop: required`
/// route with it: 200, and the upstream sees a bearer token, no proof, the binding named.
#[tokio::test]
async fn openid_client_gets_200_through_a_dpop_required_route() {
    let peer = dpop_peer();
    let (proxy, upstream) = dpop_proxy(&peer, "").await;
    let result = openid_client(&peer, &proxy.url("/api/orders?page=2")).await;
    assert_eq!(
        result["token_type"], "dpop",
        "openid-client holds a DPoP token: {result}"
    );
    assert_eq!(
        result["status"], 200,
        "openid-client through tokengate: {result}"
    );
    assert_eq!(
        result["attempts"],
        json!([200]),
        "no retry without nonces: {result}"
    );
    let token = result["access_token"]
        .as_str()
        .expect("the client's access token");
    assert!(
        claims(token)["cnf"]["jkt"].is_string(),
        "the token is DPoP-bound"
    );
    assert_eq!(upstream.count(), 1, "one request reached the upstream");
    assert_forwarded_as_bearer(&upstream, token, "openid-client");
    assert_eq!(upstream.last().expect("seen").target, "/api/orders?page=2");
}

/// [`dpop_proxy`] with server nonces on (60 s lifetime); the secret file lives as long as the
/// returned handle.
async fn nonce_proxy(peer: &OidcProvider) -> (tempfile::NamedTempFile, TestProxy, EchoUpstream) {
    let secret = tempfile::NamedTempFile::new().expect("a nonce secret file");
    std::fs::write(
        secret.path(),
        "0123456789abcdef0123456789abcdef-dpop-nonce-test",
    )
    .expect("the nonce secret written");
    let (proxy, upstream) = dpop_proxy(
        peer,
        &format!(
            "  nonce: {{ secret_file: {}, lifetime: 60s }}\n",
            secret.path().display()
        ),
    )
    .await;
    (secret, proxy, upstream)
}

/// With server nonces on, the first request of each client has no nonce and gets 401
/// `use_dpop_nonce` with a `DPoP-Nonce`; openid-client's `fetchProtectedResource` and
/// requests-oauth2client's `DPoPToken` each retry once with it and get 200.
#[tokio::test]
async fn both_clients_retry_on_use_dpop_nonce_and_get_200() {
    let peer = dpop_peer();
    let (_secret, proxy, upstream) = nonce_proxy(&peer).await;
    let url = proxy.url("/api/orders");

    let node = openid_client(&peer, &url).await;
    assert_eq!(
        node["status"], 200,
        "openid-client ends in 200 with nonces on: {node}"
    );
    assert_eq!(
        node["attempts"],
        json!([401, 200]),
        "openid-client was asked for a nonce, then retried once: {node}"
    );
    assert!(
        node["nonces"][0].is_string(),
        "the use_dpop_nonce answer carries DPoP-Nonce: {node}"
    );
    let token = node["access_token"]
        .as_str()
        .expect("the client's access token");
    assert_eq!(
        upstream.count(),
        1,
        "only the retried request reached the upstream"
    );
    assert_forwarded_as_bearer(&upstream, token, "openid-client with a nonce");

    let python = python_client(&peer, &url).await;
    assert_eq!(
        python["status"], 200,
        "requests-oauth2client ends in 200 with nonces on: {python}"
    );
    assert_eq!(
        python["attempts"],
        json!([401, 200]),
        "requests-oauth2client was asked for a nonce, then retried once: {python}"
    );
    assert_eq!(
        upstream.count(),
        2,
        "only the retried request reached the upstream"
    );
}

/// The same on a route that takes bearer tokens too (`dpop: allowed`), whose 401s carry a
/// `Bearer` challenge beside the `DPoP` one: each client still finds `use_dpop_nonce` in the
/// `DPoP` challenge, retries once and gets 200.
#[tokio::test]
async fn both_clients_retry_on_use_dpop_nonce_where_bearer_is_also_taken() {
    let peer = dpop_peer();
    let (_secret, proxy, upstream) = nonce_proxy(&peer).await;
    let url = proxy.url("/mixed/orders");
    let node = openid_client(&peer, &url).await;
    let python = python_client(&peer, &url).await;
    for (who, result) in [("openid-client", &node), ("requests-oauth2client", &python)] {
        assert_eq!(
            result["attempts"],
            json!([401, 200]),
            "{who} was asked for a nonce on a dpop: allowed route, then retried once: {result}"
        );
    }
    assert_eq!(
        upstream.count(),
        2,
        "only the retried requests reached the upstream"
    );
}

/// requests-oauth2client gets a DPoP-bound token from oidc-provider and calls a `dpop:
/// required` route with it: 200, forwarded as a bearer token.
#[tokio::test]
async fn requests_oauth2client_gets_200_through_a_dpop_required_route() {
    let peer = dpop_peer();
    let (proxy, upstream) = dpop_proxy(&peer, "").await;
    let result = python_client(&peer, &proxy.url("/api/orders?page=2")).await;
    assert_eq!(
        result["token_type"], "DPoP",
        "requests-oauth2client holds a DPoP token: {result}"
    );
    assert_eq!(
        result["status"], 200,
        "requests-oauth2client through tokengate: {result}"
    );
    assert_eq!(
        result["attempts"],
        json!([200]),
        "no retry without nonces: {result}"
    );
    let token = result["access_token"]
        .as_str()
        .expect("the client's access token");
    assert_eq!(upstream.count(), 1, "one request reached the upstream");
    assert_forwarded_as_bearer(&upstream, token, "requests-oauth2client");
}

/// RFC 9449 §7.2: a DPoP-bound token from oidc-provider is refused as a bearer token (401
/// invalid_token) and with `Authorization: DPoP` but no proof (401), and accepted with a
/// good proof from its key (so the refusals are about the missing proof, not the token).
#[tokio::test]
async fn a_dpop_bound_token_without_its_proof_is_401() {
    let peer = dpop_peer();
    let (proxy, upstream) = dpop_proxy(&peer, "").await;
    let key = DpopKey::es256();
    let token = peer.dpop_token("read", &key).await;
    let url = proxy.url("/api/orders");
    let http = reqwest::Client::new();

    let r = http
        .get(&url)
        .bearer_auth(&token)
        .send()
        .await
        .expect("request");
    let (status, challenge, body) = crate::support::read(r).await;
    assert_eq!(status, 401, "a DPoP-bound token sent as Bearer: {body}");
    let challenge = challenge.unwrap_or_default();
    assert!(
        challenge.contains("error=\"invalid_token\""),
        "a DPoP-bound token sent as Bearer is invalid_token: {challenge}"
    );

    let r = http
        .get(&url)
        .header("authorization", format!("DPoP {token}"))
        .send()
        .await
        .expect("request");
    let (status, challenge, body) = crate::support::read(r).await;
    assert_eq!(
        status, 401,
        "Authorization: DPoP without a DPoP header: {body}"
    );
    assert!(
        challenge.as_deref().is_some_and(|c| c.contains("DPoP")),
        "the refusal challenges for DPoP: {challenge:?}"
    );
    assert_eq!(upstream.count(), 0, "nothing reached the upstream");

    let proof = key.proof("GET", &url, &token);
    let r = http
        .get(&url)
        .header("authorization", format!("DPoP {token}"))
        .header("dpop", proof)
        .send()
        .await
        .expect("request");
    assert_eq!(
        r.status(),
        200,
        "the same token with its proof is let through"
    );
    assert_forwarded_as_bearer(&upstream, &token, "a Rust-made proof");
}

/// Waits (up to 10 s) until the process's `/readyz` answers 200.
async fn wait_ready(base: &str) {
    let http = reqwest::Client::new();
    let ready = crate::support::eventually(10, async || {
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(ready, "the tokengate replica at {base} never became ready");
}

/// Two tokengate replicas (separate processes of the built binary, one `external_url` as
/// behind a load balancer) sharing one redis-server as the replay store: a proof replica A
/// accepted is refused by replica B (401 invalid_dpop_proof) while B takes a fresh proof;
/// with Redis stopped both answer 503 and nothing more reaches the upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_refuse_each_others_proofs_and_fail_closed() {
    let mut redis = RedisServer::start();
    let signing = TestKey::load("rsa-a", "rsa-a", jsonwebtoken::Algorithm::RS256);
    let issuer = TestIssuer::start(vec![signing.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let external = "http://api.example.test";
    let dir = tempfile::tempdir().expect("a temporary directory");
    let config = dir.path().join("tokengate.yaml");
    std::fs::write(
        &config,
        format!(
            "{}upstream: {{ url: {} }}\n\
             dpop:\n  external_url: {external}\n  replay: {{ store: redis, url: \"{}\", timeout: 250ms }}\n\
             routes:\n  - path: /api/**\n    dpop: required\n  - path: /mixed/**\n    dpop: allowed\n",
            crate::support::issuer_config(&issuer, ""),
            upstream.url(),
            redis.url()
        ),
    )
    .expect("the replicas' configuration");
    let config = config.to_str().expect("a UTF-8 path").to_owned();
    // A configuration the binary refuses would show up below only as "never said where it
    // listens"; `check` says why.
    let check = Command::new(process::BIN)
        .args(["check", "--config", &config])
        .output()
        .expect("tokengate check runs");
    assert!(
        check.status.success(),
        "the replicas' configuration is refused:\n{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let a = process::spawn(&["--config", &config]);
    let b = process::spawn(&["--config", &config]);
    wait_ready(&a.base).await;
    wait_ready(&b.base).await;

    let key = DpopKey::es256();
    let token = issuer.token_with(&signing, json!({ "cnf": { "jkt": key.jkt() } }));
    let http = reqwest::Client::new();
    let send = async |base: &str, proof: &str| {
        let r = http
            .get(format!("{base}/api/replay"))
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .send()
            .await
            .expect("request to a replica");
        let retry_after = r
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, challenge, body) = crate::support::read(r).await;
        (status, challenge, body, retry_after)
    };
    let htu = format!("{external}/api/replay");

    let proof = key.proof("GET", &htu, &token);
    let (status, _, body, _) = send(&a.base, &proof).await;
    assert_eq!(status, 200, "replica A accepts a fresh proof: {body}");
    assert!(redis.keys() >= 1, "replica A remembered the proof in Redis");
    let (status, challenge, body, _) = send(&b.base, &proof).await;
    assert_eq!(
        status, 401,
        "replica B refuses the proof replica A accepted: {body}"
    );
    assert!(
        challenge
            .as_deref()
            .is_some_and(|c| c.contains("invalid_dpop_proof")),
        "a replayed proof is invalid_dpop_proof: {challenge:?}"
    );
    let (status, _, body, _) = send(&b.base, &key.proof("GET", &htu, &token)).await;
    assert_eq!(
        status, 200,
        "replica B accepts a fresh proof of the same key: {body}"
    );
    assert_eq!(
        upstream.count(),
        2,
        "the two accepted requests reached the upstream"
    );

    redis.stop();
    for (name, replica) in [("A", &a), ("B", &b)] {
        let (status, _, body, retry_after) =
            send(&replica.base, &key.proof("GET", &htu, &token)).await;
        assert_eq!(
            status, 503,
            "replica {name} without its replay store fails closed: {body}"
        );
        assert!(
            retry_after.is_some(),
            "replica {name}'s 503 says when to retry (Retry-After)"
        );
    }
    assert_eq!(
        upstream.count(),
        2,
        "nothing reached the upstream while Redis was down"
    );
}

/// A hung Redis (SIGSTOP: connected, silent) is a 503 within about `replay.timeout`, never a
/// pass; once it runs again, and after Redis is restarted empty on the same address, the
/// proxy uses it again without a restart of its own.
#[tokio::test]
async fn a_hung_redis_is_a_503_and_a_restarted_one_is_used_again() {
    let mut redis = RedisServer::start();
    let s = Stack::builder()
        .routes("routes:\n  - path: /api/**\n    dpop: required\n")
        .extra(&format!(
            "dpop:\n  external_url: \"{{{{proxy_url}}}}\"\n  replay: {{ store: redis, url: \"{}\", timeout: 250ms }}\n",
            redis.url()
        ))
        .start()
        .await;
    let key = DpopKey::es256();
    let token = s.token_with(json!({ "cnf": { "jkt": key.jkt() } }));
    let url = s.proxy.url("/api/store");
    // A request that hangs on the store is a failure of its own (status 0), not a test that
    // waits for ever.
    let send = async || {
        let started = Instant::now();
        let (authorization, proof) = (format!("DPoP {token}"), key.proof("GET", &url, &token));
        let headers = [
            ("authorization", authorization.as_str()),
            ("dpop", proof.as_str()),
        ];
        let request = s.send(reqwest::Method::GET, "/api/store", None, &headers);
        match tokio::time::timeout(Duration::from_secs(5), request).await {
            Ok(r) => {
                let (status, _, body) = crate::support::read(r).await;
                (status, body, started.elapsed())
            }
            Err(_) => (0, json!("no answer within 5 s"), started.elapsed()),
        }
    };

    let (status, body, _) = send().await;
    assert_eq!(status, 200, "a fresh proof with Redis up: {body}");

    redis.pause();
    let (status, body, took) = send().await;
    redis.resume();
    assert_eq!(status, 503, "a hung Redis fails closed: {body}");
    assert!(
        took < Duration::from_secs(3),
        "the 503 comes after about replay.timeout (250ms), not a hang: {took:?}"
    );
    assert_eq!(
        s.proxy.gateway.metrics().dpop_store_errors.get(),
        1,
        "tokengate_dpop_replay_store_errors_total counts the refusal"
    );
    let recovered = crate::support::eventually(5, async || send().await.0 == 200).await;
    assert!(recovered, "the proxy uses Redis again once it answers");

    redis.restart();
    let recovered = crate::support::eventually(5, async || send().await.0 == 200).await;
    assert!(recovered, "the proxy reconnects to a restarted Redis");
    assert!(redis.keys() >= 1, "the restarted Redis records the proofs");
    assert_eq!(
        s.upstream().count(),
        3,
        "only the accepted requests reached the upstream"
    );
}

/// RFC 8705 §3 at oidc-provider: client `app-mtls` authenticates with its self-signed
/// certificate (self_signed_tls_client_auth) and gets a JWT access token whose
/// `cnf["x5t#S256"]` is the base64url SHA-256 of that certificate's DER; another certificate
/// is refused. The mTLS binding tests through tokengate use [`OidcProvider::certificate_bound_token`].
#[tokio::test]
async fn oidc_provider_binds_tokens_to_the_client_certificate() {
    let cert = ClientCert::generate("app-mtls");
    let peer = OidcProvider::start_with(
        600,
        Peer {
            jwt: true,
            mtls_client_cert: Some(&cert.cert_pem),
            ..Peer::default()
        },
    );
    let (status, body) = peer.certificate_bound_token("read", &cert).await;
    assert_eq!(status, 200, "app-mtls with its certificate: {body}");
    let token = body["access_token"].as_str().expect("an access token");
    let claims = claims(token);
    assert_eq!(
        claims["cnf"]["x5t#S256"],
        json!(cert.x5t_s256),
        "cnf[\"x5t#S256\"] is the client certificate's thumbprint: {claims}"
    );
    assert_eq!(
        claims["aud"], AUDIENCE,
        "aud is tokengate's audience: {claims}"
    );

    let stranger = ClientCert::generate("app-mtls");
    let (status, body) = peer.certificate_bound_token("read", &stranger).await;
    assert_eq!(
        status, 401,
        "an unregistered certificate gets no token: {body}"
    );
    assert_eq!(body["error"], "invalid_client", "{body}");
}
