//! `issuers:`: who may sign tokens, with which algorithms and keys (`hmac:` secrets
//! included), and which claims every token of theirs must carry; then the list as a whole,
//! with the dev issuer added.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::claims::claim_rule;
use super::secret::read_secret;
use super::Issues;
use crate::algorithm::Algorithm;
use crate::config::raw::{RawHmac, RawIntrospection, RawIssuer};
use crate::config::{
    parse_duration, ClientAuth, DevIssuerSettings, HmacSecret, IntrospectionResponse,
    IntrospectionSettings, IssuerSettings, KeySource, Secret,
};

const MAX_LEEWAY: Duration = Duration::from_secs(300);
/// The longest an introspection answer may be reused (a revocation is seen this late).
const MAX_INTROSPECTION_CACHE: Duration = Duration::from_secs(3600);
const SUPPORTED_ALGORITHMS: &str =
    "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA";

/// Each `issuers[i]` entry, in order (see [`issuer`]).
pub(super) fn issuers(issues: &mut Issues, raw: &[RawIssuer]) -> Vec<IssuerSettings> {
    raw.iter()
        .enumerate()
        .map(|(i, r)| issuer(issues, &format!("issuers[{i}]"), r))
        .collect()
}

/// `configured` with the dev issuer (when there is one) last; at least one issuer, and
/// each `iss` once.
pub(super) fn with_dev_issuer(
    issues: &mut Issues,
    configured: Vec<IssuerSettings>,
    dev: Option<&DevIssuerSettings>,
) -> Vec<IssuerSettings> {
    let in_file = configured.len();
    let mut issuers = configured;
    if let Some(dev) = dev {
        issuers.push(IssuerSettings {
            issuer: dev.issuer.clone(),
            audiences: vec![dev.audience.clone()],
            algorithms: vec![Algorithm::RS256],
            leeway: Duration::from_secs(60),
            max_lifetime: None,
            key_source: KeySource::DevIssuer,
            allow_http: false,
            claims: Vec::new(),
            require_rfc9068: false,
            introspection: None,
            introspect_jwts: false,
        });
    }

    if issuers.is_empty() {
        issues.add(
            "issuers",
            "no issuer is configured, so no token could ever be accepted",
            "add an entry under issuers: (issuer, audiences), or a dev_issuer: block for local testing",
        );
    }
    for (i, a) in issuers.iter().enumerate() {
        if issuers[..i].iter().any(|b| b.issuer == a.issuer) {
            let path = if i < in_file {
                format!("issuers[{i}].issuer")
            } else {
                "dev_issuer.issuer".into()
            };
            issues.add(
                path,
                format!("issuer `{}` is configured twice", a.issuer),
                "each issuer (the exact `iss` value) may appear once",
            );
        }
    }
    issuers
}

/// One `issuers[i]` entry at `at`: its `iss` and audiences, algorithms, leeway and
/// lifetime cap, where its keys come from (discovery, `jwks_uri`, `jwks_file` or `hmac:`),
/// its claim rules and its token profile.
fn issuer(issues: &mut Issues, at: &str, raw: &RawIssuer) -> IssuerSettings {
    if raw.issuer.is_empty() {
        issues.add(
            format!("{at}.issuer"),
            "the issuer is empty",
            "write the exact `iss` of your tokens, e.g. https://dev-123.okta.com/oauth2/default",
        );
    }
    if raw.audiences.is_empty() || raw.audiences.iter().any(String::is_empty) {
        issues.add(
            format!("{at}.audiences"),
            "at least one non-empty audience is required",
            "list the `aud` values this service accepts, e.g. audiences: [api://default]",
        );
    }

    let hmac = raw.hmac.as_ref().and_then(|h| hmac_secret(issues, at, h));
    let algorithms = match &raw.algorithms {
        None if raw.hmac.is_some() => vec![Algorithm::HS256],
        None => vec![Algorithm::RS256],
        Some(names) if names.is_empty() => {
            issues.add(
                format!("{at}.algorithms"),
                "the list of algorithms is empty",
                format!("name at least one of {SUPPORTED_ALGORITHMS}, or omit it for RS256"),
            );
            Vec::new()
        }
        Some(names) => names
            .iter()
            .enumerate()
            .filter_map(|(i, name)| {
                let parsed = Algorithm::from_name(name);
                let hmac_alg = parsed.is_some_and(crate::jwk::is_hmac);
                if raw.hmac.is_some() && parsed.is_some() && !hmac_alg {
                    issues.add(
                        format!("{at}.algorithms[{i}]"),
                        format!("an HMAC issuer verifies HS256, HS384 or HS512 only, not {name}"),
                        "an issuer is HMAC or asymmetric, never both: configure the asymmetric keys as an issuer of their own",
                    );
                    return None;
                }
                if raw.hmac.is_none() && hmac_alg {
                    issues.add(
                        format!("{at}.algorithms[{i}]"),
                        "HMAC needs a shared secret, and this issuer has none",
                        "add hmac: { secret_file: PATH } or hmac: { secret_env: VAR } to an issuer of its own (its tokens are then HS only)",
                    );
                    return None;
                }
                if parsed.is_none() {
                    let why = if name.eq_ignore_ascii_case("none") {
                        "unsigned tokens are never accepted".to_owned()
                    } else if name.to_ascii_uppercase().starts_with("HS") {
                        "HMAC needs a shared secret, which tokengate does not take".to_owned()
                    } else {
                        format!("`{name}` is not a supported algorithm")
                    };
                    issues.add(
                        format!("{at}.algorithms[{i}]"),
                        why,
                        format!("use one of {SUPPORTED_ALGORITHMS}"),
                    );
                }
                parsed
            })
            .collect(),
    };

    let leeway = issues.duration(
        &format!("{at}.leeway"),
        raw.leeway.as_deref(),
        Duration::from_secs(60),
    );
    if leeway > MAX_LEEWAY {
        issues.add(
            format!("{at}.leeway"),
            format!("a leeway of {}s is too long", leeway.as_secs()),
            "clock skew beyond 5m is a clock problem; use at most 5m (the default is 60s)",
        );
    }

    let max_lifetime = raw.max_lifetime.as_deref().map(|text| {
        let path = format!("{at}.max_lifetime");
        let cap = issues.duration(&path, Some(text), Duration::ZERO);
        if cap.is_zero() && parse_duration(text).is_some() {
            issues.add(
                path,
                "a max_lifetime of zero would refuse every token",
                "write the longest lifetime your IdP issues, e.g. 1h or 24h",
            );
        }
        cap
    });

    if let Some(secret) = &hmac {
        for alg in &algorithms {
            let needed = crate::jwk::hmac_min_key_bytes(*alg);
            if secret.bytes.len() < needed {
                issues.add(
                    format!("{at}.hmac"),
                    format!(
                        "the secret ({}) is {} bytes, shorter than {alg:?}'s {needed}-byte hash output",
                        secret.origin,
                        secret.bytes.len()
                    ),
                    "RFC 7518 §3.2: use a secret of at least that many bytes (e.g. openssl rand -base64 48)",
                );
            }
        }
    }
    if raw.hmac.is_some() && (raw.jwks_uri.is_some() || raw.jwks_file.is_some()) {
        issues.add(
            format!("{at}.hmac"),
            "an HMAC issuer takes its key from hmac:, not from jwks_uri or jwks_file",
            "an issuer is HMAC or asymmetric, never both: remove jwks_uri/jwks_file, or configure them as an issuer of their own",
        );
    }

    let scheme_ok =
        |url: &Url| url.scheme() == "https" || (raw.allow_http && url.scheme() == "http");
    let key_source = match (&raw.jwks_uri, &raw.jwks_file) {
        _ if raw.hmac.is_some() => match hmac {
            Some(secret) => KeySource::Hmac(secret),
            // Already reported; any source will do for a configuration that is refused.
            None => KeySource::Discovery,
        },
        (Some(_), Some(_)) => {
            issues.add(
                at,
                "jwks_uri and jwks_file are both set",
                "keep one: jwks_uri to fetch keys, jwks_file to read them from disk",
            );
            KeySource::Discovery
        }
        (Some(uri), None) => match Url::parse(uri) {
            Ok(url) if scheme_ok(&url) => KeySource::JwksUri(url),
            Ok(_) => {
                issues.add(
                    format!("{at}.jwks_uri"),
                    format!("`{uri}` is not https"),
                    "keys must come over https; set allow_http: true only for local testing",
                );
                KeySource::Discovery
            }
            Err(e) => {
                issues.add(
                    format!("{at}.jwks_uri"),
                    format!("`{uri}` is not a URL: {e}"),
                    "write the full URL, e.g. https://dev-123.okta.com/oauth2/default/v1/keys",
                );
                KeySource::Discovery
            }
        },
        (None, Some(file)) => KeySource::JwksFile(PathBuf::from(file)),
        (None, None) => {
            match Url::parse(&raw.issuer) {
                Ok(url) if scheme_ok(&url) => {}
                Ok(url) if url.scheme() == "http" => issues.add(
                    format!("{at}.issuer"),
                    format!("`{}` is not https", raw.issuer),
                    "issuers must be https; set allow_http: true only for local testing",
                ),
                _ if raw.issuer.is_empty() => {}
                _ => issues.add(
                    format!("{at}.issuer"),
                    format!(
                        "`{}` is not an http(s) URL, so keys cannot be discovered",
                        raw.issuer
                    ),
                    "use the issuer's URL, or give jwks_uri or jwks_file",
                ),
            }
            KeySource::Discovery
        }
    };

    let claims = raw
        .claims
        .iter()
        .filter_map(|(name, value)| claim_rule(issues, &format!("{at}.claims.{name}"), name, value))
        .collect();

    let require_rfc9068 = match raw.profile.as_deref() {
        None => false,
        Some("rfc9068") => true,
        Some(other) => {
            issues.add(
                format!("{at}.profile"),
                format!("`{other}` is not a token profile"),
                "the only profile is rfc9068 (JWT access tokens: typ at+jwt)",
            );
            false
        }
    };

    let introspection = raw
        .introspection
        .as_ref()
        .and_then(|r| introspection(issues, at, raw, r));
    if raw.introspect_jwts && raw.introspection.is_none() {
        issues.add(
            format!("{at}.introspect_jwts"),
            "introspect_jwts needs an introspection: block",
            "add introspection: { endpoint, client_id, client_secret_file } or remove introspect_jwts",
        );
    }

    IssuerSettings {
        issuer: raw.issuer.clone(),
        audiences: raw.audiences.clone(),
        algorithms,
        leeway,
        max_lifetime,
        key_source,
        allow_http: raw.allow_http,
        claims,
        require_rfc9068,
        introspection,
        introspect_jwts: raw.introspect_jwts,
    }
}

/// `issuers[i].introspection`: the endpoint (https unless `allow_http`; else discovery, which
/// needs the issuer's discovery, not `jwks_uri`/`jwks_file`/`hmac`), the client id, the client
/// authentication and its secret or key (from a file or the environment, never inline), the
/// answer format and the cache timings.
fn introspection(
    issues: &mut Issues,
    at: &str,
    issuer: &RawIssuer,
    raw: &RawIntrospection,
) -> Option<IntrospectionSettings> {
    let at = format!("{at}.introspection");
    let before = issues.0.len();
    let endpoint = match &raw.endpoint {
        Some(text) => match Url::parse(text) {
            Ok(url) if url.scheme() == "https" || (issuer.allow_http && url.scheme() == "http") => {
                Some(url)
            }
            Ok(_) => {
                issues.add(
                    format!("{at}.endpoint"),
                    format!("`{text}` is not https"),
                    "tokens and client secrets travel to it: https only (allow_http: true only for local testing)",
                );
                None
            }
            Err(e) => {
                issues.add(
                    format!("{at}.endpoint"),
                    format!("`{text}` is not a URL: {e}"),
                    "write the full URL, e.g. https://dev-123.okta.com/oauth2/v1/introspect",
                );
                None
            }
        },
        None => {
            if issuer.jwks_uri.is_some() || issuer.jwks_file.is_some() || issuer.hmac.is_some() {
                issues.add(
                    format!("{at}.endpoint"),
                    "no endpoint, and this issuer does no discovery to find one",
                    "write endpoint: https://.../introspect (discovery runs only without jwks_uri, jwks_file and hmac)",
                );
            }
            None
        }
    };
    if raw.client_id.is_empty() {
        issues.add(
            format!("{at}.client_id"),
            "a client_id is required",
            "the client id tokengate authenticates with at the endpoint (RFC 7662 §2.1)",
        );
    }
    let auth = match raw.auth.as_deref().unwrap_or("client_secret_basic") {
        kind @ ("client_secret_basic" | "client_secret_post") => {
            if raw.private_key_file.is_some() {
                issues.add(
                    format!("{at}.private_key_file"),
                    format!("{kind} takes a client secret, not a private key"),
                    "set auth: private_key_jwt, or remove private_key_file",
                );
            }
            read_secret(
                issues,
                &at,
                ("client_secret_file", raw.client_secret_file.as_deref()),
                ("client_secret_env", raw.client_secret_env.as_deref()),
                "write client_secret_file: /run/secrets/introspection or client_secret_env: INTROSPECTION_SECRET",
            )
            .map(|secret| {
                if kind == "client_secret_basic" {
                    ClientAuth::ClientSecretBasic(secret)
                } else {
                    ClientAuth::ClientSecretPost(secret)
                }
            })
        }
        "private_key_jwt" => {
            if raw.client_secret_file.is_some() || raw.client_secret_env.is_some() {
                issues.add(
                    format!("{at}.auth"),
                    "private_key_jwt signs with a private key, not a client secret",
                    "remove client_secret_file/client_secret_env, or use client_secret_basic",
                );
            }
            match raw.private_key_file.as_deref() {
                None => {
                    issues.add(
                        format!("{at}.private_key_file"),
                        "private_key_jwt needs private_key_file",
                        "a PKCS#8 PEM file with an RSA (RS256) or P-256 (ES256) private key",
                    );
                    None
                }
                Some(file) => match std::fs::read(file) {
                    Ok(bytes) if crate::config::signing_algorithm(&bytes).is_some() => {
                        Some(ClientAuth::PrivateKeyJwt(Secret {
                            origin: format!("file {file}"),
                            bytes: bytes.into(),
                        }))
                    }
                    Ok(_) => {
                        issues.add(
                            format!("{at}.private_key_file"),
                            format!("`{file}` is not a PEM RSA or P-256 private key"),
                            "a PKCS#8 PEM file with an RSA (RS256) or P-256 (ES256) private key",
                        );
                        None
                    }
                    Err(e) => {
                        issues.add(
                            format!("{at}.private_key_file"),
                            format!("cannot read `{file}`: {e}"),
                            "give the path of the PEM private key registered for private_key_jwt",
                        );
                        None
                    }
                },
            }
        }
        other => {
            issues.add(
                format!("{at}.auth"),
                format!("`{other}` is not a client authentication method"),
                "use client_secret_basic, client_secret_post or private_key_jwt",
            );
            None
        }
    };
    let response = match raw.response.as_deref() {
        None | Some("json") => IntrospectionResponse::Json,
        Some("jwt") => IntrospectionResponse::Jwt,
        Some(other) => {
            issues.add(
                format!("{at}.response"),
                format!("`{other}` is not an introspection response format"),
                "use json (RFC 7662) or jwt (RFC 9701, signed by the issuer)",
            );
            IntrospectionResponse::Json
        }
    };
    let cache_ttl = issues.duration(
        &format!("{at}.cache_ttl"),
        raw.cache_ttl.as_deref(),
        Duration::from_secs(60),
    );
    if cache_ttl > MAX_INTROSPECTION_CACHE {
        issues.add(
            format!("{at}.cache_ttl"),
            format!("a cache_ttl of {}s is too long", cache_ttl.as_secs()),
            "a revoked token is accepted for up to cache_ttl: use at most 1h (the default is 60s)",
        );
    }
    let negative_cache_ttl = issues.duration(
        &format!("{at}.negative_cache_ttl"),
        raw.negative_cache_ttl.as_deref(),
        Duration::from_secs(10),
    );
    if negative_cache_ttl > MAX_INTROSPECTION_CACHE {
        issues.add(
            format!("{at}.negative_cache_ttl"),
            format!(
                "a negative_cache_ttl of {}s is too long",
                negative_cache_ttl.as_secs()
            ),
            "use at most 1h (the default is 10s)",
        );
    }
    let timeout = issues.duration(
        &format!("{at}.timeout"),
        raw.timeout.as_deref(),
        Duration::from_secs(5),
    );
    if timeout.is_zero() || timeout > Duration::from_secs(60) {
        issues.add(
            format!("{at}.timeout"),
            format!("a timeout of {}ms is out of range", timeout.as_millis()),
            "use 1ms to 60s (the default is 5s); requests wait for it",
        );
    }
    let max_entries = raw.max_entries.unwrap_or(10_000);
    if !(1..=10_000_000).contains(&max_entries) {
        issues.add(
            format!("{at}.max_entries"),
            format!("{max_entries} is out of range"),
            "use 1 to 10000000 (the default is 10000)",
        );
    }
    if issues.0.len() != before {
        return None;
    }
    Some(IntrospectionSettings {
        endpoint,
        client_id: raw.client_id.clone(),
        auth: auth?,
        response,
        cache_ttl,
        negative_cache_ttl,
        timeout,
        max_entries,
    })
}

/// `opaque_tokens:`: the issuers an opaque token is introspected at, in order. Each must be
/// configured with `introspection:`, once. Without the list, the one introspecting issuer
/// (when exactly one has `introspection:`); with several, the list is required, so no token
/// goes to an endpoint by a guess.
pub(super) fn opaque_tokens(
    issues: &mut Issues,
    raw: Option<&[String]>,
    issuers: &[IssuerSettings],
) -> Vec<String> {
    let introspecting: Vec<&str> = issuers
        .iter()
        .filter(|i| i.introspection.is_some())
        .map(|i| i.issuer.as_str())
        .collect();
    let Some(raw) = raw else {
        if introspecting.len() > 1 {
            issues.add(
                "opaque_tokens",
                format!(
                    "{} issuers introspect, and opaque_tokens does not say which is asked about an opaque token",
                    introspecting.len()
                ),
                format!("list them in the order to ask: opaque_tokens: [{}]", introspecting.join(", ")),
            );
        }
        return introspecting.iter().map(|s| (*s).to_owned()).collect();
    };
    for (i, name) in raw.iter().enumerate() {
        if raw[..i].contains(name) {
            issues.add(
                format!("opaque_tokens[{i}]"),
                format!("`{name}` is listed twice"),
                "name each issuer once",
            );
        } else if !introspecting.contains(&name.as_str()) {
            issues.add(
                format!("opaque_tokens[{i}]"),
                format!("`{name}` is not an issuer with introspection:"),
                format!(
                    "name issuers configured with introspection: ({})",
                    if introspecting.is_empty() {
                        "none is".to_owned()
                    } else {
                        introspecting.join(", ")
                    }
                ),
            );
        }
    }
    raw.to_vec()
}

/// The secret of `hmac:`: exactly one of `secret_file` (its bytes, without one final line
/// break) or `secret_env` (the variable's value); never written in the file itself.
fn hmac_secret(issues: &mut Issues, at: &str, raw: &RawHmac) -> Option<HmacSecret> {
    read_secret(
        issues,
        &format!("{at}.hmac"),
        ("secret_file", raw.secret_file.as_deref()),
        ("secret_env", raw.secret_env.as_deref()),
        "write hmac: { secret_file: /run/secrets/jwt } or hmac: { secret_env: JWT_SECRET }",
    )
    .map(|s| HmacSecret {
        origin: s.origin,
        bytes: s.bytes,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::super::testing::*;
    use crate::algorithm::Algorithm;
    use crate::config::KeySource;

    /// A file holding `bytes`, removed when dropped.
    fn secret_file(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().expect("a temporary file");
        file.write_all(bytes).expect("written");
        file
    }

    /// One issuer entry of `fields`, written as YAML lines under `- issuer: ISSUER`.
    fn one(issuer: &str, fields: &str) -> String {
        format!("issuers:\n  - issuer: {issuer}\n{fields}")
    }

    /// One issuer with `introspection: { FIELDS }`.
    fn intro(issuer: &str, fields: &str) -> String {
        one(
            issuer,
            &format!("    audiences: [api]\n    introspection: {{ {fields} }}\n"),
        )
    }

    /// An RSA private key (PKCS#8 PEM) of the test fixtures.
    fn rsa_key() -> String {
        format!(
            "{}/tests/fixtures/keys/rsa-a.pem",
            env!("CARGO_MANIFEST_DIR")
        )
    }

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        let long = secret_file(&[b'k'; 64]);
        let long = long.path().display();
        let short = secret_file(b"0123456789\n");
        let short_path = short.path().display().to_string();
        let empty = secret_file(b"\r\n");
        let empty_path = empty.path().display().to_string();
        let idp = "https://idp.example.com";
        let rsa_key = rsa_key();
        let rows: Vec<(String, &str, String)> = vec![
            (one("\"\"", "    audiences: [api]\n"), "issuers[0].issuer", "the issuer is empty".into()),
            (one(idp, ""), "issuers[0].audiences", "at least one non-empty audience is required".into()),
            (one(idp, "    audiences: [api, \"\"]\n"), "issuers[0].audiences", "at least one non-empty audience".into()),
            (one(idp, "    audiences: [api]\n    algorithms: []\n"), "issuers[0].algorithms", "the list of algorithms is empty".into()),
            (
                one(idp, &format!("    audiences: [api]\n    hmac: {{ secret_file: {long} }}\n    algorithms: [HS256, RS256]\n")),
                "issuers[0].algorithms[1]",
                "an HMAC issuer verifies HS256, HS384 or HS512 only, not RS256".into(),
            ),
            (one(idp, "    audiences: [api]\n    algorithms: [RS256, HS384]\n"), "issuers[0].algorithms[1]", "HMAC needs a shared secret, and this issuer has none".into()),
            (one(idp, "    audiences: [api]\n    algorithms: [none]\n"), "issuers[0].algorithms[0]", "unsigned tokens are never accepted".into()),
            (one(idp, "    audiences: [api]\n    algorithms: [hs256]\n"), "issuers[0].algorithms[0]", "HMAC needs a shared secret, which tokengate does not take".into()),
            (one(idp, "    audiences: [api]\n    algorithms: [RS1024]\n"), "issuers[0].algorithms[0]", "`RS1024` is not a supported algorithm".into()),
            (one(idp, "    audiences: [api]\n    leeway: 301s\n"), "issuers[0].leeway", "a leeway of 301s is too long".into()),
            (one(idp, "    audiences: [api]\n    max_lifetime: 0s\n"), "issuers[0].max_lifetime", "a max_lifetime of zero would refuse every token".into()),
            (
                one(idp, &format!("    audiences: [api]\n    hmac: {{ secret_file: {short_path} }}\n")),
                "issuers[0].hmac",
                format!("the secret (file {short_path}) is 10 bytes, shorter than HS256's 32-byte hash output"),
            ),
            (
                one(idp, &format!("    audiences: [api]\n    hmac: {{ secret_file: {long} }}\n    jwks_file: jwks.json\n")),
                "issuers[0].hmac",
                "an HMAC issuer takes its key from hmac:, not from jwks_uri or jwks_file".into(),
            ),
            (one(idp, "    audiences: [api]\n    jwks_uri: https://idp.example.com/keys\n    jwks_file: jwks.json\n"), "issuers[0]", "jwks_uri and jwks_file are both set".into()),
            (one(idp, "    audiences: [api]\n    jwks_uri: http://idp.example.com/keys\n"), "issuers[0].jwks_uri", "`http://idp.example.com/keys` is not https".into()),
            (one(idp, "    audiences: [api]\n    jwks_uri: /keys\n"), "issuers[0].jwks_uri", "`/keys` is not a URL: relative URL without a base".into()),
            (one("http://idp.example.com", "    audiences: [api]\n"), "issuers[0].issuer", "`http://idp.example.com` is not https".into()),
            (one("idp.example.com", "    audiences: [api]\n"), "issuers[0].issuer", "`idp.example.com` is not an http(s) URL, so keys cannot be discovered".into()),
            (one("urn:example:idp", "    audiences: [api]\n"), "issuers[0].issuer", "is not an http(s) URL".into()),
            (one(idp, "    audiences: [api]\n    profile: rfc7519\n"), "issuers[0].profile", "`rfc7519` is not a token profile".into()),
            // hmac: the secret is read from exactly one of a file and a variable, and not empty.
            (one(idp, "    audiences: [api]\n    hmac: { secret_file: /nonexistent/secret }\n"), "issuers[0].hmac.secret_file", "cannot read `/nonexistent/secret`".into()),
            (
                one(idp, "    audiences: [api]\n    hmac: { secret_env: TOKENGATE_UNIT_TEST_NEVER_SET }\n"),
                "issuers[0].hmac.secret_env",
                "environment variable TOKENGATE_UNIT_TEST_NEVER_SET is not set".into(),
            ),
            (one(idp, "    audiences: [api]\n    hmac: {}\n"), "issuers[0].hmac", "name exactly one of secret_file and secret_env".into()),
            (
                one(idp, &format!("    audiences: [api]\n    hmac: {{ secret_file: {long}, secret_env: HOME }}\n")),
                "issuers[0].hmac",
                "name exactly one of secret_file and secret_env".into(),
            ),
            (
                one(idp, &format!("    audiences: [api]\n    hmac: {{ secret_file: {empty_path} }}\n")),
                "issuers[0].hmac",
                format!("the secret (file {empty_path}) is empty"),
            ),
            // The issuer's claims are claim rules (claims.rs has their table).
            (one(idp, "    audiences: [api]\n    claims: { cid: null }\n"), "issuers[0].claims.cid", "the claim has no value".into()),
            // The shared duration rule, for each duration of this section.
            (one(idp, "    audiences: [api]\n    leeway: a minute\n"), "issuers[0].leeway", "`a minute` is not a duration".into()),
            (one(idp, "    audiences: [api]\n    max_lifetime: 1 day\n"), "issuers[0].max_lifetime", "`1 day` is not a duration".into()),
            // introspection: endpoint, client, authentication and its secret, format, timings.
            (intro(idp, "endpoint: http://idp.example.com/introspect, client_id: rs, client_secret_env: HOME"), "issuers[0].introspection.endpoint", "`http://idp.example.com/introspect` is not https".into()),
            (intro(idp, "endpoint: /introspect, client_id: rs, client_secret_env: HOME"), "issuers[0].introspection.endpoint", "`/introspect` is not a URL".into()),
            (
                one(idp, "    audiences: [api]\n    jwks_uri: https://idp.example.com/keys\n    introspection: { client_id: rs, client_secret_env: HOME }\n"),
                "issuers[0].introspection.endpoint",
                "no endpoint, and this issuer does no discovery to find one".into(),
            ),
            (intro(idp, "client_secret_env: HOME"), "issuers[0].introspection.client_id", "a client_id is required".into()),
            (intro(idp, "client_id: rs"), "issuers[0].introspection", "name exactly one of client_secret_file and client_secret_env".into()),
            (intro(idp, &format!("client_id: rs, client_secret_env: HOME, client_secret_file: {long}")), "issuers[0].introspection", "name exactly one of client_secret_file and client_secret_env".into()),
            (intro(idp, "client_id: rs, client_secret_file: /nonexistent/secret"), "issuers[0].introspection.client_secret_file", "cannot read `/nonexistent/secret`".into()),
            (intro(idp, "client_id: rs, client_secret_env: TOKENGATE_UNIT_TEST_NEVER_SET"), "issuers[0].introspection.client_secret_env", "environment variable TOKENGATE_UNIT_TEST_NEVER_SET is not set".into()),
            (intro(idp, &format!("client_id: rs, client_secret_file: {empty_path}")), "issuers[0].introspection", format!("the secret (file {empty_path}) is empty")),
            (intro(idp, "client_id: rs, auth: client_secret_jwt, client_secret_env: HOME"), "issuers[0].introspection.auth", "`client_secret_jwt` is not a client authentication method".into()),
            (intro(idp, &format!("client_id: rs, client_secret_env: HOME, private_key_file: {long}")), "issuers[0].introspection.private_key_file", "client_secret_basic takes a client secret, not a private key".into()),
            (intro(idp, &format!("client_id: rs, auth: private_key_jwt, private_key_file: {rsa_key}, client_secret_env: HOME")), "issuers[0].introspection.auth", "private_key_jwt signs with a private key, not a client secret".into()),
            (intro(idp, "client_id: rs, auth: private_key_jwt"), "issuers[0].introspection.private_key_file", "private_key_jwt needs private_key_file".into()),
            (intro(idp, &format!("client_id: rs, auth: private_key_jwt, private_key_file: {long}")), "issuers[0].introspection.private_key_file", "is not a PEM RSA or P-256 private key".into()),
            (intro(idp, "client_id: rs, auth: private_key_jwt, private_key_file: /nonexistent/key.pem"), "issuers[0].introspection.private_key_file", "cannot read `/nonexistent/key.pem`".into()),
            (intro(idp, "client_id: rs, client_secret_env: HOME, response: xml"), "issuers[0].introspection.response", "`xml` is not an introspection response format".into()),
            (intro(idp, "client_id: rs, client_secret_env: HOME, cache_ttl: 2h"), "issuers[0].introspection.cache_ttl", "a cache_ttl of 7200s is too long".into()),
            (intro(idp, "client_id: rs, client_secret_env: HOME, negative_cache_ttl: 2h"), "issuers[0].introspection.negative_cache_ttl", "a negative_cache_ttl of 7200s is too long".into()),
            (intro(idp, "client_id: rs, client_secret_env: HOME, timeout: 0s"), "issuers[0].introspection.timeout", "a timeout of 0ms is out of range".into()),
            (intro(idp, "client_id: rs, client_secret_env: HOME, max_entries: 0"), "issuers[0].introspection.max_entries", "0 is out of range".into()),
            (intro(idp, "client_id: rs, client_secret_env: HOME, cache_ttl: soon"), "issuers[0].introspection.cache_ttl", "`soon` is not a duration".into()),
            (one(idp, "    audiences: [api]\n    introspect_jwts: true\n"), "issuers[0].introspect_jwts", "introspect_jwts needs an introspection: block".into()),
            // opaque_tokens: which introspecting issuers an opaque token goes to, in order.
            (
                format!("issuers:\n  - {{ issuer: {idp}, audiences: [a], introspection: {{ client_id: rs, client_secret_env: HOME }} }}\n  - {{ issuer: https://idp2.example.com, audiences: [a], introspection: {{ client_id: rs, client_secret_env: HOME }} }}\n"),
                "opaque_tokens",
                "2 issuers introspect, and opaque_tokens does not say which".into(),
            ),
            (format!("{}opaque_tokens: [{idp}, https://nobody.example.com]\n", intro(idp, "client_id: rs, client_secret_env: HOME")), "opaque_tokens[1]", "`https://nobody.example.com` is not an issuer with introspection:".into()),
            (format!("{}opaque_tokens: [{idp}, {idp}]\n", intro(idp, "client_id: rs, client_secret_env: HOME")), "opaque_tokens[1]", format!("`{idp}` is listed twice")),
            // The list as a whole: at least one issuer, each once.
            ("issuers: []\n".into(), "issuers", "no issuer is configured, so no token could ever be accepted".into()),
            (
                format!("issuers:\n  - {{ issuer: {idp}, audiences: [a] }}\n  - {{ issuer: {idp}, audiences: [b] }}\n"),
                "issuers[1].issuer",
                format!("issuer `{idp}` is configured twice"),
            ),
            (
                "issuers:\n  - { issuer: \"urn:tokengate:dev\", audiences: [a], jwks_file: k.json }\ndev_issuer: {}\n".into(),
                "dev_issuer.issuer",
                "issuer `urn:tokengate:dev` is configured twice".into(),
            ),
        ];
        let rows: Vec<Row<'_>> = rows
            .iter()
            .map(|(yaml, path, message)| (yaml.as_str(), *path, message.as_str()))
            .collect();
        assert_rows(&rows);
    }

    #[test]
    fn valid_values_pass() {
        let long = secret_file(&[b'k'; 64]);
        let long = long.path().display();
        let idp = "https://idp.example.com";
        let files = [
            one(idp, "    audiences: [api]\n    algorithms: [RS256, PS512, ES256, EdDSA]\n    leeway: 5m\n    max_lifetime: 1h\n"),
            one(idp, "    audiences: [api]\n    jwks_uri: https://idp.example.com/keys\n    profile: rfc9068\n"),
            one("http://localhost:8080", "    audiences: [api]\n    allow_http: true\n    jwks_uri: http://localhost:8080/keys\n"),
            one("urn:example:idp", "    audiences: [api]\n    jwks_file: jwks.json\n"),
            one(idp, &format!("    audiences: [api]\n    hmac: {{ secret_file: {long} }}\n    algorithms: [HS256, HS384, HS512]\n")),
            one(idp, "    audiences: [api]\n    claims: { cid: abc, groups: { includes: [admin] } }\n"),
            "dev_issuer: {}\n".into(),
            intro(idp, "client_id: rs, client_secret_env: HOME"),
            intro(idp, "endpoint: https://idp.example.com/introspect, client_id: rs, auth: client_secret_post, client_secret_env: HOME, response: jwt, cache_ttl: 1h, negative_cache_ttl: 0s, timeout: 1s, max_entries: 1"),
            intro(idp, &format!("client_id: rs, auth: private_key_jwt, private_key_file: {}", rsa_key())),
            format!("{}    introspect_jwts: true\nopaque_tokens: [{idp}]\n", intro(idp, "client_id: rs, client_secret_env: HOME")),
            one("http://localhost:8080", "    audiences: [api]\n    allow_http: true\n    introspection: { endpoint: http://localhost:8080/introspect, client_id: rs, client_secret_env: HOME }\n"),
        ];
        assert_valid(&files.iter().map(String::as_str).collect::<Vec<_>>());
    }

    #[test]
    fn defaults() {
        let Ok(s) = settings("") else {
            panic!("the issuer is valid")
        };
        let i = &s.issuers[0];
        assert_eq!(i.algorithms, vec![Algorithm::RS256]);
        assert_eq!(i.leeway, Duration::from_secs(60));
        assert_eq!(
            (i.max_lifetime, &i.key_source),
            (None, &KeySource::Discovery)
        );
        assert!(!i.allow_http && !i.require_rfc9068 && i.claims.is_empty());
        let long = secret_file(&[b'k'; 48]);
        let hmac = one(
            "https://idp.example.com",
            &format!(
                "    audiences: [api]\n    hmac: {{ secret_file: {} }}\n",
                long.path().display()
            ),
        );
        let Ok(s) = settings(&hmac) else {
            panic!("the hmac issuer is valid")
        };
        assert_eq!(s.issuers[0].algorithms, vec![Algorithm::HS256]);
        let Ok(s) = settings("dev_issuer: {}\n") else {
            panic!("the dev issuer is valid")
        };
        let dev = &s.issuers[0];
        assert_eq!(
            (dev.issuer.as_str(), dev.audiences.as_slice()),
            (
                "urn:tokengate:dev",
                ["api://default".to_string()].as_slice()
            )
        );
        assert_eq!(
            (&dev.key_source, &dev.algorithms),
            (&KeySource::DevIssuer, &vec![Algorithm::RS256])
        );
    }
}
