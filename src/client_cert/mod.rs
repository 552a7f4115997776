//! Which client certificate a request comes with (RFC 8705 §3): the one of tokengate's own
//! TLS handshake, else the one a TLS-terminating proxy in `trusted_proxies` passes on in the
//! configured header (`client_certificate:`), else none. A certificate-bound token is then
//! checked against it (`authn::binding`).
//!
//! What a client can put into a thumbprint: nothing of its own choosing over tokengate's TLS
//! (the certificate whose key signed the handshake); through the header, only what a trusted
//! peer sent. The header is never read from any other peer (and `mutate` strips it, in every
//! spelling, from every forwarded request), and from a trusted peer it must come once, under
//! the configured spelling, in one readable value, or the request is refused (400): a proxy
//! chain that leaves a client's own copy beside (or instead of) its own must not let either
//! one count.

mod formats;

use http::HeaderMap;

use crate::authn::CertificateThumbprint;
use crate::config::{CertificateHeaderFormat, ClientCertificateSettings};
use crate::header_name::normalized_eq;

/// Why a trusted proxy's certificate header cannot be used (400 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientCertError {
    /// The header came more than once (several fields, in any spelling).
    #[error("the client certificate header is repeated")]
    Repeated,
    /// The header came under another spelling than the configured one (`_` for `-`): not the
    /// proxy's own.
    #[error("the client certificate header is not spelled as configured")]
    OtherSpelling,
    /// The value is not a certificate in the configured format: why.
    #[error("the client certificate header is unusable: {0}")]
    Malformed(&'static str),
}

impl ClientCertError {
    /// A stable code for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            ClientCertError::Repeated => "client_certificate_repeated",
            ClientCertError::OtherSpelling => "client_certificate_misspelled",
            ClientCertError::Malformed(_) => "client_certificate_malformed",
        }
    }
}

/// The client certificate of a request: `connection`'s (tokengate's own TLS handshake) when
/// there is one, whatever the headers say; else, when `source` is configured and the peer is
/// a trusted proxy (`trusted_peer`), the one its header names; else none. A header that is
/// absent, or present with an empty value, means no certificate.
///
/// Errors (only for a trusted peer's header, when there is no TLS certificate):
/// [`ClientCertError::Repeated`], [`ClientCertError::OtherSpelling`],
/// [`ClientCertError::Malformed`].
pub fn presented(
    connection: Option<&CertificateThumbprint>,
    source: Option<&ClientCertificateSettings>,
    headers: &HeaderMap,
    trusted_peer: bool,
) -> Result<Option<CertificateThumbprint>, ClientCertError> {
    if let Some(certificate) = connection {
        return Ok(Some(*certificate));
    }
    let Some(source) = source else {
        return Ok(None);
    };
    if !trusted_peer {
        return Ok(None);
    }
    let configured = source.header.as_str();
    let mut fields = headers
        .iter()
        .filter(|(name, _)| normalized_eq(name.as_str(), configured));
    let Some((name, value)) = fields.next() else {
        return Ok(None);
    };
    if fields.next().is_some() {
        return Err(ClientCertError::Repeated);
    }
    if name.as_str() != configured {
        return Err(ClientCertError::OtherSpelling);
    }
    let value = value
        .to_str()
        .map_err(|_| ClientCertError::Malformed("the value is not visible ASCII"))?
        .trim_matches([' ', '\t']);
    if value.is_empty() {
        return Ok(None);
    }
    let thumbprint = match source.format {
        CertificateHeaderFormat::Rfc9440 => formats::rfc9440(value),
        CertificateHeaderFormat::Xfcc => formats::xfcc(value),
        CertificateHeaderFormat::Nginx => formats::nginx(value),
    }
    .map_err(ClientCertError::Malformed)?;
    Ok(Some(thumbprint))
}

#[cfg(test)]
mod tests {
    use http::{HeaderName, HeaderValue};

    use super::*;

    fn source(format: CertificateHeaderFormat, header: &'static str) -> ClientCertificateSettings {
        ClientCertificateSettings {
            header: HeaderName::from_static(header),
            format,
        }
    }

    fn headers(fields: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in fields {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_str(value).unwrap_or(HeaderValue::from_static("x")),
            );
        }
        map
    }

    const DER: &[u8] = b"\x30\x03\x02\x01\x01";

    fn sf(der: &[u8]) -> String {
        use base64::Engine;
        format!(
            ":{}:",
            base64::engine::general_purpose::STANDARD.encode(der)
        )
    }

    #[test]
    fn the_tls_certificate_wins_and_only_trusted_peers_are_read() {
        let rfc = source(CertificateHeaderFormat::Rfc9440, "client-cert");
        let own = CertificateThumbprint::of_der(b"own");
        let named = headers(&[("client-cert", &sf(DER))]);
        let of_header = Some(CertificateThumbprint::of_der(DER));
        assert_eq!(
            presented(Some(&own), Some(&rfc), &named, true),
            Ok(Some(own))
        );
        // Even an unusable header is not read beside a TLS certificate.
        let bad = headers(&[("client-cert", "garbage"), ("client-cert", "more")]);
        assert_eq!(presented(Some(&own), Some(&rfc), &bad, true), Ok(Some(own)));
        assert_eq!(presented(None, Some(&rfc), &named, true), Ok(of_header));
        assert_eq!(presented(None, Some(&rfc), &named, false), Ok(None));
        assert_eq!(presented(None, Some(&rfc), &bad, false), Ok(None));
        assert_eq!(presented(None, None, &named, true), Ok(None));
        assert_eq!(
            presented(None, Some(&rfc), &HeaderMap::new(), true),
            Ok(None)
        );
        assert_eq!(
            presented(None, Some(&rfc), &headers(&[("client-cert", "")]), true),
            Ok(None)
        );
    }

    #[test]
    fn a_trusted_peer_sends_the_header_once_as_configured() {
        let rfc = source(CertificateHeaderFormat::Rfc9440, "client-cert");
        let value = sf(DER);
        for (fields, expected) in [
            (
                vec![
                    ("client-cert", value.as_str()),
                    ("client-cert", value.as_str()),
                ],
                ClientCertError::Repeated,
            ),
            (
                vec![
                    ("client-cert", value.as_str()),
                    ("client_cert", value.as_str()),
                ],
                ClientCertError::Repeated,
            ),
            (
                vec![("client_cert", value.as_str())],
                ClientCertError::OtherSpelling,
            ),
            (
                vec![("client-cert", "not base64")],
                ClientCertError::Malformed("not an RFC 8941 byte sequence (:BASE64:)"),
            ),
        ] {
            assert_eq!(
                presented(None, Some(&rfc), &headers(&fields), true),
                Err(expected.clone()),
                "{fields:?}"
            );
        }
        let non_ascii = {
            let mut map = HeaderMap::new();
            map.insert(
                HeaderName::from_static("client-cert"),
                HeaderValue::from_bytes(b":\xff:").unwrap_or(HeaderValue::from_static("x")),
            );
            map
        };
        assert!(matches!(
            presented(None, Some(&rfc), &non_ascii, true),
            Err(ClientCertError::Malformed(_))
        ));
    }
}
