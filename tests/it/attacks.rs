//! The attack suite: one test per known attack on a JWT-verifying reverse proxy, each through
//! the real proxy with an echo upstream behind it. Every test asserts the exact status, that
//! nothing reached the upstream when nothing should have, and that the proxy still serves a
//! valid request afterwards. Each cites the RFC section or advisory it comes from.
//!
//! Routes for all of them: `/public/**` needs nothing, `/admin/**` needs the `admin` scope,
//! everything else (the default) needs a valid token. The good token holds only `read`.

use std::net::SocketAddr;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::issuer::{header, AUDIENCE};
use crate::support::keys::{fixture_pem, now, raw_token, sign_raw};
use crate::support::upstream::{EchoUpstream, Recorded};
use crate::support::{issuer_config, read, TestIssuer, TestKey, TestProxy};

const ROUTES: &str = "routes:
  - { path: /public/**, auth: none }
  - { path: /admin/**, scopes: [admin] }
";

/// An issuer publishing an RSA and two EC keys, an echo upstream, and the proxy between them.
struct Gate {
    issuer: TestIssuer,
    rsa: TestKey,
    ec256: TestKey,
    ec384: TestKey,
    upstream: EchoUpstream,
    proxy: TestProxy,
}

impl Gate {
    async fn start() -> Gate {
        Gate::with("").await
    }

    /// `extra` is configuration added after the routes (limits, paths...).
    async fn with(extra: &str) -> Gate {
        let rsa = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
        let ec256 = TestKey::load("ec-p256", "ec-p256", Algorithm::ES256);
        let ec384 = TestKey::load("ec-p384", "ec-p384", Algorithm::ES384);
        let issuer = TestIssuer::start(vec![rsa.clone(), ec256.clone(), ec384.clone()]).await;
        let upstream = EchoUpstream::start().await;
        let yaml = format!(
            "{}upstream: {{ url: {} }}\n{ROUTES}{extra}",
            issuer_config(&issuer, ""),
            upstream.url()
        );
        let proxy = TestProxy::start(&yaml).await;
        proxy.wait_ready().await;
        Gate {
            issuer,
            rsa,
            ec256,
            ec384,
            upstream,
            proxy,
        }
    }

    /// A good RS256 token whose claims are changed by `changes` (null removes a claim).
    fn token_with(&self, changes: Value) -> String {
        self.issuer.token_with(&self.rsa, changes)
    }

    fn token(&self) -> String {
        self.token_with(json!({}))
    }

    /// A token signed by the RSA key over exactly this header and claims text.
    fn sign_text(&self, header: &str, claims: &str) -> String {
        sign_text(header, claims, &self.rsa)
    }

    /// The good claims as JSON text, with `members` (raw JSON text) added at the end.
    fn claims_text_plus(&self, members: &str) -> String {
        let good = self.issuer.claims().to_string();
        let open = good.strip_suffix('}').expect("claims are an object");
        format!("{open},{members}}}")
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = reqwest::Client::new().get(self.proxy.url(path));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.expect("request to the proxy")
    }

    /// Sends `token` on a route that needs one and checks the verdict: the status, the error
    /// description containing `needle`, and the upstream's count (one more only for a 200).
    async fn verdict(&self, label: &str, token: &str, status: u16, needle: &str) -> Vec<String> {
        let before = self.upstream.count();
        let r = self
            .get(
                "/api/resource",
                &[("authorization", &format!("Bearer {token}"))],
            )
            .await;
        let (got, challenge, body) = read(r).await;
        let after = self.upstream.count();
        let mut problems = Vec::new();
        if got != status {
            problems.push(format!("status {got} (want {status}): {body}"));
        }
        let want_count = before + usize::from(status == 200);
        if after != want_count {
            problems.push(format!("upstream saw {} requests", after - before));
        }
        let description = body["error_description"].as_str().unwrap_or("");
        if status != 200 && !description.contains(needle) {
            problems.push(format!("description {description:?} lacks {needle:?}"));
        }
        if status == 401 {
            let challenge = challenge.unwrap_or_default();
            if !challenge.contains("error=\"invalid_token\"") {
                problems.push(format!("challenge {challenge:?}"));
            }
        }
        // (A 200 is the echo upstream's answer, which shows the Authorization it was sent.)
        if status != 200 && token.len() > 8 && body.to_string().contains(token) {
            problems.push("the token was echoed".into());
        }
        problems
            .into_iter()
            .map(|p| format!("{label}: {p}"))
            .collect()
    }

    /// Runs every row and fails once, listing every row that went wrong.
    async fn verdicts(&self, rows: &[(String, String, u16, &str)]) {
        let mut failures = Vec::new();
        for (label, token, status, needle) in rows {
            failures.extend(self.verdict(label, token, *status, needle).await);
        }
        assert!(
            failures.is_empty(),
            "{} of {} rows failed:\n{}",
            failures.len(),
            rows.len(),
            failures.join("\n")
        );
    }

    /// The request the upstream saw last.
    fn last(&self) -> Recorded {
        self.upstream.last().expect("the upstream saw a request")
    }

    /// The proxy still forwards an ordinary valid request, with the token's identity.
    async fn assert_still_serving(&self) {
        let before = self.upstream.count();
        let r = self
            .get(
                "/api/after",
                &[("authorization", &format!("Bearer {}", self.token()))],
            )
            .await;
        assert_eq!(r.status(), 200, "the proxy stopped serving valid requests");
        assert_eq!(self.upstream.count(), before + 1);
        let seen = self.last();
        assert_eq!(seen.target, "/api/after");
        assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
    }
}

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs exactly this header and claims text (no re-serialisation) with `key`.
fn sign_text(header: &str, claims: &str, key: &TestKey) -> String {
    let input = format!("{}.{}", b64(header), b64(claims));
    let signature =
        jsonwebtoken::crypto::sign(input.as_bytes(), &key.encoding, key.alg).expect("signing");
    format!("{input}.{signature}")
}

/// Replaces a token's signature segment with these bytes.
fn with_signature(token: &str, signature: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("three segments");
    format!("{input}.{}", b64(signature))
}

/// The signature bytes of a token.
fn signature_of(token: &str) -> Vec<u8> {
    let (_, signature) = token.rsplit_once('.').expect("three segments");
    URL_SAFE_NO_PAD
        .decode(signature)
        .expect("the signature is base64url")
}

fn row(
    label: impl Into<String>,
    token: String,
    status: u16,
    needle: &str,
) -> (String, String, u16, &str) {
    (label.into(), token, status, needle)
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client, for framing and request lines that client libraries tidy up.

/// What came back on one connection.
#[derive(Debug)]
struct RawAnswer {
    /// 0 when the proxy closed the connection without a status line.
    status: u16,
    head: String,
    body: String,
    /// How many status lines arrived on the connection.
    responses: usize,
}

impl RawAnswer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

/// Writes `request` byte for byte and reads until the proxy closes (or 10 s pass).
async fn exchange(addr: SocketAddr, request: &[u8]) -> RawAnswer {
    let mut stream = TcpStream::connect(addr)
        .await
        .expect("connect to the proxy");
    stream.write_all(request).await.expect("write the request");
    let mut bytes = Vec::new();
    let receive = async {
        let mut buf = [0u8; 16 * 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => bytes.extend_from_slice(&buf[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(10), receive).await;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let responses = text.matches("HTTP/1.1 ").count();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .lines()
        .next()
        .and_then(|line| line.split(' ').nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or(0);
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    RawAnswer {
        status,
        head: head.to_owned(),
        body,
        responses,
    }
}

/// Decodes a chunked body (enough for the echo upstream's answers).
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || after.len() < size {
            break;
        }
        out.push_str(&after[..size]);
        rest = after[size..].trim_start_matches("\r\n");
    }
    out
}

/// The header lines of a raw request: `Host: x`, the given ones, `Connection: close`.
fn raw_get(target: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: x\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    head.into_bytes()
}

// =============================================================================================
// JOSE: RFC 8725 (JWT BCP) §2–3, RFC 7515 (JWS), RFC 7518 (JWA), RFC 7519 (JWT).

/// RFC 8725 §2.1 and §3.1; CVE-2015-9235 (node-jsonwebtoken) and CVE-2015-2951 (JWT.php):
/// `alg: none` in any spelling, with or without a signature, never verifies.
#[tokio::test]
async fn alg_none_in_every_spelling_is_refused() {
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
        ("JWK JSON", g.rsa.jwk.to_string().into_bytes()),
        (
            "modulus",
            URL_SAFE_NO_PAD
                .decode(g.rsa.jwk["n"].as_str().expect("n"))
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
    let g = Gate::start().await;
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
        sign_text(&header, &claims.to_string(), &g.ec256)
    };
    let rows = vec![
        row(
            "PS256 on an RS256 JWK",
            signed(&g.rsa, Algorithm::PS256, "PS256", "rsa-a"),
            401,
            "kid",
        ),
        row(
            "RS512 on an RS256 JWK",
            signed(&g.rsa, Algorithm::RS512, "RS512", "rsa-a"),
            401,
            "kid",
        ),
        row("ES384 over a P-256 key", ec256_as_384, 401, "kid"),
        row(
            "ES256 under the P-384 key's kid",
            signed(&g.ec256, Algorithm::ES256, "ES256", "ec-p384"),
            401,
            "kid",
        ),
        row(
            "ES256 under the RSA key's kid",
            signed(&g.ec256, Algorithm::ES256, "ES256", "rsa-a"),
            401,
            "kid",
        ),
        row(
            "RS256 under the EC key's kid",
            signed(&g.rsa, Algorithm::RS256, "RS256", "ec-p256"),
            401,
            "kid",
        ),
    ];
    g.verdicts(&rows).await;
    // The same keys under their own algorithms are fine.
    let fine = vec![
        row("ES256", g.issuer.token(&g.ec256), 200, ""),
        row("ES384", g.issuer.token(&g.ec384), 200, ""),
    ];
    g.verdicts(&fine).await;
    g.assert_still_serving().await;
}

/// RFC 8725 §2.9 and §3.10, RFC 7515 §4.1.2–4.1.6: `jku`, `x5u`, `jwk` and `x5c` would let
/// the token choose its own key (and `jku`/`x5u` make the proxy fetch attacker URLs). The
/// attacker's issuer serves the attacker's key; it must never be asked for anything.
#[tokio::test]
async fn jku_x5u_jwk_and_x5c_headers_cannot_supply_the_key() {
    let g = Gate::start().await;
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
        .token_with_header(&g.rsa, json!({"jku": evil_keys, "x5u": evil_keys}));
    g.verdicts(&[row("genuine with jku", genuine, 200, "")])
        .await;
    assert_eq!(evil.jwks_fetches(), 0);
    g.assert_still_serving().await;
}

/// RFC 8725 §3.10: a `kid` is attacker input. Path traversal, SQL and URLs in it are only
/// ever compared with the published kids.
#[tokio::test]
async fn kid_injection_is_only_compared() {
    let g = Gate::start().await;
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
        let token = g.issuer.token_with_header(&g.rsa, json!({ "kid": kid }));
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
    let g = Gate::start().await;
    let kid = |bytes: usize| {
        g.issuer
            .token_with_header(&g.rsa, json!({ "kid": "k".repeat(bytes) }))
    };
    let rows = vec![
        row("10 KB kid", kid(10 * 1024), 401, "kid"),
        row("20 KB kid", kid(20 * 1024), 401, "longer than allowed"),
        row("100 KB kid", kid(100 * 1024), 431, ""),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;

    let raised = Gate::with(RAISED_LIMITS).await;
    let rows = vec![row(
        "100 KB kid, 1 MiB limits",
        raised
            .issuer
            .token_with_header(&raised.rsa, json!({ "kid": "k".repeat(100 * 1024) })),
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
    let g = Gate::start().await;
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
        let token = sign_raw(&header, &g.issuer.claims(), &g.rsa.encoding, g.rsa.alg);
        rows.push(row(format!("kid {kid}"), token, 401, "malformed"));
    }
    g.verdicts(&rows).await;
    g.assert_still_serving().await;
}

/// RFC 7515 §4.1.11: a recipient that does not understand a `crit` extension MUST reject the
/// JWS. tokengate implements none (not even RFC 7797 `b64`), so any `crit` is refused.
#[tokio::test]
async fn an_unknown_crit_is_refused() {
    let g = Gate::start().await;
    let mut rows = Vec::new();
    for changes in [
        json!({"crit": ["x-unknown"], "x-unknown": true}),
        json!({"crit": ["b64"], "b64": false}),
        json!({"crit": ["exp"], "exp": 1}),
        json!({"crit": []}),
        json!({"crit": "x-unknown"}),
    ] {
        let token = g.issuer.token_with_header(&g.rsa, changes.clone());
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
    let genuine = g.issuer.token(&g.ec256);
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
            with_signature(&g.issuer.token(&g.ec384), &[0u8; 96]),
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
    let g = Gate::start().await;
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
    let raised = Gate::with(RAISED_LIMITS).await;
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
    let g = Gate::start().await;
    let blob = json!({"blob": "A".repeat(1024 * 1024)});
    let over = g.token_with(json!({"blob": "A".repeat(16 * 1024)}));
    let rows = vec![
        row("1 MB of claims", g.token_with(blob.clone()), 431, ""),
        row("16 KiB of claims", over, 401, "longer than allowed"),
    ];
    g.verdicts(&rows).await;
    g.assert_still_serving().await;

    let raised = Gate::with(RAISED_LIMITS).await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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

// =============================================================================================
// HTTP: RFC 6750 (bearer usage), RFC 9110 (semantics), RFC 9112 (HTTP/1.1), RFC 9113 (HTTP/2).

/// RFC 6750 §2 and RFC 9110 §11.6.2: one request, one set of credentials. Authorization is not
/// a list-valued field, so two lines cannot be combined, and picking either is a guess.
#[tokio::test]
async fn two_authorization_headers_are_refused() {
    let g = Gate::start().await;
    let good = format!("Bearer {}", g.token());
    let cases: [(&str, &str, &str); 4] = [
        ("the same token twice", &good, &good),
        ("a good token and garbage", &good, "Bearer garbage"),
        ("Basic then Bearer", "Basic dXNlcjpwYXNz", &good),
        ("Bearer then Basic", &good, "Basic dXNlcjpwYXNz"),
    ];
    for (label, first, second) in cases {
        let before = g.upstream.count();
        let mut headers = reqwest::header::HeaderMap::new();
        headers.append("authorization", first.parse().expect("value"));
        headers.append("authorization", second.parse().expect("value"));
        let r = reqwest::Client::new()
            .get(g.proxy.url("/api/resource"))
            .headers(headers)
            .send()
            .await
            .expect("request");
        let (status, challenge, body) = read(r).await;
        assert_eq!(status, 400, "{label}: {body}");
        assert_eq!(body["error"], "invalid_request", "{label}");
        assert!(
            body["error_description"]
                .as_str()
                .unwrap_or("")
                .contains("more than one"),
            "{label}: {body}"
        );
        assert!(challenge.unwrap_or_default().contains("invalid_request"));
        assert_eq!(g.upstream.count(), before, "{label} reached the upstream");
    }
    g.assert_still_serving().await;
}

/// RFC 6750 §2 ("Clients MUST NOT use more than one method to transmit the token in each
/// request"), §3.1 (an unsupported method is no authentication) and §5.3 (tokens in URLs leak
/// into logs): an `access_token` query parameter is never a token and never forwarded. Beside
/// a header token it is 400; alone it is 401 with a bare challenge, on optional routes too,
/// however the parameter name is spelled.
#[tokio::test]
async fn a_token_in_the_query_is_refused() {
    // (Appended to the routes list.)
    let g = Gate::with("  - { path: /maybe/**, auth: optional }\n").await;
    let token = g.token();
    let bearer = format!("Bearer {token}");
    let spellings = [
        ("plain", format!("access_token={token}")),
        (
            "after another parameter",
            format!("x=1&access_token={token}"),
        ),
        ("empty value", "access_token=".to_string()),
        ("no value", "access_token".to_string()),
        ("encoded name", format!("access%5Ftoken={token}")),
        ("plus-encoded", format!("x=a+b&access_token={token}")),
        ("upper case", format!("ACCESS_TOKEN={token}")),
        ("mixed case", format!("Access_Token={token}")),
        ("encoded letter", format!("%61ccess_token={token}")),
        ("semicolon separator", format!("x=1;access_token={token}")),
        ("PHP dot", format!("access.token={token}")),
        ("array", format!("access_token[]={token}")),
    ];
    for path in ["/api/resource", "/maybe/resource"] {
        for (label, query) in &spellings {
            for header in [true, false] {
                let label = format!("{path} {label} header={header}");
                let before = g.upstream.count();
                let headers: Vec<(&str, &str)> = if header {
                    vec![("authorization", bearer.as_str())]
                } else {
                    Vec::new()
                };
                let (status, challenge, body) =
                    read(g.get(&format!("{path}?{query}"), &headers).await).await;
                if header {
                    assert_eq!(status, 400, "{label}: {body}");
                    assert_eq!(body["error"], "invalid_request", "{label}");
                    assert!(
                        body["error_description"]
                            .as_str()
                            .unwrap_or("")
                            .contains("query"),
                        "{label}: {body}"
                    );
                } else {
                    assert_eq!(status, 401, "{label}: {body}");
                    assert_eq!(
                        challenge.as_deref(),
                        Some("Bearer realm=\"tokengate\""),
                        "{label}"
                    );
                }
                assert!(!body.to_string().contains(&token), "{label}: token echoed");
                assert_eq!(g.upstream.count(), before, "{label} reached the upstream");
            }
        }
    }
    g.assert_still_serving().await;
}

/// RFC 9110 §7.6.1: a proxy removes the fields `Connection` lists. Listing tokengate's own
/// identity or forwarding headers must not remove what tokengate injects, nor keep what the
/// client sent; listing `Authorization` does not skip verification (it is checked first).
#[tokio::test]
async fn connection_cannot_remove_injected_headers_or_skip_verification() {
    let g = Gate::start().await;
    let bearer = format!("Bearer {}", g.token());

    let r = g
        .get(
            "/api/c1",
            &[
                ("authorization", &bearer),
                (
                    "connection",
                    "close, X-Auth-Subject, X-Forwarded-For, X-Auth-Scopes",
                ),
                ("x-auth-subject", "admin"),
                ("x-auth-scopes", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 200);
    let seen = g.last();
    let subjects: Vec<&str> = seen
        .headers
        .iter()
        .filter(|(n, _)| n == "x-auth-subject")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(subjects, ["user-1"]);
    assert_eq!(seen.header("x-auth-scopes"), Some("read"));
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"));

    // Connection: Authorization with a good token: verified, then not forwarded (hop-by-hop).
    let r = g
        .get(
            "/api/c2",
            &[("authorization", &bearer), ("connection", "authorization")],
        )
        .await;
    assert_eq!(r.status(), 200);
    let seen = g.last();
    assert_eq!(seen.target, "/api/c2");
    assert_eq!(seen.header("authorization"), None);
    assert_eq!(seen.header("x-auth-subject"), Some("user-1"));

    // ...and with a bad token: still refused.
    let before = g.upstream.count();
    let r = g
        .get(
            "/api/c3",
            &[
                ("authorization", "Bearer garbage"),
                ("connection", "authorization"),
            ],
        )
        .await;
    assert_eq!(r.status(), 401);
    // Listing the scopes header does not make the admin route skip its scope check.
    let r = g
        .get(
            "/admin/c4",
            &[
                ("authorization", &bearer),
                ("connection", "x-auth-scopes"),
                ("x-auth-scopes", "admin"),
            ],
        )
        .await;
    assert_eq!(r.status(), 403);
    assert_eq!(g.upstream.count(), before);
    g.assert_still_serving().await;
}

/// A POST with a chunked body, both framings and a request smuggled after it.
fn cl_te_request(token: &str, framing: &str, trailer: &str) -> Vec<u8> {
    format!(
        "POST /api/smuggle HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{framing}\r\n5\r\nhello\r\n0\r\n\r\n{trailer}"
    )
    .into_bytes()
}

/// RFC 9112 §6.1 and §6.3 (a request with both Content-Length and Transfer-Encoding: the
/// latter wins, and the connection must close after the response) and §11.2 (request
/// smuggling). The upstream must see one request, framed one way, with the chunked body;
/// a request smuggled behind it never reaches anyone.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_forwarded_with_one_framing() {
    let g = Gate::start().await;
    let token = g.token();
    let smuggled = "GET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    for framing in [
        "Content-Length: 6\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 6\r\n",
        "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
        "Transfer-Encoding: chunked\r\nContent-Length: 100\r\n",
    ] {
        let before = g.upstream.count();
        let answer = exchange(g.proxy.addr, &cl_te_request(&token, framing, smuggled)).await;
        assert_eq!(answer.status, 200, "{framing:?}: {}", answer.head);
        assert_eq!(
            answer.responses, 1,
            "{framing:?}: a second response came back"
        );
        assert_eq!(g.upstream.count(), before + 1, "{framing:?}");
        let echo = answer.json();
        assert_eq!(echo["body"], "hello", "{framing:?}: {}", answer.body);
        assert_eq!(echo["target"], "/api/smuggle");
        let headers = &echo["headers"];
        let lengths = headers["content-length"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let encodings = headers["transfer-encoding"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let one_framing = match (lengths.as_slice(), encodings.as_slice()) {
            ([], [te]) => te == "chunked",
            ([cl], []) => cl == "5",
            _ => false,
        };
        assert!(
            one_framing,
            "{framing:?}: the upstream saw CL {lengths:?} and TE {encodings:?}"
        );
        assert_ne!(g.last().target, "/admin/smuggled");
    }
    g.assert_still_serving().await;
}

/// RFC 9112 §6.3 item 5 and RFC 9110 §8.6: differing Content-Length values are a 400 (a
/// framing two parsers could read two ways); identical repeats may be collapsed into one.
#[tokio::test]
async fn duplicate_content_length_is_refused_or_collapsed() {
    let g = Gate::start().await;
    let token = g.token();
    let post = |lengths: &str| {
        format!(
            "POST /api/length HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{lengths}Connection: close\r\n\r\nhelloGET /admin/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .into_bytes()
    };
    // The same value twice: one request, one Content-Length upstream.
    let before = g.upstream.count();
    let answer = exchange(
        g.proxy.addr,
        &post("Content-Length: 5\r\nContent-Length: 5\r\n"),
    )
    .await;
    assert_eq!(answer.status, 200, "{}", answer.head);
    assert_eq!(g.upstream.count(), before + 1);
    let echo = answer.json();
    assert_eq!(echo["body"], "hello");
    assert_eq!(echo["headers"]["content-length"], json!(["5"]));
    // Anything else is refused before the upstream.
    for lengths in [
        "Content-Length: 5\r\nContent-Length: 6\r\n",
        "Content-Length: 6\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
        "Content-Length: 5, 6\r\n",
        "Content-Length: +5\r\n",
        "Content-Length: -5\r\n",
        "Content-Length: 0x5\r\n",
        "Content-Length: 5 5\r\n",
    ] {
        let before = g.upstream.count();
        let answer = exchange(g.proxy.addr, &post(lengths)).await;
        assert_eq!(answer.status, 400, "{lengths:?}: {}", answer.head);
        assert_eq!(answer.responses, 1, "{lengths:?}");
        assert_eq!(
            g.upstream.count(),
            before,
            "{lengths:?} reached the upstream"
        );
    }
    g.assert_still_serving().await;
}

/// RFC 9112 §6.3 item 4: a Transfer-Encoding whose final coding is not `chunked` makes the
/// request's length unknowable: 400, and the connection closes. HTTP/1.0 has no
/// Transfer-Encoding at all (RFC 9112 §6.1).
#[tokio::test]
async fn a_transfer_encoding_not_ending_in_chunked_is_refused() {
    let g = Gate::start().await;
    let token = g.token();
    for (version, coding) in [
        ("HTTP/1.1", "gzip"),
        ("HTTP/1.1", "chunked, gzip"),
        ("HTTP/1.1", "xchunked"),
        ("HTTP/1.1", "chunked;x=1"),
        ("HTTP/1.1", "identity"),
        ("HTTP/1.0", "chunked"),
    ] {
        let before = g.upstream.count();
        let request = format!(
            "POST /api/te {version}\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        );
        let answer = exchange(g.proxy.addr, request.as_bytes()).await;
        assert_eq!(answer.status, 400, "{version} {coding:?}: {}", answer.head);
        assert_eq!(
            g.upstream.count(),
            before,
            "{version} {coding:?} reached the upstream"
        );
    }
    g.assert_still_serving().await;
}

/// CGI and WSGI (RFC 3875 §4.1.18) read `-` and `_` alike, and so do nginx and many frameworks:
/// `X_Auth_Subject` is `X-Auth-Subject` upstream. Every spelling of an identity header that a
/// client sends is stripped, on verified and public routes alike.
#[tokio::test]
async fn underscored_header_names_cannot_impersonate_identity() {
    let g = Gate::start().await;
    let bearer = format!("Bearer {}", g.token());
    let spoofed = [
        ("X_Auth_Subject", "admin"),
        ("x_auth_subject", "admin"),
        ("X-Auth_Subject", "admin"),
        ("X_AUTH_SCOPES", "admin"),
        ("X_Auth_Issuer", "https://evil.test"),
        ("X_Auth_Anything", "1"),
    ];
    for (path, token) in [("/api/u", Some(&bearer)), ("/public/u", None)] {
        for (name, value) in spoofed {
            let before = g.upstream.count();
            let mut headers = vec![(name, value)];
            if let Some(t) = token {
                headers.push(("authorization", t.as_str()));
            }
            let r = g.get(path, &headers).await;
            assert_eq!(r.status(), 200, "{name} on {path}");
            assert_eq!(g.upstream.count(), before + 1);
            let seen = g.last();
            let identity: Vec<(String, String)> = seen
                .headers
                .iter()
                .filter(|(n, _)| {
                    n.to_ascii_lowercase()
                        .replace('_', "-")
                        .starts_with("x-auth-")
                })
                .cloned()
                .collect();
            if token.is_some() {
                assert!(
                    identity.iter().all(|(n, v)| !n.contains('_') && v != value),
                    "{name} on {path}: {identity:?}"
                );
                assert_eq!(seen.header("x-auth-subject"), Some("user-1"));
            } else {
                assert!(identity.is_empty(), "{name} on {path}: {identity:?}");
            }
        }
    }
    g.assert_still_serving().await;
}

/// RFC 9112 §5.2: obs-fold (a field line continued on the next line with leading
/// whitespace) must be refused with 400 or unfolded; tokengate's server refuses it, so a
/// folded identity header or Authorization can never be read two ways.
#[tokio::test]
async fn obs_fold_is_refused() {
    let g = Gate::start().await;
    let token = g.token();
    for folded in [
        format!("Authorization: Bearer {token}\r\nX-Auth-Subject: user-1\r\n admin\r\n"),
        format!("Authorization: Bearer\r\n {token}\r\n"),
        format!("Authorization: Bearer {token}\r\n\tX-Auth-Subject: admin\r\n"),
        format!("X-Forwarded-For: 10.0.0.1\r\n ,127.0.0.1\r\nAuthorization: Bearer {token}\r\n"),
    ] {
        let before = g.upstream.count();
        let request =
            format!("GET /api/fold HTTP/1.1\r\nHost: x\r\n{folded}Connection: close\r\n\r\n");
        let answer = exchange(g.proxy.addr, request.as_bytes()).await;
        assert_eq!(answer.status, 400, "{folded:?}: {}", answer.head);
        assert_eq!(
            g.upstream.count(),
            before,
            "{folded:?} reached the upstream"
        );
    }
    g.assert_still_serving().await;
}

/// RFC 9112 §3.2.2: with an absolute-form target the target's authority is the one asked
/// for, whatever `Host` says. tokengate refuses a disagreement (400) rather than pick one,
/// so it and the upstream cannot be talking about two different sites; agreement is served.
#[tokio::test]
async fn an_absolute_form_target_disagreeing_with_host_is_refused() {
    let g = Gate::start().await;
    let bearer = format!("Bearer {}", g.token());
    let send = |target: &str, host: &str| {
        format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
        )
        .into_bytes()
    };
    for (target, host) in [
        ("http://other.host/api/x", "x"),
        ("http://other.host/public/x", "x"),
        ("http://x:8080/api/x", "x"),
        ("http://x/api/x", "x:8080"),
        ("http://user@x/api/x", "x"),
        ("https://other.host/api/x", "x"),
    ] {
        let before = g.upstream.count();
        let answer = exchange(g.proxy.addr, &send(target, host)).await;
        assert_eq!(
            answer.status, 400,
            "{target} with Host {host}: {}",
            answer.head
        );
        assert_eq!(g.upstream.count(), before, "{target} reached the upstream");
    }
    for (target, host) in [
        ("http://x/api/x", "x"),
        ("http://X/api/x", "x"),
        ("http://x/api/x", "X"),
    ] {
        let before = g.upstream.count();
        let answer = exchange(g.proxy.addr, &send(target, host)).await;
        assert_eq!(
            answer.status, 200,
            "{target} with Host {host}: {}",
            answer.head
        );
        assert_eq!(g.upstream.count(), before + 1);
        let seen = g.last();
        assert_eq!(seen.target, "/api/x");
        assert_eq!(seen.header("host"), Some(host));
    }
    g.assert_still_serving().await;
}

/// RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) status code to any HTTP/1.1
/// request message that lacks a Host header field and to any request message that contains
/// more than one Host header field line". Two Host lines let tokengate (`X-Forwarded-Host`,
/// virtual-host routing) and the upstream each pick a different one.
#[tokio::test]
async fn two_host_headers_are_refused() {
    let g = Gate::start().await;
    let bearer = format!("Bearer {}", g.token());
    let before = g.upstream.count();
    let request = format!(
        "GET /api/host HTTP/1.1\r\nHost: x\r\nHost: admin.internal\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n"
    );
    let answer = exchange(g.proxy.addr, request.as_bytes()).await;
    assert_eq!(
        answer.status,
        400,
        "{}\nthe upstream saw: {:?}",
        answer.head,
        g.upstream.last().map(|r| r.headers)
    );
    assert_eq!(g.upstream.count(), before);
    g.assert_still_serving().await;
}

/// RFC 9112 §3.2, the other half: an HTTP/1.1 request without Host is a 400.
#[tokio::test]
async fn an_http11_request_without_host_is_refused() {
    let g = Gate::start().await;
    let bearer = format!("Bearer {}", g.token());
    let before = g.upstream.count();
    let request =
        format!("GET /api/nohost HTTP/1.1\r\nAuthorization: {bearer}\r\nConnection: close\r\n\r\n");
    let answer = exchange(g.proxy.addr, request.as_bytes()).await;
    assert_eq!(
        answer.status,
        400,
        "{}\nthe upstream saw: {:?}",
        answer.head,
        g.upstream.last().map(|r| r.headers)
    );
    assert_eq!(g.upstream.count(), before);
    g.assert_still_serving().await;
}

/// RFC 9113 §8.3.1: a server should treat as malformed a request whose `Host` names another
/// entity than its `:authority`. Sent with hyper's own HTTP/2 client, which puts the URI's
/// authority in `:authority` and passes a `Host` header through as given.
#[tokio::test]
async fn http2_authority_disagreeing_with_host_is_refused() {
    use http_body_util::{BodyExt, Empty};
    let g = Gate::start().await;
    let bearer = format!("Bearer {}", g.token());
    let stream = TcpStream::connect(g.proxy.addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(connection);
    for (uri, host, status) in [
        ("http://other.host/api/h2", Some("x"), 400),
        ("http://x/api/h2", Some("admin.internal"), 400),
        ("http://x/api/h2", Some("x"), 200),
        ("http://x/api/h2", None, 200),
    ] {
        let before = g.upstream.count();
        let mut request = http::Request::get(uri).header("authorization", bearer.as_str());
        if let Some(host) = host {
            request = request.header("host", host);
        }
        let request = request.body(Empty::<bytes::Bytes>::new()).expect("request");
        let response = sender.send_request(request).await.expect("h2 response");
        assert_eq!(
            response.status().as_u16(),
            status,
            "{uri} with Host {host:?}"
        );
        let _ = response.into_body().collect().await;
        let want = before + usize::from(status == 200);
        assert_eq!(g.upstream.count(), want, "{uri} with Host {host:?}");
        if status == 200 {
            let seen = g.last();
            assert_eq!(seen.target, "/api/h2");
            assert_eq!(seen.header("host"), Some("x"));
        }
    }
    g.assert_still_serving().await;
}

/// Method-override headers (Express `method-override`, Symfony `_method`, Spring
/// `HiddenHttpMethodFilter`; OWASP WSTG-CONF-06): route rules match the request's method, so
/// an upstream that honours `X-HTTP-Method-Override` would run a method the rules never saw.
/// tokengate must refuse such a request or strip the headers.
#[tokio::test]
async fn method_override_headers_cannot_change_the_method_the_rules_saw() {
    let key = TestKey::load("rsa-a", "rsa-a", Algorithm::RS256);
    let issuer = TestIssuer::start(vec![key.clone()]).await;
    let upstream = EchoUpstream::start().await;
    let yaml = format!(
        "{}upstream: {{ url: {} }}\nroutes:\n  - {{ path: /items/**, methods: [DELETE], scopes: [admin] }}\n",
        issuer_config(&issuer, ""),
        upstream.url()
    );
    let proxy = TestProxy::start(&yaml).await;
    proxy.wait_ready().await;
    let bearer = format!("Bearer {}", issuer.token(&key));
    let client = reqwest::Client::new();
    // The rule itself works: a real DELETE needs the admin scope.
    let r = client
        .delete(proxy.url("/items/1"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 403);
    for name in [
        "X-HTTP-Method-Override",
        "X-HTTP-Method",
        "X-Method-Override",
        "X_HTTP_Method_Override",
    ] {
        let before = upstream.count();
        let r = client
            .post(proxy.url("/items/1"))
            .header("authorization", &bearer)
            .header(name, "DELETE")
            .send()
            .await
            .expect("request");
        let status = r.status().as_u16();
        let forwarded = upstream.count() - before;
        let reached = upstream
            .last()
            .and_then(|l| l.header(name).map(str::to_owned));
        let refused = status == 400 && forwarded == 0;
        let stripped = status == 200 && forwarded == 1 && reached.is_none();
        assert!(
            refused || stripped,
            "{name}: status {status}, forwarded {forwarded}, the upstream saw {reached:?}"
        );
    }
    // Still serving.
    let r = client
        .get(proxy.url("/items/1"))
        .header("authorization", &bearer)
        .send()
        .await
        .expect("request");
    assert_eq!(r.status(), 200);
}

// =============================================================================================
// Paths and forwarding: RFC 3986 §5.2.4 and §6 (normalisation), the classic bypass shapes.

/// Sends each raw target with a token holding only `read` and without one, and checks the
/// status and what the upstream saw. `forwarded` None: nothing may reach the upstream.
async fn path_rows(g: &Gate, rows: &[(&str, u16, u16, Option<&str>)]) {
    let bearer = format!("Bearer {}", g.token());
    let mut failures = Vec::new();
    for &(target, with_read, anonymous, forwarded) in rows {
        for (token, want) in [(Some(&bearer), with_read), (None, anonymous)] {
            let before = g.upstream.count();
            let headers: Vec<(&str, &str)> = token
                .map(|t| vec![("Authorization", t.as_str())])
                .unwrap_or_default();
            let answer = exchange(g.proxy.addr, &raw_get(target, &headers)).await;
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
            let after = g.upstream.count();
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
                            g.upstream.last().map(|r| r.target)
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let g = Gate::with("paths: { allow_parameters: true }\n").await;
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
    let g = Gate::with("paths: { allow_parameters: true }\n").await;
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
    let open = Gate::with("paths: { allow_parameters: true }\ndefault: { auth: none }\n").await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let g = Gate::start().await;
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
    let before = g.upstream.count();
    let r = g.get("/admin/x", &spoofed).await;
    assert_eq!(r.status(), 401);
    assert_eq!(g.upstream.count(), before);
    // With a read token: still 403.
    let bearer = format!("Bearer {}", g.token());
    let mut with_token = spoofed.to_vec();
    with_token.push(("authorization", &bearer));
    assert_eq!(g.get("/admin/x", &with_token).await.status(), 403);
    assert_eq!(g.upstream.count(), before);
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
    let r = g.get("/public/x", &toward_admin).await;
    assert_eq!(r.status(), 200);
    assert_eq!(g.upstream.count(), before + 1);
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
