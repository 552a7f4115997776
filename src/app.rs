//! `App::handle`: the request pipeline, stage by stage. Only this module knows the order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;
use tracing::warn;

use crate::access::AccessRecord;
use crate::authn::cache::TokenCache;
use crate::authn::{self, AuthnError, Principal};
use crate::authz::{self, Permit};
use crate::body::{Body, BoxError, Metered};
use crate::builtin::{json_response, Builtin};
use crate::config::{Cors, Settings};
use crate::cors;
use crate::dev::{self, BadTokenRequest, DevIssuer};
use crate::forward::{Affinity, Upstream};
use crate::jwks::KeyStore;
use crate::metrics::{method_class, Metrics, RequestLabels};
use crate::mutate::{HeaderPolicy, TrailerFilter, TrailerRules};
use crate::rejection::Rejection;
use crate::route::{self, AuthMode, CanonicalPath, OwnEndpoint, OwnEndpoints, Rule};
use crate::stall::ReadTimeout;
use crate::token::{self, Extracted};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The largest `/_dev/token` form we read.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// What a 405 to `CONNECT` lists: every method tokengate forwards.
const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Everything a request needs, shared by all connections.
pub struct App {
    settings: Arc<Settings>,
    own: OwnEndpoints,
    keys: KeyStore,
    dev: Option<Arc<DevIssuer>>,
    upstream: Option<Upstream>,
    headers: Arc<HeaderPolicy>,
    /// The rule a preflight handed to the upstream (`cors: { mode: upstream }`) runs under.
    preflight_rule: Arc<Rule>,
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
    /// The response must carry no CORS headers whatever `cors:` says (the dev issuer).
    no_cors: bool,
}

impl Outcome {
    /// This outcome with the path and route of `context`.
    fn within(mut self, context: &Outcome) -> Outcome {
        self.path.clone_from(&context.path);
        self.route.clone_from(&context.route);
        self
    }

    fn of(principal: &Principal, reason: &'static str) -> Outcome {
        let token = match principal {
            Principal::Authenticated(token) => Some(token),
            Principal::Anonymous => None,
        };
        Outcome {
            reason,
            issuer: token.map(|t| t.issuer.clone()),
            sub: token.and_then(|t| t.subject().map(str::to_owned)),
            ..Outcome::default()
        }
    }
}

type Handled = Result<(Response<Body>, Outcome), (Rejection, Outcome)>;

/// The client connection a request came on, and the id tokengate gave the request.
struct Client<'a> {
    peer: SocketAddr,
    proto: &'static str,
    affinity: Option<&'a Affinity>,
    request_id: HeaderValue,
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
            Some(u) => Some(Upstream::new(u, settings.limits.idle_timeout)?),
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
                cors: settings.cors.policy().is_some(),
                dev_issuer: dev.is_some(),
                resource_metadata_path: settings.resource.as_ref().map(|r| r.metadata_path.clone()),
            },
            headers: Arc::new(HeaderPolicy::new(
                &settings.forward,
                &settings.trusted_proxies,
            )),
            preflight_rule: Arc::new(Rule {
                auth: AuthMode::None,
                ..Rule::required()
            }),
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
                issuer = %crate::logsafe::Escaped(dev.issuer()),
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
        let mut request = request;
        authority_as_host(&mut request);
        let method = request.method().clone();
        let raw_path = request.uri().path().to_owned();
        // CORS decorates the response from the request's Origin alone: keep just that, not a
        // copy of every header.
        let cors_policy = self.settings.cors.policy();
        let cors_headers = cors_policy.map(|_| {
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
        let request = request.map(|body| {
            let body = ReadTimeout::new(body.map_err(box_error), body_read_timeout);
            Metered::new(body, bytes_in.clone(), None).boxed()
        });
        let client = Client {
            peer,
            proto,
            affinity,
            request_id: request_id.clone(),
        };

        let (mut response, outcome) = match self.pipeline(request, &client).await {
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
        if outcome.no_cors {
            cors::strip(response.headers_mut());
        } else if let (Some(cors), Some(request_headers), false) =
            (cors_policy, &cors_headers, preflight)
        {
            // (A preflight was answered by tokengate's policy already.)
            cors::decorate(cors, request_headers, &mut response);
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

    async fn pipeline(&self, mut request: Request<Body>, client: &Client<'_>) -> Handled {
        // Methods are case-sensitive (RFC 9110 §9.1), but Django, Flask and Symfony upper-case
        // them: a `post` that no `POST` rule matched would run as POST there. Refused, as
        // nginx does.
        if !request
            .method()
            .as_str()
            .bytes()
            .all(|b| !b.is_ascii_lowercase())
        {
            return Err((Rejection::MethodNotUpperCase, Outcome::default()));
        }
        // A tunnel is never opened: tokengate forwards requests, not connections.
        if request.method() == Method::CONNECT {
            return Err((
                Rejection::MethodNotAllowed {
                    allow: FORWARDED_METHODS,
                },
                Outcome::default(),
            ));
        }
        // 1 route: one canonical path for matching and forwarding.
        let canonical = route::canonicalize(request.uri().path(), self.settings.paths)
            .map_err(|e| (Rejection::BadPath(e), Outcome::default()))?;
        if !host_is_unambiguous(&request) {
            return Err((Rejection::AmbiguousHost, Outcome::default()));
        }
        if let Some((endpoint, allowed)) = self.own.route(
            request.method(),
            &canonical.path,
            cors::is_preflight(request.method(), request.headers()),
        ) {
            let context = Outcome {
                no_cors: endpoint == OwnEndpoint::DevToken,
                ..Outcome::default()
            };
            allowed.map_err(|wrong| (Rejection::from(wrong), context.clone()))?;
            return match self.own_endpoint(endpoint, request).await {
                Ok((response, reason)) => Ok((response, Outcome { reason, ..context })),
                Err(rejection) => Err((rejection, context)),
            };
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
        let (matched, mut rule) = self
            .settings
            .rules
            .match_request(request.method(), &canonical);
        // `cors: { mode: upstream }`: the upstream answers preflights, and a browser sends
        // them without credentials, so they go without a token (and without one forwarded).
        // (HTTP/2 needs no Content-Length or Transfer-Encoding to carry a body: the stream's
        // own end is what says there is none.)
        let upstream_preflight = matches!(self.settings.cors, Cors::Upstream)
            && cors::is_well_formed_preflight(request.method(), request.headers())
            && request.body().is_end_stream();
        if upstream_preflight {
            rule = &self.preflight_rule;
            request.headers_mut().remove(http::header::AUTHORIZATION);
        }
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
        let permit = authz::authorize(rule, principal.clone()).map_err(|denied| {
            let who = Outcome::of(&principal, "").within(&context);
            (Rejection::from(denied), who)
        })?;
        let outcome = Outcome {
            path: context.path,
            route: context.route,
            ..Outcome::of(&permit.principal, "ok")
        };

        // 5 mutate + 6 dispatch
        match (builtin, &self.upstream) {
            (Some(builtin), _) => match permit.token() {
                Some(token) => Ok((builtin.respond(token), outcome)),
                // The quickstart routes echo a verified token: without one there is nothing to show.
                None => Err((Rejection::MissingToken, outcome)),
            },
            (None, Some(upstream)) => {
                self.forward(upstream, request, client, &canonical, &permit, outcome)
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
            // A credential in the URL: refused even where anonymous callers are welcome, so it
            // never travels on to the upstream (and its logs) as part of the target.
            Extracted::QueryParameter => return Err(Rejection::TokenInQuery),
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
        let websocket = is_websocket_handshake(&request);
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let query = request.uri().query().map(str::to_owned);
        let origin = self
            .headers
            .strip_request(request.headers_mut(), &client.peer, websocket);
        self.headers.inject(
            request.headers_mut(),
            &origin,
            &client.peer,
            client.proto,
            permit,
            &client.request_id,
        );
        // A body may end in a trailer section: it goes through the same rules as the headers.
        let request = if request.body().is_end_stream() {
            request
        } else {
            let rules = TrailerRules::Request(self.headers.clone());
            request.map(|body| TrailerFilter::new(body, rules).boxed())
        };
        match upstream
            .forward(
                request,
                permit,
                canonical,
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
                warn!(
                    request_id = client.request_id.to_str().unwrap_or("-"),
                    error = %crate::logsafe::Escaped(&e),
                    detail = ?e,
                    "upstream request failed"
                );
                Err((Rejection::Upstream(e), outcome))
            }
        }
    }

    /// Answers one of tokengate's own endpoints; `Ok` carries the access log's reason.
    async fn own_endpoint(
        &self,
        endpoint: OwnEndpoint,
        request: Request<Body>,
    ) -> Result<(Response<Body>, &'static str), Rejection> {
        match endpoint {
            OwnEndpoint::Preflight => match self.settings.cors.policy() {
                Some(cors) => Ok((cors::preflight(cors, request.headers()), "preflight")),
                None => Err(Rejection::NotFound),
            },
            OwnEndpoint::Health => Ok((
                json_response(StatusCode::OK, &json!({"status": "ok"})),
                "health",
            )),
            OwnEndpoint::Ready => Ok((self.readiness(), "ready")),
            OwnEndpoint::DevToken => self.dev_token(request).await.map(|r| (r, "dev_token")),
            OwnEndpoint::ResourceMetadata => match &self.settings.resource {
                Some(r) => {
                    let doc = json!({
                        "resource": r.id,
                        "authorization_servers": r.authorization_servers,
                        "scopes_supported": r.scopes_supported,
                        "bearer_methods_supported": ["header"],
                    });
                    Ok((json_response(StatusCode::OK, &doc), "resource_metadata"))
                }
                None => Err(Rejection::NotFound),
            },
        }
    }

    /// `/readyz`: 200 once every issuer has keys, else 503 naming those without. Either way,
    /// `skipped_keys` lists the keys the last load of each issuer skipped, with the reason
    /// code and detail (`[{issuer, kid, reason, detail}]`), when there are any.
    pub fn readiness(&self) -> Response<Body> {
        let missing = self.keys.issuers_without_keys();
        let skipped: Vec<serde_json::Value> = self
            .keys
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

    async fn dev_token(&self, request: Request<Body>) -> Result<Response<Body>, Rejection> {
        let Some(dev) = &self.dev else {
            return Err(Rejection::NotFound);
        };
        dev::admits_local_caller(request.headers()).map_err(Rejection::DevTokenForbidden)?;
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

/// RFC 6455 §4.1: an HTTP/1.1 `GET` with `Connection: upgrade`, `Upgrade: websocket`, one
/// `Sec-WebSocket-Key` and a `Sec-WebSocket-Version`. Only such a request is forwarded as an
/// upgrade; every other `Upgrade` (`h2c` above all, which would let the client speak HTTP/2
/// straight to the upstream past every route rule) is removed and the request handled as an
/// ordinary one, as RFC 9110 §7.8 allows.
fn is_websocket_handshake<B>(request: &Request<B>) -> bool {
    let headers = request.headers();
    let tokens = |name: &http::HeaderName| -> Vec<String> {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().to_ascii_lowercase())
            .filter(|t| !t.is_empty())
            .collect()
    };
    request.version() == http::Version::HTTP_11
        && request.method() == Method::GET
        && tokens(&http::header::CONNECTION)
            .iter()
            .any(|t| t == "upgrade")
        && tokens(&http::header::UPGRADE) == ["websocket"]
        && headers
            .get_all(http::header::SEC_WEBSOCKET_KEY)
            .iter()
            .count()
            == 1
        && headers.contains_key(http::header::SEC_WEBSOCKET_VERSION)
}

/// RFC 9113 §8.3.1: an HTTP/2 request names its host in `:authority`, which hyper keeps in
/// the URI. Writing it as `Host` (when the client sent none) makes the rest of the pipeline
/// see one request shape whatever the client's HTTP version: `X-Forwarded-Host`,
/// `preserve_host` and the dev issuer's host check read `Host`.
fn authority_as_host<B>(request: &mut Request<B>) {
    if request.version() != http::Version::HTTP_2
        || request.headers().contains_key(http::header::HOST)
    {
        return;
    }
    let authority = request
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(host) = authority {
        request.headers_mut().insert(http::header::HOST, host);
    }
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
        // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused, absolute-form or not.
        (_, None) => request.version() != http::Version::HTTP_11,
        (None, Some(_)) => true,
    }
}
