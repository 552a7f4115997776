//! tokengate's own vocabulary of JWS algorithms (RFC 7518 §3.1, RFC 8037 §3.1), with the JWA
//! names as written in tokens, JWKs and the configuration (exact case).
//!
//! jsonwebtoken's `Algorithm` has no `ES512`, so verification speaks this enum; jsonwebtoken
//! is used only where tokens are signed (the dev issuer, the tests).

use std::fmt;

/// A JWS signature algorithm tokengate can verify. Whether a token may use it is the issuer's
/// allow-list ∩ the key's type and curve ∩ the JWK's own `alg` (the `jwk` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC with SHA-256 (RFC 7518 §3.2): only on an issuer configured with `hmac:`.
    HS256,
    /// HMAC with SHA-384 (RFC 7518 §3.2): only on an issuer configured with `hmac:`.
    HS384,
    /// HMAC with SHA-512 (RFC 7518 §3.2): only on an issuer configured with `hmac:`.
    HS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3), RSA keys of 2048 to 8192 bits.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384 (RFC 7518 §3.3), RSA keys of 2048 to 8192 bits.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512 (RFC 7518 §3.3), RSA keys of 2048 to 8192 bits.
    RS512,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (RFC 7518 §3.5), RSA keys of 2048 to
    /// 8192 bits.
    PS256,
    /// RSASSA-PSS with SHA-384 and MGF1 with SHA-384 (RFC 7518 §3.5), RSA keys of 2048 to
    /// 8192 bits.
    PS384,
    /// RSASSA-PSS with SHA-512 and MGF1 with SHA-512 (RFC 7518 §3.5), RSA keys of 2048 to
    /// 8192 bits.
    PS512,
    /// ECDSA on P-256 with SHA-256 (RFC 7518 §3.4), the signature as fixed-size `R || S`
    /// (64 bytes).
    ES256,
    /// ECDSA on P-384 with SHA-384 (RFC 7518 §3.4), the signature as fixed-size `R || S`
    /// (96 bytes).
    ES384,
    /// ECDSA on P-521 with SHA-512 (RFC 7518 §3.4), the signature as fixed-size `R || S`
    /// (132 bytes).
    ES512,
    /// Ed25519 (RFC 8037 §3.1).
    EdDSA,
}

impl Algorithm {
    /// Every algorithm, in the order above.
    pub const ALL: [Algorithm; 13] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    /// The JWA name, e.g. `ES512`.
    pub const fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm a JWA name (exact case) stands for; `None` for `none`, `rs256` and every
    /// name tokengate does not verify.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        Algorithm::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_in_exact_case_only() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
        assert_eq!(Algorithm::from_name("es512"), None);
        assert_eq!(Algorithm::from_name("none"), None);
        assert_eq!(Algorithm::from_name("ES521"), None);
    }
}
