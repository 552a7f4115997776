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
