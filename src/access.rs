//! The access log: one structured line per request, written when its response body ends
//! (so it knows the bytes sent). Never a token, never an `Authorization` value, never the
//! query string.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tracing::info;

/// Everything the line says, gathered as the request goes through the pipeline.
pub struct AccessRecord {
    pub request_id: String,
    pub method: http::Method,
    /// The canonical path (or the raw one when it could not be canonicalised).
    pub path: String,
    pub status: u16,
    pub reason: &'static str,
    pub route: Option<String>,
    pub issuer: Option<String>,
    pub sub: Option<String>,
    pub peer: SocketAddr,
    pub started: Instant,
    /// To the response head.
    pub latency: Duration,
    pub upstream_latency: Option<Duration>,
}

impl AccessRecord {
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
