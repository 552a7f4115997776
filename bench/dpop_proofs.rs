//! DPoP proofs made ahead of a load test (bench/load.sh): wrk's Lua cannot sign, so this
//! signs them, one per line, each with its own `jti`, for one key, method, URL and token.
//!
//!   dpop-proofs jkt KEY.pem                             the key's RFC 7638 thumbprint
//!   dpop-proofs proofs KEY.pem METHOD HTU TOKEN COUNT   COUNT proofs (RFC 9449 §4.2), ES256
//!
//! KEY.pem is a PKCS#8 P-256 key (tests/fixtures/keys/ec-p256.pem will do). Every proof has
//! `iat` = now, so the proxy must take proofs as old as the load test runs after making them
//! (`dpop.iat_window.past`). The `jti`s are a random prefix and a counter: distinct within a
//! run and, with overwhelming odds, across runs.

use std::io::Write;
use std::process::ExitCode;

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;

const USAGE: &str =
    "usage: dpop-proofs jkt KEY.pem\n       dpop-proofs proofs KEY.pem METHOD HTU TOKEN COUNT";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dpop-proofs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    match args {
        [command, key] if command == "jkt" => {
            let key = Key::load(key)?;
            println!("{}", key.jkt);
            Ok(())
        }
        [command, key, method, htu, token, count] if command == "proofs" => {
            let key = Key::load(key)?;
            let count: u64 = count
                .parse()
                .map_err(|_| format!("COUNT must be a number, not {count:?}"))?;
            key.write_proofs(method, htu, token, count)
        }
        _ => Err(USAGE.into()),
    }
}

struct Key {
    pair: EcdsaKeyPair,
    /// The public JWK as a proof header carries it.
    jwk: String,
    /// Its RFC 7638 thumbprint.
    jkt: String,
}

impl Key {
    fn load(path: &str) -> Result<Key, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let der = STANDARD
            .decode(body.trim())
            .map_err(|_| format!("{path} is not a PEM file"))?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
            .map_err(|_| format!("{path} is not a PKCS#8 P-256 key"))?;
        // Uncompressed point: 0x04 || x || y.
        let point = pair.public_key().as_ref();
        let (x, y) = match point {
            [4, rest @ ..] if rest.len() == 64 => rest.split_at(32),
            _ => return Err(format!("{path}: unexpected public key encoding")),
        };
        let (x, y) = (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y));
        // Required members in lexicographic order, no white space (RFC 7638 §3).
        let jwk = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        let jkt = URL_SAFE_NO_PAD.encode(digest(&SHA256, jwk.as_bytes()));
        Ok(Key { pair, jwk, jkt })
    }

    fn write_proofs(&self, method: &str, htu: &str, token: &str, count: u64) -> Result<(), String> {
        let json = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let header = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"typ":"dpop+jwt","alg":"ES256","jwk":{}}}"#,
            self.jwk
        ));
        let ath = URL_SAFE_NO_PAD.encode(digest(&SHA256, token.as_bytes()));
        let iat = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| "the clock is before 1970".to_string())?
            .as_secs();
        let prefix = format!("{:016x}", fastrand::u64(..));
        let (method, htu) = (json(method), json(htu));
        let rng = SystemRandom::new();
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let mut input = String::with_capacity(512);
        for n in 0..count {
            let claims = format!(
                r#"{{"jti":"{prefix}-{n}","htm":{method},"htu":{htu},"iat":{iat},"ath":"{ath}"}}"#
            );
            input.clear();
            input.push_str(&header);
            input.push('.');
            URL_SAFE_NO_PAD.encode_string(claims.as_bytes(), &mut input);
            let signature = self
                .pair
                .sign(&rng, input.as_bytes())
                .map_err(|_| "signing failed".to_string())?;
            input.push('.');
            URL_SAFE_NO_PAD.encode_string(signature.as_ref(), &mut input);
            input.push('\n');
            out.write_all(input.as_bytes())
                .map_err(|e| format!("cannot write: {e}"))?;
        }
        out.flush().map_err(|e| format!("cannot write: {e}"))
    }
}
