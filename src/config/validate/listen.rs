//! Where connections arrive and whom to believe about them: `listen`, `tls`, `admin` and
//! `trusted_proxies`.

use std::net::SocketAddr;
use std::path::PathBuf;

use http::HeaderName;
use ipnet::IpNet;

use super::Issues;
use crate::config::raw::{RawAdmin, RawClientCertificate, RawTls};
use crate::config::{
    CertificateHeaderFormat, ClientCertificateSettings, Overrides, TlsClientAuth, TlsSettings,
};

const DEFAULT_LISTEN: &str = "127.0.0.1:3000";

/// The public listener's address, `--listen` before `listen:` before 127.0.0.1:3000, and
/// where it was given (`--listen` or `listen`), for the problems that concern it.
pub(super) fn listen(
    issues: &mut Issues,
    raw: Option<&str>,
    overrides: &Overrides,
) -> (SocketAddr, &'static str) {
    let (listen_text, listen_path) = match &overrides.listen {
        Some(l) => (l.clone(), "--listen"),
        None => (
            raw.map(str::to_owned)
                .unwrap_or_else(|| DEFAULT_LISTEN.into()),
            "listen",
        ),
    };
    let listen = match listen_text.parse::<SocketAddr>() {
        Ok(addr) => addr,
        Err(_) => {
            issues.add(
                listen_path,
                format!("`{listen_text}` is not an address to listen on"),
                "write IP:PORT, e.g. 127.0.0.1:3000 or 0.0.0.0:8080 or [::1]:3000",
            );
            DEFAULT_LISTEN
                .parse()
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 3000)))
        }
    };
    (listen, listen_path)
}

/// `tls:`: the certificate, key and optional client CA must be files that exist;
/// `tls.client_auth` is `required` (the default with `client_ca`) or `optional`, both with
/// `client_ca`, or `optional_any`, without it (any certificate, for binding only).
pub(super) fn tls(issues: &mut Issues, raw: Option<&RawTls>) -> Option<TlsSettings> {
    raw.map(|t| {
        for (field, path) in [
            ("cert", Some(&t.cert)),
            ("key", Some(&t.key)),
            ("client_ca", t.client_ca.as_ref()),
        ] {
            if let Some(path) = path {
                if !std::path::Path::new(path).is_file() {
                    issues.add(
                        format!("tls.{field}"),
                        format!("`{path}` is not a readable file"),
                        "give the path of a PEM file",
                    );
                }
            }
        }
        TlsSettings {
            cert: PathBuf::from(&t.cert),
            key: PathBuf::from(&t.key),
            client_auth: client_auth(issues, t),
        }
    })
}

/// `tls.client_auth` with `tls.client_ca`.
fn client_auth(issues: &mut Issues, t: &RawTls) -> TlsClientAuth {
    let ca = t.client_ca.as_ref().map(PathBuf::from);
    match (t.client_auth.as_deref(), ca) {
        (None, None) => TlsClientAuth::Off,
        (None | Some("required"), Some(ca)) => TlsClientAuth::Required(ca),
        (Some("optional"), Some(ca)) => TlsClientAuth::Optional(ca),
        (Some("optional_any"), None) => TlsClientAuth::OptionalAny,
        (Some(mode @ ("required" | "optional")), None) => {
            issues.add(
                "tls.client_auth",
                format!("`{mode}` verifies client certificates, but tls.client_ca is not set"),
                "add tls.client_ca (PEM file of the CAs client certificates must chain to), or \
                 write optional_any to accept any certificate for binding tokens only",
            );
            TlsClientAuth::Off
        }
        (Some("optional_any"), Some(_)) => {
            issues.add(
                "tls.client_ca",
                "not used with client_auth: optional_any, which verifies no certificate against a CA",
                "remove tls.client_ca, or write client_auth: optional (or required) to verify \
                 client certificates against it",
            );
            TlsClientAuth::OptionalAny
        }
        (Some(other), _) => {
            issues.add(
                "tls.client_auth",
                format!("`{other}` is not a client certificate mode"),
                "write required (every client presents a certificate from tls.client_ca), \
                 optional (a certificate is optional; one presented must chain to tls.client_ca) \
                 or optional_any (any certificate, self-signed included, for binding tokens only; \
                 RFC 8705 §2.2)",
            );
            TlsClientAuth::Off
        }
    }
}

/// Names a certificate header must not have: tokengate reads or writes them for another
/// purpose (credentials, framing, the forwarding chain, its own headers).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "dpop",
    "host",
    "cookie",
    "connection",
    "content-length",
    "transfer-encoding",
    "te",
    "upgrade",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-request-id",
    "x-auth-token-binding",
];

/// `client_certificate:`: a format (`rfc9440`, `xfcc`, `nginx`), a header name (defaults
/// `Client-Cert` and `X-Forwarded-Client-Cert`; nginx's has none), and peers to believe it
/// from (`trusted_proxies`, never empty here).
pub(super) fn client_certificate(
    issues: &mut Issues,
    raw: Option<&RawClientCertificate>,
    trusted_proxies: &[IpNet],
) -> Option<ClientCertificateSettings> {
    let raw = raw?;
    let format = match raw.format.as_deref() {
        Some("rfc9440") => CertificateHeaderFormat::Rfc9440,
        Some("xfcc") => CertificateHeaderFormat::Xfcc,
        Some("nginx") => CertificateHeaderFormat::Nginx,
        other => {
            issues.add(
                "client_certificate.format",
                match other {
                    Some(f) => format!("`{f}` is not a client certificate header format"),
                    None => "the format is required".to_owned(),
                },
                "write rfc9440 (Client-Cert: :BASE64-DER:), xfcc (Envoy's \
                 X-Forwarded-Client-Cert) or nginx ($ssl_client_escaped_cert)",
            );
            return None;
        }
    };
    let name = match (raw.header.as_deref(), format) {
        (Some(name), _) => name,
        (None, CertificateHeaderFormat::Rfc9440) => "Client-Cert",
        (None, CertificateHeaderFormat::Xfcc) => "X-Forwarded-Client-Cert",
        (None, CertificateHeaderFormat::Nginx) => {
            issues.add(
                "client_certificate.header",
                "the nginx format has no standard header name",
                "name the header your nginx sets with proxy_set_header ... \
                 $ssl_client_escaped_cert, e.g. header: X-SSL-Client-Cert",
            );
            return None;
        }
    };
    let header = match HeaderName::from_bytes(name.as_bytes()) {
        Ok(h) if !name.contains('_') => h,
        _ => {
            issues.add(
                "client_certificate.header",
                format!("`{name}` is not a header name tokengate can read one way"),
                "letters, digits and dashes, e.g. X-SSL-Client-Cert (an underscore reads as a \
                 dash to many servers)",
            );
            return None;
        }
    };
    if RESERVED_HEADERS.contains(&header.as_str()) {
        issues.add(
            "client_certificate.header",
            format!("`{name}` already means something else to tokengate"),
            "use a header of its own, e.g. Client-Cert, X-Forwarded-Client-Cert or \
             X-SSL-Client-Cert",
        );
        return None;
    }
    if trusted_proxies.is_empty() {
        issues.add(
            "client_certificate",
            "the header is believed only from trusted_proxies, and none is configured",
            "list the address of the TLS-terminating proxy in trusted_proxies",
        );
        return None;
    }
    Some(ClientCertificateSettings { header, format })
}

/// `admin.listen`: an address of its own, never the public `listen` one.
pub(super) fn admin(
    issues: &mut Issues,
    raw: Option<&RawAdmin>,
    listen: SocketAddr,
) -> Option<SocketAddr> {
    raw.and_then(|a| match a.listen.parse::<SocketAddr>() {
        Ok(addr) if addr == listen && addr.port() != 0 => {
            issues.add(
                "admin.listen",
                "the admin listener must not share the public address",
                "e.g. 127.0.0.1:9901",
            );
            None
        }
        Ok(addr) => Some(addr),
        Err(_) => {
            issues.add(
                "admin.listen",
                format!("`{}` is not an address to listen on", a.listen),
                "e.g. 127.0.0.1:9901",
            );
            None
        }
    })
}

/// `trusted_proxies`: addresses or CIDR ranges; a bare address is a range of one.
pub(super) fn trusted_proxies(issues: &mut Issues, raw: &[String]) -> Vec<IpNet> {
    raw.iter()
        .enumerate()
        .filter_map(|(i, text)| {
            let parsed = text
                .parse::<IpNet>()
                .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from));
            if parsed.is_err() {
                issues.add(
                    format!("trusted_proxies[{i}]"),
                    format!("`{text}` is not an address or CIDR range"),
                    "write 10.0.0.0/8, 192.168.1.7 or fd00::/8",
                );
            }
            parsed.ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::testing::*;
    use crate::config::Overrides;

    #[test]
    #[rustfmt::skip]
    fn each_rule_has_a_row() {
        assert_rows(&[
            ("listen: localhost:3000\n", "listen", "`localhost:3000` is not an address to listen on"),
            ("listen: 127.0.0.1\n", "listen", "is not an address to listen on"),
            ("tls: { cert: missing-cert.pem, key: Cargo.toml }\n", "tls.cert", "`missing-cert.pem` is not a readable file"),
            ("tls: { cert: Cargo.toml, key: missing-key.pem }\n", "tls.key", "`missing-key.pem` is not a readable file"),
            ("tls: { cert: Cargo.toml, key: Cargo.toml, client_ca: src }\n", "tls.client_ca", "`src` is not a readable file"),
            ("listen: 127.0.0.1:3000\nadmin: { listen: 127.0.0.1:3000 }\n", "admin.listen", "must not share the public address"),
            ("admin: { listen: 9901 }\n", "admin.listen", "`9901` is not an address to listen on"),
            ("trusted_proxies: [10.0.0.0/8, 10.0.0.0/33]\n", "trusted_proxies[1]", "`10.0.0.0/33` is not an address or CIDR range"),
            ("trusted_proxies: [proxy.internal]\n", "trusted_proxies[0]", "is not an address or CIDR range"),
            ("tls: { cert: Cargo.toml, key: Cargo.toml, client_auth: always }\n", "tls.client_auth", "`always` is not a client certificate mode"),
            ("tls: { cert: Cargo.toml, key: Cargo.toml, client_auth: required }\n", "tls.client_auth", "`required` verifies client certificates, but tls.client_ca is not set"),
            ("tls: { cert: Cargo.toml, key: Cargo.toml, client_auth: optional }\n", "tls.client_auth", "`optional` verifies client certificates, but tls.client_ca is not set"),
            ("tls: { cert: Cargo.toml, key: Cargo.toml, client_ca: Cargo.toml, client_auth: optional_any }\n", "tls.client_ca", "not used with client_auth: optional_any"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { header: X-Cert }\n", "client_certificate.format", "the format is required"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: pem }\n", "client_certificate.format", "`pem` is not a client certificate header format"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: nginx }\n", "client_certificate.header", "the nginx format has no standard header name"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: nginx, header: \"X Cert\" }\n", "client_certificate.header", "`X Cert` is not a header name"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: nginx, header: X_SSL_Cert }\n", "client_certificate.header", "`X_SSL_Cert` is not a header name"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: rfc9440, header: Authorization }\n", "client_certificate.header", "`Authorization` already means something else"),
            ("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: xfcc, header: X-Forwarded-For }\n", "client_certificate.header", "`X-Forwarded-For` already means something else"),
            ("client_certificate: { format: xfcc }\n", "client_certificate", "believed only from trusted_proxies, and none is configured"),
        ]);
        let cli = Overrides {
            listen: Some("[::1]".into()),
            ..Overrides::default()
        };
        assert_rows_with(&cli, &[("listen: 127.0.0.1:3000\n", "--listen", "`[::1]` is not an address to listen on")]);
    }

    #[test]
    fn valid_values_pass() {
        assert_valid(&[
            "",
            "listen: 0.0.0.0:8080\n",
            "listen: \"[::1]:3000\"\n",
            "tls: { cert: Cargo.toml, key: Cargo.toml, client_ca: Cargo.toml }\n",
            "admin: { listen: 127.0.0.1:9901 }\n",
            // Port 0 is a fresh port for each listener, so the two never collide.
            "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\n",
            "trusted_proxies: [10.0.0.0/8, 192.168.1.7, fd00::/8, \"::1\"]\n",
            "tls: { cert: Cargo.toml, key: Cargo.toml, client_ca: Cargo.toml, client_auth: required }\n",
            "tls: { cert: Cargo.toml, key: Cargo.toml, client_ca: Cargo.toml, client_auth: optional }\n",
            "tls: { cert: Cargo.toml, key: Cargo.toml, client_auth: optional_any }\n",
            "trusted_proxies: [10.0.0.1]\nclient_certificate: { format: rfc9440 }\n",
            "trusted_proxies: [10.0.0.1]\nclient_certificate: { format: xfcc, header: X-Forwarded-Client-Cert }\n",
            "trusted_proxies: [10.0.0.1]\nclient_certificate: { format: nginx, header: X-SSL-Client-Cert }\n",
        ]);
    }

    #[test]
    fn defaults_and_overrides() {
        let Ok(s) = settings("") else {
            panic!("the empty file is valid")
        };
        assert_eq!(s.listen.to_string(), "127.0.0.1:3000");
        assert!(s.tls.is_none() && s.admin_listen.is_none() && s.trusted_proxies.is_empty());
        assert!(s.client_certificate.is_none() && !s.certificate_binding_available());
        let cli = Overrides {
            listen: Some("127.0.0.1:4000".into()),
            ..Overrides::default()
        };
        let s = validate_with("listen: not-used\n", &cli)
            .ok()
            .map(|s| s.listen.to_string());
        assert_eq!(s.as_deref(), Some("127.0.0.1:4000"));
        let s = settings("trusted_proxies: [192.168.1.7]\n")
            .ok()
            .map(|s| s.trusted_proxies);
        assert_eq!(s.map(|p| p[0].to_string()), Some("192.168.1.7/32".into()));
    }

    #[test]
    fn client_certificate_modes_and_their_defaults() {
        let auth = |yaml: &str| {
            settings(yaml).ok().and_then(|s| {
                s.tls
                    .as_ref()
                    .map(|t| (t.client_auth.name(), s.certificate_binding_available()))
            })
        };
        // Today's files keep their meaning: client_ca alone requires a certificate.
        assert_eq!(
            auth("tls: { cert: Cargo.toml, key: Cargo.toml }\n"),
            Some(("off", false))
        );
        assert_eq!(
            auth("tls: { cert: Cargo.toml, key: Cargo.toml, client_ca: Cargo.toml }\n"),
            Some(("required", true))
        );
        assert_eq!(
            auth("tls: { cert: Cargo.toml, key: Cargo.toml, client_auth: optional_any }\n"),
            Some(("optional_any", true))
        );
        let header = |yaml: &str| {
            settings(yaml).ok().and_then(|s| {
                let binding = s.certificate_binding_available();
                s.client_certificate
                    .map(|c| (c.header.to_string(), c.format.name(), binding))
            })
        };
        assert_eq!(
            header("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: rfc9440 }\n"),
            Some(("client-cert".into(), "rfc9440", true))
        );
        assert_eq!(
            header("trusted_proxies: [10.0.0.1]\nclient_certificate: { format: xfcc }\n"),
            Some(("x-forwarded-client-cert".into(), "xfcc", true))
        );
    }
}
