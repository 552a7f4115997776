//! `App::handle`: the request pipeline, stage by stage. Only this module knows the order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::{info, warn};

use crate::authn::{self, AuthnError, Principal};
use crate::authz::{self, Permit};
use crate::body::Body;
use crate::builtin::{json_response, Builtin};
use crate::cache::TokenCache;
use crate::config::Settings;
use crate::cors;
use crate::dev::{BadTokenRequest, DevIssuer};
use crate::forward::Upstream;
use crate::jwks::KeyStore;
use crate::mutate::HeaderPolicy;
use crate::rejection::Rejection;
use crate::route::{self, AuthMode, CanonicalPath, OwnEndpoint, OwnEndpoints};
use crate::token::{self, Extracted};

/// The largest `/_dev/token` form we read.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Everything a request needs, shared by all connections.
pub struct App {
    settings: Arc<Settings>,
    own: OwnEndpoints,
    keys: KeyStore,
    dev: Option<DevIssuer>,
    upstream: Option<Upstream>,
    headers: HeaderPolicy,
    cache: TokenCache,
}

/// What the access log says about a request beyond method, path and status.
#[derive(Default)]
struct Outcome {
    reason: &'static str,
    route: Option<String>,
    issuer: Option<String>,
    sub: Option<String>,
    upstream_latency: Option<Duration>,
}

impl Outcome {
    fn of(permit: &Permit, reason: &'static str) -> Outcome {
        let token = permit.token();
        Outcome {
            reason,
            issuer: token.map(|t| t.issuer.clone()),
            sub: token.and_then(|t| t.subject().map(str::to_owned)),
            ..Outcome::default()
        }
    }
}

type Handled = Result<(Response<Body>, Outcome), (Rejection, Outcome)>;

fn plain(reason: &'static str) -> Outcome {
    Outcome {
        reason,
        ..Outcome::default()
    }
}

impl App {
    /// Builds the app (dev issuer key, upstream client). Call [`App::start`] in a runtime.
    pub fn new(settings: Settings) -> Result<App, String> {
        let dev = match &settings.dev_issuer {
            Some(d) => Some(DevIssuer::new(d)?),
            None => None,
        };
        let upstream = match &settings.upstream {
            Some(u) => Some(Upstream::new(u)?),
            None => None,
        };
        let keys = KeyStore::new(&settings, dev.as_ref().map(DevIssuer::key_set));
        Ok(App {
            own: OwnEndpoints {
                cors: settings.cors.is_some(),
                dev_issuer: dev.is_some(),
                resource_metadata_path: settings.resource.as_ref().map(|r| r.metadata_path.clone()),
            },
            headers: HeaderPolicy::new(&settings.forward, &settings.trusted_proxies),
            cache: TokenCache::new(&settings.cache, settings.generation),
            settings: Arc::new(settings),
            keys,
            dev,
            upstream,
        })
    }

    /// Starts fetching keys in the background.
    pub fn start(&mut self) {
        if let Some(dev) = &self.dev {
            warn!(
                issuer = %dev.issuer(),
                "DEV ISSUER ON: POST /_dev/token mints valid tokens for anyone who asks; never run this configuration in production"
            );
        }
        self.keys.start();
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The verified-token cache (for metrics and tests).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let cors_headers = self
            .settings
            .cors
            .as_ref()
            .map(|_| request.headers().clone());
        let preflight = cors::is_preflight(&method, request.headers());

        let (mut response, outcome) = match self.pipeline(request, peer).await {
            Ok(done) => done,
            Err((rejection, outcome)) => {
                let outcome = Outcome {
                    reason: rejection.reason(),
                    ..outcome
                };
                let metadata = self
                    .settings
                    .resource
                    .as_ref()
                    .map(|r| r.metadata_url.as_str());
                (rejection.into_response(metadata), outcome)
            }
        };
        if let (Some(cors), Some(request_headers)) = (&self.settings.cors, &cors_headers) {
            if !preflight {
                cors::decorate(cors, request_headers, &mut response);
            }
        }
        info!(
            target: "tokengate::access",
            %method,
            path = %path,
            status = response.status().as_u16(),
            reason = outcome.reason,
            route = outcome.route.as_deref().unwrap_or("-"),
            issuer = outcome.issuer.as_deref().unwrap_or("-"),
            sub = outcome.sub.as_deref().unwrap_or("-"),
            peer = %peer,
            latency_us = started.elapsed().as_micros() as u64,
            upstream_us = outcome.upstream_latency.map(|d| d.as_micros() as u64),
            "request"
        );
        response
    }

    async fn pipeline(&self, request: Request<Incoming>, peer: SocketAddr) -> Handled {
        // 1 route: one canonical path for matching and forwarding.
        let canonical = route::canonicalize(request.uri().path(), self.settings.paths)
            .map_err(|e| (Rejection::BadPath(e), Outcome::default()))?;
        if !authority_agrees(&request) {
            return Err((Rejection::AmbiguousHost, Outcome::default()));
        }
        if let Some(endpoint) = self
            .own
            .route(request.method(), &canonical.path, request.headers())
        {
            let endpoint = endpoint.map_err(|r| (r, Outcome::default()))?;
            return self.own_endpoint(endpoint, request).await;
        }
        let builtin = match &self.upstream {
            Some(_) => None,
            None => {
                let Some(builtin) = Builtin::for_path(&canonical.path) else {
                    return Err((Rejection::NotFound, Outcome::default()));
                };
                if request.method() != Method::GET && request.method() != Method::HEAD {
                    return Err((
                        Rejection::MethodNotAllowed { allow: "GET, HEAD" },
                        Outcome::default(),
                    ));
                }
                Some(builtin)
            }
        };
        let (matched, rule) = self
            .settings
            .rules
            .match_request(request.method(), &canonical);
        let route_name = matched.map(|r| r.name.clone());
        let with_route = |mut o: Outcome| {
            o.route.clone_from(&route_name);
            o
        };

        // 2 token, 3 authn (as the rule asks)
        let principal = self
            .authenticate(rule.auth, request.headers(), request.uri().query())
            .await
            .map_err(|r| (r, with_route(Outcome::default())))?;
        let partial = Outcome::of(
            &Permit {
                principal: principal.clone(),
            },
            "",
        );
        // 4 authz
        let permit = authz::authorize(rule, principal)
            .map_err(|r| (r, with_route(Outcome { ..partial })))?;
        let outcome = with_route(Outcome::of(&permit, "ok"));

        // 5 mutate + 6 dispatch
        match (builtin, &self.upstream) {
            (Some(builtin), _) => match permit.token() {
                Some(token) => Ok((builtin.respond(token), outcome)),
                // The quickstart routes echo a verified token: without one there is nothing to show.
                None => Err((Rejection::MissingToken, outcome)),
            },
            (None, Some(upstream)) => {
                self.forward(upstream, request, peer, &canonical, &permit, outcome)
                    .await
            }
            (None, None) => Err((Rejection::NotFound, outcome)),
        }
    }

    /// Stages 2 and 3: extract and verify the bearer token, as the route's auth mode asks.
    async fn authenticate(
        &self,
        auth: AuthMode,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Principal, Rejection> {
        if auth == AuthMode::None {
            // Not even looked at: a token on a public route never becomes identity.
            return Ok(Principal::Anonymous);
        }
        let token = match token::extract(headers, query).map_err(Rejection::InvalidRequest)? {
            Extracted::None if auth == AuthMode::Optional => return Ok(Principal::Anonymous),
            Extracted::None => return Err(Rejection::MissingToken),
            Extracted::Bearer(token) => token,
        };
        match authn::verify(token, &self.settings, &self.keys, &self.cache).await {
            Ok(verified) => Ok(Principal::Authenticated(verified)),
            Err(AuthnError::Invalid(e)) => Err(Rejection::InvalidToken(e)),
            Err(AuthnError::KeysUnavailable { issuer }) => {
                Err(Rejection::KeysUnavailable { issuer })
            }
        }
    }

    /// Stages 5 and 6 for an upstream: strip, inject, send, stream back.
    async fn forward(
        &self,
        upstream: &Upstream,
        mut request: Request<Incoming>,
        peer: SocketAddr,
        canonical: &CanonicalPath,
        permit: &Permit,
        mut outcome: Outcome,
    ) -> Handled {
        let wants_upgrade =
            request.version() == http::Version::HTTP_11 && is_upgrade_request(request.headers());
        let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
        let query = request.uri().query().map(str::to_owned);
        let origin = self
            .headers
            .strip_request(request.headers_mut(), &peer, wants_upgrade);
        self.headers
            .inject(request.headers_mut(), &origin, &peer, "http", permit);
        let request = request.map(|body| {
            body.map_err(|e| Box::new(e) as crate::body::BoxError)
                .boxed()
        });
        match upstream
            .forward(request, &canonical.path, query.as_deref(), client_upgrade)
            .await
        {
            Ok((response, latency)) => {
                outcome.upstream_latency = Some(latency);
                Ok((response, outcome))
            }
            Err(e) => {
                warn!(error = %e, detail = ?e, "upstream request failed");
                Err((Rejection::Upstream(e), outcome))
            }
        }
    }

    async fn own_endpoint(&self, endpoint: OwnEndpoint, request: Request<Incoming>) -> Handled {
        match endpoint {
            OwnEndpoint::Preflight => match &self.settings.cors {
                Some(cors) => Ok((cors::preflight(cors, request.headers()), plain("preflight"))),
                None => Err((Rejection::NotFound, Outcome::default())),
            },
            OwnEndpoint::Health => Ok((
                json_response(StatusCode::OK, &json!({"status": "ok"})),
                plain("health"),
            )),
            OwnEndpoint::Ready => Ok((self.readiness(), plain("ready"))),
            OwnEndpoint::DevToken => self
                .dev_token(request)
                .await
                .map(|r| (r, plain("dev_token")))
                .map_err(|r| (r, Outcome::default())),
            OwnEndpoint::ResourceMetadata => match &self.settings.resource {
                Some(r) => {
                    let doc = json!({
                        "resource": r.id,
                        "authorization_servers": r.authorization_servers,
                        "scopes_supported": r.scopes_supported,
                        "bearer_methods_supported": ["header"],
                    });
                    Ok((
                        json_response(StatusCode::OK, &doc),
                        plain("resource_metadata"),
                    ))
                }
                None => Err((Rejection::NotFound, Outcome::default())),
            },
        }
    }

    fn readiness(&self) -> Response<Body> {
        let missing = self.keys.issuers_without_keys();
        if missing.is_empty() {
            json_response(StatusCode::OK, &json!({"status": "ready"}))
        } else {
            json_response(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"status": "not ready", "issuers_without_keys": missing}),
            )
        }
    }

    async fn dev_token(&self, request: Request<Incoming>) -> Result<Response<Body>, Rejection> {
        let Some(dev) = &self.dev else {
            return Err(Rejection::NotFound);
        };
        let form = Limited::new(request.into_body(), MAX_FORM_BYTES)
            .collect()
            .await
            .map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    Rejection::BodyTooLarge
                } else {
                    Rejection::BadDevTokenRequest(BadTokenRequest(
                        "the request body could not be read",
                    ))
                }
            })?
            .to_bytes();
        let body = dev
            .token_response(&form)
            .map_err(Rejection::BadDevTokenRequest)?;
        let mut response = json_response(StatusCode::OK, &body);
        response.headers_mut().insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        Ok(response)
    }
}

/// `Connection: upgrade` with an `Upgrade` header (RFC 9110 §7.8).
fn is_upgrade_request(headers: &HeaderMap) -> bool {
    headers.contains_key(http::header::UPGRADE)
        && headers
            .get_all(http::header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// An absolute-form target (or HTTP/2 `:authority`) must name the same host as `Host`, so
/// tokengate and the upstream cannot disagree about which site was asked for.
fn authority_agrees<B>(request: &Request<B>) -> bool {
    let (Some(authority), Some(host)) = (
        request.uri().authority(),
        request.headers().get(http::header::HOST),
    ) else {
        return true;
    };
    host.to_str()
        .is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str()))
}
