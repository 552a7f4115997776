//! Sender-constrained tokens: DPoP (RFC 9449), and the oidc-provider side of
//! certificate-bound tokens (RFC 8705).

mod peers;
mod proofs;
