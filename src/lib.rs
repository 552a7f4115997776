//! tokengate: an authenticating reverse proxy for OAuth 2.0 / OIDC access tokens.
//!
//! Every request goes through [`app::App::handle`], which runs the stages in order:
//!
//! 1. [`route`]: method + path → the route that decides what is needed (400/404/405)
//! 2. [`token`]: the bearer token from `Authorization` (RFC 6750 §2.1; 400 if malformed)
//! 3. [`authn`]: the JWT verified against its issuer's keys ([`jwks`]) → a principal
//!    (401 `invalid_token`, 503 while an issuer has no keys)
//! 4. dispatch: the built-in quickstart routes ([`builtin`]) or the dev issuer ([`dev`])
//!
//! Any failure is a [`rejection::Rejection`], turned into a response in one place.
#![forbid(unsafe_code)]

pub mod app;
pub mod authn;
pub mod body;
pub mod builtin;
pub mod claims;
pub mod config;
pub mod cors;
pub mod dev;
pub mod jwk;
pub mod jwks;
pub mod rejection;
pub mod route;
pub mod server;
pub mod token;

pub use app::App;
pub use server::run;
