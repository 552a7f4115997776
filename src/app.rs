//! [`App::handle_with`]: the request pipeline, stage by stage. Only this module knows the
//! order; `App::pipeline` reads as one line per stage, each failing with a [`Rejection`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tracing::warn;

use crate::access::AccessRecord;
use crate::authn::cache::TokenCache;
use crate::authn::{self, Authenticated, CertificateThumbprint, Presentation, Principal};
use crate::authn::{dpop::TargetUri, Introspector, ProofChecker};
use crate::authz::{self, Permit};
use crate::body::{Body, BoxError, Metered};
use crate::builtin::Builtin;
use crate::client_cert;
use crate::config::{Cors, ForwardAuthSettings, Settings};
use crate::cors;
use crate::dev::DevIssuer;
use crate::drain::Drain;
use crate::endpoints::{self, Endpoints};
use crate::forward::{Affinity, Upstream};
use crate::forward_auth::{self, OriginalRequest};
use crate::jwks::KeyStore;
use crate::metrics::{method_class, Metrics, RequestLabels};
use crate::mutate::{HeaderPolicy, TrailerFilter, TrailerRules};
use crate::rejection::{Challenges, Rejection, DPOP_NONCE};
use crate::route::{self, AuthMode, CanonicalPath, Rule};
use crate::sse::{self, EndOnDrain};
use crate::stall::ReadTimeout;
use crate::token::{self, Extracted, ProofHeader, Scheme};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// What a 405 to `CONNECT` lists: every method tokengate forwards.
const FORWARDED_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS";

/// Everything a request needs, shared by all connections.
pub struct App {
    settings: Arc<Settings>,
    endpoints: Endpoints,
    keys: KeyStore,
    dev: Option<Arc<DevIssuer>>,
    upstream: Option<Upstream>,
    headers: Arc<HeaderPolicy>,
    /// The rule a preflight handed to the upstream (`cors: { mode: upstream }`) runs under.
    preflight_rule: Arc<Rule>,
    cache: TokenCache,
    /// RFC 7662 introspection: per introspecting issuer, its client and answer cache.
    introspector: Introspector,
    /// DPoP proofs (RFC 9449): nonces and the replay store (kept across reloads).
    proofs: ProofChecker,
    /// `algs="..."` of the DPoP challenge.
    dpop_algs: String,
    metrics: Arc<Metrics>,
    /// Raised when the server stops accepting; shared with every `App` a reload builds.
    drain: Drain,
}

/// What the access log says about a request beyond method, path and status; each stage
/// fills in what it learns, so a rejection is logged with everything known by then.
#[derive(Default)]
struct Outcome {
    reason: &'static str,
    path: Option<String>,
    route: Option<String>,
    issuer: Option<String>,
    sub: Option<String>,
    upstream_latency: Option<Duration>,
    /// The response must carry no CORS headers whatever `cors:` says (the dev issuer).
    no_cors: bool,
    /// The scheme the request's token came with.
    scheme: Option<Scheme>,
    /// A fresh DPoP nonce for the response (RFC 9449 §8.2).
    dpop_nonce: Option<String>,
    /// The rule that decides the request, once matched (its DPoP mode and protected
    /// resource shape the challenges).
    rule: Option<Arc<Rule>>,
}

impl Outcome {
    /// Who is calling, once the token is verified.
    fn identify(&mut self, principal: &Principal) {
        if let Principal::Authenticated(token) = principal {
            self.issuer = Some(token.issuer.clone());
            self.sub = token.subject().map(str::to_owned);
        }
    }
}

/// What the server knows of the client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct Connection {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// How the request arrived: `http` or `https`.
    pub proto: &'static str,
    /// The certificate the client presented in tokengate's own TLS handshake (and the TLS
    /// verifier accepted), if any.
    pub client_certificate: Option<CertificateThumbprint>,
}

/// The client connection a request came on, and the id tokengate gave the request.
struct Inbound<'a> {
    peer: SocketAddr,
    proto: &'static str,
    affinity: Option<&'a Affinity>,
    request_id: HeaderValue,
    /// The certificate of tokengate's own TLS handshake with the client, if any (a trusted
    /// proxy's header is read by `client_cert::presented`, which prefers this one).
    connection_certificate: Option<CertificateThumbprint>,
}

/// Where a permitted request goes (stage 6).
enum Dispatch<'a> {
    Upstream(&'a Upstream),
    /// No upstream: one of the quickstart's routes.
    Builtin(Builtin),
}

/// What stages 2 and 3 read of a request (the client's own, or the original request a
/// forward-auth question describes).
struct Credentials<'a> {
    headers: &'a HeaderMap,
    query: Option<&'a str>,
    method: &'a Method,
    canonical: &'a CanonicalPath,
    /// `scheme://host[:port]` the client used, for DPoP's `htu`; `None` when unknown.
    origin: Option<&'a str>,
    client_certificate: Option<&'a CertificateThumbprint>,
}

impl App {
    /// Builds the app for `settings`, keeping from `previous` (a reload) the dev issuer's
    /// key and the keys of every unchanged issuer. Call [`App::start`] in a runtime.
    ///
    /// Errors: the dev issuer's key or the upstream client cannot be built.
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
        let settings = Arc::new(settings);
        Ok(App {
            endpoints: Endpoints::new(settings.clone(), dev.clone()),
            headers: Arc::new(
                HeaderPolicy::new(&settings.forward, &settings.trusted_proxies)
                    .stripping_certificate_header(
                        settings.client_certificate.as_ref().map(|c| &c.header),
                    ),
            ),
            preflight_rule: Arc::new(Rule::public()),
            cache: TokenCache::reusing(&settings, previous.map(|p| &p.cache), hits, misses),
            introspector: Introspector::counting(&settings, &metrics),
            drain: previous.map(|p| p.drain.clone()).unwrap_or_default(),
            proofs: ProofChecker::reusing(
                &settings.dpop,
                previous.map(|p| &p.proofs),
                metrics.dpop_store_errors.clone(),
            )?,
            dpop_algs: settings.dpop.algs(),
            settings,
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

    /// The issuers' keys (for `/readyz`, metrics and reloads).
    pub fn keys(&self) -> &KeyStore {
        &self.keys
    }

    /// The configuration this app was built from.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// The drain signal, raised by the server when it stops accepting: listening event
    /// streams then end at their next event boundary (`sse`).
    pub fn drain(&self) -> &Drain {
        &self.drain
    }

    /// The verified-token cache (for metrics and tests).
    pub fn cache(&self) -> &TokenCache {
        &self.cache
    }

    /// `/readyz` (also served on the admin listener): see `endpoints::readiness`.
    pub fn readiness(&self) -> Response<Body> {
        endpoints::readiness(&self.keys)
    }

    /// Handles one request that came on `connection` (peer, `http` or `https`, the TLS client
    /// certificate); `affinity` is the upstream connection its client connection keeps, if it
    /// keeps one; `done` runs when the response body has been sent or dropped (the
    /// connection's own bookkeeping). Never fails: every `Rejection` becomes its response
    /// here, and every request writes one access log line when its response body ends (the
    /// body is metered once, here).
    pub async fn handle_with(
        &self,
        request: Request<Incoming>,
        connection: &Connection,
        affinity: Option<&Affinity>,
        done: Box<dyn FnOnce() + Send + Sync>,
    ) -> Response<Body> {
        let started = Instant::now();
        let Connection {
            peer,
            proto,
            client_certificate,
        } = *connection;
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
        let inbound = Inbound {
            peer,
            proto,
            affinity,
            request_id: request_id.clone(),
            connection_certificate: client_certificate,
        };

        let mut outcome = Outcome::default();
        let mut response = match self
            .pipeline(request, &inbound, preflight, &mut outcome)
            .await
        {
            Ok(response) => response,
            Err(rejection) => {
                outcome.reason = rejection.reason();
                let (resource_metadata, scope) = self.resource_challenge(outcome.rule.as_deref());
                // Before any rule is matched, the default mode (DPoP allowed) says which
                // schemes a challenge names.
                let dpop = outcome.rule.as_ref().map(|r| r.dpop).unwrap_or_default();
                let challenges = Challenges {
                    bearer: dpop.accepts_bearer(),
                    dpop_algs: dpop.accepts_dpop().then_some(self.dpop_algs.as_str()),
                    used: outcome.scheme,
                    resource_metadata,
                    scope: scope.as_deref(),
                };
                rejection.into_response(&challenges)
            }
        };
        if let Some(nonce) = outcome
            .dpop_nonce
            .as_deref()
            .and_then(|n| HeaderValue::from_str(n).ok())
        {
            // A nonce is for one client: no shared cache may hand it to another.
            let headers = response.headers_mut();
            headers.insert(DPOP_NONCE.clone(), nonce);
            headers.insert(
                http::header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            );
        }
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
            done();
        });
        response.map(|body| Metered::new(body, Arc::new(AtomicU64::new(0)), Some(on_end)).boxed())
    }

    /// What the rule's protected resource adds to its challenges: the metadata URL, and the
    /// scopes the rule names (RFC 9728 §5.1, RFC 6750 §3); nothing outside any resource.
    fn resource_challenge(&self, rule: Option<&Rule>) -> (Option<&str>, Option<String>) {
        let Some((rule, resource)) = rule.and_then(|rule| {
            let index = rule.resource.as_ref()?.index;
            Some((rule, self.settings.resources.get(index)?))
        }) else {
            return (None, None);
        };
        let scopes = rule.scopes_needed();
        (
            Some(resource.metadata_url.as_str()),
            (!scopes.is_empty()).then(|| scopes.join(" ")),
        )
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

    /// The stages, in order; each one's failure is a [`Rejection`] and ends the request.
    /// `preflight` says the request is a CORS preflight (`cors::is_preflight`).
    async fn pipeline(
        &self,
        mut request: Request<Body>,
        inbound: &Inbound<'_>,
        preflight: bool,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Rejection> {
        method_is_forwardable(request.method())?;
        // 1 route: one canonical path for matching and forwarding.
        let canonical = route::canonicalize(request.uri().path(), self.settings.paths)?;
        host_is_unambiguous(&request)?;
        if let Some(settings) = &self.settings.forward_auth {
            if forward_auth::is_decision(
                settings,
                request.uri().path(),
                &canonical,
                self.settings.paths,
            )? {
                // A decision for an ingress, never forwarded; CORS is the ingress's business.
                outcome.no_cors = true;
                return self.decide(settings, request, inbound, outcome).await;
            }
        }
        if let Some((endpoint, allowed)) =
            self.endpoints
                .route(request.method(), &canonical.path, preflight)
        {
            outcome.no_cors = endpoint.refuses_cors();
            allowed?;
            // Boxed: tokengate's own endpoints are few requests, and their future is large.
            let response = Box::pin(self.endpoints.answer(endpoint, request, &self.keys)).await?;
            outcome.reason = endpoint.reason();
            return Ok(response);
        }
        let dispatch = self.dispatch(&request, &canonical)?;
        let rule = self.rule(&mut request, &canonical, outcome);
        // An MCP resource's routes keep the client's token from the server by default.
        let strip_authorization = rule
            .resource
            .as_ref()
            .is_some_and(|r| r.strip_authorization);
        // 2 token, 3 authn (as the rule asks)
        // DPoP's htu: the configured origin, else the one a trusted proxy reports (looked
        // for only when there is a proof to check it against).
        let reported_origin = match &self.settings.dpop.external_url {
            None if request.headers().contains_key(&token::DPOP) => self
                .headers
                .reported_origin(request.headers(), &inbound.peer),
            _ => None,
        };
        // The certificate the client presented (its TLS handshake's, or a trusted proxy's
        // header).
        let client_certificate = self.client_certificate(request.headers(), inbound)?;
        let credentials = Credentials {
            headers: request.headers(),
            query: request.uri().query(),
            method: request.method(),
            canonical: &canonical,
            origin: self
                .settings
                .dpop
                .external_url
                .as_deref()
                .or(reported_origin.as_deref()),
            client_certificate: client_certificate.as_ref(),
        };
        let principal = self.authenticate(rule, &credentials, outcome).await?;
        outcome.identify(&principal);
        // 4 authz
        let permit = authz::authorize(rule, principal)?;
        outcome.reason = "ok";
        // 5 mutate + 6 dispatch
        match dispatch {
            Dispatch::Upstream(upstream) => {
                if strip_authorization {
                    request.headers_mut().remove(http::header::AUTHORIZATION);
                }
                self.forward(upstream, request, inbound, &canonical, &permit, outcome)
                    .await
            }
            // The quickstart routes echo a verified token: without one there is nothing to show.
            Dispatch::Builtin(builtin) => match permit.token() {
                Some(token) => Ok(builtin.respond(token)),
                None => Err(Rejection::MissingToken),
            },
        }
    }

    /// Forward-auth: the decision on the request an ingress asks about. The original
    /// request is rebuilt from the ingress's headers (trusted peers only), then the same
    /// stages as [`App::pipeline`] run on it: method, canonical path, rule table, token
    /// (from this request's own `Authorization`, and the original query), verification,
    /// authorization. Allowed: 200 with every identity header ([`forward_auth::allow`]);
    /// refused: the [`Rejection`] the proxy would have answered.
    async fn decide(
        &self,
        settings: &ForwardAuthSettings,
        request: Request<Body>,
        inbound: &Inbound<'_>,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Rejection> {
        let original = forward_auth::original_request(
            settings,
            request.method(),
            request.uri(),
            request.headers(),
            &inbound.peer,
        )
        .inspect_err(|e| {
            warn!(
                request_id = inbound.request_id.to_str().unwrap_or("-"),
                peer = %inbound.peer,
                mode = settings.mode.name(),
                reason = e.reason(),
                error = %e,
                "forward-auth question refused"
            );
        })?;
        let OriginalRequest {
            method,
            path,
            query,
            ..
        } = &original;
        method_is_forwardable(method)?;
        // 1 route, on the rebuilt request
        let canonical = route::canonicalize(path, self.settings.paths)?;
        let rule = self.matched_rule(method, &canonical, outcome);
        // 2 token, 3 authn, on the original request: its method and URL are what a DPoP
        // proof names; the origin is the configured one, else the one the ingress reports.
        let reported_origin = original.origin();
        let client_certificate = self.client_certificate(request.headers(), inbound)?;
        let credentials = Credentials {
            headers: request.headers(),
            query: query.as_deref(),
            method,
            canonical: &canonical,
            origin: self
                .settings
                .dpop
                .external_url
                .as_deref()
                .or(reported_origin.as_deref()),
            client_certificate: client_certificate.as_ref(),
        };
        let principal = self.authenticate(rule, &credentials, outcome).await?;
        outcome.identify(&principal);
        // 4 authz
        let permit = authz::authorize(rule, principal)?;
        outcome.reason = "ok";
        let identity = self.headers.identity_answer(&permit, &inbound.request_id);
        Ok(forward_auth::allow(identity))
    }

    /// The client certificate the request comes with: tokengate's own TLS handshake's, else
    /// the `client_certificate` header of a peer in `trusted_proxies` (see
    /// `client_cert::presented`); a trusted peer's unusable header is a 400.
    fn client_certificate(
        &self,
        headers: &HeaderMap,
        inbound: &Inbound<'_>,
    ) -> Result<Option<CertificateThumbprint>, Rejection> {
        let presented = client_cert::presented(
            inbound.connection_certificate.as_ref(),
            self.settings.client_certificate.as_ref(),
            headers,
            self.headers.is_trusted(&inbound.peer),
        );
        // A trusted proxy sent it: the operator wants to know (the value is never logged).
        Ok(presented.inspect_err(|e| {
            warn!(
                request_id = inbound.request_id.to_str().unwrap_or("-"),
                peer = %inbound.peer,
                reason = e.reason(),
                error = %e,
                "client certificate header from a trusted proxy refused"
            );
        })?)
    }

    /// Where the request would go: the upstream, or (with none) one of the quickstart's
    /// routes, which answer `GET` and `HEAD` only.
    fn dispatch(
        &self,
        request: &Request<Body>,
        canonical: &CanonicalPath,
    ) -> Result<Dispatch<'_>, Rejection> {
        if let Some(upstream) = &self.upstream {
            return Ok(Dispatch::Upstream(upstream));
        }
        let builtin = Builtin::for_path(&canonical.path).ok_or(Rejection::NotFound)?;
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return Err(Rejection::MethodNotAllowed { allow: "GET, HEAD" });
        }
        Ok(Dispatch::Builtin(builtin))
    }

    /// The rule that decides the request, logged under its route's name.
    fn rule(
        &self,
        request: &mut Request<Body>,
        canonical: &CanonicalPath,
        outcome: &mut Outcome,
    ) -> &Rule {
        let rule = self.matched_rule(request.method(), canonical, outcome);
        // `cors: { mode: upstream }`: the upstream answers preflights, and a browser sends
        // them without credentials, so they go without a token (and without one forwarded).
        // (HTTP/2 needs no Content-Length or Transfer-Encoding to carry a body: the stream's
        // own end is what says there is none.)
        let upstream_preflight = matches!(self.settings.cors, Cors::Upstream)
            && cors::is_well_formed_preflight(request.method(), request.headers())
            && request.body().is_end_stream();
        if upstream_preflight {
            request.headers_mut().remove(http::header::AUTHORIZATION);
            return &self.preflight_rule;
        }
        rule
    }

    /// The rule table's answer for `method` on `canonical`, logged under its route's name.
    fn matched_rule(
        &self,
        method: &Method,
        canonical: &CanonicalPath,
        outcome: &mut Outcome,
    ) -> &Rule {
        let (matched, rule) = self.settings.rules.match_request(method, canonical);
        outcome.path = Some(canonical.path.clone());
        outcome.route = matched.map(|r| r.name.clone());
        outcome.rule = Some(rule.clone());
        rule
    }

    /// Stages 2 and 3: extract the access token (and the `access_token` check on the
    /// query), verify it and check its binding (DPoP proof, client certificate), as the
    /// rule's auth and DPoP modes ask.
    async fn authenticate(
        &self,
        rule: &Rule,
        credentials: &Credentials<'_>,
        outcome: &mut Outcome,
    ) -> Result<Principal, Rejection> {
        if rule.auth == AuthMode::None {
            // Not even looked at: a token on a public route never becomes identity.
            return Ok(Principal::Anonymous);
        }
        let token = match token::extract(credentials.headers, credentials.query)? {
            // A route without DPoP does not know the scheme: no token it can use.
            Extracted::Token(t) if t.scheme() == Scheme::Dpop && !rule.dpop.accepts_dpop() => None,
            Extracted::Token(t) => Some(t),
            Extracted::None => None,
            // A credential in the URL: refused even where anonymous callers are welcome, so it
            // never travels on to the upstream (and its logs) as part of the target.
            Extracted::QueryParameter => return Err(Rejection::TokenInQuery),
        };
        let Some(token) = token else {
            return match rule.auth {
                AuthMode::Optional => Ok(Principal::Anonymous),
                _ => Err(Rejection::MissingToken),
            };
        };
        outcome.scheme = Some(token.scheme());
        let proof = token::proof_header(credentials.headers);
        if token.scheme() == Scheme::Bearer
            && rule.dpop.accepts_dpop()
            && proof != ProofHeader::None
        {
            return Err(token::ExtractError::ProofWithBearer.into());
        }
        let presentation = Presentation {
            dpop_mode: rule.dpop,
            proof,
            method: credentials.method,
            target: credentials.origin.map(|origin| TargetUri {
                origin,
                path: &credentials.canonical.path,
                options: self.settings.paths,
            }),
            client_certificate: credentials.client_certificate,
        };
        let Authenticated { token, dpop_nonce } = authn::verify(
            token,
            &presentation,
            &self.settings,
            &self.keys,
            &self.cache,
            &self.introspector,
            &self.proofs,
        )
        .await?;
        outcome.dpop_nonce = dpop_nonce;
        Ok(Principal::Authenticated(token))
    }

    /// Stages 5 and 6 for an upstream: strip, inject, send, stream back.
    async fn forward(
        &self,
        upstream: &Upstream,
        mut request: Request<Body>,
        inbound: &Inbound<'_>,
        canonical: &CanonicalPath,
        permit: &Permit,
        outcome: &mut Outcome,
    ) -> Result<Response<Body>, Rejection> {
        let websocket = is_websocket_handshake(&request);
        let method = request.method().clone();
        let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));
        let query = request.uri().query().map(str::to_owned);
        let origin = self
            .headers
            .strip_request(request.headers_mut(), &inbound.peer, websocket);
        self.headers.inject(
            request.headers_mut(),
            &origin,
            &inbound.peer,
            inbound.proto,
            permit,
            &inbound.request_id,
        );
        // A body may end in a trailer section: it goes through the same rules as the headers.
        let request = if request.body().is_end_stream() {
            request
        } else {
            let rules = TrailerRules::Request(self.headers.clone());
            request.map(|body| TrailerFilter::new(body, rules).boxed())
        };
        let (response, latency) = upstream
            .forward(
                request,
                permit,
                canonical,
                query.as_deref(),
                client_upgrade,
                inbound.affinity,
            )
            .await
            .map_err(|e| {
                warn!(
                    request_id = inbound.request_id.to_str().unwrap_or("-"),
                    error = %crate::logsafe::Escaped(&e),
                    detail = ?e,
                    "upstream request failed"
                );
                Rejection::Upstream(e)
            })?;
        outcome.upstream_latency = Some(latency);
        // A listening event stream never ends by itself: it ends cleanly on drain.
        if sse::is_listening_stream(&method, response.headers()) {
            let drain = self.drain.clone();
            return Ok(response.map(|body| EndOnDrain::new(body, &drain).boxed()));
        }
        Ok(response)
    }
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
fn host_is_unambiguous<B>(request: &Request<B>) -> Result<(), Rejection> {
    let mut hosts = request.headers().get_all(http::header::HOST).iter();
    let host = hosts.next();
    let unambiguous = hosts.next().is_none()
        && match (request.uri().authority(), host) {
            (Some(authority), Some(host)) => host
                .to_str()
                .is_ok_and(|h| h.eq_ignore_ascii_case(authority.as_str())),
            // RFC 9112 §3.2: an HTTP/1.1 request without Host is refused, absolute-form or not.
            (_, None) => request.version() != http::Version::HTTP_11,
            (None, Some(_)) => true,
        };
    match unambiguous {
        true => Ok(()),
        false => Err(Rejection::AmbiguousHost),
    }
}

/// RFC 9110 §9.1: methods are case-sensitive, but Django, Flask and Symfony upper-case them:
/// a `post` that no `POST` rule matched would run as POST there. Refused (400), as nginx
/// does. `CONNECT` is 405: tokengate forwards requests, never opens a tunnel.
fn method_is_forwardable(method: &Method) -> Result<(), Rejection> {
    if method.as_str().bytes().any(|b| b.is_ascii_lowercase()) {
        return Err(Rejection::MethodNotUpperCase);
    }
    if method == Method::CONNECT {
        return Err(Rejection::MethodNotAllowed {
            allow: FORWARDED_METHODS,
        });
    }
    Ok(())
}
