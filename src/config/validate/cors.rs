//! `cors:`: who answers CORS, and tokengate's own policy when it is the one.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use url::Url;

use super::Issues;
use crate::config::raw::RawCors;
use crate::config::{AllowedOrigins, Cors, CorsSettings};

/// The response headers a browser app may read by default (`cors.expose_headers`).
const DEFAULT_EXPOSE_HEADERS: &[&str] = &[
    "WWW-Authenticate",
    "Retry-After",
    "X-Request-Id",
    "DPoP-Nonce",
];

/// No `cors:` is [`Cors::Off`]; `mode: policy` (the default) checks the policy's fields;
/// `mode: upstream` takes none of them.
pub(super) fn cors(issues: &mut Issues, raw: Option<&RawCors>) -> Cors {
    raw.map(|c| mode(issues, c)).unwrap_or_default()
}

/// `mode: upstream` hands CORS to an upstream, so one must be configured.
pub(super) fn needs_upstream(issues: &mut Issues, cors: &Cors, has_upstream: bool) {
    if matches!(cors, Cors::Upstream) && !has_upstream {
        issues.add(
            "cors.mode",
            "mode: upstream hands CORS to the upstream, and none is configured",
            "configure upstream.url, or use mode: policy",
        );
    }
}

fn mode(issues: &mut Issues, raw: &RawCors) -> Cors {
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::config::{AllowedOrigins, Cors};

    const UPSTREAM: &str = "upstream: { url: \"http://127.0.0.1:8080\" }\n";

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        let upstream_rows: Vec<(String, String)> = [
            ("allow_origins: [\"https://app.example.com\"]", "allow_origins"),
            ("allow_methods: [GET]", "allow_methods"),
            ("allow_headers: [Authorization]", "allow_headers"),
            ("expose_headers: [X-Request-Id]", "expose_headers"),
            ("max_age: 1h", "max_age"),
            ("allow_credentials: false", "allow_credentials"),
        ]
        .iter()
        .map(|(field, name)| (format!("{UPSTREAM}cors: {{ mode: upstream, {field} }}\n"), format!("cors.{name}")))
        .collect();
        let mut rows: Vec<Row<'_>> = upstream_rows
            .iter()
            .map(|(yaml, path)| (yaml.as_str(), path.as_str(), "with mode: upstream the upstream's own CORS headers decide"))
            .collect();
        rows.extend_from_slice(&[
            ("cors: { mode: browser }\n", "cors.mode", "`browser` is not a CORS mode"),
            ("cors: { mode: upstream }\n", "cors.mode", "mode: upstream hands CORS to the upstream, and none is configured"),
            ("cors: { allow_origins: [\"*\", \"https://app.example.com\"] }\n", "cors.allow_origins", "\"*\" cannot be mixed with other origins"),
            ("cors: { allow_origins: [\"*\"], allow_credentials: true }\n", "cors.allow_credentials", "browsers refuse credentials with a wildcard origin"),
            ("cors: {}\n", "cors.allow_origins", "no origin is allowed"),
            ("cors: { allow_origins: [\"https://App.example.com\"] }\n", "cors.allow_origins[0]", "a browser never sends the origin `https://App.example.com`"),
            ("cors: { allow_origins: [\"https://app.example.com:443\"] }\n", "cors.allow_origins[0]", "a browser never sends the origin"),
            ("cors: { allow_origins: [\"https://a.example\", \"https://app.example.com/\"] }\n", "cors.allow_origins[1]", "a browser never sends the origin `https://app.example.com/`"),
            ("cors: { allow_origins: [app.example.com] }\n", "cors.allow_origins[0]", "`app.example.com` is not an origin"),
            ("cors: { allow_origins: [\"https://app.example.com/api\"] }\n", "cors.allow_origins[0]", "`https://app.example.com/api` is not an origin"),
            ("cors: { allow_origins: [\"ftp://files.example.com\"] }\n", "cors.allow_origins[0]", "is not an origin"),
            ("cors: { allow_origins: [\"https://u@app.example.com\"] }\n", "cors.allow_origins[0]", "`https://u@app.example.com` is not an origin"),
            // A browser sends an internationalised host in its ASCII (punycode) form.
            ("cors: { allow_origins: [\"https://bücher.example\"] }\n", "cors.allow_origins[0]", "a browser never sends the origin `https://bücher.example`"),
            ("cors: { allow_origins: [\"https://a.example\"], allow_methods: [GET, \"BAD METHOD\"] }\n", "cors.allow_methods[1]", "`BAD METHOD` is not a method"),
            ("cors: { allow_origins: [\"https://a.example\"], allow_headers: [\"X Auth\"] }\n", "cors.allow_headers[0]", "`X Auth` is not a header name"),
            ("cors: { allow_origins: [\"https://a.example\"], expose_headers: [X-Request-Id, \"X:Id\"] }\n", "cors.expose_headers[1]", "`X:Id` is not a header name"),
            // The shared duration rule.
            ("cors: { allow_origins: [\"https://a.example\"], max_age: 1 hour }\n", "cors.max_age", "`1 hour` is not a duration"),
        ]);
        assert_rows(&rows);
        // One rule has no row: an origin that is its own serialization and still not a header
        // value. A serialized origin is visible ASCII (the host in punycode), so none reaches
        // it; the rule stays as a guard should serialization ever change.
    }

    #[test]
    fn valid_values_pass() {
        let upstream = format!("{UPSTREAM}cors: {{ mode: upstream }}\n");
        assert_valid(&[
            "cors: { allow_origins: [\"*\"] }\n",
            "cors: { allow_origins: [\"https://app.example.com\", \"http://localhost:5173\"], allow_credentials: true }\n",
            "cors: { mode: policy, allow_origins: [\"https://a.example\"], allow_methods: [GET, PURGE], allow_headers: [Authorization, X-Custom], expose_headers: [], max_age: 10m }\n",
            &upstream,
        ]);
    }

    #[test]
    fn defaults() {
        let off = settings("").ok().map(|s| matches!(s.cors, Cors::Off));
        assert_eq!(off, Some(true));
        let Ok(s) = settings("cors: { allow_origins: [\"*\"] }\n") else {
            panic!("valid")
        };
        let Some(p) = s.cors.policy() else {
            panic!("a policy")
        };
        assert_eq!(p.allow_origins, AllowedOrigins::Any);
        assert_eq!(p.allow_methods, "GET,HEAD,PUT,PATCH,POST,DELETE");
        assert_eq!(
            p.expose_headers,
            "WWW-Authenticate, Retry-After, X-Request-Id, DPoP-Nonce"
        );
        assert!(p.allow_headers.is_none() && p.max_age.is_none() && !p.allow_credentials);
    }
}
