//! TLS on the listener (rustls): TLS 1.2 and 1.3, ALPN h2 and http/1.1, client
//! certificates (mTLS) as `tls.client_auth` says. Built from files at start and again on
//! every reload. [`client_certificate`] gives the certificate a connection's client
//! presented, which certificate-bound tokens (RFC 8705 §3) are checked against.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::UnixTime;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::authn::CertificateThumbprint;
use crate::config::{TlsClientAuth, TlsSettings};

/// The listener's TLS acceptor: the certificate chain in `tls.cert` (PEM, leaf first) with the
/// private key in `tls.key` (PEM), TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`. Client
/// certificates per `tls.client_auth`: `required` (every client presents one that chains to
/// a CA in `tls.client_ca`), `optional` (none, or one that chains to such a CA), or
/// `optional_any` (none, or any certificate whose key signs the handshake: RFC 8705 §2.2).
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
    let builder = match &settings.client_auth {
        TlsClientAuth::Off => builder.with_no_client_auth(),
        TlsClientAuth::OptionalAny => {
            builder.with_client_cert_verifier(Arc::new(AnyClientCertificate::new(&provider)))
        }
        TlsClientAuth::Required(path) | TlsClientAuth::Optional(path) => {
            let roots = client_roots(path)?;
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let verifier = match settings.client_auth {
                TlsClientAuth::Optional(_) => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            let verifier = verifier
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

/// The CAs of `tls.client_ca` (PEM).
fn client_roots(path: &std::path::Path) -> Result<rustls::RootCertStore, String> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?
    {
        let cert = cert.map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("tls.client_ca {}: {e}", path.display()))?;
    }
    Ok(roots)
}

/// The thumbprint (SHA-256 of the DER, RFC 8705 §3.1) of the end-entity certificate the
/// client presented in `connection`'s handshake (the first of the chain it sent), if any.
/// Only a certificate the verifier accepted is there: the handshake fails otherwise.
pub fn client_certificate(connection: &rustls::ServerConnection) -> Option<CertificateThumbprint> {
    connection
        .peer_certificates()
        .and_then(<[CertificateDer<'static>]>::first)
        .map(|leaf| CertificateThumbprint::of_der(leaf.as_ref()))
}

/// `tls.client_auth: optional_any` (RFC 8705 §2.2, self-signed certificates): a client may
/// present no certificate or any X.509 certificate, unchained and unchecked for dates or
/// names, but it must sign the handshake with that certificate's key (TLS 1.3
/// `CertificateVerify`, TLS 1.2 `CertificateVerify`), with a scheme the crypto provider
/// verifies. So the certificate proves possession of a key and nothing else: tokengate uses
/// it only to match a token's `cnf["x5t#S256"]`, never as authentication.
#[derive(Debug)]
struct AnyClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl AnyClientCertificate {
    fn new(provider: &CryptoProvider) -> AnyClientCertificate {
        AnyClientCertificate {
            algorithms: provider.signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for AnyClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    /// No CA names: the client may send whatever certificate it has.
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    /// Any end-entity certificate that parses as X.509; the intermediates are ignored.
    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        ParsedCertificate::try_from(end_entity)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
