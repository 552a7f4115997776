//! `resource:` and `resources:`: RFC 9728 protected resources, and which routes each covers.
//!
//! `resources:` lists resources that each cover some routes (an MCP server at
//! `https://host/mcp`, say); `resource:` is one resource covering every other route and the
//! default rule. Both become [`ResourceSettings`], and every covered route's rule gets a
//! [`ResourceBinding`]: the resource's position (for the challenge's `resource_metadata`),
//! its audiences, and whether `Authorization` is removed before forwarding.

use std::net::IpAddr;
use std::sync::Arc;

use url::{Host, Url};

use super::Issues;
use crate::config::raw::{RawProtectedResource, RawResource};
use crate::config::{Coverage, IssuerSettings, ResourceSettings};
use crate::route::{self, PathOptions, ResourceBinding, RuleTable};

/// The well-known URI suffix of RFC 9728 §3.
const WELL_KNOWN: &str = "/.well-known/oauth-protected-resource";

/// What the resources need from the sections before them.
pub(super) struct Context<'a> {
    /// The validated `routes:` and `default` (each covered rule gets its binding here).
    pub rules: &'a mut RuleTable,
    pub issuers: &'a [IssuerSettings],
    pub paths: PathOptions,
    /// `forward.strip_authorization` when written; `None` lets an MCP resource default to true.
    pub strip_authorization: Option<bool>,
}

/// Checks `resources:` and `resource:`, binds every covered route's rule to its resource,
/// and returns the resources (the `resources:` entries in order, then `resource:`).
pub(super) fn resources(
    issues: &mut Issues,
    single: Option<&RawResource>,
    list: Option<&[RawProtectedResource]>,
    cx: Context<'_>,
) -> Vec<ResourceSettings> {
    let mut out: Vec<ResourceSettings> = list
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, raw)| protected_resource(issues, &format!("resources[{i}]"), raw, &cx))
        .collect();
    if let Some(raw) = single {
        out.push(resource(issues, raw));
    }
    distinct(issues, &out);
    bind(&out, cx);
    out
}

/// The resource whose identifier's origin is DPoP's default `external_url`: `resource:`,
/// else the `resources:` entries when they all share one origin (their first); `None` when
/// there is none, or they differ (then `dpop.external_url` must be written).
pub(super) fn origin_resource(resources: &[ResourceSettings]) -> Option<&ResourceSettings> {
    let origin = |r: &ResourceSettings| Url::parse(&r.id).ok().map(|u| u.origin());
    if let Some(rest) = resources.iter().find(|r| r.covers == Coverage::Rest) {
        return Some(rest);
    }
    let first = resources.first()?;
    let shared = resources.iter().all(|r| origin(r) == origin(first));
    shared.then_some(first)
}

/// `resource:` as it always was: an identifier (an http(s) URL without query or fragment),
/// the authorization servers and scopes to list, covering every route no `resources:` entry
/// covers.
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
    let (metadata_path, metadata_url) = url.as_ref().map(metadata_location).unwrap_or_default();
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
        resource_name: None,
        resource_documentation: None,
        mcp: false,
        audiences: Vec::new(),
        metadata_path,
        metadata_url,
        metadata_at_root: false,
        covers: Coverage::Rest,
    }
}

/// RFC 9728 §3.1: the well-known segment goes between the host and the path (a trailing
/// slash of the path is dropped, as the MCP SDKs build the URL); the path on this listener
/// and the absolute URL.
fn metadata_location(url: &Url) -> (String, String) {
    let path = format!("{WELL_KNOWN}{}", url.path().trim_end_matches('/'));
    let absolute = format!("{}{path}", url.origin().ascii_serialization());
    (path, absolute)
}

/// One `resources:` entry.
fn protected_resource(
    issues: &mut Issues,
    at: &str,
    raw: &RawProtectedResource,
    cx: &Context<'_>,
) -> ResourceSettings {
    let url = identifier(issues, &format!("{at}.id"), &raw.id);
    let (metadata_path, metadata_url) = url.as_ref().map(metadata_location).unwrap_or_default();
    if url.is_some() {
        let canonical = route::canonicalize(&metadata_path, cx.paths).map(|c| c.path);
        if canonical.as_deref() != Ok(metadata_path.as_str()) || metadata_url.contains(['"', '\\'])
        {
            issues.add(
                format!("{at}.id"),
                format!("the path of `{}` is not in canonical form", raw.id),
                "no percent-escapes, dot segments, empty segments, `;` or quotes in the path",
            );
        }
    }
    covered_routes(issues, at, raw, cx);
    for (i, server) in raw.authorization_servers.iter().enumerate() {
        if web_url(server).is_none() {
            issues.add(
                format!("{at}.authorization_servers[{i}]"),
                format!("`{server}` is not an authorization server's issuer identifier"),
                "an https URL without query or fragment (http only on a loopback host)",
            );
        }
    }
    if raw.mcp && raw.authorization_servers.is_empty() {
        issues.add(
            format!("{at}.authorization_servers"),
            "an MCP resource must name its authorization servers",
            "MCP clients find where to get a token here, e.g. authorization_servers: [https://idp.example.com]",
        );
    }
    let scopes_supported = match &raw.scopes_supported {
        Some(scopes) => {
            if scopes.iter().any(|s| {
                s.is_empty() || s.contains([' ', '"', '\\']) || s.chars().any(char::is_control)
            }) {
                issues.add(
                    format!("{at}.scopes_supported"),
                    "scopes are single words",
                    "e.g. [mcp:tools, mcp:admin]",
                );
            }
            scopes.clone()
        }
        None => scopes_of_routes(&raw.routes, cx.rules),
    };
    if let Some(name) = &raw.resource_name {
        if name.trim().is_empty() || name.chars().any(char::is_control) {
            issues.add(
                format!("{at}.resource_name"),
                "the name must be visible text",
                "e.g. resource_name: Example MCP server",
            );
        }
    }
    if let Some(doc) = &raw.resource_documentation {
        if !Url::parse(doc).is_ok_and(|u| matches!(u.scheme(), "https" | "http")) {
            issues.add(
                format!("{at}.resource_documentation"),
                format!("`{doc}` is not an http(s) URL"),
                "e.g. https://docs.example.com/mcp",
            );
        }
    }
    let audiences = audiences(issues, at, raw, cx.issuers);
    ResourceSettings {
        id: raw.id.clone(),
        authorization_servers: raw.authorization_servers.clone(),
        scopes_supported,
        resource_name: raw.resource_name.clone(),
        resource_documentation: raw.resource_documentation.clone(),
        mcp: raw.mcp,
        audiences,
        metadata_path,
        metadata_url,
        metadata_at_root: raw.metadata_at_root,
        covers: Coverage::Routes(raw.routes.clone()),
    }
}

/// RFC 9728 §1.2 / RFC 8707 §2: an https URL without query or fragment (http only on a
/// loopback host, for local testing), written exactly as a client will compare it (its
/// parsed form, without the `/` a URL without a path is given).
fn identifier(issues: &mut Issues, at: &str, id: &str) -> Option<Url> {
    let Some(url) = web_url(id) else {
        issues.add(
            at,
            format!("`{id}` is not a resource identifier"),
            "an https URL without query or fragment, e.g. https://mcp.example.com/mcp (http only on a loopback host)",
        );
        return None;
    };
    let canonical = match url.path() {
        "/" => url.as_str().trim_end_matches('/').to_owned(),
        _ => url.as_str().to_owned(),
    };
    if id != canonical && id != url.as_str() {
        issues.add(
            at,
            format!("`{id}` is not written as clients will send it"),
            format!(
                "write it as {canonical} (clients compare the metadata's resource byte for byte)"
            ),
        );
        return None;
    }
    Some(url)
}

/// An https URL (http on a loopback host) with a host, and no user, query or fragment.
fn web_url(text: &str) -> Option<Url> {
    let url = Url::parse(text).ok()?;
    let loopback = match url.host() {
        Some(Host::Domain(d)) => d == "localhost",
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => return None,
    };
    let scheme_ok = url.scheme() == "https" || (url.scheme() == "http" && loopback);
    let bare = url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none();
    (scheme_ok && bare).then_some(url)
}

/// `routes`: at least one, each the `path` of a `routes:` entry; an MCP resource's routes
/// require a token.
fn covered_routes(issues: &mut Issues, at: &str, raw: &RawProtectedResource, cx: &Context<'_>) {
    if raw.routes.is_empty() {
        issues.add(
            format!("{at}.routes"),
            "a resource covers at least one route",
            "list the path of each routes: entry it covers, e.g. routes: [/mcp]",
        );
    }
    for (j, name) in raw.routes.iter().enumerate() {
        let mut matched = cx
            .rules
            .routes
            .iter()
            .filter(|r| &r.name == name)
            .peekable();
        if matched.peek().is_none() {
            issues.add(
                format!("{at}.routes[{j}]"),
                format!("`{name}` is not the path of a route"),
                "write the path of a routes: entry exactly as it is written there",
            );
            continue;
        }
        if raw.mcp && matched.any(|r| r.rule.auth != route::AuthMode::Required) {
            issues.add(
                format!("{at}.routes[{j}]"),
                format!("the route `{name}` lets anonymous callers through"),
                "an MCP resource's routes need auth: required (the default)",
            );
        }
    }
}

/// `audiences`: each accepted by some issuer (else no token could pass); required with
/// `mcp: true`.
fn audiences(
    issues: &mut Issues,
    at: &str,
    raw: &RawProtectedResource,
    issuers: &[IssuerSettings],
) -> Vec<String> {
    let list = raw.audiences.clone().unwrap_or_default();
    if raw.mcp && list.is_empty() {
        issues.add(
            format!("{at}.audiences"),
            "an MCP resource must say which audience its tokens carry",
            format!(
                "MCP clients ask for tokens with resource={} (RFC 8707): audiences: [{}]",
                raw.id, raw.id
            ),
        );
    }
    for (k, aud) in list.iter().enumerate() {
        if !issuers.iter().any(|i| i.audiences.contains(aud)) {
            issues.add(
                format!("{at}.audiences[{k}]"),
                format!("no issuer accepts the audience `{aud}`"),
                "add it to the audiences of the issuer that mints these tokens",
            );
        }
    }
    list
}

/// The scopes a resource's routes name, in route order, each once (its `scopes_supported`
/// when none are written).
fn scopes_of_routes(names: &[String], rules: &RuleTable) -> Vec<String> {
    let mut scopes: Vec<String> = Vec::new();
    for route in rules.routes.iter().filter(|r| names.contains(&r.name)) {
        for scope in route.rule.scopes_needed() {
            if !scopes.iter().any(|s| s == scope) {
                scopes.push(scope.to_owned());
            }
        }
    }
    scopes
}

/// No two resources share an identifier, a metadata path or a route.
fn distinct(issues: &mut Issues, resources: &[ResourceSettings]) {
    let at = |i: usize, r: &ResourceSettings| match r.covers {
        Coverage::Rest => "resource".to_owned(),
        Coverage::Routes(_) => format!("resources[{i}]"),
    };
    let mut paths: Vec<(&str, String)> = Vec::new();
    let mut routes: Vec<(&str, String)> = Vec::new();
    for (i, r) in resources.iter().enumerate() {
        if let Some(j) = resources[..i].iter().position(|o| o.id == r.id) {
            issues.add(
                format!("{}.id", at(i, r)),
                format!(
                    "`{}` is {}'s identifier already",
                    r.id,
                    at(j, &resources[j])
                ),
                "each protected resource has its own identifier",
            );
            continue;
        }
        let served = std::iter::once((r.metadata_path.as_str(), "id")).chain(
            r.metadata_at_root
                .then_some((WELL_KNOWN, "metadata_at_root")),
        );
        for (path, field) in served {
            match paths.iter().find(|(p, _)| *p == path) {
                Some((_, owner)) => issues.add(
                    format!("{}.{field}", at(i, r)),
                    format!("{owner} serves its metadata at {path} already"),
                    "one metadata document per path: give the resources different paths",
                ),
                None => paths.push((path, at(i, r))),
            }
        }
        if let Coverage::Routes(names) = &r.covers {
            for (j, name) in names.iter().enumerate() {
                match routes.iter().find(|(n, _)| *n == name) {
                    Some((_, owner)) => issues.add(
                        format!("{}.routes[{j}]", at(i, r)),
                        format!("`{name}` is covered by {owner} already"),
                        "a route belongs to one protected resource",
                    ),
                    None => routes.push((name, at(i, r))),
                }
            }
        }
    }
}

/// Gives every covered route's rule (and, under `resource:`, the default's) its binding.
fn bind(resources: &[ResourceSettings], cx: Context<'_>) {
    let binding = |index: usize| {
        let r = &resources[index];
        ResourceBinding {
            index,
            audiences: r.audiences.clone(),
            strip_authorization: r.mcp && cx.strip_authorization.is_none(),
        }
    };
    let rest = resources.iter().position(|r| r.covers == Coverage::Rest);
    for route in &mut cx.rules.routes {
        let own = resources.iter().position(
            |r| matches!(&r.covers, Coverage::Routes(names) if names.contains(&route.name)),
        );
        if let Some(index) = own.or(rest) {
            Arc::make_mut(&mut route.rule).resource = Some(binding(index));
        }
    }
    if let Some(index) = rest {
        Arc::make_mut(&mut cx.rules.default).resource = Some(binding(index));
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;

    /// Routes and an issuer for the `resources:` rows.
    const BASE: &str = "issuers:\n  - issuer: https://idp.example.com\n    audiences: [api, \"https://mcp.example.com/mcp\"]\nroutes:\n  - { path: /mcp, scopes: [mcp:tools] }\n  - { path: /mcp/**, scopes: [mcp:tools] }\n  - { path: /public/**, auth: none }\n";

    fn with_base(
        rows: &[(&str, &'static str, &'static str)],
    ) -> Vec<(String, &'static str, &'static str)> {
        rows.iter()
            .map(|(yaml, path, message)| (format!("{BASE}{yaml}"), *path, *message))
            .collect()
    }

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("resource: { id: api.example.com }\n", "resource.id", "`api.example.com` is not a resource identifier"),
            ("resource: { id: \"urn:example:api\" }\n", "resource.id", "`urn:example:api` is not a resource identifier"),
            ("resource: { id: \"https://api.example.com/?v=1\" }\n", "resource.id", "is not a resource identifier"),
            ("resource: { id: \"https://api.example.com/#top\" }\n", "resource.id", "is not a resource identifier"),
        ]);
        // The rule "no quote or backslash in the metadata URL" guards the challenge's
        // quoted-string: a parsed URL percent-encodes quotes and reads a backslash as a
        // slash, so no identifier reaches it today; these are the spellings that would.
        assert_valid(&[
            "resource: { id: \"https://api.example.com/a\\\"b\" }\n",
            "resource: { id: \"https://api.example.com/a\\\\b\" }\n",
        ]);
        let rows = with_base(&[
            ("resources:\n  - { id: mcp.example.com, routes: [/mcp] }\n", "resources[0].id", "`mcp.example.com` is not a resource identifier"),
            ("resources:\n  - { id: \"http://mcp.example.com/mcp\", routes: [/mcp] }\n", "resources[0].id", "is not a resource identifier"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp?x=1\", routes: [/mcp] }\n", "resources[0].id", "is not a resource identifier"),
            ("resources:\n  - { id: \"https://u@mcp.example.com/mcp\", routes: [/mcp] }\n", "resources[0].id", "is not a resource identifier"),
            ("resources:\n  - { id: \"https://MCP.example.com/mcp\", routes: [/mcp] }\n", "resources[0].id", "is not written as clients will send it"),
            ("resources:\n  - { id: \"https://mcp.example.com:443/mcp\", routes: [/mcp] }\n", "resources[0].id", "is not written as clients will send it"),
            ("resources:\n  - { id: \"https://mcp.example.com/a/../mcp\", routes: [/mcp] }\n", "resources[0].id", "is not written as clients will send it"),
            ("resources:\n  - { id: \"https://mcp.example.com/m%63p\", routes: [/mcp] }\n", "resources[0].id", "is not in canonical form"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\" }\n", "resources[0].routes", "a resource covers at least one route"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp/] }\n", "resources[0].routes[0]", "`/mcp/` is not the path of a route"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], authorization_servers: [\"http://idp.example.com\"] }\n", "resources[0].authorization_servers[0]", "is not an authorization server's issuer identifier"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], scopes_supported: [\"a b\"] }\n", "resources[0].scopes_supported", "scopes are single words"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], resource_name: \" \" }\n", "resources[0].resource_name", "the name must be visible text"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], resource_documentation: docs }\n", "resources[0].resource_documentation", "`docs` is not an http(s) URL"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], audiences: [\"https://other.example.com\"] }\n", "resources[0].audiences[0]", "no issuer accepts the audience `https://other.example.com`"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], mcp: true, authorization_servers: [\"https://idp.example.com\"] }\n", "resources[0].audiences", "an MCP resource must say which audience its tokens carry"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], mcp: true, audiences: [\"https://mcp.example.com/mcp\"] }\n", "resources[0].authorization_servers", "an MCP resource must name its authorization servers"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp, /public/**], mcp: true, authorization_servers: [\"https://idp.example.com\"], audiences: [\"https://mcp.example.com/mcp\"] }\n", "resources[0].routes[1]", "the route `/public/**` lets anonymous callers through"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp] }\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp/**] }\n", "resources[1].id", "`https://mcp.example.com/mcp` is resources[0]'s identifier already"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp] }\n  - { id: \"https://mcp.example.com/mcp/\", routes: [/mcp/**] }\n", "resources[1].id", "resources[0] serves its metadata at /.well-known/oauth-protected-resource/mcp already"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp], metadata_at_root: true }\nresource: { id: \"https://mcp.example.com\" }\n", "resource.id", "resources[0] serves its metadata at /.well-known/oauth-protected-resource already"),
            ("resources:\n  - { id: \"https://mcp.example.com/mcp\", routes: [/mcp] }\n  - { id: \"https://mcp.example.com/other\", routes: [/mcp/**, /mcp] }\n", "resources[1].routes[1]", "`/mcp` is covered by resources[0] already"),
        ]);
        let rows: Vec<Row<'_>> = rows.iter().map(|(y, p, m)| (y.as_str(), *p, *m)).collect();
        assert_rows(&rows);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "resource: { id: \"https://api.example.com\" }\n",
            "resource: { id: \"http://localhost:3000/v1/\", authorization_servers: [\"https://idp.example.com\"], scopes_supported: [read] }\n",
            &format!("{BASE}resources:\n  - {{ id: \"https://mcp.example.com/mcp\", routes: [/mcp, /mcp/**], mcp: true, authorization_servers: [\"https://idp.example.com\"], audiences: [\"https://mcp.example.com/mcp\"], resource_name: MCP, resource_documentation: \"https://docs.example.com/mcp\", metadata_at_root: true }}\nresource: {{ id: \"https://mcp.example.com/api\" }}\n"),
            &format!("{BASE}resources:\n  - {{ id: \"http://127.0.0.1:8080/mcp\", routes: [/mcp], authorization_servers: [\"http://127.0.0.1:9000\"] }}\n"),
        ]);
        let Ok(s) = settings("resource: { id: \"https://api.example.com/v1/\" }\n") else {
            panic!("valid")
        };
        let [r] = s.resources.as_slice() else {
            panic!("one resource")
        };
        assert_eq!(r.metadata_path, "/.well-known/oauth-protected-resource/v1");
        assert_eq!(
            r.metadata_url,
            "https://api.example.com/.well-known/oauth-protected-resource/v1"
        );
        assert!(settings("").ok().is_some_and(|s| s.resources.is_empty()));
    }

    /// DPoP's default `external_url`: the origin of `resource:`, else of `resources:` when
    /// they share one.
    #[test]
    fn dpop_takes_the_origin_the_resources_share() {
        let origin = |yaml: &str| match settings(&format!("{BASE}{yaml}")) {
            Ok(s) => s.dpop.external_url,
            Err(e) => panic!(
                "{}",
                e.iter()
                    .map(|i| i.message.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
        };
        let two = |other: &str| {
            format!("resources:\n  - {{ id: \"https://mcp.example.com/mcp\", routes: [/mcp] }}\n  - {{ id: \"{other}\", routes: [/mcp/**] }}\n")
        };
        assert_eq!(
            origin(&two("https://mcp.example.com/other")).as_deref(),
            Some("https://mcp.example.com")
        );
        assert_eq!(origin(&two("https://elsewhere.example.com/other")), None);
        assert_eq!(
            origin(&format!(
                "{}resource: {{ id: \"https://api.example.com/v1\" }}\n",
                two("https://elsewhere.example.com/other")
            ))
            .as_deref(),
            Some("https://api.example.com")
        );
    }

    /// Each route's resource index and whether it strips `Authorization`, in route order.
    fn bindings(s: &crate::config::Settings) -> Vec<Option<(usize, bool)>> {
        s.rules
            .routes
            .iter()
            .map(|r| {
                r.rule
                    .resource
                    .as_ref()
                    .map(|b| (b.index, b.strip_authorization))
            })
            .collect()
    }

    /// Each covered route, and only those, is bound to its resource; `resource:` takes the
    /// rest and the default; an MCP resource strips `Authorization` unless `forward` says.
    #[test]
    fn routes_are_bound_to_their_resource() {
        let yaml = format!(
            "{BASE}resources:\n  - {{ id: \"https://mcp.example.com/mcp\", routes: [/mcp, /mcp/**], mcp: true, authorization_servers: [\"https://idp.example.com\"], audiences: [\"https://mcp.example.com/mcp\"] }}\n"
        );
        let Ok(s) = settings(&yaml) else {
            panic!("valid")
        };
        let bound = bindings(&s);
        assert_eq!(bound, [Some((0, true)), Some((0, true)), None]);
        assert!(s.rules.default.resource.is_none());
        assert_eq!(s.resources[0].scopes_supported, ["mcp:tools"]);
        assert_eq!(
            s.rules.routes[0]
                .rule
                .resource
                .as_ref()
                .map(|b| b.audiences.clone()),
            Some(vec!["https://mcp.example.com/mcp".to_owned()])
        );

        let explicit = format!("{yaml}forward: {{ strip_authorization: false }}\nresource: {{ id: \"https://mcp.example.com\" }}\n");
        let Ok(s) = settings(&explicit) else {
            panic!("valid")
        };
        let bound = bindings(&s);
        assert_eq!(
            bound,
            [Some((0, false)), Some((0, false)), Some((1, false))]
        );
        assert_eq!(s.rules.default.resource.as_ref().map(|b| b.index), Some(1));
    }
}
