//! The embedded dev issuer: an RSA key made at start (or kept in a key file) and
//! `POST /_dev/token`, so the shipped `proxy.yaml` works with no identity provider at hand.
//!
//! It mints tokens for anyone who asks, so configuration refuses it unless the listener is
//! on a loopback address, and start-up warns loudly while it is on.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize};
use aws_lc_rs::signature::KeyPair as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::config::DevIssuerSettings;
use crate::jwk::{KeySet, PublicKey, VerifyingKey};

/// The largest `expires_in` a dev token may ask for.
const MAX_EXPIRES_IN: u64 = 24 * 3600;

/// The dev issuer: its settings and one RSA key for RS256 (made with 2048 bits, or read from
/// `key_file`), whose `kid` is its RFC 7638 thumbprint.
pub struct DevIssuer {
    settings: DevIssuerSettings,
    kid: String,
    encoding: EncodingKey,
    public: Arc<VerifyingKey>,
}

/// A token request that cannot be served (400 `invalid_request`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTokenRequest(pub &'static str);

impl DevIssuer {
    /// Loads the key file, or makes a key (and writes the file when one is named).
    pub fn new(settings: &DevIssuerSettings) -> Result<DevIssuer, String> {
        let pkcs8 = match &settings.key_file {
            Some(path) if path.exists() => read_pem(path)?,
            Some(path) => {
                let der = generate()?;
                write_pem(path, &der)?;
                der
            }
            None => generate()?,
        };
        let pair = KeyPair::from_pkcs8(&pkcs8)
            .map_err(|e| format!("dev issuer key is not an RSA PKCS#8 key: {e}"))?;
        let n = pair
            .public_key()
            .modulus()
            .big_endian_without_leading_zero()
            .to_vec();
        let e = pair
            .public_key()
            .exponent()
            .big_endian_without_leading_zero()
            .to_vec();
        let pem = pem_encode(&pkcs8);
        let encoding = EncodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| format!("dev issuer key: {e}"))?;
        let kid = thumbprint(&n, &e);
        let public = Arc::new(VerifyingKey::new(
            Some(kid.clone()),
            vec![crate::algorithm::Algorithm::RS256],
            &PublicKey::Rsa {
                n: n.clone(),
                e: e.clone(),
            },
            &[b"RSA", &[n.as_slice(), e.as_slice()].concat()],
        )?);
        Ok(DevIssuer {
            settings: settings.clone(),
            kid,
            encoding,
            public,
        })
    }

    /// Its issuer identifier, the `iss` of the tokens it mints.
    pub fn issuer(&self) -> &str {
        &self.settings.issuer
    }

    /// The `dev_issuer:` settings it was made with.
    pub fn settings(&self) -> &DevIssuerSettings {
        &self.settings
    }

    /// The public key, for the key store.
    pub fn key_set(&self) -> KeySet {
        KeySet {
            keys: vec![self.public.clone()],
            conflicts: Vec::new(),
        }
    }

    /// Answers a `POST /_dev/token` form: `sub` (required), optional `scope`, `aud`,
    /// `expires_in` (seconds, 1 to 86400) and `jkt` (the RFC 7638 thumbprint of a DPoP key,
    /// which binds the token to it with `cnf.jkt`, RFC 9449 §6.1; the answer's `token_type`
    /// is then `DPoP`, as §5 has it).
    pub fn token_response(&self, form: &[u8]) -> Result<Value, BadTokenRequest> {
        let mut sub = None;
        let mut scope = None;
        let mut aud = None;
        let mut expires_in = None;
        let mut jkt = None;
        for (key, value) in url::form_urlencoded::parse(form) {
            let slot = match key.as_ref() {
                "sub" => &mut sub,
                "scope" => &mut scope,
                "aud" => &mut aud,
                "expires_in" => &mut expires_in,
                "jkt" => &mut jkt,
                _ => continue,
            };
            if slot.replace(value.into_owned()).is_some() {
                return Err(BadTokenRequest("a form field is given twice"));
            }
        }
        let sub = sub
            .filter(|s| !s.is_empty())
            .ok_or(BadTokenRequest("the form field sub is required"))?;
        let lifetime = match expires_in {
            None => self.settings.token_lifetime.as_secs(),
            Some(text) => text
                .parse::<u64>()
                .ok()
                .filter(|n| (1..=MAX_EXPIRES_IN).contains(n))
                .ok_or(BadTokenRequest(
                    "expires_in must be a number of seconds from 1 to 86400",
                ))?,
        };
        if let Some(jkt) = &jkt {
            if !is_thumbprint(jkt) {
                return Err(BadTokenRequest(
                    "jkt must be an RFC 7638 thumbprint: 32 bytes in base64url without padding",
                ));
            }
        }
        let scopes: Vec<&str> = scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .collect();
        let token = self
            .mint(
                &sub,
                &scopes,
                aud.as_deref(),
                jkt.as_deref(),
                Duration::from_secs(lifetime),
            )
            .map_err(|_| BadTokenRequest("the token could not be signed"))?;
        let token_type = if jkt.is_some() { "DPoP" } else { "Bearer" };
        Ok(json!({"access_token": token, "token_type": token_type, "expires_in": lifetime}))
    }

    /// Signs an access token shaped like Okta's: `scp` array, `cid`, `jti`; with `jkt`, bound
    /// to that DPoP key by `cnf: { jkt }`.
    pub fn mint(
        &self,
        sub: &str,
        scopes: &[&str],
        aud: Option<&str>,
        jkt: Option<&str>,
        lifetime: Duration,
    ) -> jsonwebtoken::errors::Result<String> {
        let now = crate::authn::now() as u64;
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(self.kid.clone());
        header.typ = Some("at+jwt".into());
        let mut claims = json!({
            "iss": self.settings.issuer,
            "sub": sub,
            "aud": aud.unwrap_or(&self.settings.audience),
            "iat": now,
            "exp": now + lifetime.as_secs(),
            "jti": format!("{:032x}", fastrand::u128(..)),
            "cid": "tokengate-dev",
            "client_id": "tokengate-dev",
            "scp": scopes,
        });
        if let (Some(jkt), Some(object)) = (jkt, claims.as_object_mut()) {
            object.insert("cnf".into(), json!({ "jkt": jkt }));
        }
        jsonwebtoken::encode(&header, &claims, &self.encoding)
    }
}

/// Whether `text` can be an RFC 7638 SHA-256 thumbprint: base64url without padding (and
/// without stray trailing bits, so there is one spelling) of 32 bytes.
fn is_thumbprint(text: &str) -> bool {
    URL_SAFE_NO_PAD
        .decode(text)
        .is_ok_and(|bytes| bytes.len() == 32)
}

/// Whether a `/_dev/token` request comes from a local tool (curl, a test, a script), and not
/// from a web page or through a foreign host name: `Host` must be a loopback address or
/// `localhost` (any port), which defeats DNS rebinding, and `Origin` absent or loopback, which
/// keeps out pages the developer happens to visit (a form POST is a CORS-simple request the
/// browser sends without asking). `Err` holds the reason for the 403.
pub fn admits_local_caller(headers: &http::HeaderMap) -> Result<(), &'static str> {
    let mut hosts = headers.get_all(http::header::HOST).iter();
    let host_ok = match (hosts.next(), hosts.next()) {
        (Some(host), None) => host.to_str().is_ok_and(is_loopback_authority),
        _ => false,
    };
    if !host_ok {
        return Err("the dev issuer answers only requests to a loopback address or localhost");
    }
    let mut origins = headers.get_all(http::header::ORIGIN).iter();
    let origin_ok = match (origins.next(), origins.next()) {
        (None, _) => true,
        (Some(origin), None) => origin.to_str().is_ok_and(|o| {
            url::Url::parse(o).is_ok_and(|u| {
                matches!(u.scheme(), "http" | "https")
                    && u.host_str().is_some_and(|h| {
                        is_loopback_host(h.trim_start_matches('[').trim_end_matches(']'))
                    })
            })
        }),
        _ => false,
    };
    if !origin_ok {
        return Err("the dev issuer does not answer web pages of other origins");
    }
    Ok(())
}

/// `host[:port]` naming this machine: `localhost`, 127.0.0.0/8 or `[::1]`.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, port)) if port.is_empty() || is_port(port) => host,
            _ => return false,
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) if is_port(port) => host,
            Some(_) => return false,
            None => authority,
        }
    };
    is_loopback_host(host)
}

fn is_port(text: &str) -> bool {
    text.strip_prefix(':')
        .unwrap_or(text)
        .parse::<u16>()
        .is_ok()
}

fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn generate() -> Result<Vec<u8>, String> {
    let pair = KeyPair::generate(KeySize::Rsa2048)
        .map_err(|_| "cannot generate the dev issuer key".to_string())?;
    pair.as_der()
        .map(|d| d.as_ref().to_vec())
        .map_err(|_| "cannot encode the dev issuer key".to_string())
}

fn read_pem(path: &Path) -> Result<Vec<u8>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD
        .decode(body.trim())
        .map_err(|_| format!("{} is not a PEM file", path.display()))
}

fn pem_encode(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(chunk));
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    pem
}

fn write_pem(path: &Path, der: &[u8]) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(pem_encode(der).as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// RFC 7638 JWK thumbprint, used as the `kid`.
fn thumbprint(n: &[u8], e: &[u8]) -> String {
    let canonical = format!(
        r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(e),
        URL_SAFE_NO_PAD.encode(n)
    );
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (k, v) in pairs {
            if let (Ok(k), Ok(v)) = (
                http::HeaderName::from_bytes(k.as_bytes()),
                http::HeaderValue::from_str(v),
            ) {
                h.append(k, v);
            }
        }
        h
    }

    /// The claims of a minted token (its payload, not verified: the signature is the
    /// proxy's business, tested end to end in tests/it/quickstart.rs).
    fn claims_of(answer: &Value) -> Value {
        let token = answer["access_token"].as_str().unwrap_or_default();
        let payload = token.split('.').nth(1).unwrap_or_default();
        let bytes = URL_SAFE_NO_PAD.decode(payload).unwrap_or_default();
        serde_json::from_slice(&bytes).unwrap_or(Value::Null)
    }

    #[test]
    fn a_jkt_binds_the_token_to_that_dpop_key_and_only_a_thumbprint_is_taken() {
        let issuer = DevIssuer::new(&DevIssuerSettings {
            issuer: "urn:tokengate:dev".into(),
            audience: "api://default".into(),
            key_file: None,
            token_lifetime: Duration::from_secs(3600),
        })
        .expect("dev issuer");
        // The RFC 7638 §3.1 example key's thumbprint.
        let jkt = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";
        let bound = issuer
            .token_response(format!("sub=alice&jkt={jkt}").as_bytes())
            .expect("a bound token");
        assert_eq!(bound["token_type"], "DPoP");
        assert_eq!(claims_of(&bound)["cnf"], json!({ "jkt": jkt }));
        assert_eq!(claims_of(&bound)["sub"], "alice");

        let plain = issuer.token_response(b"sub=alice").expect("a token");
        assert_eq!(plain["token_type"], "Bearer");
        assert_eq!(claims_of(&plain)["sub"], "alice");
        assert_eq!(
            claims_of(&plain).get("cnf"),
            None,
            "no binding unless asked"
        );

        let thirty_one = URL_SAFE_NO_PAD.encode([7u8; 31]);
        let thirty_three = URL_SAFE_NO_PAD.encode([7u8; 33]);
        let padded = format!("{}=", URL_SAFE_NO_PAD.encode([7u8; 32]));
        let standard = STANDARD
            .encode([0xfbu8; 32])
            .trim_end_matches('=')
            .to_owned();
        // The last character of 32 bytes carries two stray bits: only one spelling is taken.
        let stray_bits = format!("{}B", &jkt[..42]);
        for bad in [
            "",
            "not a thumbprint",
            thirty_one.as_str(),
            thirty_three.as_str(),
            padded.as_str(),
            standard.as_str(),
            stray_bits.as_str(),
        ] {
            let form = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("sub", "alice")
                .append_pair("jkt", bad)
                .finish();
            assert_eq!(
                issuer.token_response(form.as_bytes()),
                Err(BadTokenRequest(
                    "jkt must be an RFC 7638 thumbprint: 32 bytes in base64url without padding"
                )),
                "{bad:?}"
            );
        }
        assert_eq!(
            issuer.token_response(format!("sub=alice&jkt={jkt}&jkt={jkt}").as_bytes()),
            Err(BadTokenRequest("a form field is given twice"))
        );
    }

    #[test]
    fn only_local_tools_are_admitted() {
        for host in [
            "localhost",
            "localhost:3000",
            "LOCALHOST:3000",
            "127.0.0.1",
            "127.0.0.1:3000",
            "127.9.9.9:1",
            "[::1]",
            "[::1]:3000",
        ] {
            assert_eq!(
                admits_local_caller(&headers(&[("host", host)])),
                Ok(()),
                "{host}"
            );
        }
        for host in [
            "evil.example",
            "evil.example:3000",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:3000",
            "[::2]:3000",
            "localhost:notaport",
            "",
        ] {
            assert!(
                admits_local_caller(&headers(&[("host", host)])).is_err(),
                "{host}"
            );
        }
        assert!(admits_local_caller(&headers(&[])).is_err());
        assert!(
            admits_local_caller(&headers(&[("host", "localhost"), ("host", "localhost")])).is_err()
        );
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
        ] {
            assert_eq!(
                admits_local_caller(&headers(&[("host", "localhost:3000"), ("origin", origin)])),
                Ok(()),
                "{origin}"
            );
        }
        for origin in [
            "https://evil.example",
            "null",
            "http://localhost.evil.example",
        ] {
            assert!(
                admits_local_caller(&headers(&[("host", "localhost:3000"), ("origin", origin)]))
                    .is_err(),
                "{origin}"
            );
        }
    }
}
