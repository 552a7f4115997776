//! JOSE: RFC 8725 (JWT BCP) §2–3, RFC 7515 (JWS), RFC 7518 (JWA), RFC 7519 (JWT).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

use super::{b64, gate, gate_with, row, sign_text, signature_of, with_signature, Attack};
use crate::support::issuer::{header, AUDIENCE};
use crate::support::keys::{fixture_pem, now, raw_token, sign_raw};
use crate::support::upstream::EchoUpstream;
use crate::support::{issuer_config, read, TestIssuer, TestKey, TestProxy};

/// RFC 8725 §2.1 and §3.1; CVE-2015-9235 (node-jsonwebtoken) and CVE-2015-2951 (JWT.php):
/// `alg: none` in any spelling, with or without a signature, never verifies.
#[tokio::test]
async fn alg_none_in_every_spelling_is_refused() {
    let g = gate().await;
    let claims = g.issuer.claims().to_string();
    let genuine = signature_of(&g.token());
    let mut rows = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for with_kid in [true, false] {
            let header = if with_kid {
                json!({"alg": alg, "kid": "rsa-a", "typ": "JWT"})
            } else {
                json!({"alg": alg})
            }
            .to_string();
            let label = format!("alg {alg} kid {with_kid}");
            rows.push(row(
                format!("{label}, no signature"),
                raw_token(&header, &claims, ""),
                401,
                "malformed",
            ));
            rows.push(row(
                format!("{label}, a signature"),
                raw_token(&header, &claims, "c2ln"),
                401,
                "not supported",
            ));
            rows.push(row(
                format!("{label}, a genuine RS256 signature"),
                raw_token(&header, &claims, &b64(&genuine)),
                401,
                "not supported",
            ));
        }
    }
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// DER → PEM text with 64-column lines.
fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// RFC 8725 §2.1 and §3.1 ("each key MUST be used with exactly one algorithm"); CVE-2016-10555
/// and CVE-2016-5431: HS256/384/512 keyed with the issuer's RSA *public* key, in every form an
/// attacker could download it (SPKI and PKCS#1, PEM and DER, the JWK, the raw modulus).
#[tokio::test]
async fn hmac_keyed_with_the_rsa_public_key_is_refused() {
    let g = gate().await;
    let der = STANDARD
        .decode(
            fixture_pem("rsa-a")
                .lines()
                .filter(|l| !l.starts_with("-----"))
                .collect::<String>(),
        )
        .expect("fixture PEM");
    let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der).expect("RSA fixture");
    let public = pair.public_key();
    let spki: aws_lc_rs::encoding::PublicKeyX509Der = public.as_der().expect("SPKI DER");
    let spki = spki.as_ref().to_vec();
    let pkcs1 = public.as_ref().to_vec();
    let spki_pem = pem("PUBLIC KEY", &spki);
    let secrets: Vec<(&str, Vec<u8>)> = vec![
        ("SPKI PEM", spki_pem.clone().into_bytes()),
        (
            "SPKI PEM, no final newline",
            spki_pem.trim_end().as_bytes().to_vec(),
        ),
        ("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()),
        ("SPKI DER", spki),
        ("PKCS#1 DER", pkcs1),
        ("JWK JSON", g.key.jwk.to_string().into_bytes()),
        (
            "modulus",
            URL_SAFE_NO_PAD
                .decode(g.key.jwk["n"].as_str().expect("n"))
                .expect("n is base64url"),
        ),
    ];
    let mut rows = Vec::new();
    for (alg, name) in [
        (Algorithm::HS256, "HS256"),
        (Algorithm::HS384, "HS384"),
        (Algorithm::HS512, "HS512"),
    ] {
        for (form, secret) in &secrets {
            let token = sign_raw(
                &json!({"alg": name, "kid": "rsa-a", "typ": "JWT"}),
                &g.issuer.claims(),
                &EncodingKey::from_secret(secret),
                alg,
            );
            rows.push(row(
                format!("{name} with the {form}"),
                token,
                401,
                "not supported",
            ));
        }
    }
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 8725 §3.1, RFC 7517 §4.4 (a JWK's `alg`) and RFC 7518 §3.1: the token's `alg` must fit
/// the key's type, curve and `alg`. Each token here is genuinely signed with the right key
/// under the wrong algorithm name (or the algorithm really used, under another key's kid).
#[tokio::test]
async fn an_alg_that_does_not_fit_the_jwk_is_refused() {
    let g = gate().await;
    let claims = g.issuer.claims();
    let signed = |key: &TestKey, alg: Algorithm, name: &str, kid: &str| {
        sign_raw(
            &json!({"alg": name, "kid": kid, "typ": "JWT"}),
            &claims,
            &key.encoding,
            alg,
        )
    };
    let ec256_as_384 = {
        // The header says ES384; the signature is a real ES256 one over that header.
        let header = json!({"alg": "ES384", "kid": "ec-p256", "typ": "JWT"}).to_string();
        sign_text(&header, &claims.to_string(), g.published("ec-p256"))
    };
    let rows = vec![
        row(
            "PS256 on an RS256 JWK",
            signed(&g.key, Algorithm::PS256, "PS256", "rsa-a"),
            401,
            "kid",
        ),
        row(
            "RS512 on an RS256 JWK",
            signed(&g.key, Algorithm::RS512, "RS512", "rsa-a"),
            401,
            "kid",
        ),
        row("ES384 over a P-256 key", ec256_as_384, 401, "kid"),
        row(
            "ES256 under the P-384 key's kid",
            signed(g.published("ec-p256"), Algorithm::ES256, "ES256", "ec-p384"),
            401,
            "kid",
        ),
        row(
            "ES256 under the RSA key's kid",
            signed(g.published("ec-p256"), Algorithm::ES256, "ES256", "rsa-a"),
            401,
            "kid",
        ),
        row(
            "RS256 under the EC key's kid",
            signed(&g.key, Algorithm::RS256, "RS256", "ec-p256"),
            401,
            "kid",
        ),
    ];
    g.verdicts(&rows).await;
    // The same keys under their own algorithms are fine.
    let fine = vec![
        row("ES256", g.issuer.token(g.published("ec-p256")), 200, ""),
        row("ES384", g.issuer.token(g.published("ec-p384")), 200, ""),
    ];
    g.verdicts(&fine).await;
    g.assert_still_serving().await;
}

/// RFC 8725 §2.9 and §3.10, RFC 7515 §4.1.2–4.1.6: `jku`, `x5u`, `jwk` and `x5c` would let
/// the token choose its own key (and `jku`/`x5u` make the proxy fetch attacker URLs). The
/// attacker's issuer serves the attacker's key; it must never be asked for anything.
#[tokio::test]
async fn jku_x5u_jwk_and_x5c_headers_cannot_supply_the_key() {
    let g = gate().await;
    let attacker = TestKey::load("attacker-rsa", "rsa-a", Algorithm::RS256);
    let evil = TestIssuer::start(vec![attacker.clone()]).await;
    let evil_keys = format!("{}/keys", evil.url());
    // An x5c chain: a self-signed certificate for a P-256 key the attacker holds.
    let certified = rcgen::generate_simple_self_signed(vec!["attacker.test".to_string()])
        .expect("self-signed certificate");
    let cert_b64 = STANDARD.encode(certified.cert.der());
    let ec_attacker = EncodingKey::from_ec_pem(certified.signing_key.serialize_pem().as_bytes())
        .expect("attacker EC key");
    let claims = g.issuer.claims();
    let forged = |header: Value| sign_raw(&header, &claims, &attacker.encoding, Algorithm::RS256);
    let rows = vec![
        row(
            "jku at the attacker's JWKS, the real kid",
            forged(json!({"alg": "RS256", "kid": "rsa-a", "jku": evil_keys})),
            401,
            "signature",
        ),
        row(
            "jku at the attacker's JWKS, the attacker's kid",
            forged(json!({"alg": "RS256", "kid": "evil", "jku": evil_keys})),
            401,
            "kid",
        ),
        row(
            "x5u at the attacker",
            forged(json!({"alg": "RS256", "kid": "rsa-a", "x5u": evil_keys})),
            401,
            "signature",
        ),
        row(
            "jwk: the attacker's key embedded",
            forged(json!({"alg": "RS256", "kid": "rsa-a", "jwk": attacker.jwk})),
            401,
            "signature",
        ),
        row(
            "jwk embedded, no kid",
            forged(json!({"alg": "RS256", "jwk": attacker.jwk})),
            401,
            "signature",
        ),
        row(
            "x5c: a self-signed certificate",
            sign_raw(
                &json!({"alg": "ES256", "kid": "ec-p256", "x5c": [cert_b64]}),
                &claims,
                &ec_attacker,
                Algorithm::ES256,
            ),
            401,
            "signature",
        ),
        row(
            "all four at once",
            forged(json!({
                "alg": "RS256", "kid": "rsa-a", "jku": evil_keys, "x5u": evil_keys,
                "jwk": attacker.jwk, "x5c": [cert_b64],
            })),
            401,
            "signature",
        ),
    ];
    g.verdicts(&rows).await;
    assert_eq!(
        (evil.jwks_fetches(), evil.discovery_fetches()),
        (0, 0),
        "the proxy fetched from a URL a token named"
    );
    // The same headers on a genuine token change nothing.
    let genuine = g
        .issuer
        .token_with_header(&g.key, json!({"jku": evil_keys, "x5u": evil_keys}));
    g.verdicts(&[row("genuine with jku", genuine, 200, "")])
        .await;
    assert_eq!(evil.jwks_fetches(), 0);
    g.assert_still_serving().await;
}

/// RFC 8725 §3.10: a `kid` is attacker input. Path traversal, SQL and URLs in it are only
/// ever compared with the published kids.
#[tokio::test]
async fn kid_injection_is_only_compared() {
    let g = gate().await;
    let mut rows = Vec::new();
    for kid in [
        "../../etc/passwd",
        "../../../../../../dev/null",
        "/dev/zero",
        "file:///etc/passwd",
        "'; DROP TABLE keys;--",
        "' OR '1'='1",
        "rsa-a' --",
        "http://127.0.0.1:1/key",
        "rsa-a\u{0}",
        "rsa-a ",
        "RSA-A",
        "",
        "*",
    ] {
        let token = g.issuer.token_with_header(&g.key, json!({ "kid": kid }));
        rows.push(row(format!("kid {kid:?}"), token, 401, "kid"));
    }
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 8725 §3.10 and size limits: a long `kid` is refused by size before any parsing. 20 KB
/// is over `limits.max_token_bytes` (16 KiB by default): 401 without parsing. 100 KB is over
/// the request-header limit (`limits.max_header_bytes`, 64 KiB by default): the server answers
/// 431 (RFC 6585 §5) before tokengate sees the request. A kid that fits, or a 100 KB one under
/// raised limits, is parsed and is then simply an unknown kid.
#[tokio::test]
async fn a_very_long_kid_is_refused_within_and_beyond_max_token_bytes() {
    let g = gate().await;
    let kid = |bytes: usize| {
        g.issuer
            .token_with_header(&g.key, json!({ "kid": "k".repeat(bytes) }))
    };
    let rows = vec![
        row("10 KB kid", kid(10 * 1024), 401, "kid"),
        row("20 KB kid", kid(20 * 1024), 401, "longer than allowed"),
        row("100 KB kid", kid(100 * 1024), 431, ""),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;

    let raised = gate_with(RAISED_LIMITS).await;
    let rows = vec![row(
        "100 KB kid, 1 MiB limits",
        raised
            .issuer
            .token_with_header(&raised.key, json!({ "kid": "k".repeat(100 * 1024) })),
        401,
        "kid",
    )];
    raised.verdicts(&rows).await;
    raised.assert_still_serving().await;
}

/// Token and header limits at their maximum (1 MiB), so large tokens reach the verifier.
const RAISED_LIMITS: &str = "limits: { max_token_bytes: 1048576, max_header_bytes: 1048576 }\n";

/// RFC 7515 §4.1.4: `kid` is a string. A number, object, array, boolean or null is malformed.
#[tokio::test]
async fn a_kid_that_is_not_a_string_is_malformed() {
    let g = gate().await;
    let mut rows = Vec::new();
    for kid in [
        json!(7),
        json!(7.5),
        json!({"kid": "rsa-a"}),
        json!(["rsa-a"]),
        json!(true),
        Value::Null,
    ] {
        // Built by hand: `merge` would drop a null member instead of sending it.
        let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
        let token = sign_raw(&header, &g.issuer.claims(), &g.key.encoding, g.key.alg);
        rows.push(row(format!("kid {kid}"), token, 401, "malformed"));
    }
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 7515 §4.1.11: a recipient that does not understand a `crit` extension MUST reject the
/// JWS. tokengate implements none (not even RFC 7797 `b64`), so any `crit` is refused.
#[tokio::test]
async fn an_unknown_crit_is_refused() {
    let g = gate().await;
    let mut rows = Vec::new();
    for changes in [
        json!({"crit": ["x-unknown"], "x-unknown": true}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": []}),
        json!({"crit": "x-unknown"}),
    ] {
        let token = g.issuer.token_with_header(&g.key, changes.clone());
        rows.push(row(format!("{changes}"), token, 401, "critical"));
    }
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 7515 §2 and §7.1: three base64url segments, without padding, in the URL-safe
/// alphabet. A `=` inside the value is not even a b64token (RFC 6750 §2.1): 400 before any
/// parsing; whitespace splits the header value into two tokens: 400 too.
#[tokio::test]
async fn malformed_segments_are_refused() {
    let g = gate().await;
    // `~~~~~~` in a claim guarantees a `-` in the URL-safe payload (a `+` in the standard one).
    let token = g.token_with(json!({"pad": "~~~~~~"}));
    let parts: Vec<&str> = token.split('.').collect();
    let (h, p, s) = (parts[0], parts[1], parts[2]);
    let standard =
        |segment: &str| STANDARD_NO_PAD.encode(URL_SAFE_NO_PAD.decode(segment).expect("base64url"));
    let std_p = standard(p);
    assert!(
        std_p.contains(['+', '/']),
        "the payload must differ in the standard alphabet"
    );
    let rows = vec![
        row("empty header", format!(".{p}.{s}"), 401, "malformed"),
        row("empty payload", format!("{h}..{s}"), 401, "malformed"),
        row("empty signature", format!("{h}.{p}."), 401, "malformed"),
        row(
            "truncated header",
            format!("{}.{p}.{s}", &h[..h.len() / 2]),
            401,
            "malformed",
        ),
        row(
            "truncated payload",
            format!("{h}.{}.{s}", &p[..p.len() - 7]),
            401,
            "",
        ),
        row(
            "truncated signature",
            format!("{h}.{p}.{}", &s[..s.len() - 1]),
            401,
            "malformed",
        ),
        row(
            "signature padded with =",
            format!("{token}="),
            401,
            "malformed",
        ),
        row(
            "signature padded with ==",
            format!("{token}=="),
            401,
            "malformed",
        ),
        row(
            "payload padded with =",
            format!("{h}.{p}=.{s}"),
            400,
            "malformed",
        ),
        row(
            "header padded with =",
            format!("{h}=.{p}.{s}"),
            400,
            "malformed",
        ),
        row(
            "standard alphabet payload",
            format!("{h}.{std_p}.{s}"),
            401,
            "malformed",
        ),
        row(
            "standard alphabet everywhere",
            format!("{}.{std_p}.{}", standard(h), standard(s)),
            401,
            "malformed",
        ),
        row(
            "split by a space",
            format!("{h}. {p}.{s}"),
            400,
            "malformed",
        ),
        row("split by a tab", format!("{h}.\t{p}.{s}"), 400, "malformed"),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 7515 §7.1 (a compact JWS is exactly three segments) and RFC 7516 §7.1 (five is a JWE,
/// which an access-token check must never take for a JWS: RFC 8725 §2.8).
#[tokio::test]
async fn segment_counts_other_than_three_are_refused() {
    let g = gate().await;
    let token = g.token();
    let (input, _) = token.rsplit_once('.').expect("three segments");
    let jwe = format!(
        "{}.{}.{}.{}.{}",
        b64(json!({"alg": "RSA-OAEP", "enc": "A256GCM", "kid": "rsa-a"}).to_string()),
        b64([7u8; 256]),
        b64([1u8; 12]),
        b64(g.issuer.claims().to_string()),
        b64([2u8; 16])
    );
    let rows = vec![
        row(
            "one segment",
            token.split('.').next().unwrap_or_default().to_string(),
            401,
            "three segments",
        ),
        row("two segments", input.to_string(), 401, "three segments"),
        row("four segments", format!("{token}.x"), 401, "three segments"),
        row(
            "four, the last empty",
            format!("{token}."),
            401,
            "three segments",
        ),
        row(
            "five segments",
            format!("{token}.x.y"),
            401,
            "three segments",
        ),
        row("a JWE", jwe, 401, "three segments"),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// The order of the P-256 group, n.
const P256_ORDER: [u8; 32] = [
    0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
    0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63, 0x25, 0x51,
];

/// r‖s → the DER `ECDSA-Sig-Value` that RFC 7518 §3.4 says a JWS must not use.
fn ecdsa_der(r: &[u8], s: &[u8]) -> Vec<u8> {
    let integer = |v: &[u8]| {
        let v = &v[v.iter().position(|b| *b != 0).unwrap_or(v.len() - 1)..];
        let mut out = vec![0x02];
        let pad = v[0] & 0x80 != 0;
        out.push((v.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(v);
        out
    };
    let (r, s) = (integer(r), integer(s));
    let mut out = vec![0x30, (r.len() + s.len()) as u8];
    out.extend(r);
    out.extend(s);
    out
}

/// CVE-2022-21449 ("psychic signatures": Java accepted r = s = 0), RFC 7518 §3.4 (a JWS
/// ECDSA signature is exactly r‖s, each the curve's size) and RFC 8725 §3.4 (validate
/// cryptographic inputs): zero, order-sized, DER-encoded and over-long signatures all fail.
#[tokio::test]
async fn ecdsa_psychic_and_misencoded_signatures_are_refused() {
    let g = gate().await;
    let genuine = g.issuer.token(g.published("ec-p256"));
    let sig = signature_of(&genuine);
    assert_eq!(sig.len(), 64);
    let (r, s) = sig.split_at(32);
    let zero = [0u8; 32];
    let cat = |a: &[u8], b: &[u8]| [a, b].concat();
    let rows = vec![
        row(
            "64 zero bytes",
            with_signature(&genuine, &[0u8; 64]),
            401,
            "signature",
        ),
        row(
            "r = 0",
            with_signature(&genuine, &cat(&zero, s)),
            401,
            "signature",
        ),
        row(
            "s = 0",
            with_signature(&genuine, &cat(r, &zero)),
            401,
            "signature",
        ),
        row(
            "r = s = n",
            with_signature(&genuine, &cat(&P256_ORDER, &P256_ORDER)),
            401,
            "signature",
        ),
        row(
            "r = n, s genuine",
            with_signature(&genuine, &cat(&P256_ORDER, s)),
            401,
            "signature",
        ),
        row(
            "the genuine one, DER-encoded",
            with_signature(&genuine, &ecdsa_der(r, s)),
            401,
            "signature",
        ),
        row(
            "the genuine one with leading zeros (66 bytes)",
            with_signature(&genuine, &cat(&cat(&[0], r), &cat(&[0], s))),
            401,
            "signature",
        ),
        row(
            "the genuine one and a trailing zero",
            with_signature(&genuine, &cat(&sig, &[0])),
            401,
            "signature",
        ),
        row(
            "the genuine one, truncated to 63 bytes",
            with_signature(&genuine, &sig[..63]),
            401,
            "signature",
        ),
        row(
            "ES384: 96 zero bytes",
            with_signature(&g.issuer.token(g.published("ec-p384")), &[0u8; 96]),
            401,
            "signature",
        ),
        row("the genuine one", genuine.clone(), 200, ""),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 7518 §3.3: "A key of size 2048 bits or larger MUST be used" with RS*/PS*. The JWKS
/// publishes a 1024-bit key beside a good one; a token it signed (made once with openssl)
/// never verifies, and never reaches the upstream.
#[tokio::test]
async fn rsa_keys_under_2048_bits_are_never_used() {
    let fixtures = format!("{}/tests/fixtures/keys", env!("CARGO_MANIFEST_DIR"));
    let small_jwk: Value = serde_json::from_str(
        &std::fs::read_to_string(format!("{fixtures}/rsa-1024.jwk.json"))
            .expect("rsa-1024.jwk.json"),
    )
    .expect("rsa-1024.jwk.json is JSON");
    let small_token =
        std::fs::read_to_string(format!("{fixtures}/rsa-1024.token")).expect("rsa-1024.token");
    let good = TestKey::load("rsa-a", "good", Algorithm::RS256);
    let dir = tempfile::tempdir().expect("tempdir");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [small_jwk, good.jwk]}).to_string()).expect("write");
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "issuers:\n  - issuer: https://idp.small.test\n    audiences: [{AUDIENCE}]\n    jwks_file: {}\nupstream: {{ url: {} }}\n",
        jwks.display(),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let (status, challenge, body) = read(proxy.get_with("/x", small_token.trim()).await).await;
    assert_eq!(status, 401, "{body}");
    assert!(challenge.unwrap_or_default().contains("invalid_token"));
    assert!(
        body["error_description"]
            .as_str()
            .unwrap_or("")
            .contains("kid"),
        "{body}"
    );
    assert_eq!(upstream.count(), 0);
    // Still serving: the 2048-bit key of the same set works.
    let claims =
        json!({"iss": "https://idp.small.test", "aud": AUDIENCE, "sub": "u", "exp": now() + 60});
    let good_token = sign_raw(&header(&good), &claims, &good.encoding, good.alg);
    assert_eq!(proxy.get_with("/x", &good_token).await.status(), 200);
    assert_eq!(upstream.count(), 1);
}

/// Found by `cargo fuzz run jwks_parse` (fuzz/README.md): an RSA JWK whose modulus is empty
/// (or all zero bytes) makes the bit count `0 * 8 - 8` underflow in `jwk::rsa_key`: a panic
/// where overflow checks are on (debug builds, every test), a wrapped number and a misleading
/// "over 8192 bits" elsewhere. The JWKS is IdP input (RFC 7517 §6.3.1: `n` is the modulus);
/// a malformed key must be skipped like any other, and the rest of the set used.
#[tokio::test]
async fn an_rsa_jwk_with_an_empty_modulus_is_skipped_not_a_crash() {
    for n in ["", "AAAA"] {
        let doc =
            json!({"keys": [{"kty": "RSA", "kid": "empty", "n": n, "e": "AQAB"}]}).to_string();
        let parsed = std::panic::catch_unwind(|| {
            tokengate::jwk::KeySet::parse(doc.as_bytes(), &[tokengate::algorithm::Algorithm::RS256])
                .map(|(set, _)| set.len())
        });
        assert!(parsed.is_ok(), "KeySet::parse panicked on n = {n:?}");
        assert!(
            parsed.is_ok_and(|r| r.is_err()),
            "a key with n = {n:?} was kept"
        );
    }
    // Through the proxy: the poisoned key beside a good one; the good one must still work.
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let poisoned = json!({"keys": [{"kty": "RSA", "kid": "empty", "n": "", "e": "AQAB"}, key.jwk]});
    issuer.set_mode(crate::support::Mode::Body(poisoned.to_string()));
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let r = proxy.get_with("/x", &issuer.token(&key)).await;
    assert_eq!(r.status(), 200);
    assert_eq!(upstream.count(), 1);
}

/// RFC 8259 §9 (a parser may limit nesting depth): nesting bombs in the header and in the
/// claims are malformed, never a stack overflow. Nesting that stays under the parser's limit
/// (serde_json's 128) is ordinary JSON, and a genuine token carrying it is accepted.
#[tokio::test]
async fn json_depth_bombs_are_malformed() {
    let g = gate().await;
    let arrays = |depth: usize| format!("{}{}", "[".repeat(depth), "]".repeat(depth));
    let objects = |depth: usize| format!("{}1{}", "{\"a\":".repeat(depth), "}".repeat(depth));
    let rs256 = json!({"alg": "RS256", "kid": "rsa-a"}).to_string();
    let header_bomb = |depth: usize| {
        format!(
            "{{\"alg\":\"RS256\",\"kid\":\"rsa-a\",\"x\":{}}}",
            arrays(depth)
        )
    };
    let rows = vec![
        row(
            "header: 4000 arrays",
            g.sign_text(&header_bomb(4000), &g.issuer.claims().to_string()),
            401,
            "malformed",
        ),
        row(
            "claims: 4000 arrays",
            g.sign_text(
                &rs256,
                &g.claims_text_plus(&format!("\"x\":{}", arrays(4000))),
            ),
            401,
            "malformed",
        ),
        row(
            "claims: 1500 objects",
            g.sign_text(
                &rs256,
                &g.claims_text_plus(&format!("\"x\":{}", objects(1500))),
            ),
            401,
            "malformed",
        ),
        row(
            "claims: 129 arrays",
            g.sign_text(
                &rs256,
                &g.claims_text_plus(&format!("\"x\":{}", arrays(129))),
            ),
            401,
            "malformed",
        ),
        row(
            "claims: 100 arrays (under the limit)",
            g.sign_text(
                &rs256,
                &g.claims_text_plus(&format!("\"x\":{}", arrays(100))),
            ),
            200,
            "",
        ),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;

    // Under a 1 MiB token limit, 100 000 levels (267 KB of token) reach the parser.
    let raised = gate_with(RAISED_LIMITS).await;
    let rows = vec![
        row(
            "header: 100 000 arrays",
            raised.sign_text(&header_bomb(100_000), &raised.issuer.claims().to_string()),
            401,
            "malformed",
        ),
        row(
            "claims: 100 000 arrays",
            raised.sign_text(
                &rs256,
                &raised.claims_text_plus(&format!("\"x\":{}", arrays(100_000))),
            ),
            401,
            "malformed",
        ),
    ];
    raised.verdicts(&rows).await;
    raised.assert_still_serving().await;
}

/// Size limits (RFC 6585 §5, 431 Request Header Fields Too Large): a token with 1 MB of
/// claims, even genuinely signed, never reaches the verifier. Its 1.4 MB header is over
/// `limits.max_header_bytes` even at that limit's maximum (1 MiB); a token over
/// `limits.max_token_bytes` but inside the header limit is a 401 without parsing.
#[tokio::test]
async fn megabyte_claims_are_refused() {
    let g = gate().await;
    let blob = json!({"blob": "A".repeat(1024 * 1024)});
    let over = g.token_with(json!({"blob": "A".repeat(16 * 1024)}));
    let rows = vec![
        row("1 MB of claims", g.token_with(blob.clone()), 431, ""),
        row("16 KiB of claims", over, 401, "longer than allowed"),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;

    let raised = gate_with(RAISED_LIMITS).await;
    let rows = vec![row(
        "1 MB of claims, 1 MiB limits",
        raised.token_with(blob),
        431,
        "",
    )];
    raised.verdicts(&rows).await;
    raised.assert_still_serving().await;
}

/// RFC 7515 §4 and RFC 7519 §4: header and claim names MUST be unique, and a parser must
/// reject duplicates or take the last; taking different ones is how two readers disagree
/// (RFC 8725 §2.6). tokengate rejects every duplicate, at any depth.
#[tokio::test]
async fn duplicate_json_members_are_malformed() {
    let g = gate().await;
    let claims = g.issuer.claims();
    let good_header = json!({"alg": "RS256", "kid": "rsa-a", "typ": "JWT"}).to_string();
    let iss = g.issuer.url().to_string();
    let rows = vec![
        row(
            "aud twice, the good one first",
            g.sign_text(&good_header, &g.claims_text_plus("\"aud\":\"api://other\"")),
            401,
            "malformed",
        ),
        row(
            "aud twice, the good one last",
            g.sign_text(
                &good_header,
                &format!("{{\"aud\":\"api://other\",{}", &claims.to_string()[1..]),
            ),
            401,
            "malformed",
        ),
        row(
            "iss twice",
            g.sign_text(
                &good_header,
                &g.claims_text_plus("\"iss\":\"https://evil.test\""),
            ),
            401,
            "malformed",
        ),
        row(
            "iss twice, ours last",
            g.sign_text(
                &good_header,
                &format!(
                    "{{\"iss\":\"https://evil.test\",{}",
                    &claims.to_string()[1..]
                ),
            ),
            401,
            "malformed",
        ),
        row(
            "exp twice",
            g.sign_text(&good_header, &g.claims_text_plus("\"exp\":1")),
            401,
            "malformed",
        ),
        row(
            "sub twice",
            g.sign_text(&good_header, &g.claims_text_plus("\"sub\":\"admin\"")),
            401,
            "malformed",
        ),
        row(
            "scp twice",
            g.sign_text(&good_header, &g.claims_text_plus("\"scp\":[\"admin\"]")),
            401,
            "malformed",
        ),
        row(
            "a nested duplicate",
            g.sign_text(
                &good_header,
                &g.claims_text_plus("\"realm_access\":{\"roles\":[],\"roles\":[\"admin\"]}"),
            ),
            401,
            "malformed",
        ),
        row(
            "alg twice in the header",
            g.sign_text(
                "{\"alg\":\"none\",\"alg\":\"RS256\",\"kid\":\"rsa-a\"}",
                &claims.to_string(),
            ),
            401,
            "malformed",
        ),
        row(
            "kid twice in the header",
            g.sign_text(
                "{\"alg\":\"RS256\",\"kid\":\"other\",\"kid\":\"rsa-a\"}",
                &claims.to_string(),
            ),
            401,
            "malformed",
        ),
        // The same member name written with an escape is still the same name (RFC 8259 §7).
        row(
            "iss twice, once escaped",
            g.sign_text(
                &good_header,
                &g.claims_text_plus(&format!("\"i\\u0073s\":{}", json!(iss))),
            ),
            401,
            "malformed",
        ),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 7519 §2 (NumericDate: a JSON number, fractions allowed), §4.1.1 (`iss` a string),
/// §4.1.3 (`aud` a string or an array of strings) and §4.1.4 (`exp`). Types are strict: a
/// string, boolean, object or array where a number or string belongs is refused.
///
/// Floats: RFC 7519 §2 allows non-integer NumericDates, so tokengate accepts any *finite*
/// number and compares it as is: `now + 300.5` and even `1e300` (a lifetime the IdP chose and
/// signed; tokengate does not second-guess it) are accepted; a negative `exp` is simply in the
/// past; `1e999` is not a finite number and makes the claims malformed.
#[tokio::test]
async fn claims_of_the_wrong_type_are_refused() {
    let g = gate().await;
    let now = now() as f64;
    let rs256 = json!({"alg": "RS256", "kid": "rsa-a"}).to_string();
    let without = |name: &str| {
        let mut claims = g.issuer.claims();
        claims.as_object_mut().map(|m| m.remove(name));
        claims.to_string()
    };
    let raw_exp = |text: &str| {
        let rest = without("exp");
        g.sign_text(
            &rs256,
            &format!("{},\"exp\":{text}}}", rest.trim_end_matches('}')),
        )
    };
    let raw_claim = |name: &str, text: &str| {
        let rest = without(name);
        g.sign_text(
            &rs256,
            &format!("{},\"{name}\":{text}}}", rest.trim_end_matches('}')),
        )
    };
    let rows = vec![
        row(
            "exp as a string",
            g.token_with(json!({"exp": (now as u64 + 300).to_string()})),
            401,
            "`exp`",
        ),
        row(
            "exp as a boolean",
            g.token_with(json!({"exp": true})),
            401,
            "`exp`",
        ),
        row(
            "exp as an object",
            g.token_with(json!({"exp": {"$gt": 0}})),
            401,
            "`exp`",
        ),
        row(
            "exp as an array",
            g.token_with(json!({"exp": [now + 300.0]})),
            401,
            "`exp`",
        ),
        row("exp null", raw_exp("null"), 401, "`exp`"),
        row(
            "exp float in the future",
            g.token_with(json!({"exp": now + 300.5})),
            200,
            "",
        ),
        row(
            "exp float just past the leeway",
            g.token_with(json!({"exp": now - 61.5})),
            401,
            "expired",
        ),
        row(
            "exp negative",
            g.token_with(json!({"exp": -1})),
            401,
            "expired",
        ),
        row("exp -1e300", raw_exp("-1e300"), 401, "expired"),
        row("exp 1e300 (finite)", raw_exp("1e300"), 200, ""),
        row("exp 1e999 (not finite)", raw_exp("1e999"), 401, "malformed"),
        row(
            "exp a 30-digit integer",
            raw_exp("123456789012345678901234567890"),
            200,
            "",
        ),
        row(
            "nbf as a string",
            g.token_with(json!({"nbf": "0"})),
            401,
            "`nbf`",
        ),
        row(
            "iat as an object",
            g.token_with(json!({"iat": {}})),
            401,
            "`iat`",
        ),
        row(
            "iss as an array",
            g.token_with(json!({"iss": [g.issuer.url()]})),
            401,
            "`iss`",
        ),
        row(
            "iss as a number",
            g.token_with(json!({"iss": 42})),
            401,
            "`iss`",
        ),
        row("iss null", raw_claim("iss", "null"), 401, "`iss`"),
        row(
            "aud as an object",
            g.token_with(json!({"aud": {"aud": AUDIENCE}})),
            401,
            "`aud`",
        ),
        row(
            "aud with a number inside",
            g.token_with(json!({"aud": [AUDIENCE, 5]})),
            401,
            "`aud`",
        ),
        row(
            "aud as a number",
            g.token_with(json!({"aud": 5})),
            401,
            "`aud`",
        ),
        row("aud null", raw_claim("aud", "null"), 401, "`aud`"),
        row(
            "sub as a number",
            g.token_with(json!({"sub": 42})),
            401,
            "`sub`",
        ),
        row(
            "scp with a number inside",
            g.token_with(json!({"scp": ["read", 1]})),
            401,
            "`scp`",
        ),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}
