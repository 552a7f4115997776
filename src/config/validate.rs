//! Raw configuration → runtime [`Settings`], collecting every problem with its YAML path.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use jsonwebtoken::Algorithm;
use url::Url;

use super::raw::{RawConfig, RawCors, RawDevIssuer, RawIssuer, RawKeys};
use super::settings::*;
use super::{parse_duration, Overrides};
use crate::claims::{ClaimRule, Predicate};

/// A problem before its line is known.
pub struct Issue {
    pub path: String,
    pub message: String,
    pub hint: Option<String>,
}

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";
const MAX_LEEWAY: Duration = Duration::from_secs(300);
pub const DEV_ISSUER_DEFAULT: &str = "urn:tokengate:dev";
const SUPPORTED_ALGORITHMS: &str = "RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA";

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
    let cors = raw.cors.as_ref().map(|c| cors(&mut issues, c));

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
    let limits = Limits {
        header_read_timeout: issues.duration(
            "limits.header_read_timeout",
            raw.limits.header_read_timeout.as_deref(),
            Duration::from_secs(10),
        ),
        max_token_bytes,
    };
    let shutdown_timeout = issues.duration(
        "shutdown_timeout",
        raw.shutdown_timeout.as_deref(),
        Duration::from_secs(30),
    );

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
    })
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

    let algorithms = match &raw.algorithms {
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
                let parsed = parse_algorithm(name);
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

    let scheme_ok =
        |url: &Url| url.scheme() == "https" || (raw.allow_http && url.scheme() == "http");
    let key_source = match (&raw.jwks_uri, &raw.jwks_file) {
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
        key_source,
        allow_http: raw.allow_http,
        claims,
        require_rfc9068,
    }
}

pub fn parse_algorithm(name: &str) -> Option<Algorithm> {
    Some(match name {
        "RS256" => Algorithm::RS256,
        "RS384" => Algorithm::RS384,
        "RS512" => Algorithm::RS512,
        "PS256" => Algorithm::PS256,
        "PS384" => Algorithm::PS384,
        "PS512" => Algorithm::PS512,
        "ES256" => Algorithm::ES256,
        "ES384" => Algorithm::ES384,
        "EdDSA" => Algorithm::EdDSA,
        _ => return None,
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
    let hint = "write `claim: value`, or one of `{ equals: v }`, `{ includes: [a, b] }`, `{ any_of: [a, b] }`";
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
    if let Predicate::Includes(v) | Predicate::AnyOf(v) = &predicate {
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

fn cors(issues: &mut Issues, raw: &RawCors) -> CorsSettings {
    let origin_hint =
        "list origins as scheme://host[:port], e.g. https://app.example.com, or [\"*\"]";
    let allow_origins = if raw.allow_origins.iter().any(|o| o == "*") {
        if raw.allow_origins.len() > 1 {
            issues.add(
                "cors.allow_origins",
                "\"*\" cannot be mixed with other origins",
                origin_hint,
            );
        }
        if raw.allow_credentials {
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
                    let valid = Url::parse(o).ok().filter(|u| {
                        matches!(u.scheme(), "http" | "https")
                            && u.path() == "/"
                            && !o.ends_with('/')
                            && u.query().is_none()
                    });
                    match (valid, HeaderValue::from_str(o)) {
                        (Some(_), Ok(v)) => Some(v),
                        _ => {
                            issues.add(
                                format!("cors.allow_origins[{i}]"),
                                format!("`{o}` is not an origin"),
                                origin_hint,
                            );
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
    // Browser apps need to read the challenge of a 401.
    let expose = raw
        .expose_headers
        .clone()
        .unwrap_or_else(|| vec!["WWW-Authenticate".into()]);
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
        allow_credentials: raw.allow_credentials,
        methods,
    }
}
