//! Raw configuration → runtime [`Settings`], collecting every problem with its YAML path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::algorithm::Algorithm;
use http::{HeaderName, HeaderValue, Method};
use url::Url;

use std::sync::Arc;

use ipnet::IpNet;

use super::raw::{
    RawConfig, RawCors, RawDevIssuer, RawForward, RawIssuer, RawKeys, RawResource, RawRoute,
    RawRule, RawUpstream,
};
use super::settings::*;
use super::{parse_duration, Overrides};
use crate::claims::{ClaimRule, Predicate};
use crate::header_name::{normalize, HeaderPattern};
use crate::route::{AuthMode, PathOptions, PathPattern, RouteRule, Rule, RuleTable};

/// A problem before its line is known.
pub struct Issue {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const MAX_LEEWAY: Duration = Duration::from_secs(300);
pub const DEV_ISSUER_DEFAULT: &str = "urn:tokengate:dev";
/// The response headers a browser app may read by default (`cors.expose_headers`).
const DEFAULT_EXPOSE_HEADERS: &[&str] = &["WWW-Authenticate", "Retry-After", "X-Request-Id"];
const SUPPORTED_ALGORITHMS: &str =
    "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, ES512, EdDSA";

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn add(
        &mut self,
        path: impl Into<String>,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        self.0.push(Issue {
            path: path.into(),
            message: message.into(),
            hint: Some(hint.into()).filter(|h: &String| !h.is_empty()),
        });
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        let Some(text) = value else { return default };
        match parse_duration(text) {
            Some(d) => d,
            None => {
                self.add(
                    path,
                    format!("`{text}` is not a duration"),
                    "write a whole number with a unit: 250ms, 30s, 5m, 1h or 1d",
                );
                default
            }
        }
    }
}

pub fn validate(raw: RawConfig, overrides: &Overrides) -> Result<Settings, Vec<Issue>> {
    let mut issues = Issues::default();

    let (listen_text, listen_path) = match &overrides.listen {
        Some(l) => (l.clone(), "--listen"),
        None => (
            raw.listen.clone().unwrap_or_else(|| DEFAULT_LISTEN.into()),
            "listen",
        ),
    };
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            issues.add(
                listen_path,
                format!("`{listen_text}` is not an address to listen on"),
                "write IP:PORT, e.g. 127.0.0.1:3000 or 0.0.0.0:8080 or [::1]:3000",
            );
            DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000)))
        }
    };

    let mut issuers: Vec<IssuerSettings> = raw
        .issuers
        .iter()
        .enumerate()
        .map(|(i, r)| issuer(&mut issues, &format!("issuers[{i}]"), r))
        .collect();

    let dev_issuer = raw
        .dev_issuer
        .as_ref()
        .map(|d| dev_issuer(&mut issues, d, listen, listen_path));
    if let Some(dev) = &dev_issuer {
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
            let path = if i < raw.issuers.len() {
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

    let keys = keys(&mut issues, &raw.keys);
    let cors = raw
        .cors
        .as_ref()
        .map(|c| cors(&mut issues, c))
        .unwrap_or_default();

    let format = match overrides
        .log_format
        .as_deref()
        .or(raw.log.format.as_deref())
        .unwrap_or("text")
    {
        "text" => LogFormat::Text,
        "json" => LogFormat::Json,
        other => {
            issues.add(
                "log.format",
                format!("`{other}` is not a log format"),
                "use text or json",
            );
            LogFormat::Text
        }
    };
    let level = raw.log.level.clone().unwrap_or_else(|| "info".into());
    if tracing_subscriber::EnvFilter::try_new(&level).is_err() {
        issues.add(
            "log.level",
            format!("`{level}` is not a log level or filter"),
            "use error, warn, info, debug or trace, or a filter such as tokengate=debug",
        );
    }

    let max_token_bytes = raw.limits.max_token_bytes.unwrap_or(16 * 1024);
    if !(1024..=1024 * 1024).contains(&max_token_bytes) {
        issues.add(
            "limits.max_token_bytes",
            format!("{max_token_bytes} is out of range"),
            "use a size from 1024 to 1048576 bytes; the default is 16384",
        );
    }
    let max_header_bytes = raw.limits.max_header_bytes.unwrap_or(64 * 1024);
    if !(8 * 1024..=1024 * 1024).contains(&max_header_bytes) {
        issues.add(
            "limits.max_header_bytes",
            format!("{max_header_bytes} is out of range"),
            "use 8192 to 1048576 bytes; the default is 65536",
        );
    }
    let max_connections = raw.limits.max_connections.unwrap_or(25_000);
    if max_connections == 0 {
        issues.add(
            "limits.max_connections",
            "must be above zero",
            "the default is 25000",
        );
    }
    let max_headers = raw.limits.max_headers.unwrap_or(100);
    if !(16..=10_000).contains(&max_headers) {
        issues.add(
            "limits.max_headers",
            format!("{max_headers} is out of range"),
            "use 16 to 10000 header fields; the default is 100",
        );
    }
    let http2_max_concurrent_streams = raw.limits.http2_max_concurrent_streams.unwrap_or(100);
    if !(1..=1000).contains(&http2_max_concurrent_streams) {
        issues.add(
            "limits.http2_max_concurrent_streams",
            format!("{http2_max_concurrent_streams} is out of range"),
            "use 1 to 1000 streams (RFC 9113 recommends at least 100); the default is 100",
        );
    }
    let http2_max_send_buffer = raw.limits.http2_max_send_buffer.unwrap_or(64 * 1024);
    if !(16 * 1024..=16 * 1024 * 1024).contains(&http2_max_send_buffer) {
        issues.add(
            "limits.http2_max_send_buffer",
            format!("{http2_max_send_buffer} is out of range"),
            "use 16384 to 16777216 bytes per stream; the default is 65536",
        );
    }
    let limits = Limits {
        header_read_timeout: issues.duration(
            "limits.header_read_timeout",
            raw.limits.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        idle_timeout: issues.duration(
            "limits.idle_timeout",
            raw.limits.idle_timeout.as_deref(),
            Duration::from_secs(120),
        ),
        max_header_bytes,
        max_headers,
        max_token_bytes,
        max_connections,
        send_timeout: issues.duration(
            "limits.send_timeout",
            raw.limits.send_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        body_read_timeout: issues.duration(
            "limits.body_read_timeout",
            raw.limits.body_read_timeout.as_deref(),
            Duration::from_secs(60),
        ),
        http2_max_concurrent_streams,
        http2_max_send_buffer,
    };
    for (field, value) in [
        ("header_read_timeout", limits.header_read_timeout),
        ("idle_timeout", limits.idle_timeout),
        ("send_timeout", limits.send_timeout),
        ("body_read_timeout", limits.body_read_timeout),
    ] {
        if value.is_zero() {
            issues.add(
                format!("limits.{field}"),
                "timeouts must be above zero",
                "the defaults are header_read_timeout: 10s, idle_timeout: 120s, send_timeout: 60s, body_read_timeout: 60s",
            );
        }
    }
    let tls = raw.tls.as_ref().map(|t| {
        for (field, path) in [
            ("cert", Some(&t.cert)),
            ("key", Some(&t.key)),
            ("client_ca", t.client_ca.as_ref()),
        ] {
            if let Some(path) = path {
                if !std::path::Path::new(path).is_file() {
                    issues.add(
                        format!("tls.{field}"),
                        format!("`{path}` is not a readable file"),
                        "give the path of a PEM file",
                    );
                }
            }
        }
        TlsSettings {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
            client_ca: t.client_ca.as_ref().map(PathBuf::from),
        }
    });
    let admin_listen = raw
        .admin
        .as_ref()
        .and_then(|a| match a.listen.parse::<SocketAddr>() {
            Ok(addr) if addr == listen && addr.port() != 0 => {
                issues.add(
                    "admin.listen",
                    "the admin listener must not share the public address",
                    "e.g. 127.0.0.1:9901",
                );
                None
            }
            Ok(addr) => Some(addr),
            Err(_) => {
                issues.add(
                    "admin.listen",
                    format!("`{}` is not an address to listen on", a.listen),
                    "e.g. 127.0.0.1:9901",
                );
                None
            }
        });
    let shutdown_timeout = issues.duration(
        "shutdown_timeout",
        raw.shutdown_timeout.as_deref(),
        Duration::from_secs(30),
    );

    let upstream = match (&overrides.upstream, &raw.upstream) {
        (Some(url), Some(raw_upstream)) => {
            Some(upstream(&mut issues, "--upstream", url, raw_upstream))
        }
        (Some(url), None) => Some(upstream(
            &mut issues,
            "--upstream",
            url,
            &RawUpstream::default(),
        )),
        (None, Some(raw_upstream)) => Some(upstream(
            &mut issues,
            "upstream.url",
            &raw_upstream.url,
            raw_upstream,
        )),
        (None, None) => None,
    };
    if matches!(cors, Cors::Upstream) && upstream.is_none() {
        issues.add(
            "cors.mode",
            "mode: upstream hands CORS to the upstream, and none is configured",
            "configure upstream.url, or use mode: policy",
        );
    }
    let forward = forward(&mut issues, &raw.forward);
    let trusted_proxies = raw
        .trusted_proxies
        .iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
            if parsed.is_err() {
                issues.add(
                    format!("trusted_proxies[{i}]"),
                    format!("`{text}` is not an address or CIDR range"),
                    "write 10.0.0.0/8, 192.168.1.7 or fd00::/8",
                );
            }
            parsed.ok()
        })
        .collect();
    let paths = PathOptions {
        allow_parameters: raw.paths.allow_parameters,
        case_insensitive: raw.paths.case_insensitive,
    };
    let issuer_names: Vec<String> = issuers.iter().map(|i| i.issuer.clone()).collect();
    let default = raw
        .default
        .as_ref()
        .map(|r| {
            rule(
                &mut issues,
                "default",
                &RuleFields::from_default(r),
                &issuer_names,
            )
        })
        .unwrap_or_else(Rule::required);
    let routes = raw
        .routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| {
            route(
                &mut issues,
                &format!("routes[{i}]"),
                r,
                paths,
                &issuer_names,
            )
        })
        .collect();
    let rules = RuleTable {
        routes,
        default: Arc::new(default),
    };
    let resource = raw.resource.as_ref().map(|r| resource(&mut issues, r));
    let cache = CacheSettings {
        enabled: raw.cache.enabled.unwrap_or(true),
        max_entries: raw.cache.max_entries.unwrap_or(100_000),
    };
    if cache.enabled && !(1..=10_000_000).contains(&cache.max_entries) {
        issues.add(
            "cache.max_entries",
            format!("{} is out of range", cache.max_entries),
            "use 1 to 10000000 (about 1.5 KiB each for a typical token), or enabled: false",
        );
    }

    let forward_auth =
        super::forward_auth::validate_forward_auth(raw.forward_auth.as_ref(), &mut issues.0);

    if !issues.0.is_empty() {
        return Err(issues.0);
    }
    Ok(Settings {
        source: PathBuf::new(),
        listen,
        issuers,
        dev_issuer,
        keys,
        cors,
        log: LogSettings { format, level },
        limits,
        shutdown_timeout,
        upstream,
        forward,
        trusted_proxies,
        rules,
        paths,
        resource,
        cache,
        generation: next_generation(),
        tls,
        admin_listen,
        forward_auth,
    })
}

/// A process-wide counter: every successful load gets a new generation.
fn next_generation() -> u64 {
    static GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    GENERATION.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

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
fn hmac_secret(issues: &mut Issues, at: &str, raw: &super::raw::RawHmac) -> Option<HmacSecret> {
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

/// `claim: value` means equals; `claim: { equals | includes | any_of: ... }` names a predicate.
fn claim_rule(
    issues: &mut Issues,
    at: &str,
    name: &str,
    value: &serde_yaml::Value,
) -> Option<ClaimRule> {
    let json = |v: &serde_yaml::Value| serde_json::to_value(v).ok();
    let hint = "write `claim: value`, or one of `{ equals: v }`, `{ includes: [a, b] }`, `{ includes_any: [a, b] }`, `{ any_of: [a, b] }`";
    if name.is_empty() {
        issues.add(at, "the claim name is empty", hint);
        return None;
    }
    let predicate = match value {
        serde_yaml::Value::Mapping(map) => {
            if map.len() != 1 {
                issues.add(at, "a claim takes exactly one predicate", hint);
                return None;
            }
            let (key, arg) = map.iter().next()?;
            let list = |v: &serde_yaml::Value| match v {
                serde_yaml::Value::Sequence(items) => items.iter().filter_map(json).collect(),
                other => json(other).into_iter().collect::<Vec<_>>(),
            };
            match key.as_str() {
                Some("equals") => Predicate::Equals(json(arg)?),
                Some("includes") => Predicate::Includes(list(arg)),
                Some("includes_any") => Predicate::IncludesAny(list(arg)),
                Some("any_of") => Predicate::AnyOf(list(arg)),
                _ => {
                    issues.add(
                        at,
                        format!(
                            "`{}` is not a claim predicate",
                            serde_yaml::to_string(key).unwrap_or_default().trim()
                        ),
                        hint,
                    );
                    return None;
                }
            }
        }
        serde_yaml::Value::Null => {
            issues.add(at, "the claim has no value", hint);
            return None;
        }
        other => Predicate::Equals(json(other)?),
    };
    if let Predicate::Includes(v) | Predicate::IncludesAny(v) | Predicate::AnyOf(v) = &predicate {
        if v.is_empty() {
            issues.add(at, "the list of values is empty", hint);
            return None;
        }
    }
    Some(ClaimRule::new(name, predicate))
}

fn dev_issuer(
    issues: &mut Issues,
    raw: &RawDevIssuer,
    listen: SocketAddr,
    listen_path: &str,
) -> DevIssuerSettings {
    if !listen.ip().is_loopback() {
        issues.add(
            listen_path,
            format!(
                "the dev issuer mints tokens for anyone who asks, so it only runs on a loopback address, not {listen}"
            ),
            "listen on 127.0.0.1 or [::1], or remove the dev_issuer: block and configure a real issuer",
        );
    }
    let token_lifetime = issues.duration(
        "dev_issuer.token_lifetime",
        raw.token_lifetime.as_deref(),
        Duration::from_secs(3600),
    );
    if token_lifetime.is_zero() || token_lifetime > Duration::from_secs(86400) {
        issues.add(
            "dev_issuer.token_lifetime",
            "the token lifetime must be between 1s and 1d",
            "the default is 1h",
        );
    }
    let issuer = raw
        .issuer
        .clone()
        .unwrap_or_else(|| DEV_ISSUER_DEFAULT.into());
    let audience = raw
        .audience
        .clone()
        .unwrap_or_else(|| "api://default".into());
    if issuer.is_empty() || audience.is_empty() {
        issues.add(
            "dev_issuer",
            "the dev issuer's issuer and audience must not be empty",
            "omit them to use urn:tokengate:dev and api://default",
        );
    }
    DevIssuerSettings {
        issuer,
        audience,
        key_file: raw.key_file.as_ref().map(PathBuf::from),
        token_lifetime,
    }
}

fn keys(issues: &mut Issues, raw: &RawKeys) -> KeyTimings {
    let d = KeyTimings::default();
    let timings = KeyTimings {
        refresh: issues.duration("keys.refresh", raw.refresh.as_deref(), d.refresh),
        min_refresh: issues.duration(
            "keys.min_refresh",
            raw.min_refresh.as_deref(),
            d.min_refresh,
        ),
        max_refresh: issues.duration(
            "keys.max_refresh",
            raw.max_refresh.as_deref(),
            d.max_refresh,
        ),
        refetch_per_minute: raw.refetch_per_minute.unwrap_or(d.refetch_per_minute),
        fetch_timeout: issues.duration(
            "keys.fetch_timeout",
            raw.fetch_timeout.as_deref(),
            d.fetch_timeout,
        ),
        max_stale: issues.duration("keys.max_stale", raw.max_stale.as_deref(), d.max_stale),
    };
    if timings.min_refresh > timings.max_refresh || timings.min_refresh.is_zero() {
        issues.add(
            "keys.min_refresh",
            "min_refresh must be above zero and not above max_refresh",
            "the defaults are 1m and 24h",
        );
    }
    if !(1..=600).contains(&timings.refetch_per_minute) {
        issues.add(
            "keys.refetch_per_minute",
            "must be from 1 to 600",
            "the default is 10, as Okta's jwksRequestsPerMinute",
        );
    }
    if timings.fetch_timeout.is_zero() {
        issues.add(
            "keys.fetch_timeout",
            "must be above zero",
            "the default is 5s",
        );
    }
    timings
}

fn cors(issues: &mut Issues, raw: &RawCors) -> Cors {
    match raw.mode.as_deref().unwrap_or("policy") {
        "policy" => Cors::Policy(Box::new(cors_policy(issues, raw))),
        "upstream" => {
            let set = [
                ("allow_origins", !raw.allow_origins.is_empty()),
                ("allow_methods", raw.allow_methods.is_some()),
                ("allow_headers", raw.allow_headers.is_some()),
                ("expose_headers", raw.expose_headers.is_some()),
                ("max_age", raw.max_age.is_some()),
                ("allow_credentials", raw.allow_credentials.is_some()),
            ];
            for (field, _) in set.iter().filter(|(_, set)| *set) {
                issues.add(
                    format!("cors.{field}"),
                    "with mode: upstream the upstream's own CORS headers decide",
                    "remove it, or use mode: policy to have tokengate answer CORS",
                );
            }
            Cors::Upstream
        }
        other => {
            issues.add(
                "cors.mode",
                format!("`{other}` is not a CORS mode"),
                "use policy (tokengate answers preflights and sets the headers) or upstream (the upstream does)",
            );
            Cors::Off
        }
    }
}

/// The origin a browser would send for `text`, when `text` is a well-formed origin.
fn serialized_origin(text: &str) -> Option<String> {
    let url = Url::parse(text).ok()?;
    let fits = matches!(url.scheme(), "http" | "https")
        && url.username().is_empty()
        && url.password().is_none()
        && url.path() == "/"
        && url.query().is_none()
        && url.fragment().is_none();
    fits.then(|| url.origin().ascii_serialization())
}

fn cors_policy(issues: &mut Issues, raw: &RawCors) -> CorsSettings {
    let origin_hint =
        "list origins as a browser sends them: scheme://host[:port], lower case, no default port, no path, e.g. https://app.example.com, or [\"*\"]";
    let allow_credentials = raw.allow_credentials.unwrap_or(false);
    let allow_origins = if raw.allow_origins.iter().any(|o| o == "*") {
        if raw.allow_origins.len() > 1 {
            issues.add(
                "cors.allow_origins",
                "\"*\" cannot be mixed with other origins",
                origin_hint,
            );
        }
        if allow_credentials {
            issues.add(
                "cors.allow_credentials",
                "browsers refuse credentials with a wildcard origin",
                "list the allowed origins instead of \"*\"",
            );
        }
        AllowedOrigins::Any
    } else {
        if raw.allow_origins.is_empty() {
            issues.add("cors.allow_origins", "no origin is allowed", origin_hint);
        }
        AllowedOrigins::List(
            raw.allow_origins
                .iter()
                .enumerate()
                .filter_map(|(i, o)| {
                    // Origins are compared byte for byte with what the browser sends, so an
                    // entry a browser would never send (upper case, default port, a path or
                    // userinfo) could never match: refuse it and show the form that would.
                    let at = format!("cors.allow_origins[{i}]");
                    match serialized_origin(o) {
                        Some(serialized) if &serialized == o => {
                            HeaderValue::from_str(o).ok().or_else(|| {
                                issues.add(&at, format!("`{o}` is not an origin"), origin_hint);
                                None
                            })
                        }
                        Some(serialized) => {
                            issues.add(
                                &at,
                                format!("a browser never sends the origin `{o}`"),
                                format!("write `{serialized}`"),
                            );
                            None
                        }
                        None => {
                            issues.add(&at, format!("`{o}` is not an origin"), origin_hint);
                            None
                        }
                    }
                })
                .collect(),
        )
    };
    let default_methods = ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"];
    let method_names: Vec<String> = raw
        .allow_methods
        .clone()
        .unwrap_or_else(|| default_methods.iter().map(|s| s.to_string()).collect());
    let methods: Vec<Method> = method_names
        .iter()
        .enumerate()
        .filter_map(|(i, m)| match Method::from_bytes(m.as_bytes()) {
            Ok(method) => Some(method),
            Err(_) => {
                issues.add(
                    format!("cors.allow_methods[{i}]"),
                    format!("`{m}` is not a method"),
                    "e.g. GET, POST",
                );
                None
            }
        })
        .collect();
    let header_list = |issues: &mut Issues, field: &str, names: &[String]| -> HeaderValue {
        for (i, n) in names.iter().enumerate() {
            if HeaderName::from_bytes(n.as_bytes()).is_err() {
                issues.add(
                    format!("cors.{field}[{i}]"),
                    format!("`{n}` is not a header name"),
                    "e.g. Authorization",
                );
            }
        }
        HeaderValue::from_str(&names.join(", ")).unwrap_or(HeaderValue::from_static(""))
    };
    let allow_headers = raw
        .allow_headers
        .as_ref()
        .map(|h| header_list(issues, "allow_headers", h));
    // Browser apps need to read the challenge of a 401, when to retry a 503, and the id to
    // quote in a bug report.
    let expose = raw.expose_headers.clone().unwrap_or_else(|| {
        DEFAULT_EXPOSE_HEADERS
            .iter()
            .map(|h| h.to_string())
            .collect()
    });
    let expose_headers = header_list(issues, "expose_headers", &expose);
    let max_age = raw.max_age.as_deref().map(|text| {
        let d = issues.duration("cors.max_age", Some(text), Duration::ZERO);
        HeaderValue::from(d.as_secs())
    });
    CorsSettings {
        allow_origins,
        allow_methods: HeaderValue::from_str(
            &methods
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(","),
        )
        .unwrap_or(HeaderValue::from_static("GET")),
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
        methods,
    }
}

fn upstream(issues: &mut Issues, at: &str, url_text: &str, raw: &RawUpstream) -> UpstreamSettings {
    let url = match Url::parse(url_text) {
        Ok(url)
            if matches!(url.scheme(), "http" | "https")
                && url.host().is_some()
                && url.query().is_none() =>
        {
            url
        }
        _ => {
            issues.add(
                at,
                format!("`{url_text}` is not an http(s) URL"),
                "write the upstream's base URL, e.g. http://127.0.0.1:8080",
            );
            Url::parse("http://127.0.0.1/").unwrap_or_else(|_| unreachable_url())
        }
    };
    let timeout = issues.duration(
        "upstream.timeout",
        raw.timeout.as_deref(),
        Duration::from_secs(60),
    );
    let connect_timeout = issues.duration(
        "upstream.connect_timeout",
        raw.connect_timeout.as_deref(),
        Duration::from_secs(5),
    );
    let pool_idle_timeout = issues.duration(
        "upstream.pool_idle_timeout",
        raw.pool_idle_timeout.as_deref(),
        Duration::from_secs(90),
    );
    let pool_max_idle = raw.pool_max_idle.unwrap_or(32);
    if pool_max_idle > 10_000 {
        issues.add(
            "upstream.pool_max_idle",
            format!("{pool_max_idle} is out of range"),
            "use 0 to 10000 idle connections; the default is 32",
        );
    }
    if timeout.is_zero() || connect_timeout.is_zero() {
        issues.add(
            "upstream",
            "timeouts must be above zero",
            "the defaults are timeout: 60s, connect_timeout: 5s",
        );
    }
    if (raw.ca_file.is_some() || raw.server_name.is_some()) && url.scheme() != "https" {
        issues.add(
            "upstream",
            "ca_file and server_name only apply to an https upstream",
            "use an https:// URL or remove them",
        );
    }
    if let Some(ca) = &raw.ca_file {
        if !std::path::Path::new(ca).is_file() {
            issues.add(
                "upstream.ca_file",
                format!("`{ca}` is not a readable file"),
                "give the PEM file of the CA that signed the upstream's certificate",
            );
        }
    }
    UpstreamSettings {
        url,
        http2: raw.http2,
        timeout,
        connect_timeout,
        pool_idle_timeout,
        pool_max_idle,
        preserve_host: raw.preserve_host.unwrap_or(true),
        ca_file: raw.ca_file.as_ref().map(PathBuf::from),
        server_name: raw.server_name.clone(),
    }
}

fn unreachable_url() -> Url {
    // Only reached if a literal URL fails to parse, which it cannot.
    Url::parse("http://localhost/").unwrap_or_else(|_| std::process::abort())
}

/// Headers tokengate must never let a claim set: they frame or route the message.
const RESERVED_HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-length",
    "transfer-encoding",
    "connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "proxy-connection",
    "cookie",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "forwarded",
    "x-request-id",
];

fn forward(issues: &mut Issues, raw: &RawForward) -> ForwardSettings {
    let default_headers: &[(&str, &[&str])] = &[
        ("X-Auth-Subject", &["sub"]),
        ("X-Auth-Issuer", &["iss"]),
        ("X-Auth-Scopes", &["scp", "scope"]),
        ("X-Auth-Client-Id", &["cid", "client_id", "azp"]),
    ];
    let array_format = match raw.array_format.as_deref() {
        None => ArrayFormat::default(),
        Some(text) => array_format(issues, "forward.array_format", text),
    };
    let split = |claim: &str| claim.split('.').map(str::to_owned).collect::<Vec<_>>();
    let headers: Vec<ClaimHeader> = match &raw.headers {
        None => default_headers
            .iter()
            .filter_map(|(name, claims)| {
                Some(ClaimHeader {
                    name: HeaderName::from_bytes(name.as_bytes()).ok()?,
                    sources: claims.iter().map(|c| split(c)).collect(),
                    array_format,
                })
            })
            .collect(),
        Some(map) => map
            .iter()
            .filter_map(|(name, value)| {
                let at = format!("forward.headers.{name}");
                let Ok(header) = HeaderName::from_bytes(name.as_bytes()) else {
                    issues.add(
                        &at,
                        format!("`{name}` is not a header name"),
                        "e.g. X-Auth-Subject",
                    );
                    return None;
                };
                if RESERVED_HEADERS.contains(&normalize(name).as_str()) {
                    issues.add(
                        &at,
                        format!("{name} cannot carry a claim"),
                        "pick a name of your own, e.g. X-Auth-Subject",
                    );
                    return None;
                }
                let (claims, format) = claim_header_value(issues, &at, value, array_format)?;
                Some(ClaimHeader {
                    name: header,
                    sources: claims.iter().map(|c| split(c)).collect(),
                    array_format: format,
                })
            })
            .collect(),
    };
    let strip_prefix = raw.strip_prefix.clone().unwrap_or_else(|| "X-Auth-".into());
    if strip_prefix.len() < 3 {
        issues.add(
            "forward.strip_prefix",
            "the prefix is too short: it would strip ordinary headers",
            "use a distinctive prefix such as X-Auth-",
        );
    }
    let payload_header = raw
        .payload_header
        .as_ref()
        .and_then(|name| match HeaderName::from_bytes(name.as_bytes()) {
            Ok(h) if !RESERVED_HEADERS.contains(&normalize(name).as_str()) => Some(h),
            _ => {
                issues.add(
                    "forward.payload_header",
                    format!("`{name}` cannot be used"),
                    "e.g. X-Auth-Claims",
                );
                None
            }
        });
    let separator = raw.separator.clone().unwrap_or_else(|| " ".into());
    if separator.is_empty()
        || HeaderValue::from_str(&separator).is_err()
        || separator.contains(['\r', '\n'])
    {
        issues.add(
            "forward.separator",
            "the separator must be visible text or a space",
            "the default is a space; \",\" is common too",
        );
    }
    let mut foreign_identity: Vec<HeaderPattern> = DEFAULT_FOREIGN_IDENTITY_HEADERS
        .iter()
        .filter_map(|p| HeaderPattern::parse(p))
        .collect();
    for (i, text) in raw.strip_headers.iter().enumerate() {
        match HeaderPattern::parse(text) {
            Some(pattern) if RESERVED_HEADERS.iter().any(|r| pattern.matches(r)) => issues.add(
                format!("forward.strip_headers[{i}]"),
                format!("`{text}` would strip a header the request needs to be understood"),
                "name identity headers only, e.g. X-Tenant-User or X-Legacy-Auth-*",
            ),
            Some(pattern) => foreign_identity.push(pattern),
            None => issues.add(
                format!("forward.strip_headers[{i}]"),
                format!("`{text}` is not a header name or Prefix* pattern"),
                "e.g. X-Legacy-User or X-Legacy-Auth-*",
            ),
        }
    }
    let own = |name: &str| {
        let normal = normalize(name);
        normal.starts_with(&normalize(&strip_prefix))
            || headers.iter().any(|h| h.name.as_str() == normal)
            || payload_header
                .as_ref()
                .is_some_and(|p| p.as_str() == normal)
    };
    let trusted_identity = raw
        .trusted_identity_headers
        .iter()
        .enumerate()
        .filter_map(|(i, name)| {
            let at = format!("forward.trusted_identity_headers[{i}]");
            if HeaderName::from_bytes(name.as_bytes()).is_err() {
                issues.add(&at, format!("`{name}` is not a header name"), "e.g. X-Forwarded-User");
                None
            } else if own(name) {
                issues.add(
                    &at,
                    format!("{name} is one of tokengate's own identity headers, which only tokengate sets"),
                    "list headers an earlier hop sets, e.g. X-Forwarded-User",
                );
                None
            } else if !foreign_identity.iter().any(|p| p.matches(name)) {
                issues.add(
                    &at,
                    format!("{name} is not a stripped identity header, so there is nothing to keep"),
                    "list names covered by the default families or forward.strip_headers (tokengate check prints them)",
                );
                None
            } else {
                Some(name.to_ascii_lowercase())
            }
        })
        .collect();
    ForwardSettings {
        headers,
        strip_prefix: normalize(&strip_prefix),
        separator,
        payload_header,
        strip_authorization: raw.strip_authorization,
        foreign_identity,
        trusted_identity,
    }
}

fn array_format(issues: &mut Issues, at: &str, text: &str) -> ArrayFormat {
    match text {
        "joined" => ArrayFormat::Joined,
        "json" => ArrayFormat::Json,
        other => {
            issues.add(
                at,
                format!("`{other}` is not an array format"),
                "use joined (elements joined by forward.separator) or json (a compact JSON array)",
            );
            ArrayFormat::default()
        }
    }
}

/// A `forward.headers` value: `claim`, `[claim, fallback]`, or
/// `{ claim: c | claims: [c, fallback], array_format: joined | json }`.
fn claim_header_value(
    issues: &mut Issues,
    at: &str,
    value: &serde_yaml::Value,
    default_format: ArrayFormat,
) -> Option<(Vec<String>, ArrayFormat)> {
    let names = |v: &serde_yaml::Value| -> Vec<String> {
        match v {
            serde_yaml::Value::String(s) => vec![s.clone()],
            serde_yaml::Value::Sequence(items) => items
                .iter()
                .filter_map(|i| i.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        }
    };
    let (claims, format) = match value {
        serde_yaml::Value::Mapping(map) => {
            let mut claims = Vec::new();
            let mut format = default_format;
            for (key, v) in map {
                match key.as_str() {
                    Some("claim" | "claims") => claims = names(v),
                    Some("array_format") => match v.as_str() {
                        Some(text) => {
                            format = array_format(issues, &format!("{at}.array_format"), text)
                        }
                        None => issues.add(
                            format!("{at}.array_format"),
                            "must be joined or json",
                            "e.g. array_format: json",
                        ),
                    },
                    _ => {
                        issues.add(
                            at,
                            format!("unknown field `{}`", key.as_str().unwrap_or("?")),
                            "the fields are claim (or claims) and array_format",
                        );
                        return None;
                    }
                }
            }
            (claims, format)
        }
        other => (names(other), default_format),
    };
    if claims.is_empty() || claims.iter().any(String::is_empty) {
        issues.add(
            at,
            "name a claim, or a list of claims of which the first present is used",
            "e.g. sub, [cid, client_id], or { claim: groups, array_format: json }",
        );
        return None;
    }
    Some((claims, format))
}

/// The rule fields shared by `routes[]` entries and `default`.
struct RuleFields<'a> {
    auth: Option<&'a str>,
    scopes: Option<&'a Vec<String>>,
    any_scopes: Option<&'a Vec<String>>,
    claims: &'a std::collections::BTreeMap<String, serde_yaml::Value>,
    issuers: Option<&'a Vec<String>>,
}

impl<'a> RuleFields<'a> {
    fn from_default(r: &'a RawRule) -> Self {
        RuleFields {
            auth: r.auth.as_deref(),
            scopes: r.scopes.as_ref(),
            any_scopes: r.any_scopes.as_ref(),
            claims: &r.claims,
            issuers: r.issuers.as_ref(),
        }
    }

    fn from_route(r: &'a RawRoute) -> Self {
        RuleFields {
            auth: r.auth.as_deref(),
            scopes: r.scopes.as_ref(),
            any_scopes: r.any_scopes.as_ref(),
            claims: &r.claims,
            issuers: r.issuers.as_ref(),
        }
    }
}

fn rule(issues: &mut Issues, at: &str, raw: &RuleFields<'_>, issuer_names: &[String]) -> Rule {
    let auth = match raw.auth.unwrap_or("required") {
        "none" => AuthMode::None,
        "optional" => AuthMode::Optional,
        "required" => AuthMode::Required,
        other => {
            issues.add(
                format!("{at}.auth"),
                format!("`{other}` is not an auth mode"),
                "use none, optional or required",
            );
            AuthMode::Required
        }
    };
    let mut list = |field: &str, values: Option<&Vec<String>>| -> Vec<String> {
        let values = values.cloned().unwrap_or_default();
        if values
            .iter()
            .any(|v| v.is_empty() || v.contains([' ', '"', '\\']))
        {
            issues.add(
                format!("{at}.{field}"),
                "scopes are single words",
                "e.g. [read, write]",
            );
        }
        values
    };
    let scopes = list("scopes", raw.scopes);
    let any_scopes = list("any_scopes", raw.any_scopes);
    if raw.any_scopes.is_some_and(Vec::is_empty) {
        issues.add(
            format!("{at}.any_scopes"),
            "an empty any_scopes can never be met",
            "list at least one scope, or remove it",
        );
    }
    let claims: Vec<ClaimRule> = raw
        .claims
        .iter()
        .filter_map(|(name, value)| claim_rule(issues, &format!("{at}.claims.{name}"), name, value))
        .collect();
    if let Some(list) = raw.issuers {
        for (i, name) in list.iter().enumerate() {
            if !issuer_names.contains(name) {
                issues.add(
                    format!("{at}.issuers[{i}]"),
                    format!("`{name}` is not a configured issuer"),
                    "name an issuer from issuers: (its exact issuer value)",
                );
            }
        }
    }
    let demands = !scopes.is_empty()
        || raw.any_scopes.is_some()
        || !claims.is_empty()
        || raw.issuers.is_some();
    if auth == AuthMode::None && demands {
        issues.add(
            format!("{at}.auth"),
            "a route with auth: none cannot also require scopes, claims or issuers",
            "use auth: required (or optional) with those conditions",
        );
    }
    Rule {
        auth,
        scopes,
        any_scopes,
        claims,
        issuers: raw.issuers.cloned(),
    }
}

fn route(
    issues: &mut Issues,
    at: &str,
    raw: &RawRoute,
    paths: PathOptions,
    issuer_names: &[String],
) -> Option<RouteRule> {
    let pattern = match PathPattern::parse(&raw.path, paths.case_insensitive) {
        Ok(p) => Some(p),
        Err(e) => {
            issues.add(
                format!("{at}.path"),
                e,
                "patterns are /exact, /prefix/** or /users/*/profile",
            );
            None
        }
    };
    let methods = raw.methods.as_ref().map(|names| {
        names
            .iter()
            .enumerate()
            .filter_map(|(i, m)| match Method::from_bytes(m.as_bytes()) {
                Ok(method) if m.bytes().all(|b| b.is_ascii_uppercase()) => Some(method),
                _ => {
                    issues.add(
                        format!("{at}.methods[{i}]"),
                        format!("`{m}` is not a method"),
                        "methods are upper case: GET, HEAD, POST, ...",
                    );
                    None
                }
            })
            .collect::<Vec<_>>()
    });
    let rule = rule(issues, at, &RuleFields::from_route(raw), issuer_names);
    Some(RouteRule {
        name: raw.path.clone(),
        pattern: pattern?,
        methods,
        rule: Arc::new(rule),
    })
}

fn resource(issues: &mut Issues, raw: &RawResource) -> ResourceSettings {
    let url = match Url::parse(&raw.id) {
        Ok(u)
            if matches!(u.scheme(), "https" | "http")
                && u.query().is_none()
                && u.fragment().is_none() =>
        {
            Some(u)
        }
        _ => {
            issues.add(
                "resource.id",
                format!("`{}` is not a resource identifier", raw.id),
                "RFC 9728: an https URL without query or fragment, e.g. https://api.example.com",
            );
            None
        }
    };
    // RFC 9728 §3.1: the well-known segment goes between the host and the path.
    let path = url
        .as_ref()
        .map(|u| u.path().trim_end_matches('/').to_owned())
        .unwrap_or_default();
    let metadata_path = format!("/.well-known/oauth-protected-resource{path}");
    let metadata_url = url
        .as_ref()
        .map(|u| format!("{}{metadata_path}", u.origin().ascii_serialization()))
        .unwrap_or_default();
    if metadata_url.contains(['"', '\\']) {
        issues.add(
            "resource.id",
            "the identifier cannot contain quotes or backslashes",
            "",
        );
    }
    ResourceSettings {
        id: raw.id.clone(),
        authorization_servers: raw.authorization_servers.clone(),
        scopes_supported: raw.scopes_supported.clone(),
        metadata_path,
        metadata_url,
    }
}
