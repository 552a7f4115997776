//! The access log: one structured line per request, written when its response body ends
//! (so it knows the bytes sent). Never a token, never an `Authorization` value, never the
//! query string.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::info;

/// Everything the line says, gathered as the request goes through the pipeline.
pub struct AccessRecord {
    /// The request's `X-Request-Id`: a trusted proxy's, else the one tokengate made.
    pub request_id: String,
    /// The request method.
    pub method: http::Method,
    /// The canonical path once the rule table was consulted; else the raw one (a request
    /// refused before that, or one of tokengate's own endpoints). Escaped when written.
    pub path: String,
    /// The response status code.
    pub status: u16,
    /// The stable decision code (`ok`, or the refusal's reason).
    pub reason: &'static str,
    /// The matched route's configured name (`-` in the line when none matched).
    pub route: Option<String>,
    /// The issuer that verified the token, when one was verified.
    pub issuer: Option<String>,
    /// The verified token's `sub`, when it has one.
    pub sub: Option<String>,
    /// The client's socket address (the TCP peer, not a forwarded-for address).
    pub peer: SocketAddr,
    /// When tokengate began handling the request; the line's `duration_us` runs from here
    /// to the end of the response body.
    pub started: Instant,
    /// To the response head.
    pub latency: Duration,
    /// From the start of the upstream exchange (getting a connection included) to the
    /// upstream's response head, when the request was forwarded.
    pub upstream_latency: Option<Duration>,
}

impl AccessRecord {
    /// Writes the line (target `tokengate::access`, level info) with the request and
    /// response body sizes in bytes; durations are in microseconds.
    pub fn write(&self, bytes_in: u64, bytes_out: u64) {
        info!(
            target: "tokengate::access",
            request_id = %self.request_id,
            method = %self.method,
            path = %crate::logsafe::Escaped(&self.path),
            status = self.status,
            reason = self.reason,
            route = self.route.as_deref().unwrap_or("-"),
            issuer = self.issuer.as_deref().unwrap_or("-"),
            sub = self.sub.as_deref().unwrap_or("-"),
            client = %self.peer,
            bytes_in,
            bytes_out,
            latency_us = self.latency.as_micros() as u64,
            upstream_us = self.upstream_latency.map(|d| d.as_micros() as u64),
            duration_us = self.started.elapsed().as_micros() as u64,
            "request"
        );
    }
}
