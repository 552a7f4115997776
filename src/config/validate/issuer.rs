//! `issuers:`: who may sign tokens, with which algorithms and keys (`hmac:` secrets
//! included), and which claims every token of theirs must carry; then the list as a whole,
//! with the dev issuer added.

use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use super::claims::claim_rule;
use super::Issues;
use crate::algorithm::Algorithm;
use crate::config::raw::{RawHmac, RawIssuer};
use crate::config::{parse_duration, DevIssuerSettings, HmacSecret, IssuerSettings, KeySource};

const MAX_LEEWAY: Duration = Duration::from_secs(300);
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
    }
}

/// The secret of `hmac:`: exactly one of `secret_file` (its bytes, without one final line
/// break) or `secret_env` (the variable's value); never written in the file itself.
fn hmac_secret(issues: &mut Issues, at: &str, raw: &RawHmac) -> Option<HmacSecret> {
    let path = format!("{at}.hmac");
    let hint = "write hmac: { secret_file: /run/secrets/jwt } or hmac: { secret_env: JWT_SECRET }";
    let (origin, bytes) = match (&raw.secret_file, &raw.secret_env) {
        (Some(file), None) => match std::fs::read(file) {
            Ok(mut bytes) => {
                // Files written by `echo` or an editor end in a line break that is not part of
                // the secret.
                if bytes.ends_with(b"\n") {
                    bytes.pop();
                    if bytes.ends_with(b"\r") {
                        bytes.pop();
                    }
                }
                (format!("file {file}"), bytes)
            }
            Err(e) => {
                issues.add(
                    format!("{path}.secret_file"),
                    format!("cannot read `{file}`: {e}"),
                    "give the path of a file holding the shared secret",
                );
                return None;
            }
        },
        (None, Some(name)) => match std::env::var_os(name) {
            Some(value) => (format!("env {name}"), value.into_encoded_bytes()),
            None => {
                issues.add(
                    format!("{path}.secret_env"),
                    format!("environment variable {name} is not set"),
                    format!("export {name}=... before starting"),
                );
                return None;
            }
        },
        _ => {
            issues.add(path, "name exactly one of secret_file and secret_env", hint);
            return None;
        }
    };
    if bytes.is_empty() {
        issues.add(path, format!("the secret ({origin}) is empty"), hint);
        return None;
    }
    Some(HmacSecret {
        origin,
        bytes: bytes.into(),
    })
}
