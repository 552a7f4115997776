//! `tokengate inspect`: why was my token rejected? Decodes a token, then runs every check
//! tokengate would, each with its own verdict, against a configuration or a JWKS file.

use std::fmt::Write as _;
use std::time::Duration;

use crate::algorithm::Algorithm;
use serde_json::Value;

use crate::authn::{self, ClaimCheck, Jws};
use crate::config::Settings;
use crate::jwk::{JwksError, KeySet, Selection, Skipped, HMAC_ALGORITHMS, SUPPORTED_ALGORITHMS};
use crate::jwks::KeyStore;

/// Where the keys come from.
pub enum Keys<'a> {
    /// A configuration: its issuers, audiences, assertions and key sources.
    Config(&'a Settings),
    /// A JWKS document (any supported asymmetric algorithm; no issuer or audience checks).
    /// With `allow_hmac`, `kty: oct` keys are HMAC keys for HS256/384/512 too.
    Jwks {
        /// The JWKS document's bytes (RFC 7517 §5).
        jwks: &'a [u8],
        /// `--allow-hmac`: read `kty: oct` keys as HMAC secrets.
        allow_hmac: bool,
    },
}

/// The printed report and whether the token would be accepted.
pub struct Report {
    /// The report for people: the decoded header and claims, one `PASS`/`FAIL` line per
    /// check, `note` lines, and the verdict.
    pub text: String,
    /// Whether no check failed.
    pub accepted: bool,
}

struct Lines {
    text: String,
    failures: usize,
}

impl Lines {
    /// One `note` line per skipped key: not a failure of the token, but often its cause.
    fn skipped(&mut self, skipped: &[Skipped]) {
        for s in skipped {
            let _ = writeln!(self.text, "note  key skipped: {s} ({})", s.reason);
        }
    }

    fn check(&mut self, name: &str, result: Result<String, String>) {
        let (mark, detail) = match result {
            Ok(d) => ("PASS", d),
            Err(d) => {
                self.failures += 1;
                ("FAIL", d)
            }
        };
        let _ = writeln!(self.text, "{mark}  {name:<16} {detail}");
    }
}

/// Inspects `token`. With `signature_only`, only the JWS signature is checked.
pub async fn inspect(token: &str, keys: Keys<'_>, signature_only: bool) -> Report {
    let mut out = Lines {
        text: String::new(),
        failures: 0,
    };
    let jws = match Jws::parse(token.trim()) {
        Ok(jws) => jws,
        Err(e) => {
            out.check("format", Err(e.to_string()));
            return Report {
                text: out.text,
                accepted: false,
            };
        }
    };
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
    let _ = writeln!(
        out.text,
        "header:\n{}",
        pretty(&Value::Object(jws.header.clone()))
    );
    let claims = crate::authn::parse_claims(&jws.payload);
    match &claims {
        Ok(c) => {
            let _ = writeln!(out.text, "claims:\n{}\n", pretty(&Value::Object(c.clone())));
        }
        Err(why) if signature_only => {
            let _ = writeln!(out.text, "payload: {} bytes ({why})\n", jws.payload.len());
        }
        Err(why) => out.check("payload", Err((*why).to_owned())),
    }
    // With a configuration, the payload's `iss` chooses the issuer and its keys: when the
    // payload cannot be read, the proxy stops there, and so does this report (no issuer or
    // signature verdict that the proxy would never have reached).
    let unread = matches!((&keys, &claims), (Keys::Config(_), Err(_)));
    let kid = jws.kid.as_deref();

    let (set, issuer) = match keys {
        Keys::Jwks { jwks, allow_hmac } => match KeySet::parse_with(
            jwks,
            &[&SUPPORTED_ALGORITHMS[..], &HMAC_ALGORITHMS[..]].concat(),
            allow_hmac,
        ) {
            Ok((set, skipped)) => {
                out.skipped(&skipped);
                (Some(set), None)
            }
            Err(e) => {
                if let JwksError::NoUsableKeys(skipped) = &e {
                    out.skipped(skipped);
                }
                out.check("keys", Err(e.to_string()));
                (None, None)
            }
        },
        Keys::Config(_) if unread => {
            let _ = writeln!(
                out.text,
                "note  issuer, algorithm and signature not checked: the issuer is read from the payload"
            );
            if signature_only {
                out.check(
                    "signature",
                    Err("no issuer to take keys from; use --jwks".into()),
                );
            }
            (None, None)
        }
        Keys::Config(settings) => {
            let iss = claims
                .as_ref()
                .ok()
                .and_then(|c| c.get("iss"))
                .and_then(Value::as_str)
                .unwrap_or("");
            match settings.issuer(iss) {
                None => {
                    out.check("issuer", Err(format!("`{iss}` is not a configured issuer")));
                    (None, None)
                }
                Some(issuer) => {
                    out.check("issuer", Ok(format!("{iss} is configured")));
                    let (set, skipped) = load_keys(settings, iss, &issuer.algorithms).await;
                    out.skipped(&skipped);
                    (set, Some(issuer))
                }
            }
        }
    };

    if let Some(issuer) = issuer {
        let allowed = issuer.algorithms.contains(&jws.alg);
        out.check(
            "algorithm",
            if allowed {
                Ok(format!("{:?} is allowed", jws.alg))
            } else {
                Err(format!(
                    "{:?} is not in the issuer's allow-list {:?}",
                    jws.alg, issuer.algorithms
                ))
            },
        );
    }
    match set.as_ref().map(|s| s.select(kid, jws.alg)) {
        _ if unread => {}
        Some(Selection::Found(key)) => {
            let which = format!("kid {}", key.kid.as_deref().unwrap_or("(none)"));
            out.check(
                "signature",
                jws.verify_signature(&key)
                    .map(|()| format!("verified with {which} ({:?})", jws.alg))
                    .map_err(|e| format!("{e} ({which})")),
            );
        }
        Some(Selection::NotFound) => out.check(
            "signature",
            Err(format!("no key for kid {kid:?} and {:?}", jws.alg)),
        ),
        Some(Selection::NoKidSeveralKeys) => {
            out.check("signature", Err("no kid, and several keys fit".into()))
        }
        Some(Selection::KidConflict) => out.check(
            "signature",
            Err(format!(
                "the issuer publishes two different keys under kid {kid:?} for {:?}",
                jws.alg
            )),
        ),
        None => out.check("signature", Err("no keys to check it with".into())),
    }

    if !signature_only {
        if let Ok(claims) = &claims {
            let now = authn::now();
            match issuer {
                Some(issuer) => {
                    for check in ClaimCheck::ordered(issuer) {
                        let detail = describe(check, claims, issuer.audiences.as_slice(), now);
                        let result = check.run(claims, jws.typ.as_deref(), issuer, now);
                        out.check(
                            &check.name(),
                            result
                                .map(|()| detail.clone())
                                .map_err(|e| format!("{e}; {detail}")),
                        );
                    }
                }
                None => {
                    let detail = describe(ClaimCheck::Expiry, claims, &[], now);
                    let _ = writeln!(out.text, "note  issuer, audience and assertions are checked only with --config ({detail})");
                }
            }
        }
    }
    let accepted = out.failures == 0;
    let _ = writeln!(
        out.text,
        "\nverdict: {}",
        if accepted {
            "ACCEPTED".to_string()
        } else {
            format!(
                "REJECTED ({} check{} failed)",
                out.failures,
                if out.failures == 1 { "" } else { "s" }
            )
        }
    );
    Report {
        text: out.text,
        accepted,
    }
}

/// Fetches the issuer's keys the way the proxy would (discovery, jwks_uri or file), with the
/// keys that load skipped.
async fn load_keys(
    settings: &Settings,
    issuer: &str,
    allowed: &[Algorithm],
) -> (Option<KeySet>, Vec<Skipped>) {
    // The dev issuer's key is only knowable when it is kept in a key file.
    let dev = settings
        .dev_issuer
        .as_ref()
        .filter(|d| d.key_file.as_ref().is_some_and(|p| p.exists()))
        .and_then(|d| crate::dev::DevIssuer::new(d).ok());
    let store = KeyStore::new(settings, dev.as_ref().map(crate::dev::DevIssuer::key_set));
    store.start();
    let deadline =
        tokio::time::Instant::now() + settings.keys.fetch_timeout + Duration::from_secs(1);
    let skipped = |store: &KeyStore| {
        store
            .skipped_keys()
            .into_iter()
            .find(|(i, _)| *i == issuer)
            .map(|(_, s)| s)
            .unwrap_or_default()
    };
    while tokio::time::Instant::now() < deadline {
        if !store.issuers_without_keys().contains(&issuer) {
            return (store.key_set(issuer, allowed), skipped(&store));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (None, skipped(&store))
}

/// What a claim check looked at, in words.
fn describe(
    check: ClaimCheck<'_>,
    claims: &serde_json::Map<String, Value>,
    audiences: &[String],
    now: f64,
) -> String {
    let at = |name: &str| claims.get(name).and_then(Value::as_f64);
    let relative = |t: f64| {
        let d = (t - now).abs().round() as u64;
        let text = format!("{}h {}m {}s", d / 3600, d % 3600 / 60, d % 60);
        if t >= now {
            format!("in {text}")
        } else {
            format!("{text} ago")
        }
    };
    match check {
        ClaimCheck::Expiry => {
            at("exp").map_or("no exp".into(), |t| format!("exp {t} ({})", relative(t)))
        }
        ClaimCheck::NotBefore => {
            at("nbf").map_or("no nbf".into(), |t| format!("nbf {t} ({})", relative(t)))
        }
        ClaimCheck::IssuedAt => {
            at("iat").map_or("no iat".into(), |t| format!("iat {t} ({})", relative(t)))
        }
        ClaimCheck::Audience => format!(
            "aud {}; accepted: {}",
            claims.get("aud").map_or("(none)".into(), Value::to_string),
            audiences.join(", ")
        ),
        ClaimCheck::Assertion(rule) => format!(
            "{} = {}",
            rule.name,
            crate::claims::lookup(claims, &rule.path).map_or("(absent)".into(), Value::to_string)
        ),
        ClaimCheck::Lifetime | ClaimCheck::ClaimTypes | ClaimCheck::Rfc9068Profile => String::new(),
    }
}
