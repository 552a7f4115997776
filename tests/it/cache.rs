//! The verified-token cache: hits skip the signature check, and an entry never outlives the
//! token's exp, the key that verified it, or a failed verification.

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::keys::now;
use crate::support::{eventually, issuer_config, TestIssuer, TestKey, TestProxy};

#[tokio::test]
async fn a_second_request_with_the_same_token_is_a_hit() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    let token = issuer.token(&key);
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert_eq!(proxy.app().cache().stats(), (0, 1));
    for _ in 0..5 {
        assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    }
    assert_eq!(proxy.app().cache().stats(), (5, 1));
    assert_eq!(proxy.app().cache().len(), 1);
    // Another token is another entry.
    assert_eq!(
        proxy
            .get_with(
                "/api/messages",
                &issuer.token_with(&key, json!({"sub": "u2"}))
            )
            .await
            .status(),
        200
    );
    assert_eq!(proxy.app().cache().len(), 2);
}

#[tokio::test]
async fn a_cached_token_still_expires() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let yaml = issuer_config(&issuer, "    leeway: 0s\n");
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let token = issuer.token_with(&key, json!({"exp": now() + 2}));
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert!(
        proxy.app().cache().stats().0 >= 1,
        "the second request was not a hit"
    );
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    let r = proxy.get_with("/api/messages", &token).await;
    assert_eq!(r.status(), 401);
    let body: serde_json::Value = r.json().await.unwrap_or_default();
    assert_eq!(body["error_description"], "the token has expired");
}

#[tokio::test]
async fn a_cached_token_dies_with_its_key() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone(), b.clone()]).await;
    issuer.set_cache_control("max-age=1");
    let proxy = TestProxy::for_issuer_with(&issuer, "keys: { min_refresh: 1s }\n").await;
    proxy.wait_ready().await;
    let token = issuer.token(&a);
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert!(proxy.app().cache().stats().0 >= 1);
    issuer.unpublish("a");
    assert!(
        eventually(10, async || proxy
            .get_with("/api/messages", &token)
            .await
            .status()
            == 401)
        .await,
        "a cached token outlived the key that verified it"
    );
}

#[tokio::test]
async fn failures_are_not_cached() {
    let a = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let b = TestKey::load("rsa-b", "b", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![a.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    // Signed by a key the issuer has not published yet: refused...
    let token = issuer.token(&b);
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 401);
    assert!(proxy.app().cache().is_empty());
    // ...and accepted once the key is published: the refusal was not remembered.
    issuer.publish(b.clone());
    let mut status = 0;
    for _ in 0..100 {
        status = proxy
            .get_with("/api/messages", &token)
            .await
            .status()
            .as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_cache_can_be_turned_off() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer_with(&issuer, "cache: { enabled: false }\n").await;
    proxy.wait_ready().await;
    let token = issuer.token(&key);
    for _ in 0..3 {
        assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    }
    assert_eq!(proxy.app().cache().stats(), (0, 0));
    assert!(proxy.app().cache().is_empty());
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let key = TestKey::load("ec-p256", "a", Algorithm::ES256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer_with(&issuer, "cache: { max_entries: 50 }\n").await;
    proxy.wait_ready().await;
    for i in 0..200 {
        let token = issuer.token_with(&key, json!({"sub": format!("user-{i}")}));
        assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    }
    let len = proxy.app().cache().len();
    assert!(len <= 50 && len > 0, "{len} entries");
}

/// A reload keeps the entries of every issuer whose settings did not change (no
/// re-verification storm on SIGHUP), and drops those of an issuer whose audiences,
/// algorithms, claims or keys changed.
#[tokio::test]
async fn entries_survive_an_unrelated_reload_and_die_with_their_issuers_settings() {
    let key = TestKey::load("rsa-a", "a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let proxy = TestProxy::for_issuer(&issuer).await;
    proxy.wait_ready().await;
    let token = issuer.token(&key);
    let reload = |yaml: String| {
        let settings = tokengate::config::load_str(
            std::path::Path::new("reload.yaml"),
            &yaml,
            &Default::default(),
        )
        .unwrap_or_else(|e| panic!("reload config: {e}\n{yaml}"));
        proxy.gateway.reload(settings).expect("reload");
    };
    let stats = || proxy.app().cache().stats();
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert_eq!(stats(), (0, 1));
    // Unrelated changes: the entry is still used (a hit, not a second verification).
    reload(format!(
        "{}limits: {{ max_header_bytes: 8192 }}\n",
        issuer_config(&issuer, "")
    ));
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert_eq!(stats(), (1, 1), "kept across an unrelated reload");
    // A second issuer added, the first unchanged: still a hit.
    reload(format!(
        "{}  - issuer: https://other.example\n    audiences: [x]\n    jwks_uri: https://other.example/jwks\n",
        issuer_config(&issuer, "")
    ));
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 200);
    assert_eq!(stats(), (2, 1), "kept when another issuer is added");
    // Each change to the issuer's own verification settings: verified again (a miss), and
    // then cached under the new settings (a hit).
    let base = issuer_config(&issuer, "");
    let changes = [
        (
            "audiences",
            base.replace("    audiences: [", "    audiences: [api://another, "),
        ),
        (
            "algorithms",
            base.replace("    algorithms: ", "    algorithms: [RS256]\n    #"),
        ),
        (
            "claims",
            format!("{base}    claims: {{ sub: {} }}\n", issuer.claims()["sub"]),
        ),
        ("leeway", format!("{base}    leeway: 5s\n")),
    ];
    let mut expected = stats();
    for (what, yaml) in changes {
        reload(yaml);
        assert_eq!(
            proxy.get_with("/api/messages", &token).await.status(),
            200,
            "{what}"
        );
        expected.1 += 1;
        assert_eq!(stats(), expected, "{what}: verified again");
        assert_eq!(
            proxy.get_with("/api/messages", &token).await.status(),
            200,
            "{what}"
        );
        expected.0 += 1;
        assert_eq!(stats(), expected, "{what}: cached again");
    }
    // A claim rule the token fails: the cached entry cannot let it through.
    reload(format!("{base}    claims: {{ sub: somebody-else }}\n"));
    assert_eq!(proxy.get_with("/api/messages", &token).await.status(), 401);
}
