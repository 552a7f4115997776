//! Where connections arrive and whom to believe about them: `listen`, `tls`, `admin` and
//! `trusted_proxies`.

use std::net::SocketAddr;
use std::path::PathBuf;

use ipnet::IpNet;

use super::Issues;
use crate::config::raw::{RawAdmin, RawTls};
use crate::config::{Overrides, TlsSettings};

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

/// `tls:`: the certificate, key and optional client CA must be files that exist.
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
            client_ca: t.client_ca.as_ref().map(PathBuf::from),
        }
    })
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
        ]);
    }

    #[test]
    fn defaults_and_overrides() {
        let Ok(s) = settings("") else {
            panic!("the empty file is valid")
        };
        assert_eq!(s.listen.to_string(), "127.0.0.1:3000");
        assert!(s.tls.is_none() && s.admin_listen.is_none() && s.trusted_proxies.is_empty());
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
}
