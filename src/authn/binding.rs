//! Sender-constrained tokens: the confirmation (`cnf`, RFC 7800) a token carries, and the
//! check that whoever sent it holds what it is bound to, on every request: the DPoP key
//! (`cnf.jkt`, RFC 9449 §6–§7) or the client certificate (`cnf["x5t#S256"]`, RFC 8705 §3).
//!
//! A token bound in a way tokengate cannot check is refused (fail closed), and so is a
//! DPoP-bound token sent as `Bearer` (RFC 9449 §7.2): a bound token never works as a plain
//! bearer token, whatever the route says.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::Method;
use serde_json::{Map, Value};

use super::dpop::{DpopFailure, Expected, ProofChecker, TargetUri};
use super::{AuthnError, TokenError};
use crate::route::DpopMode;
use crate::token::{AccessToken, ProofHeader, Scheme};

/// What a token's `cnf` claim binds it to.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Confirmation {
    /// No `cnf`: a plain bearer token.
    #[default]
    None,
    /// Bound to a DPoP key, a client certificate, or both.
    Bound {
        /// `cnf.jkt`: the RFC 7638 thumbprint of the DPoP key (RFC 9449 §6.1).
        jkt: Option<Box<str>>,
        /// `cnf["x5t#S256"]`: base64url SHA-256 of the certificate's DER (RFC 8705 §3.1).
        x5t_s256: Option<Box<str>>,
    },
    /// A `cnf` that is not an object, has a member tokengate cannot check (`jwk`, `kid`,
    /// `jku`, ...), or a member of the wrong type: refused, never treated as unbound.
    Unsupported,
}

impl Confirmation {
    /// Reads the `cnf` claim of `claims`.
    pub fn of(claims: &Map<String, Value>) -> Confirmation {
        let Some(cnf) = claims.get("cnf") else {
            return Confirmation::None;
        };
        let Value::Object(cnf) = cnf else {
            return Confirmation::Unsupported;
        };
        let mut jkt = None;
        let mut x5t_s256 = None;
        for (name, value) in cnf {
            let slot = match name.as_str() {
                "jkt" => &mut jkt,
                "x5t#S256" => &mut x5t_s256,
                _ => return Confirmation::Unsupported,
            };
            match value {
                Value::String(s) if !s.is_empty() => *slot = Some(Box::from(s.as_str())),
                _ => return Confirmation::Unsupported,
            }
        }
        if jkt.is_none() && x5t_s256.is_none() {
            // `cnf: {}` binds to nothing anyone can show.
            return Confirmation::Unsupported;
        }
        Confirmation::Bound { jkt, x5t_s256 }
    }

    /// The `X-Auth-Token-Binding` value: `dpop`, `mtls`, `dpop mtls`; `None` for a bearer
    /// token.
    pub fn name(&self) -> Option<&'static str> {
        match self {
            Confirmation::Bound {
                jkt: Some(_),
                x5t_s256: Some(_),
            } => Some("dpop mtls"),
            Confirmation::Bound { jkt: Some(_), .. } => Some("dpop"),
            Confirmation::Bound {
                x5t_s256: Some(_), ..
            } => Some("mtls"),
            _ => None,
        }
    }
}

/// The SHA-256 of a client certificate's DER encoding (RFC 8705 §3.1), from tokengate's
/// own TLS handshake or a trusted TLS-terminating proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CertificateThumbprint(pub [u8; 32]);

impl CertificateThumbprint {
    /// The thumbprint of `der`, one X.509 certificate.
    pub fn of_der(der: &[u8]) -> CertificateThumbprint {
        let mut out = [0; 32];
        out.copy_from_slice(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der).as_ref());
        CertificateThumbprint(out)
    }

    /// Whether `x5t_s256` (a `cnf["x5t#S256"]` value) names this certificate; compared in
    /// constant time.
    pub fn matches(&self, x5t_s256: &str) -> bool {
        let Ok(claimed) = URL_SAFE_NO_PAD.decode(x5t_s256) else {
            return false;
        };
        aws_lc_rs::constant_time::verify_slices_are_equal(&claimed, &self.0).is_ok()
    }
}

impl std::fmt::Debug for CertificateThumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "x5t#S256:{}", URL_SAFE_NO_PAD.encode(self.0))
    }
}

/// What came with the token besides itself: the request it is for and any proof of
/// possession.
#[derive(Debug, Clone, Copy)]
pub struct Presentation<'a> {
    /// The route's DPoP mode.
    pub dpop_mode: DpopMode,
    /// The request's `DPoP` header.
    pub proof: ProofHeader<'a>,
    /// The request's method (`htm`).
    pub method: &'a Method,
    /// What `htu` must name; `None` when the origin clients use is unknown.
    pub target: Option<TargetUri<'a>>,
    /// The client certificate shown on this request, if any.
    pub client_certificate: Option<&'a CertificateThumbprint>,
}

/// Checks that `token` (as sent, with `confirmation` read from its verified claims) is
/// presented as its binding requires, at `now` (seconds since the epoch). `Ok(Some(nonce))`
/// asks for a fresh DPoP nonce on the response.
///
/// Errors: [`AuthnError::Invalid`] (a bound token without its proof, a proof with an unbound
/// token, a certificate mismatch, an unsupported `cnf`; 401 `invalid_token`),
/// [`AuthnError::InvalidProof`], [`AuthnError::UseDpopNonce`] or
/// [`AuthnError::ReplayStoreUnavailable`].
pub async fn confirm(
    token: AccessToken<'_>,
    confirmation: &Confirmation,
    presentation: &Presentation<'_>,
    proofs: &ProofChecker,
    now: f64,
) -> Result<Option<String>, AuthnError> {
    let (jkt, x5t_s256) = match confirmation {
        Confirmation::None => (None, None),
        Confirmation::Bound { jkt, x5t_s256 } => (jkt.as_deref(), x5t_s256.as_deref()),
        Confirmation::Unsupported => return Err(TokenError::UnsupportedConfirmation.into()),
    };
    if let Some(x5t) = x5t_s256 {
        match presentation.client_certificate {
            None => return Err(TokenError::CertificateRequired.into()),
            Some(certificate) if !certificate.matches(x5t) => {
                return Err(TokenError::CertificateMismatch.into())
            }
            Some(_) => {}
        }
    }
    match (token.scheme(), jkt) {
        (Scheme::Bearer, Some(_)) => Err(TokenError::DpopBoundAsBearer.into()),
        (Scheme::Bearer, None) if !presentation.dpop_mode.accepts_bearer() => {
            Err(TokenError::DpopRequired.into())
        }
        (Scheme::Bearer, None) => Ok(None),
        (Scheme::Dpop, None) => Err(TokenError::NotDpopBound.into()),
        (Scheme::Dpop, Some(jkt)) => {
            let expected = Expected {
                method: presentation.method,
                target: presentation.target,
                jkt,
                access_token: token.as_str(),
            };
            proofs
                .check(presentation.proof, &expected, now)
                .await
                .map_err(|e| match e {
                    DpopFailure::Invalid(e) => AuthnError::InvalidProof(e),
                    DpopFailure::UseNonce(nonce) => AuthnError::UseDpopNonce(nonce),
                    DpopFailure::Store(e) => AuthnError::ReplayStoreUnavailable(e),
                })
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn of(value: Value) -> Confirmation {
        let Value::Object(claims) = json!({ "cnf": value }) else {
            panic!("an object")
        };
        Confirmation::of(&claims)
    }

    #[test]
    fn cnf_is_read_strictly() {
        assert_eq!(Confirmation::of(&Map::new()), Confirmation::None);
        assert_eq!(
            of(json!({"jkt": "abc"})),
            Confirmation::Bound {
                jkt: Some("abc".into()),
                x5t_s256: None
            }
        );
        assert_eq!(of(json!({"x5t#S256": "abc"})).name(), Some("mtls"));
        assert_eq!(
            of(json!({"x5t#S256": "abc", "jkt": "def"})).name(),
            Some("dpop mtls")
        );
        for unsupported in [
            json!("abc"),
            json!({}),
            json!({"jwk": {"kty": "EC"}}),
            json!({"jkt": "abc", "kid": "k"}),
            json!({"jkt": 5}),
            json!({"jkt": ""}),
            json!(null),
        ] {
            assert_eq!(
                of(unsupported.clone()),
                Confirmation::Unsupported,
                "{unsupported}"
            );
        }
    }

    #[test]
    fn certificate_thumbprints_compare_exactly() {
        let c = CertificateThumbprint::of_der(b"certificate");
        let x5t = URL_SAFE_NO_PAD.encode(c.0);
        assert!(c.matches(&x5t));
        assert!(!c.matches(&x5t[..42]));
        assert!(!c.matches(&format!("{x5t}=")));
        assert!(!CertificateThumbprint::of_der(b"another").matches(&x5t));
    }
}
