//! Introspection against a real authorization server: oidc-provider (see
//! `tests/peers/oidc-provider`).
