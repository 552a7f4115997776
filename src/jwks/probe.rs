//! `tokengate check --online`: each issuer's keys fetched once with the run-time code.

use super::{FetchError, IssuerKeys, KeyStore};
use crate::algorithm::Algorithm;
use crate::config::{KeySource, Settings};
use crate::jwk::{JwksError, KeySet, Skipped};

/// What `tokengate check --online` found for one issuer, fetched with the run-time code
/// (same client, timeouts, redirect and https rules, discovery order and key hygiene).
#[derive(Debug, Clone)]
pub struct Probe {
    /// The issuer as configured.
    pub issuer: String,
    /// The discovery document used, when keys are found by discovery.
    pub discovery: Option<String>,
    /// Where the keys came from: the JWKS URL or file (none for the dev issuer).
    pub jwks: Option<String>,
    /// Usable keys: `kid` (or `(no kid)`), type with size or curve, algorithms.
    pub usable: Vec<(String, String, Vec<Algorithm>)>,
    /// Keys skipped, each with its reason (`kid_ambiguous` for a `kid` naming two different
    /// keys).
    pub skipped: Vec<Skipped>,
    /// Why the issuer has no usable key: unreachable, not a JWKS, every key skipped.
    pub error: Option<String>,
    /// The discovery document's `introspection_endpoint` (RFC 8414 §2), when it names one.
    pub introspection_endpoint: Option<String>,
}

/// Fetches discovery and the JWKS of every configured issuer once, as the proxy would at
/// start, and reports each (`tokengate check --online`). Never starts background tasks.
pub async fn probe(settings: &Settings) -> Vec<Probe> {
    let store = KeyStore::new(settings, None);
    let mut probes = Vec::new();
    for issuer in &settings.issuers {
        let Some(keys) = store.issuers.get(&issuer.issuer) else {
            continue;
        };
        probes.push(keys.probe().await);
    }
    probes
}

impl IssuerKeys {
    async fn probe(&self) -> Probe {
        let mut probe = Probe {
            issuer: self.issuer.clone(),
            discovery: None,
            jwks: None,
            usable: Vec::new(),
            skipped: Vec::new(),
            error: None,
            introspection_endpoint: None,
        };
        let body = match &self.source {
            KeySource::DevIssuer | KeySource::Hmac(_) => return probe,
            KeySource::JwksFile(path) => {
                probe.jwks = Some(path.display().to_string());
                tokio::fs::read(path).await.map_err(|e| FetchError::File {
                    path: path.clone(),
                    error: e.to_string(),
                })
            }
            KeySource::JwksUri(uri) => {
                probe.jwks = Some(uri.to_string());
                self.get(uri).await.map(|(body, _)| body)
            }
            KeySource::Discovery => match self.discover_from().await {
                Ok((document, uri)) => {
                    probe.discovery = Some(document.to_string());
                    probe.introspection_endpoint = self
                        .introspection_endpoint
                        .load_full()
                        .map(|u| u.to_string());
                    probe.jwks = Some(uri.to_string());
                    self.get(&uri).await.map(|(body, _)| body)
                }
                Err(e) => {
                    probe.error = Some(format!(
                        "discovery failed at {}/.well-known/openid-configuration (and RFC 8414's locations): {e}",
                        self.issuer.trim_end_matches('/')
                    ));
                    return probe;
                }
            },
        };
        let parsed = body.and_then(|b| KeySet::parse(&b, &self.allowed).map_err(FetchError::from));
        match parsed {
            Ok((set, skipped)) => {
                probe.usable = set
                    .keys
                    .iter()
                    .map(|k| {
                        (
                            k.kid.clone().unwrap_or_else(|| "(no kid)".into()),
                            k.kind.clone(),
                            k.algorithms.clone(),
                        )
                    })
                    .collect();
                probe.skipped = skipped;
                for kid in set.conflicting_kids() {
                    probe.skipped.push(Skipped {
                        kid: kid.to_owned(),
                        reason: "kid_ambiguous",
                        detail: "two different keys under this kid: its tokens are refused".into(),
                    });
                }
            }
            Err(FetchError::Jwks(JwksError::NoUsableKeys(skipped))) => {
                probe.skipped = skipped;
                probe.error = Some("no usable signing key".into());
            }
            Err(e) => probe.error = Some(e.to_string()),
        }
        probe
    }
}
