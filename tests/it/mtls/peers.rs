//! Real TLS-terminating proxies in front of tokengate, running the shipped
//! `examples/mtls/` files: nginx (`ssl_verify_client optional_no_ca`,
//! `$ssl_client_escaped_cert`) and Envoy (`forward_client_cert_details: SANITIZE_SET`,
//! `set_current_client_cert_details: { cert: true }`); curl presents the certificates.
