//! `routes:`, `default` and `paths:`: which requests need which token.

use std::sync::Arc;

use http::Method;

use super::claims::claim_rule;
use super::Issues;
use crate::claims::ClaimRule;
use crate::config::raw::{RawPaths, RawRoute, RawRule};
use crate::config::IssuerSettings;
use crate::route::{AuthMode, DpopMode, PathOptions, PathPattern, RouteRule, Rule, RuleTable};

/// `paths:`: how request paths are matched against route patterns.
pub(super) fn path_options(raw: &RawPaths) -> PathOptions {
    PathOptions {
        allow_parameters: raw.allow_parameters,
        case_insensitive: raw.case_insensitive,
    }
}

/// The `default` rule (a required token when absent) and each `routes[i]` entry, whose
/// `issuers` must name configured issuers.
pub(super) fn rules(
    issues: &mut Issues,
    raw_default: Option<&RawRule>,
    raw_routes: &[RawRoute],
    paths: PathOptions,
    issuers: &[IssuerSettings],
) -> RuleTable {
    let issuer_names: Vec<String> = issuers.iter().map(|i| i.issuer.clone()).collect();
    let default = raw_default
        .map(|r| {
            rule(
                issues,
                "default",
                &RuleFields::from_default(r),
                &issuer_names,
            )
        })
        .unwrap_or_else(Rule::required);
    let routes = raw_routes
        .iter()
        .enumerate()
        .filter_map(|(i, r)| route(issues, &format!("routes[{i}]"), r, paths, &issuer_names))
        .collect();
    RuleTable {
        routes,
        default: Arc::new(default),
    }
}

/// The rule fields shared by `routes[]` entries and `default`.
struct RuleFields<'a> {
    auth: Option<&'a str>,
    scopes: Option<&'a Vec<String>>,
    any_scopes: Option<&'a Vec<String>>,
    claims: &'a std::collections::BTreeMap<String, serde_yaml::Value>,
    issuers: Option<&'a Vec<String>>,
    dpop: Option<&'a str>,
}

impl<'a> RuleFields<'a> {
    fn from_default(r: &'a RawRule) -> Self {
        RuleFields {
            auth: r.auth.as_deref(),
            scopes: r.scopes.as_ref(),
            any_scopes: r.any_scopes.as_ref(),
            claims: &r.claims,
            issuers: r.issuers.as_ref(),
            dpop: r.dpop.as_deref(),
        }
    }

    fn from_route(r: &'a RawRoute) -> Self {
        RuleFields {
            auth: r.auth.as_deref(),
            scopes: r.scopes.as_ref(),
            any_scopes: r.any_scopes.as_ref(),
            claims: &r.claims,
            issuers: r.issuers.as_ref(),
            dpop: r.dpop.as_deref(),
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
    let dpop = match raw.dpop.unwrap_or("allowed") {
        "off" => DpopMode::Off,
        "allowed" => DpopMode::Allowed,
        "required" => DpopMode::Required,
        other => {
            issues.add(
                format!("{at}.dpop"),
                format!("`{other}` is not a DPoP mode"),
                "use off, allowed (Bearer and DPoP-bound tokens) or required (DPoP-bound only)",
            );
            DpopMode::Allowed
        }
    };
    if auth == AuthMode::None && dpop == DpopMode::Required {
        issues.add(
            format!("{at}.dpop"),
            "a route with auth: none looks at no token, so it cannot require DPoP",
            "use auth: required with dpop: required",
        );
    }
    Rule {
        auth,
        dpop,
        scopes,
        any_scopes,
        claims,
        issuers: raw.issuers.cloned(),
        // Set by the resource section, which knows which resource covers the route.
        resource: None,
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

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::route::AuthMode;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("default: { auth: maybe }\n", "default.auth", "`maybe` is not an auth mode"),
            ("routes:\n  - { path: /api/**, auth: Required }\n", "routes[0].auth", "`Required` is not an auth mode"),
            ("default: { scopes: [read, \"write all\"] }\n", "default.scopes", "scopes are single words"),
            ("routes:\n  - { path: /api, scopes: [\"\"] }\n", "routes[0].scopes", "scopes are single words"),
            ("routes:\n  - { path: /api, any_scopes: [read, \"a\\\"b\"] }\n", "routes[0].any_scopes", "scopes are single words"),
            ("routes:\n  - { path: /api, any_scopes: [] }\n", "routes[0].any_scopes", "an empty any_scopes can never be met"),
            ("routes:\n  - { path: /api, issuers: [\"https://idp.example.com\", \"https://other.example.com\"] }\n", "routes[0].issuers[1]", "`https://other.example.com` is not a configured issuer"),
            ("default: { issuers: [\"https://idp.example.com/\"] }\n", "default.issuers[0]", "`https://idp.example.com/` is not a configured issuer"),
            ("routes:\n  - { path: /health, auth: none, scopes: [read] }\n", "routes[0].auth", "a route with auth: none cannot also require scopes, claims or issuers"),
            ("routes:\n  - { path: /health, auth: none, any_scopes: [read] }\n", "routes[0].auth", "cannot also require"),
            ("routes:\n  - { path: /health, auth: none, claims: { cid: x } }\n", "routes[0].auth", "cannot also require"),
            ("default: { auth: none, issuers: [\"https://idp.example.com\"] }\n", "default.auth", "cannot also require"),
            ("routes:\n  - { path: api/** }\n", "routes[0].path", "a path pattern starts with /"),
            ("routes:\n  - { path: /api//x }\n", "routes[0].path", "`/api//x` has an empty or dot segment"),
            ("routes:\n  - { path: /api/v*/x }\n", "routes[0].path", "* stands for a whole segment"),
            ("routes:\n  - { path: /api/a%20b }\n", "routes[0].path", "write patterns in decoded form"),
            ("routes:\n  - { path: /api/ }\n", "routes[0].path", "`/api/` has an empty or dot segment"),
            ("routes:\n  - { path: /api/../admin }\n", "routes[0].path", "`/api/../admin` has an empty or dot segment"),
            ("routes:\n  - { path: /api, methods: [GET, post] }\n", "routes[0].methods[1]", "`post` is not a method"),
            ("routes:\n  - { path: /api, methods: [\"GET POST\"] }\n", "routes[0].methods[0]", "`GET POST` is not a method"),
            // Route and default claims are claim rules (claims.rs has their table).
            ("routes:\n  - { path: /api, claims: { cid: { any_of: [] } } }\n", "routes[0].claims.cid", "the list of values is empty"),
        ]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "default: { auth: optional }\n",
            "default: { scopes: [read], any_scopes: [a, b], claims: { cid: x }, issuers: [\"https://idp.example.com\"] }\n",
            "routes:\n  - { path: /health, auth: none }\n  - { path: /users/*/profile, methods: [GET, HEAD, PURGE] }\n  - { path: /**, auth: required }\n",
            "paths: { case_insensitive: true, allow_parameters: true }\nroutes:\n  - { path: /API/** }\n",
        ]);
    }

    #[test]
    fn defaults() {
        let Ok(s) = settings("") else {
            panic!("the empty file is valid")
        };
        assert_eq!(s.rules.default.auth, AuthMode::Required);
        assert!(s.rules.routes.is_empty());
        assert!(!s.paths.allow_parameters && !s.paths.case_insensitive);
        let Ok(s) = settings("routes:\n  - { path: /a }\n  - { path: /b, auth: none }\n") else {
            panic!("valid")
        };
        let names: Vec<&str> = s.rules.routes.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["/a", "/b"]);
        assert_eq!(s.rules.routes[0].rule.auth, AuthMode::Required);
        assert!(s.rules.routes[0].methods.is_none());
    }
}
