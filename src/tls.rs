//! TLS on the listener (rustls): TLS 1.2 and 1.3, ALPN h2 and http/1.1, optional client
//! certificates (mTLS). Built from files at start and again on every reload.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsSettings;

/// The listener's TLS acceptor: the certificate chain in `tls.cert` (PEM, leaf first) with the
/// private key in `tls.key` (PEM), TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`. With
/// `tls.client_ca`, every client must present a certificate that chains to one of its CAs.
///
/// Errors: a file that cannot be read or parsed, a `tls.cert` without a certificate, a key
/// or CA rustls refuses; each message names the setting and the file.
pub fn acceptor(settings: &TlsSettings) -> Result<TlsAcceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&settings.cert)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|e| format!("tls.cert {}: {e}", settings.cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "tls.cert {}: no certificate in the file",
            settings.cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&settings.key)
        .map_err(|e| format!("tls.key {}: {e}", settings.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| format!("TLS: {e}"))?;
    let builder = match &settings.client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(certs, key)
        .map_err(|e| format!("tls.cert/tls.key: {e}"))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
