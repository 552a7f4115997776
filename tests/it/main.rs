//! Integration tests: everything in-process on 127.0.0.1:0 with real keys, a real issuer,
//! real HTTP clients. One binary, so the crate links once.

mod support;

mod attacks;
mod binary;
mod browser;
mod bypass;
mod cache;
mod config;
mod cors;
mod deploy;
mod dpop;
mod extraction;
mod forward_auth;
mod forwarding;
mod hmac;
mod hostile;
mod ingress;
mod introspection;
mod keys;
mod keysets;
mod mcp;
mod mtls;
mod operations;
mod properties;
mod quickstart;
mod readme;
mod redteam;
mod reload;
mod routes;
mod streaming;
mod verification;
mod wycheproof;
