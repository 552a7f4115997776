//! The per-request work, stage by stage: extraction + verification (cache miss, RS256 and
//! ES256, against the bare signature check), a cache hit, header injection, canonical path and
//! route matching, one JSON access-log line. Run with `cargo bench --bench hot_path`.

use std::hint::black_box;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use http::{HeaderMap, HeaderValue, Method};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use tokengate::authn::cache::TokenCache;
use tokengate::authn::{self, Principal, VerifiedToken};
use tokengate::authz;
use tokengate::config::{self, CacheSettings, Overrides, Settings};
use tokengate::jwks::KeyStore;
use tokengate::mutate::HeaderPolicy;
use tokengate::route::{self, Rule};
use tokengate::token;

/// The allocator the binary uses (src/main.rs), so allocation costs as much here as there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ISSUER: &str = "https://idp.bench.example";

fn pem(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/keys/{name}.pem",
        env!("CARGO_MANIFEST_DIR")
    ))
    .expect("fixture")
}

fn der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("pem")
}

/// Public JWKs of the RSA and P-256 fixture keys.
fn jwks() -> serde_json::Value {
    use aws_lc_rs::signature::KeyPair as _;
    let rsa = aws_lc_rs::rsa::KeyPair::from_pkcs8(&der(&pem("rsa-a"))).expect("rsa");
    let ec = aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der(&pem("ec-p256")),
    )
    .expect("ec");
    let point = ec.public_key().as_ref();
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa", "alg": "RS256",
         "n": URL_SAFE_NO_PAD.encode(rsa.public_key().modulus().big_endian_without_leading_zero()),
         "e": URL_SAFE_NO_PAD.encode(rsa.public_key().exponent().big_endian_without_leading_zero())},
        {"kty": "EC", "kid": "ec", "alg": "ES256", "crv": "P-256",
         "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])},
    ]})
}

/// A typical access token: Okta-like claims, about 700 bytes.
fn token(alg: Algorithm, kid: &str, key: &EncodingKey) -> String {
    let now = authn::now() as u64;
    let mut header = Header::new(alg);
    header.kid = Some(kid.into());
    let claims = json!({
        "ver": 1, "jti": "AT.4kW2xQ3Iu0b8mYtO4bXd0pQ1s3ZQ0HkCq3vJc2b3rQk", "iss": ISSUER,
        "aud": "api://default", "iat": now, "exp": now + 3600, "cid": "0oa1bench2client3id4",
        "uid": "00u1bench2user3id4", "scp": ["openid", "profile", "email", "orders:read"],
        "auth_time": now, "sub": "alice@example.com", "groups": ["Everyone", "Engineering"],
    });
    jsonwebtoken::encode(&header, &claims, key).expect("sign")
}

struct Fixture {
    settings: Settings,
    keys: KeyStore,
    rs256: String,
    es256: String,
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    let dir = std::env::temp_dir().join(format!("tokengate-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("jwks.json");
    std::fs::write(&file, jwks().to_string()).expect("jwks");
    let yaml = format!(
        "issuers:\n  - issuer: {ISSUER}\n    audiences: [api://default]\n    algorithms: [RS256, ES256]\n    jwks_file: {}\n    claims: {{ cid: 0oa1bench2client3id4 }}\n",
        file.display()
    );
    let settings =
        config::load_str(Path::new("bench.yaml"), &yaml, &Overrides::default()).expect("config");
    let keys = KeyStore::new(&settings, None);
    rt.block_on(async {
        keys.start();
        while !keys.issuers_without_keys().is_empty() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    });
    let rs256 = token(
        Algorithm::RS256,
        "rsa",
        &EncodingKey::from_rsa_pem(pem("rsa-a").as_bytes()).expect("rsa"),
    );
    let es256 = token(
        Algorithm::ES256,
        "ec",
        &EncodingKey::from_ec_pem(pem("ec-p256").as_bytes()).expect("ec"),
    );
    Fixture {
        settings,
        keys,
        rs256,
        es256,
    }
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        http::header::AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {token}")).expect("header"),
    );
    h
}

fn verification(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = fixture(&rt);
    let introspector = authn::Introspector::new(&f.settings);
    let mut without = f.settings.clone();
    without.cache = CacheSettings {
        enabled: false,
        max_entries: 1,
    };
    let off = TokenCache::new(&without);
    let mut with = f.settings.clone();
    with.cache = CacheSettings {
        enabled: true,
        max_entries: 100_000,
    };
    let on = TokenCache::new(&with);

    // The bare signature check, what a miss cannot avoid: decode the signature segment and
    // verify it with the key parsed once (as tokengate holds its keys).
    let (signing_input, signature) = f.rs256.rsplit_once('.').expect("jws");
    let jwk = jwks()["keys"][0].clone();
    let component = |name: &str| {
        URL_SAFE_NO_PAD
            .decode(jwk[name].as_str().expect("component"))
            .expect("base64url")
    };
    let (n, e) = (component("n"), component("e"));
    let parsed = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e }
        .to_parsed_public_key(&aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256)
        .expect("key");
    c.bench_function("rs256_bare_signature_verify", |b| {
        b.iter(|| {
            let signature = URL_SAFE_NO_PAD
                .decode(black_box(signature))
                .expect("base64url");
            parsed.verify_sig(signing_input.as_bytes(), &signature)
        })
    });
    // The same check as jsonwebtoken::crypto::verify does it, parsing the key every time
    // (what tokengate did before it kept parsed keys).
    let decoding = jsonwebtoken::DecodingKey::from_rsa_raw_components(&n, &e);
    c.bench_function("rs256_signature_verify_parsing_the_key_each_time", |b| {
        b.iter(|| {
            jsonwebtoken::crypto::verify(
                black_box(signature),
                signing_input.as_bytes(),
                &decoding,
                Algorithm::RS256,
            )
        })
    });

    // A bearer token on a route that allows DPoP: no proof to check.
    let proofs = authn::ProofChecker::reusing(&f.settings.dpop, None, Default::default())
        .expect("dpop settings");
    let bare = authn::Presentation {
        dpop_mode: route::DpopMode::Allowed,
        proof: token::ProofHeader::None,
        method: &Method::GET,
        target: None,
        client_certificate: None,
    };
    for (name, token) in [("rs256", &f.rs256), ("es256", &f.es256)] {
        let headers = bearer(token);
        c.bench_function(&format!("extract_and_verify_{name}_cache_miss"), |b| {
            b.to_async(&rt).iter(|| async {
                let token::Extracted::Token(t) =
                    token::extract(black_box(&headers), None).expect("extract")
                else {
                    panic!("no token")
                };
                authn::verify(t, &bare, &f.settings, &f.keys, &off, &introspector, &proofs)
                    .await
                    .expect("valid")
            })
        });
    }

    let headers = bearer(&f.rs256);
    rt.block_on(async {
        let token::Extracted::Token(t) = token::extract(&headers, None).expect("extract") else {
            panic!()
        };
        authn::verify(t, &bare, &f.settings, &f.keys, &on, &introspector, &proofs)
            .await
            .expect("valid");
    });
    c.bench_function("extract_and_verify_cache_hit", |b| {
        b.to_async(&rt).iter(|| async {
            let token::Extracted::Token(t) =
                token::extract(black_box(&headers), None).expect("extract")
            else {
                panic!("no token")
            };
            authn::verify(t, &bare, &f.settings, &f.keys, &on, &introspector, &proofs)
                .await
                .expect("valid")
        })
    });
}

/// A DPoP request's extra cost (RFC 9449): reading and verifying one ES256 proof, and the
/// whole check (htm, htu, iat, ath, jkt, memory replay store) with a fresh proof each time,
/// as a client sends them (the signing is outside the measurement).
fn dpop(c: &mut Criterion) {
    use authn::dpop::{proof, Expected, TargetUri};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let settings = config::load_str(
        Path::new("bench.yaml"),
        &format!("issuers:\n  - issuer: {ISSUER}\n    audiences: [api]\n"),
        &Overrides::default(),
    )
    .expect("config");
    let key = EncodingKey::from_ec_pem(pem("ec-p256").as_bytes()).expect("ec");
    let point = {
        use aws_lc_rs::signature::KeyPair as _;
        aws_lc_rs::signature::EcdsaKeyPair::from_pkcs8(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &der(&pem("ec-p256")),
        )
        .expect("ec")
        .public_key()
        .as_ref()
        .to_vec()
    };
    let jwk = json!({"kty": "EC", "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..])});
    let access_token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJl";
    let ath = URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        access_token.as_bytes(),
    ));
    let htu = "https://api.example.com/api/orders";
    let sign = |jti: u128| -> String {
        let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
        let claims = json!({"jti": format!("{jti:032x}"), "htm": "GET", "htu": htu,
            "iat": authn::now() as u64, "ath": ath});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &key, Algorithm::ES256).expect("sign");
        format!("{input}.{signature}")
    };
    let one = sign(0);
    let algorithms = settings.dpop.algorithms.clone();
    c.bench_function("dpop_proof_read_es256", |b| {
        b.iter(|| proof::read(black_box(&one), &algorithms).expect("a good proof"))
    });
    let jkt = match proof::read(&one, &algorithms) {
        Ok(p) => p.jkt,
        Err(e) => panic!("{e}"),
    };
    let checker =
        authn::ProofChecker::reusing(&settings.dpop, None, Default::default()).expect("checker");
    let method = Method::GET;
    let expected = Expected {
        method: &method,
        target: Some(TargetUri {
            origin: "https://api.example.com",
            path: "/api/orders",
            options: route::PathOptions::default(),
        }),
        jkt: &jkt,
        access_token,
    };
    let mut jti = 1u128;
    c.bench_function("dpop_check_fresh_proof_es256_memory_store", |b| {
        b.iter_batched(
            || {
                jti += 1;
                sign(jti)
            },
            |p| {
                rt.block_on(checker.check(token::ProofHeader::One(&p), &expected, authn::now()))
                    .expect("accepted")
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn headers(c: &mut Criterion) {
    let settings = config::load_str(
        Path::new("bench.yaml"),
        &format!("issuers:\n  - {{ issuer: {ISSUER}, audiences: [api://default] }}\nupstream: {{ url: http://127.0.0.1:8080 }}\n"),
        &Overrides::default(),
    )
    .expect("config");
    let policy = HeaderPolicy::new(&settings.forward, &settings.trusted_proxies);
    let claims = json!({
        "iss": ISSUER, "sub": "alice@example.com", "cid": "0oa1bench2client3id4",
        "scp": ["openid", "profile", "email", "orders:read"], "exp": 1, "aud": "api://default",
    });
    let make_permit = || {
        let token = VerifiedToken::new(
            ISSUER.into(),
            Default::default(),
            claims.as_object().cloned().unwrap_or_default(),
        );
        authz::authorize(&Rule::required(), Principal::Authenticated(Arc::new(token)))
            .expect("a token meets the default rule")
    };
    let mut request = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64) bench"),
        ("accept", "application/json"),
        ("accept-encoding", "gzip, br"),
        ("authorization", "Bearer eyJ.eyJ.sig"),
        ("x-request-id", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("connection", "keep-alive"),
    ] {
        request.insert(
            http::HeaderName::from_static(k),
            HeaderValue::from_static(v),
        );
    }
    let peer: SocketAddr = "203.0.113.9:50000".parse().expect("peer");
    let cached = make_permit();
    let request_id = HeaderValue::from_static("4bf92f3577b34da6a3ce929d0e0e4736");
    c.bench_function("header_strip_and_inject_cached_token", |b| {
        b.iter(|| {
            let mut h = request.clone();
            let origin = policy.strip_request(&mut h, &peer, false);
            policy.inject(&mut h, &origin, &peer, "http", &cached, &request_id);
            h
        })
    });
    c.bench_function("header_strip_and_inject_first_render", |b| {
        b.iter_batched(
            make_permit,
            |permit| {
                let mut h = request.clone();
                let origin = policy.strip_request(&mut h, &peer, false);
                policy.inject(&mut h, &origin, &peer, "http", &permit, &request_id);
                h
            },
            criterion::BatchSize::SmallInput,
        )
    });
}

fn paths(c: &mut Criterion) {
    let options = route::PathOptions::default();
    c.bench_function("canonical_path", |b| {
        b.iter(|| {
            route::canonicalize(
                black_box("/api/v1/users/12345/orders/../orders/%7Erecent"),
                options,
            )
        })
    });
    let yaml = format!(
        "issuers:\n  - {{ issuer: {ISSUER}, audiences: [api://default] }}\nupstream: {{ url: http://127.0.0.1:8080 }}\nroutes:\n{}",
        [
            "/healthz", "/docs/**", "/static/**", "/public/**", "/api/v1/admin/**", "/api/v1/users/*/profile",
            "/api/v1/users/*/settings", "/api/v1/reports/**", "/api/v2/**", "/api/v1/orders/**",
        ]
        .iter()
        .map(|p| format!("  - {{ path: \"{p}\", methods: [GET, POST] }}\n"))
        .collect::<String>()
    );
    let settings =
        config::load_str(Path::new("bench.yaml"), &yaml, &Overrides::default()).expect("config");
    let path = route::canonicalize("/api/v1/orders/12345", options).expect("path");
    c.bench_function("route_match_10_rules", |b| {
        b.iter(|| {
            settings
                .rules
                .match_request(black_box(&Method::GET), black_box(&path))
                .1
                .auth
        })
    });
}

/// One access-log line (the fields `access::AccessRecord::write` sends, 400 bytes of JSON)
/// through tracing-subscriber's JSON formatter and through `json_log::JsonLines`, into a
/// sink that discards it: the formatting alone, without the write.
fn log_lines(c: &mut Criterion) {
    fn line() {
        tracing::info!(
            target: "tokengate::access",
            request_id = %"3f2a9c1e0b7d4e66a1c2d3e4f5a6b7c8",
            method = %Method::GET,
            path = %"/api/messages",
            status = 200_u16,
            reason = "ok",
            route = "-",
            issuer = "urn:tokengate:dev",
            sub = "user-1@example.com",
            client = %SocketAddr::from(([127, 0, 0, 1], 41674)),
            bytes_in = 0_u64,
            bytes_out = 28_u64,
            latency_us = 393_u64,
            upstream_us = Some(390_u64),
            duration_us = 394_u64,
        );
    }
    let stock = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(stock, || {
        c.bench_function("access_log_line_json_tracing_subscriber", |b| b.iter(line));
    });
    let ours = tracing_subscriber::fmt()
        .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
        .event_format(tokengate::json_log::JsonLines::default())
        .with_writer(std::io::sink)
        .finish();
    tracing::subscriber::with_default(ours, || {
        c.bench_function("access_log_line_json_tokengate", |b| b.iter(line));
    });
}

criterion_group!(benches, verification, dpop, headers, paths, log_lines);
criterion_main!(benches);
