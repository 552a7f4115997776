//! tokengate: an authenticating reverse proxy for OAuth 2.0 / OIDC access tokens.
//!
//! Every request goes through [`app::App::handle_with`], which runs the stages in order
//! (`ARCHITECTURE.md` has the whole picture):
//!
//! 1. [`route`]: the canonical path (400 if ambiguous); then tokengate's own `endpoints`,
//!    or the first matching rule (or the default)
//! 2. [`token`]: the bearer token from `Authorization` (RFC 6750 §2.1; 400 if malformed);
//!    `client_cert`: the client certificate (TLS handshake, else a trusted proxy's header)
//!    a certificate-bound token is checked against (RFC 8705 §3)
//! 3. [`authn`]: the JWT verified against its issuer's keys ([`jwks`]) → a principal
//!    (401 `invalid_token`, 503 while an issuer has no keys)
//! 4. [`authz`]: the rule's scopes and claims → a permit (403)
//! 5. [`mutate`]: strip identity, hop-by-hop and untrusted forwarding headers, then inject
//! 6. dispatch: `forward` to the upstream, or the quickstart routes (`builtin`)
//!
//! Any failure is a `rejection::Rejection`, turned into a response in one place. With
//! `forward_auth:`, a request to the decision path is a question from an ingress:
//! `forward_auth` rebuilds the request it asks about, stages 1 to 4 run on it, and the
//! answer is the decision (`App::decide`), never a forwarded request.
#![forbid(unsafe_code)]

// Public: what the binary (`main.rs`), the integration tests, the benches and the fuzz
// targets use. Serving, the pipeline and its plumbing are private.

pub mod access;
pub mod algorithm;
mod app;
pub mod authn;
pub mod authz;
mod body;
mod builtin;
pub mod claims;
mod client_cert;
pub mod config;
mod cors;
mod dev;
mod drain;
mod endpoints;
pub mod fdlimit;
mod forward;
mod forward_auth;
mod gateway;
mod header_name;
pub mod inspect;
pub mod json_log;
pub mod jwk;
pub mod jwks;
pub mod logsafe;
mod metrics;
pub mod mutate;
mod rejection;
pub mod route;
mod server;
mod sse;
mod stall;
mod tls;
pub mod token;

pub use app::App;
pub use gateway::Gateway;
pub use server::{run, run_admin};
