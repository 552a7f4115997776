//! tokengate's own endpoints: which request is one (decided once, before any route rule) and
//! the answer. They are never forwarded and never need a token.
//!
//! | path | methods | answer |
//! |---|---|---|
//! | any, when it is a CORS preflight and `cors:` is a policy | `OPTIONS` | the preflight |
//! | `/healthz` | `GET`, `HEAD` | 200 `{"status":"ok"}` |
//! | `/readyz` | `GET`, `HEAD` | 200 once every issuer has keys, else 503 |
//! | `/_dev/token` (dev issuer on) | `POST` | a minted token (RFC 6749 §5.1 shape) |
//! | each resource's `metadata_path` (and the root one with `metadata_at_root`) | `GET`, `HEAD` | RFC 9728 §3.2 protected resource metadata |

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use crate::body::Body;
use crate::builtin::json_response;
use crate::config::{CorsSettings, DpopSettings, ResourceSettings, Settings};
use crate::cors;
use crate::dev::{self, BadTokenRequest, DevIssuer};
use crate::jwks::KeyStore;
use crate::route::{AuthMode, DpopMode, Rule};

/// The largest `/_dev/token` form we read, in bytes.
const MAX_FORM_BYTES: usize = 16 * 1024;

const GET_HEAD: &str = "GET, HEAD";

/// One of tokengate's own endpoints, holding what answers it (so an endpoint the
/// configuration does not have cannot be asked for).
#[derive(Clone, Copy)]
pub enum Endpoint<'a> {
    /// A CORS preflight, answered by the configured policy without a token.
    Preflight(&'a CorsSettings),
    /// `/healthz`: the process is up.
    Health,
    /// `/readyz`: every issuer has keys.
    Ready,
    /// `POST /_dev/token`, only with the dev issuer on.
    DevToken(&'a DevIssuer),
    /// RFC 9728 protected resource metadata of the resource at this position of
    /// `Settings::resources`.
    ResourceMetadata(usize, &'a ResourceSettings),
}

impl Endpoint<'_> {
    /// The access log's reason for a request this endpoint answered.
    pub fn reason(self) -> &'static str {
        match self {
            Endpoint::Preflight(_) => "preflight",
            Endpoint::Health => "health",
            Endpoint::Ready => "ready",
            Endpoint::DevToken(_) => "dev_token",
            Endpoint::ResourceMetadata(..) => "resource_metadata",
        }
    }

    /// The response must carry no CORS headers whatever `cors:` says: a web page must never
    /// read a minted token.
    pub fn refuses_cors(self) -> bool {
        matches!(self, Endpoint::DevToken(_))
    }
}

/// Why an own endpoint did not answer 200; `rejection` turns it into the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointError {
    /// Asked with a method it does not answer (405): the methods it does, for `Allow`
    /// (RFC 9110 §15.5.6).
    WrongMethod { allow: &'static str },
    /// `/_dev/token` asked by a request that may come from a web page or a foreign host
    /// name (403): the reason.
    DevTokenForbidden(&'static str),
    /// The `/_dev/token` form is not one tokengate answers (400).
    BadDevTokenRequest(BadTokenRequest),
    /// The `/_dev/token` form is larger than [`MAX_FORM_BYTES`] (413).
    BodyTooLarge,
}

/// The own endpoints of one configuration, and what answers them.
pub struct Endpoints {
    settings: Arc<Settings>,
    dev: Option<Arc<DevIssuer>>,
}

impl Endpoints {
    /// The endpoints `settings` has; `dev` is the dev issuer when `dev_issuer:` is on.
    pub fn new(settings: Arc<Settings>, dev: Option<Arc<DevIssuer>>) -> Endpoints {
        Endpoints { settings, dev }
    }

    /// The own endpoint at this canonical path, if any, and whether the method is allowed
    /// there (`Err`: 405). `preflight` says the request is a CORS preflight
    /// (`cors::is_preflight`). `/_dev/token` is decided by its path before any preflight, so
    /// a web page's preflight can never be answered with CORS headers there.
    pub fn route(
        &self,
        method: &Method,
        path: &str,
        preflight: bool,
    ) -> Option<(Endpoint<'_>, Result<(), EndpointError>)> {
        let dev_token = self.dev.as_deref().filter(|_| path == "/_dev/token");
        if let (None, true, Some(policy)) = (dev_token, preflight, self.settings.cors.policy()) {
            return Some((Endpoint::Preflight(policy), Ok(())));
        }
        let (endpoint, allow) = match (path, dev_token) {
            ("/healthz", _) => (Endpoint::Health, GET_HEAD),
            ("/readyz", _) => (Endpoint::Ready, GET_HEAD),
            (_, Some(dev)) => (Endpoint::DevToken(dev), "POST"),
            (p, None) => match self.resource_at(p) {
                Some((i, r)) => (Endpoint::ResourceMetadata(i, r), GET_HEAD),
                None => return None,
            },
        };
        let method_ok = match allow {
            GET_HEAD => method == Method::GET || method == Method::HEAD,
            _ => method == Method::POST,
        };
        let allowed = if method_ok {
            Ok(())
        } else {
            Err(EndpointError::WrongMethod { allow })
        };
        Some((endpoint, allowed))
    }

    /// The resource whose metadata is served at `path`: its own path-inserted one
    /// (RFC 9728 §3.1) first, then the one with `metadata_at_root` (validation keeps every
    /// path to one resource).
    fn resource_at(&self, path: &str) -> Option<(usize, &ResourceSettings)> {
        let resources = &self.settings.resources;
        let own = resources.iter().position(|r| r.metadata_path == path);
        let root = || {
            (path == ROOT_METADATA_PATH)
                .then(|| resources.iter().position(|r| r.metadata_at_root))
                .flatten()
        };
        own.or_else(root).map(|i| (i, &resources[i]))
    }

    /// Answers `endpoint` (as [`Endpoints::route`] found it for `request`).
    pub async fn answer(
        &self,
        endpoint: Endpoint<'_>,
        request: Request<Body>,
        keys: &KeyStore,
    ) -> Result<Response<Body>, EndpointError> {
        match endpoint {
            Endpoint::Preflight(policy) => Ok(cors::preflight(policy, request.headers())),
            Endpoint::Health => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
            Endpoint::Ready => Ok(readiness(keys)),
            Endpoint::DevToken(dev) => dev_token(dev, request).await,
            Endpoint::ResourceMetadata(index, resource) => {
                let rules = &self.settings.rules;
                let covered = rules
                    .routes
                    .iter()
                    .map(|r| r.rule.as_ref())
                    .chain(std::iter::once(rules.default.as_ref()))
                    .filter(|rule| rule.resource.as_ref().is_some_and(|b| b.index == index));
                let document = metadata_document(
                    resource,
                    covered,
                    &self.settings.dpop,
                    self.settings.certificate_binding_available(),
                );
                let mut response = json_response(StatusCode::OK, &document);
                // Public, and the same for everyone: a client may keep it for a while.
                response.headers_mut().insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("public, max-age=300"),
                );
                Ok(response)
            }
        }
    }
}

/// Where a resource with `metadata_at_root` is also served (RFC 9728 §3).
const ROOT_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// RFC 9728 §2 / §3.2: the metadata document of `resource`, whose routes' rules are
/// `covered` (the default rule among them for `resource:`). Members:
///
/// - `resource`: the identifier exactly as configured (§3.3: a client compares it with the
///   identifier it derived the metadata URL from, byte for byte);
/// - `authorization_servers`, `scopes_supported`: as configured (`scopes_supported` of a
///   `resources:` entry defaults to the scopes its routes name), left out when empty;
/// - `bearer_methods_supported`: `["header"]`, the one method tokengate accepts (the query
///   parameter is refused, RFC 6750 §2.3; the form body is never read);
/// - `resource_name`, `resource_documentation`: when configured;
/// - `dpop_signing_alg_values_supported` (RFC 9728 §2, RFC 9449 §5.1): `dpop.algorithms`,
///   when a covered route that looks at tokens takes DPoP, with
///   `dpop_bound_access_tokens_required`: whether every such route requires it;
/// - `tls_client_certificate_bound_access_tokens` (RFC 8705 §3.4): `true` when
///   `certificate_bound` (tokengate can see client certificates, so it checks
///   certificate-bound tokens).
pub fn metadata_document<'a>(
    resource: &ResourceSettings,
    covered: impl Iterator<Item = &'a Rule>,
    dpop: &DpopSettings,
    certificate_bound: bool,
) -> serde_json::Value {
    let modes: Vec<DpopMode> = covered
        .filter(|rule| rule.auth != AuthMode::None)
        .map(|rule| rule.dpop)
        .collect();
    let mut doc = serde_json::Map::new();
    doc.insert("resource".into(), json!(resource.id));
    if !resource.authorization_servers.is_empty() {
        doc.insert(
            "authorization_servers".into(),
            json!(resource.authorization_servers),
        );
    }
    if !resource.scopes_supported.is_empty() {
        doc.insert("scopes_supported".into(), json!(resource.scopes_supported));
    }
    doc.insert("bearer_methods_supported".into(), json!(["header"]));
    if let Some(name) = &resource.resource_name {
        doc.insert("resource_name".into(), json!(name));
    }
    if let Some(url) = &resource.resource_documentation {
        doc.insert("resource_documentation".into(), json!(url));
    }
    if modes.iter().any(|m| m.accepts_dpop()) {
        let algs: Vec<String> = dpop.algorithms.iter().map(ToString::to_string).collect();
        doc.insert("dpop_signing_alg_values_supported".into(), json!(algs));
        doc.insert(
            "dpop_bound_access_tokens_required".into(),
            json!(modes.iter().all(|m| *m == DpopMode::Required)),
        );
    }
    if certificate_bound {
        doc.insert(
            "tls_client_certificate_bound_access_tokens".into(),
            json!(true),
        );
    }
    serde_json::Value::Object(doc)
}

/// `POST /_dev/token`: a token from the dev issuer, for a local caller only.
async fn dev_token(
    dev: &DevIssuer,
    request: Request<Body>,
) -> Result<Response<Body>, EndpointError> {
    dev::admits_local_caller(request.headers()).map_err(EndpointError::DevTokenForbidden)?;
    let form = read_limited(request.into_body(), MAX_FORM_BYTES).await?;
    let body = dev
        .token_response(&form)
        .map_err(EndpointError::BadDevTokenRequest)?;
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
    Ok(response)
}

/// `/readyz`: 200 once every issuer has keys, else 503 naming those without. Either way,
/// `skipped_keys` lists the keys the last load of each issuer skipped, with the reason
/// code and detail (`[{issuer, kid, reason, detail}]`), when there are any.
pub fn readiness(keys: &KeyStore) -> Response<Body> {
    let missing = keys.issuers_without_keys();
    let skipped: Vec<serde_json::Value> = keys
        .skipped_keys()
        .into_iter()
        .flat_map(|(issuer, keys)| {
            keys.into_iter().map(move |k| {
                json!({"issuer": issuer, "kid": k.kid, "reason": k.reason, "detail": k.detail})
            })
        })
        .collect();
    let (status, mut body) = if missing.is_empty() {
        (StatusCode::OK, json!({"status": "ready"}))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "not ready", "issuers_without_keys": missing}),
        )
    };
    if !skipped.is_empty() {
        body["skipped_keys"] = serde_json::Value::Array(skipped);
    }
    json_response(status, &body)
}

/// Reads a small body whole, refusing one larger than `limit` bytes.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, EndpointError> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            EndpointError::BadDevTokenRequest(BadTokenRequest("the request body could not be read"))
        })?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                return Err(EndpointError::BodyTooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{load_str, Overrides};

    fn endpoints(extra: &str) -> Endpoints {
        let yaml = format!(
            "issuers:\n  - issuer: https://idp.example.com\n    audiences: [api]\ncors: {{ allow_origins: [\"https://app.example.com\"] }}\n{extra}"
        );
        let settings = match load_str(Path::new("t.yaml"), &yaml, &Overrides::default()) {
            Ok(s) => s,
            Err(e) => panic!("test configuration refused: {e}"),
        };
        let dev = settings
            .dev_issuer
            .as_ref()
            .map(|d| match DevIssuer::new(d) {
                Ok(dev) => Arc::new(dev),
                Err(e) => panic!("dev issuer: {e}"),
            });
        Endpoints::new(Arc::new(settings), dev)
    }

    /// The endpoint's reason and whether the method is allowed, or `None`.
    fn route(
        e: &Endpoints,
        method: Method,
        path: &str,
        preflight: bool,
    ) -> Option<(&'static str, Result<(), EndpointError>)> {
        e.route(&method, path, preflight)
            .map(|(endpoint, allowed)| (endpoint.reason(), allowed))
    }

    #[test]
    fn own_endpoints_and_methods() {
        let own = endpoints("");
        assert_eq!(
            route(&own, Method::GET, "/healthz", false),
            Some(("health", Ok(())))
        );
        assert_eq!(
            route(&own, Method::HEAD, "/readyz", false),
            Some(("ready", Ok(())))
        );
        assert_eq!(
            route(&own, Method::POST, "/healthz", false),
            Some((
                "health",
                Err(EndpointError::WrongMethod { allow: GET_HEAD })
            ))
        );
        assert_eq!(route(&own, Method::POST, "/_dev/token", false), None);
        assert_eq!(route(&own, Method::GET, "/api", false), None);
        let dev = endpoints("dev_issuer: { audience: api }\n");
        assert_eq!(
            route(&dev, Method::POST, "/_dev/token", false),
            Some(("dev_token", Ok(())))
        );
        // A preflight to the dev issuer is not a CORS preflight tokengate answers.
        assert_eq!(
            route(&dev, Method::OPTIONS, "/_dev/token", true),
            Some((
                "dev_token",
                Err(EndpointError::WrongMethod { allow: "POST" })
            ))
        );
        assert!(dev
            .route(&Method::POST, "/_dev/token", false)
            .is_some_and(|(e, _)| e.refuses_cors()));
        assert_eq!(
            route(&dev, Method::OPTIONS, "/api", true),
            Some(("preflight", Ok(())))
        );
    }

    /// Each resource at its own path-inserted URL; the root one (`metadata_at_root`, or a
    /// `resource:` without a path) at the root; nothing anywhere else.
    #[test]
    fn each_resource_at_its_own_path() {
        let own = endpoints(
            "routes:\n  - { path: /mcp }\n  - { path: /other/** }\nresources:\n  - { id: \"https://h.example.com/mcp\", routes: [/mcp], metadata_at_root: true }\n  - { id: \"https://h.example.com/other\", routes: [/other/**], resource_name: Other }\n",
        );
        let at = |path: &str| own.resource_at(path).map(|(i, r)| (i, r.id.clone()));
        assert_eq!(
            at("/.well-known/oauth-protected-resource/mcp"),
            Some((0, "https://h.example.com/mcp".to_owned()))
        );
        assert_eq!(
            at("/.well-known/oauth-protected-resource/other"),
            Some((1, "https://h.example.com/other".to_owned()))
        );
        assert_eq!(
            at("/.well-known/oauth-protected-resource"),
            Some((0, "https://h.example.com/mcp".to_owned()))
        );
        assert_eq!(at("/.well-known/oauth-protected-resource/mcp/x"), None);
        assert_eq!(at("/mcp"), None);
        let other = &own.settings.resources[1];
        // Empty members are left out; the name is there; scopes default to the routes' (none).
        assert_eq!(
            metadata_document(other, std::iter::empty(), &own.settings.dpop, false),
            json!({
                "resource": "https://h.example.com/other",
                "bearer_methods_supported": ["header"],
                "resource_name": "Other",
            })
        );
    }

    #[test]
    fn dpop_members_follow_the_covered_routes() {
        let doc = |routes: &str| {
            let own = endpoints(&format!(
                "{routes}resources:\n  - {{ id: \"https://h.example.com/api\", routes: [/api/**, /health] }}\n"
            ));
            let rules = &own.settings.rules;
            let covered: Vec<&Rule> = rules
                .routes
                .iter()
                .map(|r| r.rule.as_ref())
                .filter(|rule| rule.resource.is_some())
                .collect();
            metadata_document(
                &own.settings.resources[0],
                covered.into_iter(),
                &own.settings.dpop,
                true,
            )
        };
        // Every route that looks at tokens requires DPoP (the public one does not count).
        let d = doc("dpop: { external_url: \"https://h.example.com\" }\nroutes:\n  - { path: /api/**, dpop: required }\n  - { path: /health, auth: none }\n");
        assert_eq!(
            d["dpop_signing_alg_values_supported"],
            json!(["ES256", "EdDSA", "PS256", "RS256"])
        );
        assert_eq!(d["dpop_bound_access_tokens_required"], json!(true));
        assert_eq!(d["tls_client_certificate_bound_access_tokens"], json!(true));
        // Allowed: offered, not required.
        let d = doc("routes:\n  - { path: /api/** }\n  - { path: /health, auth: none }\n");
        assert_eq!(d["dpop_bound_access_tokens_required"], json!(false));
        // Off everywhere: not offered at all.
        let d =
            doc("routes:\n  - { path: /api/**, dpop: off }\n  - { path: /health, auth: none }\n");
        assert!(d.get("dpop_signing_alg_values_supported").is_none(), "{d}");
        assert!(d.get("dpop_bound_access_tokens_required").is_none(), "{d}");
    }

    #[test]
    fn resource_metadata_only_where_configured() {
        let own = endpoints(
            "resource:\n  id: https://api.example.com\n  authorization_servers: [https://idp.example.com]\n",
        );
        assert_eq!(
            route(
                &own,
                Method::GET,
                "/.well-known/oauth-protected-resource",
                false
            ),
            Some(("resource_metadata", Ok(())))
        );
        assert_eq!(
            route(
                &endpoints(""),
                Method::GET,
                "/.well-known/oauth-protected-resource",
                false
            ),
            None
        );
    }
}
