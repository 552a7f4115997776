//! `forward:`: the identity headers tokengate sets from the verified claims, and the
//! headers it strips from what clients send.

use http::{HeaderName, HeaderValue};

use super::Issues;
use crate::config::raw::RawForward;
use crate::config::{ArrayFormat, ClaimHeader, ForwardSettings, DEFAULT_FOREIGN_IDENTITY_HEADERS};
use crate::header_name::{normalize, HeaderPattern};

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

/// The claim headers (four `X-Auth-*` by default), the prefix stripped from requests, the
/// separator of joined arrays, the optional payload header, the identity headers of other
/// systems to strip, and those of them kept from trusted proxies.
pub(super) fn forward(issues: &mut Issues, raw: &RawForward) -> ForwardSettings {
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
        strip_authorization: raw.strip_authorization.unwrap_or(false),
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::config::ArrayFormat;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("forward: { headers: { \"X Subject\": sub } }\n", "forward.headers.X Subject", "`X Subject` is not a header name"),
            ("forward: { headers: { Authorization: sub } }\n", "forward.headers.Authorization", "Authorization cannot carry a claim"),
            ("forward: { headers: { X_Request_Id: sub } }\n", "forward.headers.X_Request_Id", "X_Request_Id cannot carry a claim"),
            ("forward: { strip_prefix: X- }\n", "forward.strip_prefix", "the prefix is too short: it would strip ordinary headers"),
            ("forward: { payload_header: Cookie }\n", "forward.payload_header", "`Cookie` cannot be used"),
            ("forward: { payload_header: \"X Claims\" }\n", "forward.payload_header", "`X Claims` cannot be used"),
            ("forward: { separator: \"\" }\n", "forward.separator", "the separator must be visible text or a space"),
            ("forward: { separator: \"\\x07\" }\n", "forward.separator", "the separator must be visible text or a space"),
            ("forward: { strip_headers: [X-Legacy-User, X-Forwarded-*] }\n", "forward.strip_headers[1]", "`X-Forwarded-*` would strip a header the request needs to be understood"),
            ("forward: { strip_headers: [host] }\n", "forward.strip_headers[0]", "`host` would strip a header"),
            ("forward: { strip_headers: [\"*\"] }\n", "forward.strip_headers[0]", "`*` is not a header name or Prefix* pattern"),
            ("forward: { strip_headers: [\"X Legacy\"] }\n", "forward.strip_headers[0]", "`X Legacy` is not a header name or Prefix* pattern"),
            ("forward: { trusted_identity_headers: [\"X Forwarded User\"] }\n", "forward.trusted_identity_headers[0]", "`X Forwarded User` is not a header name"),
            ("forward: { trusted_identity_headers: [X-Auth-Subject] }\n", "forward.trusted_identity_headers[0]", "X-Auth-Subject is one of tokengate's own identity headers, which only tokengate sets"),
            ("forward: { payload_header: X-Claims, trusted_identity_headers: [x_claims] }\n", "forward.trusted_identity_headers[0]", "x_claims is one of tokengate's own identity headers"),
            ("forward: { headers: { Remote-User: sub }, trusted_identity_headers: [Remote-User] }\n", "forward.trusted_identity_headers[0]", "Remote-User is one of tokengate's own identity headers"),
            ("forward: { trusted_identity_headers: [X-Custom-User] }\n", "forward.trusted_identity_headers[0]", "X-Custom-User is not a stripped identity header, so there is nothing to keep"),
            ("forward: { array_format: csv }\n", "forward.array_format", "`csv` is not an array format"),
            ("forward: { headers: { X-Groups: { claim: groups, array_format: csv } } }\n", "forward.headers.X-Groups.array_format", "`csv` is not an array format"),
            ("forward: { headers: { X-Groups: { claim: groups, array_format: [json] } } }\n", "forward.headers.X-Groups.array_format", "must be joined or json"),
            ("forward: { headers: { X-Groups: { claim: groups, format: json } } }\n", "forward.headers.X-Groups", "unknown field `format`"),
            ("forward: { headers: { X-Groups: \"\" } }\n", "forward.headers.X-Groups", "name a claim, or a list of claims of which the first present is used"),
            ("forward: { headers: { X-Groups: [] } }\n", "forward.headers.X-Groups", "name a claim, or a list of claims"),
            ("forward: { headers: { X-Groups: [groups, \"\"] } }\n", "forward.headers.X-Groups", "name a claim, or a list of claims"),
            ("forward: { headers: { X-Groups: { array_format: json } } }\n", "forward.headers.X-Groups", "name a claim, or a list of claims"),
            ("forward: { headers: { X-Groups: 5 } }\n", "forward.headers.X-Groups", "name a claim, or a list of claims"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "forward: { headers: { X-User: sub, X-Client: [cid, client_id], X-Groups: { claims: [groups, roles], array_format: json }, X-Tenant: { claim: tenant.id } } }\n",
            "forward: { strip_prefix: X-Id-, separator: \",\", payload_header: X-Claims, strip_authorization: true, array_format: json }\n",
            "forward: { strip_headers: [X-Legacy-User, X-Legacy-Auth-*], trusted_identity_headers: [X-Forwarded-User, x-legacy-user] }\n",
        ]);
    }

    #[test]
    fn defaults() {
        let Ok(s) = settings("") else {
            panic!("the empty file is valid")
        };
        let f = &s.forward;
        let names: Vec<&str> = f.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "x-auth-subject",
                "x-auth-issuer",
                "x-auth-scopes",
                "x-auth-client-id"
            ]
        );
        assert_eq!(f.headers[3].sources.len(), 3);
        assert!(f
            .headers
            .iter()
            .all(|h| h.array_format == ArrayFormat::Joined));
        assert_eq!(
            (f.strip_prefix.as_str(), f.separator.as_str()),
            ("x-auth-", " ")
        );
        assert!(
            f.payload_header.is_none() && !f.strip_authorization && f.trusted_identity.is_empty()
        );
        let Ok(s) = settings("forward: { array_format: json, headers: { X-Tenant: tenant.id } }\n")
        else {
            panic!("valid")
        };
        let h = &s.forward.headers[0];
        assert_eq!(
            (h.sources.clone(), h.array_format),
            (
                vec![vec!["tenant".to_string(), "id".to_string()]],
                ArrayFormat::Json
            )
        );
    }
}
