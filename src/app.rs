//! `App::handle`: the request pipeline, stage by stage. Only this function knows the order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;
use tracing::{info, warn};

use crate::authn::{self, AuthnError, Principal};
use crate::body::Body;
use crate::builtin::json_response;
use crate::config::Settings;
use crate::cors;
use crate::dev::DevIssuer;
use crate::jwks::KeyStore;
use crate::rejection::Rejection;
use crate::route::{Route, RouteTable};
use crate::token::{self, Extracted};

/// The largest `/_dev/token` form we read.
const MAX_FORM_BYTES: usize = 16 * 1024;

/// Everything a request needs, shared by all connections.
pub struct App {
    settings: Arc<Settings>,
    routes: RouteTable,
    keys: KeyStore,
    dev: Option<DevIssuer>,
}

/// What the access log says about a request beyond method, path and status.
#[derive(Default)]
struct Outcome {
    reason: &'static str,
    issuer: Option<String>,
    sub: Option<String>,
}

impl App {
    /// Builds the app (the dev issuer's key included). Call [`App::start`] in a runtime.
    pub fn new(settings: Settings) -> Result<App, String> {
        let dev = match &settings.dev_issuer {
            Some(d) => Some(DevIssuer::new(d)?),
            None => None,
        };
        let keys = KeyStore::new(&settings, dev.as_ref().map(DevIssuer::key_set));
        Ok(App {
            routes: RouteTable {
                cors: settings.cors.is_some(),
                dev_issuer: dev.is_some(),
            },
            settings: Arc::new(settings),
            keys,
            dev,
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

    pub async fn handle(&self, request: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
        let started = Instant::now();
        let method = request.method().clone();
        let path = request.uri().path().to_owned();
        let request_headers = request.headers().clone();

        let (mut response, outcome) = match self.pipeline(request).await {
            Ok(done) => done,
            Err((rejection, outcome)) => {
                let outcome = Outcome {
                    reason: rejection.reason(),
                    ..outcome
                };
                (rejection.into_response(), outcome)
            }
        };
        if let Some(cors) = &self.settings.cors {
            if response.status() != StatusCode::NO_CONTENT || method != Method::OPTIONS {
                cors::decorate(cors, &request_headers, &mut response);
            }
        }
        info!(
            target: "tokengate::access",
            %method,
            path = %path,
            status = response.status().as_u16(),
            reason = outcome.reason,
            issuer = outcome.issuer.as_deref().unwrap_or("-"),
            sub = outcome.sub.as_deref().unwrap_or("-"),
            peer = %peer,
            latency_us = started.elapsed().as_micros() as u64,
            "request"
        );
        response
    }

    async fn pipeline(
        &self,
        request: Request<Incoming>,
    ) -> Result<(Response<Body>, Outcome), (Rejection, Outcome)> {
        let plain = |reason| Outcome {
            reason,
            ..Outcome::default()
        };
        // 1 route
        let route = self
            .routes
            .route(request.method(), request.uri().path(), request.headers())
            .map_err(|r| (r, Outcome::default()))?;
        match route {
            Route::Preflight => {
                let response = match &self.settings.cors {
                    Some(cors) => cors::preflight(cors, request.headers()),
                    None => return Err((Rejection::NotFound, Outcome::default())),
                };
                return Ok((response, plain("preflight")));
            }
            Route::Health => {
                return Ok((
                    json_response(StatusCode::OK, &json!({"status": "ok"})),
                    plain("health"),
                ))
            }
            Route::Ready => return Ok((self.readiness(), plain("ready"))),
            Route::DevToken => {
                return self
                    .dev_token(request)
                    .await
                    .map(|r| (r, plain("dev_token")))
                    .map_err(|r| (r, Outcome::default()))
            }
            Route::Builtin(_) => {}
        }

        // 2 token, 3 authn
        let principal = self
            .authenticate(request.headers(), request.uri().query())
            .await
            .map_err(|r| (r, Outcome::default()))?;
        let Principal::Authenticated(token) = principal else {
            return Err((Rejection::MissingToken, Outcome::default()));
        };
        let outcome = Outcome {
            reason: "ok",
            issuer: Some(token.issuer.clone()),
            sub: token.subject().map(str::to_owned),
        };
        // 6 dispatch
        match route {
            Route::Builtin(builtin) => Ok((builtin.respond(&token), outcome)),
            _ => Err((Rejection::NotFound, outcome)),
        }
    }

    /// Stages 2 and 3: extract and verify the bearer token.
    async fn authenticate(
        &self,
        headers: &HeaderMap,
        query: Option<&str>,
    ) -> Result<Principal, Rejection> {
        let token = match token::extract(headers, query).map_err(Rejection::InvalidRequest)? {
            Extracted::None => return Err(Rejection::MissingToken),
            Extracted::Bearer(token) => token,
        };
        match authn::verify(token, &self.settings, &self.keys).await {
            Ok(verified) => Ok(Principal::Authenticated(Arc::new(verified))),
            Err(AuthnError::Invalid(e)) => Err(Rejection::InvalidToken(e)),
            Err(AuthnError::KeysUnavailable { issuer }) => {
                Err(Rejection::KeysUnavailable { issuer })
            }
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
                    Rejection::BadDevTokenRequest(crate::dev::BadTokenRequest(
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
