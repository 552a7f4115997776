//! Sender-constrained tokens: DPoP (RFC 9449).

mod proofs;
