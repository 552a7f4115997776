//! Bytes → a request's header list → `mutate::HeaderPolicy::strip_request` and `inject`, as
//! `App::forward` runs them → the header list the upstream receives, checked against an
//! oracle written here from the rules (not from `mutate`'s tables).
//!
//! Input: the first byte picks the peer (trusted or not, IPv4 or IPv6), the policy
//! (`strip_authorization` or not), the permit (anonymous, a verified token, a token whose
//! claims cannot all be sent), WebSocket and the scheme. The rest is lines `name:value`; a
//! line starting `@<i><s>` (three bytes, then an optional `:`) names entry `i` of
//! [`VOCABULARY`] spelled by `s` (case, `_` for `-`); a value `@<i>...` is a comma list of
//! vocabulary entries and [`TOKENS`]; anything else is taken as written (names and values
//! http refuses are skipped, as hyper would refuse them).
//!
//! Invariants: see `check`.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use libfuzzer_sys::fuzz_target;
use serde_json::json;
use tokengate::authn::{Principal, VerifiedToken};
use tokengate::authz::{authorize, Permit};
use tokengate::route::Rule;
use tokengate::config::{Overrides, DEFAULT_FOREIGN_IDENTITY_HEADERS};
use tokengate::mutate::{keeps_response_trailer, HeaderPolicy};

/// One configuration, loaded the way `proxy.yaml` is; `strip_authorization` is flipped for
/// the second policy.
const CONFIG: &str = "issuers:
  - issuer: https://idp.fuzz.test
    audiences: [api://fuzz]
forward:
  headers:
    X-Auth-Subject: sub
    X-Auth-Scopes: [scp, scope]
    X-User-Roles: realm_access.roles
    X-Auth-Groups: { claim: groups, array_format: json }
    X_Auth_Tenant: tenant
    X-Tenant: tenant
  payload_header: X-Auth-Claims
  strip_prefix: X-Auth-
  strip_headers: [X-Legacy-Auth-*, X-Tenant-User]
  trusted_identity_headers: [X-Forwarded-User, X-Amzn-Oidc-Identity, x_legacy_auth_user]
  strip_authorization: STRIP
trusted_proxies: [10.0.0.0/8, '2001:db8:1::/48']
";

/// tokengate's own identity headers in this configuration: the claim headers, the payload
/// header, and every name under the prefix (normal form).
const OWN_IDENTITY: &[&str] = &[
    "x-auth-subject",
    "x-auth-scopes",
    "x-user-roles",
    "x-auth-groups",
    "x-auth-tenant",
    "x-tenant",
    "x-auth-claims",
];
const OWN_PREFIX: &str = "x-auth-";
/// `forward.strip_headers` (normal form; `*` ends a prefix).
const EXTRA_FOREIGN: &[&str] = &["x-legacy-auth-*", "x-tenant-user"];
/// `forward.trusted_identity_headers`, lower-cased as written: only that spelling passes.
const TRUSTED_IDENTITY: &[&str] = &[
    "x-forwarded-user",
    "x-amzn-oidc-identity",
    "x_legacy_auth_user",
];

/// RFC 9110 §7.6.1 and the proxy-only fields, `HTTP2-Settings` and `Expect`.
const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "transfer-encoding",
    "upgrade",
    "http2-settings",
    "expect",
];
/// The client-connection headers, believed only from trusted proxies (besides the
/// `x-forwarded-` prefix).
const FORWARDING: &[&str] = &[
    "forwarded",
    "forwarded-for",
    "x-forwarded",
    "x-real-ip",
    "x-original-url",
    "x-original-uri",
    "x-original-method",
    "x-rewrite-url",
    "x-client-ip",
    "client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-originating-ip",
    "x-host",
    "x-original-host",
];
const METHOD_OVERRIDES: &[&str] = &[
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
    "proxy",
];
/// RFC 9110 §6.5.1: framing, routing, request modifiers (controls, conditionals),
/// authentication, response control data, content metadata; and tokengate's request id.
const NOT_IN_TRAILERS: &[&str] = &[
    "content-*",
    "transfer-encoding",
    "trailer",
    "host",
    "authorization",
    "proxy-authorization",
    "www-authenticate",
    "proxy-authenticate",
    "cookie",
    "set-cookie",
    "cache-control",
    "expect",
    "max-forwards",
    "pragma",
    "range",
    "if-*",
    "te",
    "age",
    "expires",
    "date",
    "location",
    "retry-after",
    "vary",
    "warning",
    "access-control-*",
    "x-request-id",
    "proxy-authentication-info",
];

/// Names a fuzzed header is mostly drawn from.
const VOCABULARY: &[&str] = &[
    "Proxy",
    "True-Client-IP",
    "X-Original-Host",
    "Proxy-Authentication-Info",
    // tokengate's identity headers, and more under its prefix
    "X-Auth-Subject",
    "X-Auth-Scopes",
    "X-Auth-Groups",
    "X-Auth-Claims",
    "X-Auth-Tenant",
    "X-Auth-Admin",
    "X-Auth-",
    "X-Auth",
    "X-User-Roles",
    "X-Tenant",
    // the foreign identity families, one member or more of each
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Access-Token",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "Remote-User",
    "Remote-Email",
    "Remote-Groups",
    "Remote-Name",
    "X-Remote-User",
    "X-User",
    "X-Userinfo",
    "X-User-Id",
    "X-Authenticated-Userid",
    "X-Id-Token",
    "X-Jwt-Assertion",
    "OIDC-Claim-Email",
    "OIDC_CLAIM_sub",
    "OIDC_access_token",
    "OIDC-Id-Token-Payload",
    "X-Consumer-Username",
    "X-Credential-Identifier",
    "X-Anonymous-Consumer",
    "X-Pomerium-Claim-Email",
    "X-Pomerium-Jwt-Assertion",
    "X-MS-Client-Principal",
    "X-MS-Client-Principal-Name",
    "X-MS-Token-Aad-Id-Token",
    "X-Amzn-Oidc-Identity",
    "X-Amzn-Oidc-Data",
    "Cf-Access-Jwt-Assertion",
    "Cf-Access-Authenticated-User-Email",
    "X-Goog-Authenticated-User-Email",
    "X-Goog-Iap-Jwt-Assertion",
    "X-Legacy-Auth-User",
    "X-Legacy-Auth-Role",
    "X-Tenant-User",
    // forwarding
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-Port",
    "X-Forwarded-Prefix",
    "X-Forwarded-Uri",
    "Forwarded",
    "X-Real-IP",
    "X-Original-URL",
    "X-Original-URI",
    "X-Original-Method",
    "X-Rewrite-URL",
    "X-Client-IP",
    // hop-by-hop and framing
    "Connection",
    "Keep-Alive",
    "Proxy-Connection",
    "Proxy-Authorization",
    "Proxy-Authenticate",
    "TE",
    "Transfer-Encoding",
    "Upgrade",
    "HTTP2-Settings",
    "Expect",
    "Trailer",
    "Content-Length",
    "Content-Type",
    // what tokengate decides on
    "Host",
    "X-Request-Id",
    "Cookie",
    "Authorization",
    "X-HTTP-Method-Override",
    "X-HTTP-Method",
    "X-Method-Override",
    // ordinary end-to-end headers
    "Accept",
    "X-Custom",
    "X-Checksum",
    "Grpc-Timeout",
    "Sec-WebSocket-Key",
    "Sec-WebSocket-Version",
    "If-Match",
    "Cache-Control",
    "Access-Control-Request-Method",
    "Proxy",
    "Via",
    "Max-Forwards",
];

/// List elements other than header names, for `Connection`, `TE`, `Upgrade`.
const TOKENS: &[&str] = &[
    "close",
    "keep-alive",
    "upgrade",
    "trailers",
    "websocket",
    "WebSocket",
    "h2c",
    "HTTP/2.0",
    "chunked",
    "gzip",
    "deflate",
    "100-continue",
    "",
    " ",
];

const REQUEST_ID: HeaderValue = HeaderValue::from_static("tg-req-0001");

struct Fixed {
    /// `[strip_authorization: false, true]`.
    policies: [HeaderPolicy; 2],
    foreign: Vec<String>,
}

fn fixed() -> &'static Fixed {
    static FIXED: OnceLock<Fixed> = OnceLock::new();
    FIXED.get_or_init(|| {
        let policy = |strip: &str| {
            let yaml = CONFIG.replace("STRIP", strip);
            let settings =
                tokengate::config::load_str(Path::new("fuzz.yaml"), &yaml, &Overrides::default())
                    .expect("the fuzz forward configuration is valid");
            HeaderPolicy::new(&settings.forward, &settings.trusted_proxies)
        };
        let foreign = DEFAULT_FOREIGN_IDENTITY_HEADERS
            .iter()
            .map(|p| norm(p))
            .chain(EXTRA_FOREIGN.iter().map(|p| (*p).to_owned()))
            .collect();
        Fixed {
            policies: [policy("false"), policy("true")],
            foreign,
        }
    })
}

/// Lower case, `_` read as `-`: how upstreams compare names.
fn norm(name: &str) -> String {
    name.bytes()
        .map(|b| match b {
            b'_' => '-',
            b => char::from(b.to_ascii_lowercase()),
        })
        .collect()
}

/// `name` (normal form) against a list of names and `prefix*` patterns (normal form).
fn listed(name: &str, patterns: &[impl AsRef<str>]) -> bool {
    patterns.iter().any(|p| {
        let p = p.as_ref();
        match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == p,
        }
    })
}

fn is_own_identity(n: &str) -> bool {
    n.starts_with(OWN_PREFIX) || OWN_IDENTITY.contains(&n)
}
fn is_foreign(n: &str) -> bool {
    listed(n, &fixed().foreign)
}
fn is_forwarding(n: &str) -> bool {
    n.starts_with("x-forwarded-") || FORWARDING.contains(&n)
}
fn is_hop_by_hop(n: &str) -> bool {
    // Exact names: `Connection` names only lower-cased, never `_`-folded (RFC 9110).
    HOP_BY_HOP.contains(&n)
}
fn is_method_override(n: &str) -> bool {
    METHOD_OVERRIDES.contains(&n)
}

/// The spelling `s` gives a vocabulary name.
fn spell(name: &str, s: u8) -> String {
    let mut out: String = match s & 3 {
        0 => name.to_owned(),
        1 => name.to_ascii_lowercase(),
        2 => name.to_ascii_uppercase(),
        _ => name
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if (s >> 4) & (1 << (i % 4)) != 0 {
                    c.to_ascii_uppercase()
                } else {
                    c.to_ascii_lowercase()
                }
            })
            .collect(),
    };
    if s & 4 != 0 {
        out = out.replace('-', "_");
    }
    if s & 8 != 0 {
        // one `-` of the name (which one: bits 4..) read as `_`
        if let Some((i, _)) = out
            .match_indices('-')
            .nth(usize::from(s >> 4) % out.matches('-').count().max(1))
        {
            out.replace_range(i..=i, "_");
        }
    }
    out
}

fn parse_name(bytes: &[u8]) -> Option<HeaderName> {
    match bytes {
        [b'@', i, s] => {
            let name = VOCABULARY[usize::from(*i) % VOCABULARY.len()];
            HeaderName::from_bytes(spell(name, *s).as_bytes()).ok()
        }
        _ => HeaderName::from_bytes(bytes).ok(),
    }
}

fn parse_value(bytes: &[u8]) -> Option<HeaderValue> {
    match bytes {
        [b'@', picks @ ..] => {
            let all = VOCABULARY.len() + TOKENS.len();
            let list: Vec<String> = picks
                .iter()
                .map(|&p| {
                    let i = usize::from(p & 0x7f) % all;
                    let text = VOCABULARY
                        .get(i)
                        .copied()
                        .unwrap_or_else(|| TOKENS[i - VOCABULARY.len()]);
                    // the high bit: another spelling
                    if p & 0x80 != 0 {
                        spell(text, p >> 1)
                    } else {
                        text.to_owned()
                    }
                })
                .collect();
            HeaderValue::from_str(&list.join(", ")).ok()
        }
        _ => HeaderValue::from_bytes(bytes).ok(),
    }
}

/// The comma-separated elements of every visible-ASCII `name` field, trimmed.
fn elements<'a>(headers: &'a HeaderMap, name: &str) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
}

fn values<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Vec<&'a HeaderValue> {
    headers.get_all(name).iter().collect()
}

fn permit(kind: u8) -> Permit {
    let claims = match kind % 3 {
        0 => return admit(&Rule::public(), Principal::Anonymous),
        1 => json!({
            "iss": "https://idp.fuzz.test",
            "sub": "fuzz-subject",
            "scope": "read write",
            "realm_access": {"roles": ["reader", "writer"]},
            "groups": ["g1", "g 2"],
            "tenant": "t-1",
        }),
        // Claims that cannot all be sent: roles whose element holds the separator, a subject
        // with a control character.
        _ => json!({
            "iss": "https://idp.fuzz.test",
            "sub": "evil\u{1}X-Auth-Admin: true",
            "scp": ["read", "write"],
            "realm_access": {"roles": ["Everyone", "not admin"]},
            "tenant": {"id": 7},
        }),
    };
    let token = VerifiedToken::new(
        "https://idp.fuzz.test".into(),
        Default::default(),
        claims.as_object().cloned().unwrap_or_default(),
    );
    admit(&Rule::required(), Principal::Authenticated(Arc::new(token)))
}

/// The permit `authorize` gives; the fixed rules above always admit.
fn admit(rule: &Rule, principal: Principal) -> Permit {
    match authorize(rule, principal) {
        Ok(permit) => permit,
        Err(e) => panic!("the fixture rule refused: {e:?}"),
    }
}

/// The identity headers tokengate must send for `permit`, with their values.
fn expected_identity(permit: &Permit) -> Vec<(&'static str, Vec<u8>)> {
    let Some(token) = permit.token() else {
        return Vec::new();
    };
    let claims = token.claims();
    let payload = (
        "x-auth-claims",
        URL_SAFE_NO_PAD.encode(token.claims_json()).into_bytes(),
    );
    if claims.get("sub").and_then(|s| s.as_str()) == Some("fuzz-subject") {
        vec![
            ("x-auth-subject", b"fuzz-subject".to_vec()),
            ("x-auth-scopes", b"read write".to_vec()),
            ("x-user-roles", b"reader writer".to_vec()),
            ("x-auth-groups", br#"["g1","g 2"]"#.to_vec()),
            ("x_auth_tenant", b"t-1".to_vec()),
            ("x-tenant", b"t-1".to_vec()),
            payload,
        ]
    } else {
        // The subject and the roles are withheld; the scopes are joined, the tenant is JSON.
        vec![
            ("x-auth-scopes", b"read write".to_vec()),
            ("x_auth_tenant", br#"{"id":7}"#.to_vec()),
            ("x-tenant", br#"{"id":7}"#.to_vec()),
            payload,
        ]
    }
}

const PEERS: [(&str, bool); 4] = [
    ("203.0.113.9:5000", false),
    ("10.1.2.3:5000", true),
    ("[2001:db8::9]:443", false),
    ("[2001:db8:1::5]:443", true),
];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let (peer, trusted) = PEERS[usize::from(flags & 3)];
    let peer: SocketAddr = peer.parse().expect("a socket address");
    let strip_authorization = flags & 4 != 0;
    let websocket = flags & 8 != 0;
    let proto = if flags & 16 != 0 { "https" } else { "http" };
    let permit = permit(flags >> 5);
    let policy = &fixed().policies[usize::from(strip_authorization)];
    assert_eq!(policy.is_trusted(&peer), trusted, "{peer}");

    let mut input = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let (name, value) = match (line, line.iter().position(|&b| b == b':')) {
            // `@<i><s>` is three bytes, whatever they are; a `:` may follow.
            ([b'@', _, _, ..], _) => {
                let (name, value) = line.split_at(3);
                (name, value.strip_prefix(b":").unwrap_or(value))
            }
            (_, Some(at)) => (&line[..at], &line[at + 1..]),
            (_, None) => (line, &b""[..]),
        };
        if let (Some(name), Some(value)) = (parse_name(name), parse_value(value)) {
            input.append(name, value);
        }
    }

    let mut output = input.clone();
    let origin = policy.strip_request(&mut output, &peer, websocket);
    policy.inject(&mut output, &origin, &peer, proto, &permit, &REQUEST_ID);

    check(&Case {
        input: &input,
        output: &output,
        policy,
        peer,
        trusted,
        strip_authorization,
        websocket,
        proto,
        permit: &permit,
    });
});

struct Case<'a> {
    input: &'a HeaderMap,
    output: &'a HeaderMap,
    policy: &'a HeaderPolicy,
    peer: SocketAddr,
    trusted: bool,
    strip_authorization: bool,
    websocket: bool,
    proto: &'static str,
    permit: &'a Permit,
}

fn check(c: &Case<'_>) {
    let (input, output) = (c.input, c.output);
    let peer_ip = c.peer.ip().to_string();
    let dump = || format!("\ninput:  {input:?}\noutput: {output:?}");

    // The names `Connection` removes (exact names, lower-cased by http), and the ones it
    // cannot: what tokengate sets or decides on.
    let connection_listed: Vec<HeaderName> = elements(input, "connection")
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    const CONNECTION_PROOF: &[&str] = &[
        "host",
        "content-length",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    ];
    let removed_by_connection = |name: &HeaderName| {
        connection_listed.contains(name) && !CONNECTION_PROOF.contains(&name.as_str())
    };

    // 1. Identity: a name that is tokengate's (normalised) carries tokengate's value only; a
    //    foreign identity name reaches the upstream only from a trusted peer, listed in
    //    trusted_identity_headers, with the value that peer sent.
    let expected = expected_identity(c.permit);
    for (name, value) in output {
        let n = norm(name.as_str());
        if is_own_identity(&n) {
            assert!(
                expected
                    .iter()
                    .any(|(e, v)| *e == name.as_str() && v == value.as_bytes()),
                "identity header {name}: {value:?} is not tokengate's{}",
                dump()
            );
        } else if is_foreign(&n) {
            assert!(
                c.trusted && TRUSTED_IDENTITY.contains(&name.as_str()),
                "foreign identity header {name}: {value:?} reached the upstream (trusted peer: {}){}",
                c.trusted,
                dump()
            );
        }
    }
    // Every identity header tokengate renders is there, once, whatever the client sent or
    // listed in Connection.
    for (name, value) in &expected {
        let got: Vec<&[u8]> = output.get_all(*name).iter().map(|v| v.as_bytes()).collect();
        assert_eq!(got, [value.as_slice()], "identity header {name}{}", dump());
    }
    // From a trusted peer, a trusted identity header passes as sent (unless Connection named
    // it), in the spelling configured.
    for (name, _) in input {
        if c.trusted && TRUSTED_IDENTITY.contains(&name.as_str()) && !removed_by_connection(name) {
            assert_eq!(
                values(output, name),
                values(input, name),
                "{name}{}",
                dump()
            );
        }
    }

    // 2. No hop-by-hop field, but the WebSocket pair and `TE: trailers`.
    for name in HOP_BY_HOP {
        let got: Vec<&HeaderValue> = output.get_all(*name).iter().collect();
        match *name {
            "connection" if c.websocket => assert_eq!(got, ["upgrade"], "{}", dump()),
            "upgrade" if c.websocket => assert_eq!(got, ["websocket"], "{}", dump()),
            "te" if elements(input, "te").any(|t| t.eq_ignore_ascii_case("trailers")) => {
                assert_eq!(got, ["trailers"], "{}", dump())
            }
            _ => assert!(got.is_empty(), "hop-by-hop {name}: {got:?}{}", dump()),
        }
    }
    // Nor any field Connection named (tokengate's own values set again are not the client's).
    for name in &connection_listed {
        if CONNECTION_PROOF.contains(&name.as_str()) || !output.contains_key(name) {
            continue;
        }
        let tokengates = HOP_BY_HOP.contains(&name.as_str())
            || expected.iter().any(|(e, _)| *e == name.as_str());
        assert!(
            tokengates,
            "{name} was named in Connection and reached the upstream{}",
            dump()
        );
    }
    // No method override, in any spelling.
    for (name, value) in output {
        assert!(
            !is_method_override(&norm(name.as_str())),
            "method override {name}: {value:?}{}",
            dump()
        );
    }

    // 3. The request id: once, tokengate's, and no other spelling of it.
    assert_eq!(
        values(output, &"x-request-id".parse().unwrap()),
        [&REQUEST_ID],
        "{}",
        dump()
    );
    for name in output.keys() {
        assert!(
            norm(name.as_str()) != "x-request-id" || name.as_str() == "x-request-id",
            "{name} beside tokengate's X-Request-Id{}",
            dump()
        );
    }

    // 4. Host: the client's, all of it and only it (Connection cannot remove it).
    let host: HeaderName = http::header::HOST;
    assert_eq!(
        values(output, &host),
        values(input, &host),
        "Host{}",
        dump()
    );
    // Content-Length: the framing never changes.
    let cl = http::header::CONTENT_LENGTH;
    assert_eq!(
        values(output, &cl),
        values(input, &cl),
        "Content-Length{}",
        dump()
    );

    // 5. Forwarding headers: from an untrusted peer, tokengate's only.
    let xff: Vec<&str> = output
        .get_all("x-forwarded-for")
        .iter()
        .map(|v| v.to_str().expect("X-Forwarded-For is ASCII"))
        .collect();
    assert_eq!(xff.len(), 1, "X-Forwarded-For{}", dump());
    let proto: Vec<&HeaderValue> = output.get_all("x-forwarded-proto").iter().collect();
    let fhost: Vec<&HeaderValue> = output.get_all("x-forwarded-host").iter().collect();
    if c.trusted {
        // The chain the trusted proxy sent, then the peer. Several field lines are one list
        // (RFC 9110 §5.3): a proxy that appends its own line (HAProxy's `option forwardfor`)
        // puts the real client in the second line, after a client-chosen first one. A chain
        // with an unreadable line may be dropped (the peer alone) or kept whole.
        let sent: Option<Vec<&str>> = input
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().ok())
            .collect();
        let elements_of = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .map(str::to_owned)
                .collect()
        };
        let got = elements_of(xff[0]);
        match sent {
            Some(lines) => {
                let mut expected = elements_of(&lines.join(","));
                expected.push(peer_ip.clone());
                assert_eq!(
                    got,
                    expected,
                    "X-Forwarded-For from a trusted peer{}",
                    dump()
                );
            }
            None => assert_eq!(got.last(), Some(&peer_ip), "{}", dump()),
        }
        // From a trusted proxy too, a forwarding header passes in its own spelling only.
        for name in output.keys() {
            assert!(
                !(is_forwarding(&norm(name.as_str())) && name.as_str().contains('_')),
                "forwarding header {name} from a trusted peer in another spelling{}",
                dump()
            );
        }
        // A trusted proxy's own X-Forwarded-Proto and -Host pass as it sent them.
        let sent_proto = values(input, &"x-forwarded-proto".parse().unwrap());
        if sent_proto.is_empty() {
            assert_eq!(proto, [c.proto], "{}", dump());
        } else {
            assert_eq!(proto, sent_proto, "{}", dump());
        }
        let sent_host = values(input, &"x-forwarded-host".parse().unwrap());
        if sent_host.is_empty() {
            assert_eq!(
                fhost,
                values(input, &host).into_iter().take(1).collect::<Vec<_>>(),
                "{}",
                dump()
            );
        } else {
            assert_eq!(fhost, sent_host, "{}", dump());
        }
    } else {
        assert_eq!(
            xff[0],
            peer_ip,
            "X-Forwarded-For from an untrusted peer{}",
            dump()
        );
        assert_eq!(proto, [c.proto], "{}", dump());
        assert_eq!(
            fhost,
            values(input, &host).into_iter().take(1).collect::<Vec<_>>(),
            "X-Forwarded-Host from an untrusted peer{}",
            dump()
        );
        for (name, value) in output {
            let n = name.as_str();
            if is_forwarding(&norm(n)) {
                assert!(
                    ["x-forwarded-for", "x-forwarded-proto", "x-forwarded-host"].contains(&n),
                    "forwarding header {n}: {value:?} from an untrusted peer{}",
                    dump()
                );
            }
        }
    }

    // 6. Cookie: one field, the client's fields joined with "; " in order.
    let cookie = http::header::COOKIE;
    let sent: Vec<&[u8]> = input
        .get_all(&cookie)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    let got: Vec<&[u8]> = output
        .get_all(&cookie)
        .iter()
        .map(|v| v.as_bytes())
        .collect();
    if sent.is_empty() || removed_by_connection(&cookie) {
        assert!(got.is_empty(), "{}", dump());
    } else {
        assert_eq!(got, [sent.join(&b"; "[..]).as_slice()], "Cookie{}", dump());
    }

    // 7. Authorization: gone when stripped, else as sent.
    let authorization = http::header::AUTHORIZATION;
    if c.strip_authorization || removed_by_connection(&authorization) {
        assert!(!output.contains_key(&authorization), "{}", dump());
    } else {
        assert_eq!(
            values(output, &authorization),
            values(input, &authorization),
            "{}",
            dump()
        );
    }

    // 8. Trailer: one field naming only declared fields the trailer rule keeps; every such
    //    declared field is named.
    let trailer = http::header::TRAILER;
    let declared: Vec<HeaderName> = elements(input, "trailer")
        .filter_map(|n| HeaderName::from_bytes(n.as_bytes()).ok())
        .collect();
    let kept: Vec<&HeaderName> = declared
        .iter()
        .filter(|n| c.policy.keeps_request_trailer(n))
        .collect();
    let got = values(output, &trailer);
    if kept.is_empty() || removed_by_connection(&trailer) {
        assert!(got.is_empty(), "Trailer{}", dump());
    } else {
        assert_eq!(got.len(), 1, "Trailer{}", dump());
        let named: Vec<HeaderName> = got[0]
            .to_str()
            .expect("tokengate's Trailer is ASCII")
            .split(',')
            .map(|n| HeaderName::from_bytes(n.trim().as_bytes()).expect("a name"))
            .collect();
        assert_eq!(
            named,
            kept.into_iter().cloned().collect::<Vec<_>>(),
            "Trailer{}",
            dump()
        );
    }

    // 9. The trailer predicates, on every name the request mentions.
    let mentioned = input
        .keys()
        .cloned()
        .chain(declared.iter().cloned())
        .chain(connection_listed.iter().cloned());
    for name in mentioned {
        check_trailer_rule(c.policy, &name);
    }

    // 10. Everything else passes as sent, unless Connection named it.
    for name in input.keys() {
        let n = norm(name.as_str());
        let special = is_own_identity(&n)
            || is_foreign(&n)
            || is_forwarding(&n)
            || is_hop_by_hop(name.as_str())
            || is_method_override(&n)
            || n == "x-request-id"
            || ["cookie", "trailer", "host", "authorization"].contains(&name.as_str());
        if special {
            continue;
        }
        let expected = if removed_by_connection(name) {
            Vec::new()
        } else {
            values(input, name)
        };
        assert_eq!(
            values(output, name),
            expected,
            "end-to-end header {name}{}",
            dump()
        );
    }
}

/// A trailer field is kept only when the header rules (as from an untrusted peer) keep it
/// and RFC 9110 §6.5.1 allows it as a trailer.
fn check_trailer_rule(policy: &HeaderPolicy, name: &HeaderName) {
    let n = norm(name.as_str());
    let never = is_own_identity(&n)
        || is_foreign(&n)
        || is_forwarding(&n)
        || is_hop_by_hop(&n)
        || is_method_override(&n)
        || listed(&n, NOT_IN_TRAILERS);
    if never {
        assert!(
            !policy.keeps_request_trailer(name),
            "{name} kept as a request trailer"
        );
    } else {
        assert!(
            policy.keeps_request_trailer(name),
            "{name} dropped as a request trailer"
        );
    }
    let response_never = is_hop_by_hop(&n) || listed(&n, NOT_IN_TRAILERS);
    assert_eq!(
        keeps_response_trailer(name),
        !response_never,
        "{name} as a response trailer"
    );
}
