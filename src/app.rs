//! `App::handle`: the request pipeline, stage by stage. Only this module knows the order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tracing::warn;

use crate::access::AccessRecord;
use crate::authn::{self, AuthnError, Principal};
use crate::authz::{self, Permit};
use crate::body::{Body, BoxError, Metered};
use crate::builtin::{json_response, Builtin};
use crate::cache::TokenCache;
use crate::config::Settings;
use crate::cors;
use crate::dev::{BadTokenRequest, DevIssuer};
use crate::forward::{Affinity, Upstream};
use crate::jwks::KeyStore;
use crate::metrics::{method_class, Metrics, RequestLabels};
use crate::mutate::HeaderPolicy;
use crate::rejection::Rejection;
use crate::route::{self, AuthMode, CanonicalPath, OwnEndpoint, OwnEndpoints};
use crate::stall::ReadTimeout;
use crate::token::{self, Extracted};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The largest `/_dev/token` form we read.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Everything a request needs, shared by all connections.
pub struct App {
    settings: Arc<Settings>,
    own: OwnEndpoints,
    keys: KeyStore,
    dev: Option<Arc<DevIssuer>>,
    upstream: Option<Upstream>,
    headers: HeaderPolicy,
    cache: TokenCache,
    metrics: Arc<Metrics>,
}

/// What the access log says about a request beyond method, path and status.
#[derive(Default, Clone)]
struct Outcome {
    reason: &'static str,
    path: Option<String>,
    route: Option<String>,
    issuer: Option<String>,
    sub: Option<String>,
    upstream_latency: Option<Duration>,
}

impl Outcome {
    /// This outcome with the path and route of `context`.
    fn within(mut self, context: &Outcome) -> Outcome {
        self.path.clone_from(&context.path);
        self.route.clone_from(&context.route);
        self
    }

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

/// The client connection a request came on.
struct Client<'a> {
    peer: SocketAddr,
    proto: &'static str,
    affinity: Option<&'a Affinity>,
}

fn plain(reason: &'static str) -> Outcome {
    Outcome {
        reason,
        ..Outcome::default()
    }
}

impl App {
    /// Builds the app (dev issuer key, upstream client). Call [`App::start`] in a runtime.
    pub fn new(settings: Settings) -> Result<App, String> {
        App::build(settings, None, Arc::new(Metrics::new()))
    }

    /// Builds the app for `settings`, keeping from `previous` (a reload) the dev issuer's
    /// key and the keys of every unchanged issuer.
    pub fn build(
        settings: Settings,
        previous: Option<&App>,
        metrics: Arc<Metrics>,
    ) -> Result<App, String> {
        let kept_dev = previous
            .and_then(|p| p.dev.as_ref())
            .filter(|d| Some(d.settings()) == settings.dev_issuer.as_ref())
            .cloned();
        let dev = match (&settings.dev_issuer, kept_dev) {
            (Some(_), Some(kept)) => Some(kept),
            (Some(d), None) => Some(Arc::new(DevIssuer::new(d)?)),
            (None, _) => None,
        };
        let upstream = match &settings.upstream {
            Some(u) => Some(Upstream::new(u)?),
            None => None,
        };
        let keys = KeyStore::reusing(
            &settings,
            dev.as_deref().map(DevIssuer::key_set),
            previous.map(|p| &p.keys),
            &metrics,
        );
        let (hits, misses) = metrics.cache_counters();
        Ok(App {
            own: OwnEndpoints {
                cors: settings.cors.is_some(),
                dev_issuer: dev.is_some(),
                resource_metadata_path: settings.resource.as_ref().map(|r| r.metadata_path.clone()),
            },
            headers: HeaderPolicy::new(&settings.forward, &settings.trusted_proxies),
            cache: TokenCache::with_counters(&settings.cache, settings.generation, hits, misses),
            settings: Arc::new(settings),
            keys,
            dev,
            upstream,
            metrics,
        })
    }

    /// Starts fetching keys in the background (for issuers that are not fetching yet).
    pub fn start(&self) {
        if let Some(dev) = &self.dev {
            warn!(
                issuer = %dev.issuer(),
                "DEV ISSUER ON: POST /_dev/token mints valid tokens for anyone who asks; never run this configuration in production"
            );
        }
        self.keys.start();
    }

    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The verified-token cache (for metrics and tests).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        self.handle_with(request, peer, "http", None).await
    }

    /// Handles one request; `proto` is how it arrived (`http` or `https`); `affinity` is the
    /// upstream connection its client connection keeps, if it keeps one.
    pub async fn handle_with(
        &self,
        request: Request<Incoming>,
        peer: SocketAddr,
        proto: &'static str,
        affinity: Option<&Affinity>,
    ) -> Response<Body> {
        let started = Instant::now();
        self.metrics.in_flight.inc();
        let method = request.method().clone();
        let raw_path = request.uri().path().to_owned();
        // CORS decorates the response from the request's Origin alone: keep just that, not a
        // copy of every header.
        let cors_headers = self.settings.cors.as_ref().map(|_| {
            let mut origin = HeaderMap::new();
            if let Some(v) = request.headers().get(http::header::ORIGIN) {
                origin.insert(http::header::ORIGIN, v.clone());
            }
            origin
        });
        let preflight = cors::is_preflight(&method, request.headers());
        let request_id = self.request_id(request.headers(), &peer);

        let bytes_in = Arc::new(AtomicU64::new(0));
        let body_read_timeout = self.settings.limits.body_read_timeout;
        let mut request = request.map(|body| {
            let body = ReadTimeout::new(body.map_err(box_error), body_read_timeout);
            Metered::new(body, bytes_in.clone(), None).boxed()
        });
        request
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());

        let (mut response, outcome) = match self.pipeline(request, peer, proto, affinity).await {
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
        response
            .headers_mut()
            .insert(X_REQUEST_ID.clone(), request_id.clone());

        let latency = started.elapsed();
        let status = response.status().as_u16();
        self.metrics.record_request(
            &RequestLabels {
                route: outcome.route.clone().unwrap_or_else(|| "-".into()),
                method: method_class(&method),
                status,
                reason: outcome.reason,
            },
            latency,
            outcome.upstream_latency,
        );
        let record = AccessRecord {
            request_id: request_id.to_str().unwrap_or("-").to_owned(),
            method,
            path: outcome.path.unwrap_or(raw_path),
            status,
            reason: outcome.reason,
            route: outcome.route,
            issuer: outcome.issuer,
            sub: outcome.sub,
            peer,
            started,
            latency,
            upstream_latency: outcome.upstream_latency,
        };
        // The line is written, and the request stops counting as in flight, when the body
        // has been sent (or the client went away).
        let metrics = self.metrics.clone();
        let on_end = Box::new(move |bytes_out: u64| {
            metrics.in_flight.dec();
            record.write(bytes_in.load(Ordering::Relaxed), bytes_out);
        });
        response.map(|body| Metered::new(body, Arc::new(AtomicU64::new(0)), Some(on_end)).boxed())
    }

    /// `X-Request-Id` from a trusted proxy is kept; otherwise tokengate makes one.
    fn request_id(&self, headers: &HeaderMap, peer: &SocketAddr) -> HeaderValue {
        if self.headers.is_trusted(peer) {
            if let Some(v) = headers.get(&X_REQUEST_ID) {
                let sane = v.len() <= 128 && v.as_bytes().iter().all(|b| b.is_ascii_graphic());
                if sane && !v.is_empty() {
                    return v.clone();
                }
            }
        }
        // 32 hex digits of randomness, written without the formatting machinery.
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let random = fastrand::u128(..);
        let mut id = [0u8; 32];
        for (i, digit) in id.iter_mut().enumerate() {
            *digit = HEX[((random >> (4 * (31 - i))) & 0xf) as usize];
        }
        HeaderValue::from_bytes(&id).unwrap_or(HeaderValue::from_static("-"))
    }

    async fn pipeline(
        &self,
        request: Request<Body>,
        peer: SocketAddr,
        proto: &'static str,
        affinity: Option<&Affinity>,
    ) -> Handled {
        // 1 route: one canonical path for matching and forwarding.
        let canonical = route::canonicalize(request.uri().path(), self.settings.paths)
            .map_err(|e| (Rejection::BadPath(e), Outcome::default()))?;
        if !host_is_unambiguous(&request) {
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
        // What the log says from here on: the canonical path and the rule that decided.
        let context = Outcome {
            path: Some(canonical.path.clone()),
            route: matched.map(|r| r.name.clone()),
            ..Outcome::default()
        };

        // 2 token, 3 authn (as the rule asks)
        let principal = self
            .authenticate(rule.auth, request.headers(), request.uri().query())
            .await
            .map_err(|r| (r, context.clone()))?;
        // 4 authz
        let permit = authz::authorize(rule, principal.clone()).map_err(|r| {
            let who = Outcome::of(&Permit { principal }, "").within(&context);
            (r, who)
        })?;
        let outcome = Outcome {
            path: context.path,
            route: context.route,
            ..Outcome::of(&permit, "ok")
        };

        // 5 mutate + 6 dispatch
        match (builtin, &self.upstream) {
            (Some(builtin), _) => match permit.token() {
                Some(token) => Ok((builtin.respond(token), outcome)),
                // The quickstart routes echo a verified token: without one there is nothing to show.
                None => Err((Rejection::MissingToken, outcome)),
            },
            (None, Some(upstream)) => {
                let client = Client {
                    peer,
                    proto,
                    affinity,
                };
                self.forward(upstream, request, &client, &canonical, &permit, outcome)
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
        mut request: Request<Body>,
        client: &Client<'_>,
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
            .strip_request(request.headers_mut(), &client.peer, wants_upgrade);
        self.headers.inject(
            request.headers_mut(),
            &origin,
            &client.peer,
            client.proto,
            permit,
        );
        match upstream
            .forward(
                request,
                &canonical.path,
                query.as_deref(),
                client_upgrade,
                client.affinity,
            )
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

    async fn own_endpoint(&self, endpoint: OwnEndpoint, request: Request<Body>) -> Handled {
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

    /// `/readyz`: 200 once every issuer has keys, else 503 naming those without.
    pub fn readiness(&self) -> Response<Body> {
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

    async fn dev_token(&self, request: Request<Body>) -> Result<Response<Body>, Rejection> {
        let Some(dev) = &self.dev else {
            return Err(Rejection::NotFound);
        };
        let form = read_limited(request.into_body(), MAX_FORM_BYTES).await?;
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

/// Reads a small body whole, refusing one larger than `limit`.
async fn read_limited(mut body: Body, limit: usize) -> Result<Vec<u8>, Rejection> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            Rejection::BadDevTokenRequest(BadTokenRequest("the request body could not be read"))
        })?;
        if let Some(data) = frame.data_ref() {
            if out.len() + data.len() > limit {
                return Err(Rejection::BodyTooLarge);
            }
            out.extend_from_slice(data);
        }
    }
    Ok(out)
}

fn box_error(e: hyper::Error) -> BoxError {
    Box::new(e)
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

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`; and an absolute-form target
/// (or HTTP/2 `:authority`) must name the same host as `Host`, so tokengate and the upstream
/// cannot disagree about which site was asked for.
fn host_is_unambiguous<B>(request: &Request<B>) -> bool {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return false;
    }
    match (request.uri().authority(), host) {
        (Some(authority), Some(host)) => host
            .to_str()
            .is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str())),
        (None, None) => request.version() != http::Version::HTTP_11,
        _ => true,
    }
}
