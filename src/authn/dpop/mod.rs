//! DPoP at the resource server (RFC 9449 §4.3, §7, §8, §11.1): a proof of possession of
//! the key a token is bound to (`cnf.jkt`), checked on every request.
//!
//! [`ProofChecker::check`] runs the §4.3 checks in order: one `DPoP` header, the proof
//! itself (`proof::read`: size, `typ`, `alg`, public `jwk`, signature, claim types), `htm`,
//! `htu` (normalised, query and fragment ignored), `iat` within the window, `ath`, the key's
//! thumbprint against `cnf.jkt`, the nonce when nonces are on (§8), and last the replay
//! store, so only a proof that passed everything else is recorded.

mod nonce;
pub mod proof;
mod replay;

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::Method;
use prometheus_client::metrics::counter::Counter;

pub use nonce::{NonceCheck, Nonces};
pub use replay::{ReplayStore, StoreError};

use crate::config::DpopSettings;
use crate::route::{self, PathOptions};
use crate::token::ProofHeader;

/// base64url (no padding) of SHA-256 of `bytes`: `ath` (§4.2) and `jkt` (§6.1).
pub fn base64url_sha256(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes))
}

/// Why a proof is refused (401 `invalid_dpop_proof`, RFC 9449 §7.1). Each names the check,
/// never the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    #[error("Authorization: DPoP needs a DPoP header with the proof")]
    Missing,
    #[error("there must be exactly one DPoP header, of visible ASCII")]
    Unusable,
    #[error("the DPoP proof is longer than 8 KiB")]
    TooLarge,
    #[error("the DPoP proof is malformed: {0}")]
    Malformed(&'static str),
    #[error("the DPoP proof's typ is not dpop+jwt")]
    Typ,
    #[error("the DPoP proof's alg is not an allowed asymmetric algorithm")]
    Algorithm,
    #[error("the DPoP proof's jwk is unusable: {0}")]
    Key(&'static str),
    #[error("the DPoP proof's jwk holds private key material")]
    PrivateKey,
    #[error("the DPoP proof's signature is invalid")]
    Signature,
    #[error("the DPoP proof lacks a valid `{0}` claim")]
    Claim(&'static str),
    #[error("the DPoP proof's jti is longer than 256 bytes")]
    JtiTooLong,
    #[error("the DPoP proof's htm is not the request's method")]
    Htm,
    #[error("the DPoP proof's htu is not this request's URI")]
    Htu,
    #[error("the URL clients reach this resource at is not configured (dpop.external_url), so no proof can be checked")]
    NoExternalUrl,
    #[error("the DPoP proof's iat is too old")]
    Stale,
    #[error("the DPoP proof's iat is in the future")]
    Future,
    #[error("the DPoP proof's ath is not the hash of the access token")]
    Ath,
    #[error(
        "the DPoP proof is signed by another key than the one the token is bound to (cnf.jkt)"
    )]
    KeyMismatch,
    #[error("the DPoP proof has been used before")]
    Replayed,
}

impl ProofError {
    /// A stable code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ProofError::Missing => "dpop_proof_missing",
            ProofError::Unusable => "dpop_proof_repeated",
            ProofError::TooLarge => "dpop_proof_too_large",
            ProofError::Malformed(_) => "dpop_proof_malformed",
            ProofError::Typ => "dpop_typ_mismatch",
            ProofError::Algorithm => "dpop_alg_not_allowed",
            ProofError::Key(_) => "dpop_jwk_unusable",
            ProofError::PrivateKey => "dpop_jwk_private",
            ProofError::Signature => "dpop_signature_invalid",
            ProofError::Claim(_) => "dpop_claim_invalid",
            ProofError::JtiTooLong => "dpop_jti_too_long",
            ProofError::Htm => "dpop_htm_mismatch",
            ProofError::Htu => "dpop_htu_mismatch",
            ProofError::NoExternalUrl => "dpop_external_url_unknown",
            ProofError::Stale => "dpop_iat_stale",
            ProofError::Future => "dpop_iat_future",
            ProofError::Ath => "dpop_ath_mismatch",
            ProofError::KeyMismatch => "dpop_jkt_mismatch",
            ProofError::Replayed => "dpop_proof_replayed",
        }
    }
}

/// Why a DPoP-bound token's proof did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpopFailure {
    /// 401 `invalid_dpop_proof`.
    Invalid(ProofError),
    /// 401 `use_dpop_nonce` with this nonce in `DPoP-Nonce` (§8): the proof had none, or
    /// one that is not current.
    UseNonce(String),
    /// 503: the replay store could not record the proof, so it is not accepted.
    Store(StoreError),
}

impl From<ProofError> for DpopFailure {
    fn from(e: ProofError) -> Self {
        DpopFailure::Invalid(e)
    }
}

/// The URI a proof's `htu` must name: the origin clients use (RFC 6454 serialisation) and
/// the request's canonical path (query and fragment are not part of it, §4.3 check 9).
#[derive(Debug, Clone, Copy)]
pub struct TargetUri<'a> {
    pub origin: &'a str,
    pub path: &'a str,
    /// How `path` was canonicalised; the proof's path is read the same way.
    pub options: PathOptions,
}

/// What a proof must agree with.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub method: &'a Method,
    /// `None` when tokengate does not know the origin clients use.
    pub target: Option<TargetUri<'a>>,
    /// The token's `cnf.jkt`.
    pub jkt: &'a str,
    /// The access token as sent, for `ath`.
    pub access_token: &'a str,
}

/// Checks proofs for one configuration: its settings, nonces and replay store.
pub struct ProofChecker {
    settings: DpopSettings,
    nonces: Option<Nonces>,
    /// Shared with the next configuration when its `dpop.replay` is the same, so a reload
    /// does not forget which proofs were used.
    store: Arc<ReplayStore>,
    store_errors: Counter,
}

impl ProofChecker {
    /// From `dpop:`, keeping `previous`'s replay store (a reload) when `dpop.replay` is
    /// unchanged; `store_errors` counts the 503s the store causes.
    ///
    /// Errors: a Redis URL the client library refuses.
    pub fn reusing(
        settings: &DpopSettings,
        previous: Option<&ProofChecker>,
        store_errors: Counter,
    ) -> Result<ProofChecker, String> {
        let store = match previous.filter(|p| p.settings.replay == settings.replay) {
            Some(previous) => previous.store.clone(),
            None => Arc::new(ReplayStore::new(&settings.replay)?),
        };
        Ok(ProofChecker {
            nonces: settings.nonce.as_ref().map(Nonces::new),
            store,
            settings: settings.clone(),
            store_errors,
        })
    }

    /// Checks the request's `DPoP` header against `expected` at `now` (seconds since the
    /// epoch). `Ok(Some(nonce))`: accepted with the previous step's nonce, and the response
    /// should carry this fresh one (§8.2).
    ///
    /// Errors: [`DpopFailure`].
    pub async fn check(
        &self,
        header: ProofHeader<'_>,
        expected: &Expected<'_>,
        now: f64,
    ) -> Result<Option<String>, DpopFailure> {
        let text = match header {
            ProofHeader::One(text) => text,
            ProofHeader::None => return Err(ProofError::Missing.into()),
            ProofHeader::Unusable => return Err(ProofError::Unusable.into()),
        };
        let proof = proof::read(text, &self.settings.algorithms)?;
        if proof.htm != expected.method.as_str() {
            return Err(ProofError::Htm.into());
        }
        let target = expected.target.ok_or(ProofError::NoExternalUrl)?;
        if !htu_names(&proof.htu, &target) {
            return Err(ProofError::Htu.into());
        }
        if now - proof.iat > self.settings.iat_past.as_secs_f64() {
            return Err(ProofError::Stale.into());
        }
        if proof.iat - now > self.settings.iat_future.as_secs_f64() {
            return Err(ProofError::Future.into());
        }
        // §4.3 check 11: with an access token, `ath` is required and must match.
        if proof.ath.as_deref() != Some(&base64url_sha256(expected.access_token.as_bytes())) {
            return Err(ProofError::Ath.into());
        }
        // §6.1: the key that signed the proof is the one the token is bound to.
        let same_key = aws_lc_rs::constant_time::verify_slices_are_equal(
            proof.jkt.as_bytes(),
            expected.jkt.as_bytes(),
        )
        .is_ok();
        if !same_key {
            return Err(ProofError::KeyMismatch.into());
        }
        let whole_seconds = now.max(0.0) as u64;
        let fresh = match &self.nonces {
            None => None,
            Some(nonces) => match nonces.check(proof.nonce.as_deref(), whole_seconds) {
                NonceCheck::Current => None,
                NonceCheck::Previous => Some(nonces.current(whole_seconds)),
                NonceCheck::Refused => {
                    return Err(DpopFailure::UseNonce(nonces.current(whole_seconds)))
                }
            },
        };
        // Recorded for as long as its iat can pass the window check, and a second longer.
        let ttl = self.settings.iat_past + self.settings.iat_future + Duration::from_secs(1);
        let key = replay::proof_key(&proof.jkt, &proof.jti);
        match self.store.first_use(key, ttl).await {
            Ok(true) => Ok(fresh),
            Ok(false) => Err(ProofError::Replayed.into()),
            Err(e) => {
                self.store_errors.inc();
                Err(DpopFailure::Store(e))
            }
        }
    }

    /// The nonce to hand out now, when nonces are on.
    pub fn current_nonce(&self, now: u64) -> Option<String> {
        self.nonces.as_ref().map(|n| n.current(now))
    }
}

/// Whether a proof's `htu` names `target`: parsed as a URL (which lower-cases the scheme and
/// host, drops a default port and removes dot segments, RFC 3986 §6.2.2–§6.2.3), its origin
/// equal to the configured one and its path, canonicalised as the request's was, equal to
/// the request's canonical path. Query and fragment are ignored (§4.3 check 9).
fn htu_names(htu: &str, target: &TargetUri<'_>) -> bool {
    let Ok(url) = url::Url::parse(htu) else {
        return false;
    };
    if !matches!(url.scheme(), "http" | "https")
        || url.origin().ascii_serialization() != target.origin
    {
        return false;
    }
    route::canonicalize(url.path(), target.options).is_ok_and(|c| c.path == target.path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(path: &str) -> TargetUri<'_> {
        TargetUri {
            origin: "https://api.example.com",
            path,
            options: PathOptions::default(),
        }
    }

    #[test]
    fn htu_is_compared_after_normalisation() {
        let t = target("/api/items");
        for same in [
            "https://api.example.com/api/items",
            "HTTPS://API.EXAMPLE.COM/api/items",
            "https://api.example.com:443/api/items",
            "https://api.example.com/api/./x/../items",
            "https://api.example.com/api/%69tems",
            "https://api.example.com/api/items?q=1",
            "https://api.example.com/api/items#frag",
            "https://api.example.com/api//items",
        ] {
            assert!(htu_names(same, &t), "{same}");
        }
        for other in [
            "https://evil.example.com/api/items",
            "http://api.example.com/api/items",
            "https://api.example.com:8443/api/items",
            "https://api.example.com/API/items",
            "https://api.example.com/api",
            "/api/items",
            "api.example.com/api/items",
            "",
        ] {
            assert!(!htu_names(other, &t), "{other}");
        }
    }
}
