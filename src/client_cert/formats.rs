//! The three ways a TLS-terminating proxy writes the client certificate into a header, each
//! read strictly into a [`CertificateThumbprint`] (SHA-256 of the DER, RFC 8705 §3.1).
//! Every error is a short reason for the 400 (the value itself is never echoed).

use base64::alphabet::STANDARD;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::authn::CertificateThumbprint;

/// RFC 8941 §3.3.5: standard base64; parsers accept a missing `=` padding (§4.2.7).
const SF_BASE64: GeneralPurpose = GeneralPurpose::new(
    &STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// RFC 9440 §2.2 `Client-Cert`: one Structured Field Byte Sequence, `:BASE64-DER:`, with no
/// parameters (none are defined; a value with any is refused rather than half read).
pub(super) fn rfc9440(value: &str) -> Result<CertificateThumbprint, &'static str> {
    const NOT_SF: &str = "not an RFC 8941 byte sequence (:BASE64:)";
    let inner = value
        .strip_prefix(':')
        .and_then(|v| v.strip_suffix(':'))
        .ok_or(NOT_SF)?;
    if !inner
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='))
    {
        return Err(NOT_SF);
    }
    let der = SF_BASE64.decode(inner).map_err(|_| NOT_SF)?;
    of_der(&der)
}

/// nginx's `$ssl_client_escaped_cert`: one PEM certificate, URL-encoded.
pub(super) fn nginx(value: &str) -> Result<CertificateThumbprint, &'static str> {
    pem_certificate(&percent_decode(value)?)
}

/// Envoy's `X-Forwarded-Client-Cert`: `,`-separated elements of `;`-separated `Key=Value`
/// pairs, a value optionally in double quotes (with `\` escapes). The last element is the
/// one the proxy next to tokengate added; its `Cert` (URL-encoded PEM) and `Hash` (hex
/// SHA-256 of the DER) name the certificate, and must agree when both are there.
///
/// Refused: any element with a key other than `By`, `Hash`, `Cert` and `Chain`. `Subject`,
/// `URI` and `DNS` copy text from the client's certificate into the header, unescaped: a
/// self-signed certificate with a DNS name such as `x,Hash=<someone else's>` would add an
/// element of the client's making after Envoy's own. With only these four keys every value
/// is the proxy's (hex, URL-encoded PEM, the proxy's own URI).
pub(super) fn xfcc(value: &str) -> Result<CertificateThumbprint, &'static str> {
    let elements = xfcc_elements(value)?;
    for pair in elements.iter().flatten() {
        if !["By", "Hash", "Cert", "Chain"]
            .iter()
            .any(|k| pair.0.eq_ignore_ascii_case(k))
        {
            return Err("an element has a key other than By, Hash, Cert and Chain (set only cert or hash in Envoy's set_current_client_cert_details)");
        }
    }
    let last = elements.last().ok_or("no element")?;
    let one = |key: &str| -> Result<Option<&str>, &'static str> {
        let mut found = last.iter().filter(|(k, _)| k.eq_ignore_ascii_case(key));
        let first = found.next().map(|(_, v)| v.as_str());
        match found.next() {
            Some(_) => Err("a key is repeated in the last element"),
            None => Ok(first),
        }
    };
    let hash = one("Hash")?.map(hex_sha256).transpose()?;
    let cert = one("Cert")?
        .map(|c| percent_decode(c).and_then(|pem| pem_certificate(&pem)))
        .transpose()?;
    match (cert, hash) {
        (Some(cert), Some(hash)) if cert != hash => Err("Hash is not the SHA-256 of Cert"),
        (Some(cert), _) => Ok(cert),
        (None, Some(hash)) => Ok(hash),
        (None, None) => Err("the last element has neither Hash nor Cert"),
    }
}

/// The elements of an XFCC value, each a list of (key, unquoted value).
fn xfcc_elements(value: &str) -> Result<Vec<Vec<(String, String)>>, &'static str> {
    let bytes = value.as_bytes();
    let mut elements = Vec::new();
    let mut pairs = Vec::new();
    let mut i = 0;
    loop {
        while bytes.get(i).is_some_and(|b| *b == b' ') {
            i += 1;
        }
        let start = i;
        while bytes.get(i).is_some_and(|b| b.is_ascii_alphanumeric()) {
            i += 1;
        }
        if i == start || bytes.get(i) != Some(&b'=') {
            return Err("a pair is not Key=Value");
        }
        let key = value[start..i].to_owned();
        i += 1;
        let mut text = String::new();
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err("a quoted value is not closed"),
                    Some(b'"') => break,
                    Some(b'\\') => {
                        let escaped = bytes.get(i + 1).ok_or("a quoted value is not closed")?;
                        text.push(char::from(*escaped));
                        i += 2;
                    }
                    Some(b) => {
                        text.push(char::from(*b));
                        i += 1;
                    }
                }
            }
            i += 1;
        } else {
            while let Some(b) = bytes.get(i) {
                match b {
                    b';' | b',' => break,
                    b'"' => return Err("a quote inside an unquoted value"),
                    _ => {
                        text.push(char::from(*b));
                        i += 1;
                    }
                }
            }
        }
        pairs.push((key, text));
        match bytes.get(i) {
            None => {
                elements.push(pairs);
                return Ok(elements);
            }
            Some(b';') => i += 1,
            Some(b',') => {
                elements.push(std::mem::take(&mut pairs));
                i += 1;
            }
            Some(_) => return Err("text after a quoted value"),
        }
    }
}

/// 64 hex digits: a SHA-256.
fn hex_sha256(text: &str) -> Result<CertificateThumbprint, &'static str> {
    const NOT_HEX: &str = "Hash is not 64 hex digits";
    if text.len() != 64 {
        return Err(NOT_HEX);
    }
    let mut out = [0u8; 32];
    for (byte, pair) in out.iter_mut().zip(text.as_bytes().chunks(2)) {
        let digits = std::str::from_utf8(pair).map_err(|_| NOT_HEX)?;
        *byte = u8::from_str_radix(digits, 16).map_err(|_| NOT_HEX)?;
    }
    Ok(CertificateThumbprint(out))
}

/// `%XX` escapes decoded (two hex digits each, or the value is refused); every other byte,
/// `+` included (a base64 character in PEM, never a space here), as it is.
fn percent_decode(text: &str) -> Result<Vec<u8>, &'static str> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(b) = bytes.get(i) {
        if *b == b'%' {
            let digits = bytes
                .get(i + 1..i + 3)
                .and_then(|d| std::str::from_utf8(d).ok())
                .filter(|d| d.bytes().all(|c| c.is_ascii_hexdigit()))
                .ok_or("a %-escape is not two hex digits")?;
            out.push(u8::from_str_radix(digits, 16).map_err(|_| "a bad %-escape")?);
            i += 3;
        } else {
            out.push(*b);
            i += 1;
        }
    }
    Ok(out)
}

/// Exactly one `CERTIFICATE` block of PEM text, with nothing but whitespace around it.
fn pem_certificate(pem: &[u8]) -> Result<CertificateThumbprint, &'static str> {
    const NOT_PEM: &str = "not one PEM certificate";
    const BEGIN: &[u8] = b"-----BEGIN CERTIFICATE-----";
    const END: &[u8] = b"-----END CERTIFICATE-----";
    let text = pem.trim_ascii();
    if !text.starts_with(BEGIN) || !text.ends_with(END) {
        return Err(NOT_PEM);
    }
    let mut certificates = CertificateDer::pem_slice_iter(text);
    let first = certificates.next().ok_or(NOT_PEM)?.map_err(|_| NOT_PEM)?;
    if certificates.next().is_some()
        || text.windows(BEGIN.len()).filter(|w| *w == BEGIN).count() != 1
    {
        return Err("more than one PEM certificate");
    }
    of_der(first.as_ref())
}

fn of_der(der: &[u8]) -> Result<CertificateThumbprint, &'static str> {
    // A DER certificate is a SEQUENCE; anything else names no certificate.
    match der.first() {
        Some(0x30) => Ok(CertificateThumbprint::of_der(der)),
        _ => Err("not a DER certificate"),
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD as B64;

    use super::*;

    const DER: &[u8] = b"\x30\x03\x02\x01\x01";

    fn pem() -> String {
        format!(
            "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
            B64.encode(DER)
        )
    }

    /// As nginx's `$ssl_client_escaped_cert` and Envoy's `Cert=` write it.
    fn escaped(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect()
    }

    fn hex(t: CertificateThumbprint) -> String {
        t.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn rfc9440_is_one_byte_sequence() {
        let good = CertificateThumbprint::of_der(DER);
        let b64 = B64.encode(DER);
        assert_eq!(rfc9440(&format!(":{b64}:")), Ok(good));
        assert_eq!(
            rfc9440(&format!(":{}:", b64.trim_end_matches('='))),
            Ok(good)
        );
        for bad in [
            b64.clone(),
            format!(":{b64}"),
            format!(":{b64}:;p=1"),
            format!(":{b64}:, :{b64}:"),
            ":MAMC-QE=:".to_owned(),
            "::".to_owned(),
            ":AAAA:".to_owned(),
            format!(":{}:", B64.encode(b"not a certificate")),
        ] {
            assert!(rfc9440(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nginx_is_url_encoded_pem() {
        let good = CertificateThumbprint::of_der(DER);
        assert_eq!(nginx(&escaped(&pem())), Ok(good));
        assert_eq!(nginx(&escaped(&format!("\n{}\n\n", pem()))), Ok(good));
        // `+` stays a base64 character.
        assert_eq!(percent_decode("a+b%2Bc%0A"), Ok(b"a+b+c\n".to_vec()));
        for bad in [
            "%ZZ".to_owned(),
            "%4".to_owned(),
            escaped("-----BEGIN CERTIFICATE-----\n"),
            escaped(&format!("{}{}", pem(), pem())),
            escaped(&format!("{},{}", pem(), pem())),
            escaped(&format!("{},garbage", pem())),
            escaped(&format!("garbage\n{}", pem())),
            escaped(&format!(
                "{}-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                pem()
            )),
            "plain text".to_owned(),
        ] {
            assert!(nginx(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn xfcc_reads_the_last_element_strictly() {
        let good = CertificateThumbprint::of_der(DER);
        let other = CertificateThumbprint::of_der(b"\x30\x00");
        let cert = format!("Cert=\"{}\"", escaped(&pem()));
        let hash = format!("Hash={}", hex(good));
        for ok in [
            hash.clone(),
            hash.to_uppercase().replace("HASH", "Hash"),
            cert.clone(),
            format!("{hash};{cert}"),
            format!(
                "By=spiffe://proxy;{hash};{cert};Chain=\"{}\"",
                escaped(&pem())
            ),
            format!("Hash={};By=x,{hash}", hex(other)),
            format!("Hash={}, {hash}", hex(other)),
            format!("Hash=\"{}\"", hex(good)),
        ] {
            assert_eq!(xfcc(&ok), Ok(good), "{ok}");
        }
        for bad in [
            format!("{hash},Hash=00"),
            format!("{hash};Subject=\"CN=x\""),
            format!("Subject=\"CN=x\",{hash}"),
            format!("{hash};DNS=a.example"),
            format!("{hash};URI=spiffe://x"),
            format!("{hash};Hash={}", hex(good)),
            format!("Hash={};{cert}", hex(other)),
            "By=spiffe://proxy".to_owned(),
            format!("{hash};By=\"open"),
            format!("{hash};By=a\"b"),
            format!("{hash};By=\"a\"b"),
            format!("{hash},"),
            format!(",{hash}"),
            format!("{hash};;By=x"),
            "Hash".to_owned(),
            format!("Hash={}", &hex(good)[..62]),
            format!("Hash={}zz", &hex(good)[..62]),
        ] {
            assert!(xfcc(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_text_cannot_close_the_proxy_quotes() {
        // APPEND_FORWARD after a client's own value with an open quote: the proxy's element
        // is swallowed into it, and the whole value is refused rather than read another way.
        let good = CertificateThumbprint::of_der(DER);
        let proxy = format!("Hash={};Cert=\"{}\"", hex(good), escaped(&pem()));
        for client in ["By=\"", "By=\"x\";Hash=\"", "Hash=\"\\"] {
            assert!(xfcc(&format!("{client},{proxy}")).is_err(), "{client}");
        }
    }

    proptest::proptest! {
        /// Whatever a trusted peer sends (visible ASCII and spaces, as a header value can
        /// hold), each format answers with a thumbprint or a reason, never a panic.
        #[test]
        fn any_value_is_read_or_refused(value in "[ -~]{0,300}") {
            let _ = rfc9440(&value);
            let _ = xfcc(&value);
            let _ = nginx(&value);
        }

        /// The same, for values built from the formats' own punctuation.
        #[test]
        fn punctuation_soup_is_read_or_refused(value in "[\"\\\\;,=:%A-Fa-f0-9 HashCertBy-]{0,120}") {
            let _ = rfc9440(&value);
            let _ = xfcc(&value);
            let _ = nginx(&value);
        }
    }
}
