//! DPoP (RFC 9449) and certificate-bound tokens (RFC 8705).

mod peers;
