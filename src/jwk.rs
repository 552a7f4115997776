//! JWK sets (RFC 7517) → the keys tokengate will verify with.
//!
//! Hygiene is applied key by key: a key that is not for signatures, has no allowed algorithm,
//! is too weak or is malformed is skipped with a reason ([`Skipped`]: a stable code for metrics
//! and a detail for people), and the rest of the set still loads. Symmetric (`oct`) keys are
//! never used.
//!
//! `kid`s (RFC 7517 §4.5): the same key listed twice under one `kid` (IdPs do this during
//! rotations) counts once, its algorithms merged; two *different* keys under one `kid` that
//! admit the same algorithm make that `kid` unusable for that algorithm
//! ([`Selection::KidConflict`], listed in [`KeySet::conflicts`]); keys of different types under
//! one `kid` stay selectable by algorithm.

use std::sync::Arc;

use crate::algorithm::Algorithm;
use aws_lc_rs::signature::{self as sig, ParsedPublicKey, RsaPublicKeyComponents};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

/// The HMAC algorithms (RFC 7518 §3.2): only ever used by an issuer configured with a shared
/// secret (`hmac:`), or by `tokengate inspect --allow-hmac`; never by a JWKS-keyed issuer.
pub const HMAC_ALGORITHMS: [Algorithm; 3] = [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512];

/// Whether `alg` is one of the HMAC algorithms.
pub fn is_hmac(alg: Algorithm) -> bool {
    HMAC_ALGORITHMS.contains(&alg)
}

/// The shortest HMAC key allowed for `alg`: its hash output size (RFC 7518 §3.2).
pub fn hmac_min_key_bytes(alg: Algorithm) -> usize {
    match alg {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    }
}

/// Every asymmetric signature algorithm tokengate can verify.
pub const SUPPORTED_ALGORITHMS: [Algorithm; 10] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::EdDSA,
];

/// A public key and the algorithms it may verify: the issuer's allow-list ∩ the key's type
/// (and curve) ∩ its own `alg`, when it names one.
#[derive(Clone)]
pub struct VerifyingKey {
    /// The JWK's `kid` (RFC 7517 §4.5), if it has one.
    pub kid: Option<String>,
    /// The algorithms this key may verify.
    pub algorithms: Vec<Algorithm>,
    /// The key parsed once per algorithm it may verify, so that a signature check (every
    /// cache miss) does not parse the key again.
    parsed: Vec<(Algorithm, Verifier)>,
    /// SHA-256 of the key type and material: the same key fetched again compares equal.
    pub fingerprint: [u8; 32],
    /// The key type with its size or curve, for people: `RSA 2048 bits`, `EC P-256`,
    /// `OKP Ed25519`.
    pub kind: String,
}

/// How a key checks signatures of one algorithm. A key is one or the other, never both: a
/// public key cannot be used as an HMAC secret (the algorithm confusion of CVE-2016-10555).
#[derive(Clone)]
enum Verifier {
    Public(ParsedPublicKey),
    /// A shared secret (RFC 7518 §3.2); aws-lc-rs compares the tag in constant time. Boxed:
    /// an HMAC context is over a kilobyte, and public keys are the common case.
    Hmac(Box<aws_lc_rs::hmac::Key>),
}

/// Public key material, as a JWK gives it.
pub enum PublicKey {
    /// An RSA key (RFC 7518 §6.3.1).
    Rsa {
        /// The modulus, big-endian, without leading zero bytes.
        n: Vec<u8>,
        /// The public exponent, big-endian, without leading zero bytes.
        e: Vec<u8>,
    },
    /// An uncompressed EC point (`04 || x || y`).
    Ec(Vec<u8>),
    /// An Ed25519 public key (RFC 8037 §2): the 32 bytes of `x`.
    Ed25519(Vec<u8>),
}

impl PublicKey {
    /// `RSA 2048 bits`, `EC P-256`, `EC P-384`, `OKP Ed25519`.
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { n, .. } => {
                let n = strip_leading_zeros(n);
                let bits = n
                    .first()
                    .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
                format!("RSA {bits} bits")
            }
            // An uncompressed point is 1 + 2 × the coordinate size.
            PublicKey::Ec(point) => match point.len() {
                65 => "EC P-256".into(),
                97 => "EC P-384".into(),
                133 => "EC P-521".into(),
                n => format!("EC point of {n} bytes"),
            },
            PublicKey::Ed25519(_) => "OKP Ed25519".into(),
        }
    }

    fn parse_for(&self, alg: Algorithm) -> Result<ParsedPublicKey, String> {
        let rsa = |params: &'static sig::RsaParameters, n: &[u8], e: &[u8]| {
            RsaPublicKeyComponents { n, e }
                .to_parsed_public_key(params)
                .map_err(|e| format!("RSA key rejected: {e}"))
        };
        let other = |algorithm: &'static dyn sig::VerificationAlgorithm, bytes: &[u8]| {
            ParsedPublicKey::new(algorithm, bytes).map_err(|e| match self {
                PublicKey::Ec(_) => "EC point is not on the curve".to_string(),
                _ => format!("key rejected: {e}"),
            })
        };
        match (self, alg) {
            (PublicKey::Rsa { n, e }, Algorithm::RS256) => {
                rsa(&sig::RSA_PKCS1_2048_8192_SHA256, n, e)
            }
            (PublicKey::Rsa { n, e }, Algorithm::RS384) => {
                rsa(&sig::RSA_PKCS1_2048_8192_SHA384, n, e)
            }
            (PublicKey::Rsa { n, e }, Algorithm::RS512) => {
                rsa(&sig::RSA_PKCS1_2048_8192_SHA512, n, e)
            }
            (PublicKey::Rsa { n, e }, Algorithm::PS256) => {
                rsa(&sig::RSA_PSS_2048_8192_SHA256, n, e)
            }
            (PublicKey::Rsa { n, e }, Algorithm::PS384) => {
                rsa(&sig::RSA_PSS_2048_8192_SHA384, n, e)
            }
            (PublicKey::Rsa { n, e }, Algorithm::PS512) => {
                rsa(&sig::RSA_PSS_2048_8192_SHA512, n, e)
            }
            (PublicKey::Ec(point), Algorithm::ES256) => other(&sig::ECDSA_P256_SHA256_FIXED, point),
            (PublicKey::Ec(point), Algorithm::ES384) => other(&sig::ECDSA_P384_SHA384_FIXED, point),
            (PublicKey::Ec(point), Algorithm::ES512) => other(&sig::ECDSA_P521_SHA512_FIXED, point),
            (PublicKey::Ed25519(x), Algorithm::EdDSA) => other(&sig::ED25519, x),
            (_, alg) => Err(format!("{alg:?} does not fit this key")),
        }
    }
}

impl VerifyingKey {
    /// A key for `algorithms` (each must fit `key`); `material` is what its fingerprint covers.
    pub fn new(
        kid: Option<String>,
        algorithms: Vec<Algorithm>,
        key: &PublicKey,
        material: &[&[u8]],
    ) -> Result<VerifyingKey, String> {
        let parsed = algorithms
            .iter()
            .map(|alg| Ok((*alg, Verifier::Public(key.parse_for(*alg)?))))
            .collect::<Result<Vec<_>, String>>()?;
        Ok(VerifyingKey {
            kid,
            algorithms,
            parsed,
            fingerprint: fingerprint(material),
            kind: key.describe(),
        })
    }

    /// An HMAC key for `algorithms` (each HS256, HS384 or HS512) from a shared secret at least
    /// as long as each one's hash output (RFC 7518 §3.2); the reason otherwise.
    pub fn hmac(
        kid: Option<String>,
        algorithms: Vec<Algorithm>,
        secret: &[u8],
    ) -> Result<VerifyingKey, String> {
        let parsed = algorithms
            .iter()
            .map(|alg| {
                let digest = match alg {
                    Algorithm::HS256 => aws_lc_rs::hmac::HMAC_SHA256,
                    Algorithm::HS384 => aws_lc_rs::hmac::HMAC_SHA384,
                    Algorithm::HS512 => aws_lc_rs::hmac::HMAC_SHA512,
                    other => return Err(format!("{other:?} is not an HMAC algorithm")),
                };
                if secret.len() < hmac_min_key_bytes(*alg) {
                    return Err(format!(
                        "an HMAC key of {} bytes is shorter than {alg:?}'s {}-byte hash output (RFC 7518 §3.2)",
                        secret.len(),
                        hmac_min_key_bytes(*alg)
                    ));
                }
                Ok((
                    *alg,
                    Verifier::Hmac(Box::new(aws_lc_rs::hmac::Key::new(digest, secret))),
                ))
            })
            .collect::<Result<Vec<_>, String>>()?;
        Ok(VerifyingKey {
            kid,
            algorithms,
            parsed,
            fingerprint: fingerprint(&[b"oct", secret]),
            kind: format!("oct HMAC secret of {} bytes", secret.len()),
        })
    }

    /// Whether this key may verify `alg`.
    pub fn admits(&self, alg: Algorithm) -> bool {
        self.parsed.iter().any(|(a, _)| *a == alg)
    }

    /// True when `signature` is this key's valid signature (or HMAC tag) of `message` under
    /// `alg`; false for any other algorithm.
    pub fn verify(&self, alg: Algorithm, message: &[u8], signature: &[u8]) -> bool {
        match self.parsed.iter().find(|(a, _)| *a == alg) {
            Some((_, Verifier::Public(key))) => key.verify_sig(message, signature).is_ok(),
            Some((_, Verifier::Hmac(key))) => {
                aws_lc_rs::hmac::verify(key, message, signature).is_ok()
            }
            None => false,
        }
    }

    /// Adds the algorithms of `other`, the same key listed again (same `kid`, same material),
    /// that this one does not have yet.
    fn merge(&mut self, other: VerifyingKey) {
        for (alg, parsed) in other.parsed {
            if !self.algorithms.contains(&alg) {
                self.algorithms.push(alg);
                self.parsed.push((alg, parsed));
            }
        }
    }

    /// The same key material under the same `kid`.
    pub fn same_as(&self, other: &VerifyingKey) -> bool {
        self.fingerprint == other.fingerprint && self.kid == other.kid
    }
}

/// SHA-256 over length-prefixed parts: the same key fetched again compares equal.
fn fingerprint(material: &[&[u8]]) -> [u8; 32] {
    let mut context = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    for part in material {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    let mut fingerprint = [0u8; 32];
    fingerprint.copy_from_slice(context.finish().as_ref());
    fingerprint
}

// Never the key material (an HMAC secret above all): kid, algorithms and kind only.
impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("kid", &self.kid)
            .field("algorithms", &self.algorithms)
            .field("kind", &self.kind)
            .finish()
    }
}

/// The usable keys of one JWKS document.
#[derive(Debug, Default)]
pub struct KeySet {
    /// Distinct keys: the same material under the same `kid` appears once.
    pub keys: Vec<Arc<VerifyingKey>>,
    /// `kid`s under which the set publishes two different keys for one algorithm, with that
    /// algorithm: tokens naming them are refused ([`Selection::KidConflict`]).
    pub conflicts: Vec<(String, Algorithm)>,
}

/// Which key a token names.
#[derive(Debug)]
pub enum Selection {
    /// Exactly one key fits.
    Found(Arc<VerifyingKey>),
    /// No key admits the token's algorithm (under its `kid`, if it names one).
    NotFound,
    /// The token names no `kid` and more than one key admits its algorithm.
    NoKidSeveralKeys,
    /// The token's `kid` names two different keys that admit its algorithm.
    KidConflict,
}

/// Why a JWKS document was not used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or no `keys` array (RFC 7517 §5).
    #[error("the JWKS is not a JSON object with a keys array")]
    NotAJwks,
    /// With HMAC allowed (`inspect --allow-hmac`): the set holds both HMAC secrets and public
    /// keys, which no issuer may mix.
    #[error("the JWKS mixes HMAC secrets with public keys: an issuer is one or the other")]
    MixedHmac,
    /// Every key was skipped (or there was none); each with its reason.
    #[error("the JWKS holds no usable signing key{}", describe_skipped(.0))]
    NoUsableKeys(Vec<Skipped>),
}

fn describe_skipped(skipped: &[Skipped]) -> String {
    if skipped.is_empty() {
        return String::new();
    }
    let all: Vec<String> = skipped.iter().map(Skipped::to_string).collect();
    format!(" ({})", all.join("; "))
}

/// A key that was skipped, and why, for the caller to log, count and show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The key's `kid` (at most 64 characters; `(no kid)` when it has none).
    pub kid: String,
    /// A stable code, the `reason` label of `tokengate_jwks_keys_skipped_total`
    /// (e.g. `rsa_too_small`, `ec_coordinates_length`, `use_not_sig`).
    pub reason: &'static str,
    /// The reason in words, e.g. "RSA modulus of 1024 bits is under 2048".
    pub detail: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "kid {:?}: {}", self.kid, self.detail)
    }
}

/// Why one JWK is skipped: a stable code and the reason in words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkipReason {
    /// The stable code (becomes [`Skipped::reason`]).
    pub code: &'static str,
    /// The reason in words (becomes [`Skipped::detail`]).
    pub detail: String,
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.detail)
    }
}

/// Skip reasons that mean "this key could not be read" (rather than "it is not for us").
const MALFORMED: [&str; 5] = [
    "base64url_invalid",
    "base64url_padded",
    "member_missing",
    "ec_coordinates_length",
    "x5c_only",
];

fn skip(code: &'static str, detail: impl Into<String>) -> SkipReason {
    SkipReason {
        code,
        detail: detail.into(),
    }
}

impl KeySet {
    /// Parses a JWKS, keeping the keys usable with `allowed`, with every skipped key and its
    /// reason. Errors when none is usable ([`JwksError::NoUsableKeys`] still lists the
    /// skipped keys) or the document is not a JWKS.
    pub fn parse(bytes: &[u8], allowed: &[Algorithm]) -> Result<(KeySet, Vec<Skipped>), JwksError> {
        KeySet::parse_with(bytes, allowed, false)
    }

    /// As [`KeySet::parse`]; with `allow_hmac`, `kty: oct` keys are HMAC keys for the HS
    /// algorithms in `allowed` (`tokengate inspect --allow-hmac` only: the proxy never takes
    /// an HMAC key from a JWKS).
    pub fn parse_with(
        bytes: &[u8],
        allowed: &[Algorithm],
        allow_hmac: bool,
    ) -> Result<(KeySet, Vec<Skipped>), JwksError> {
        let doc: Value = serde_json::from_slice(bytes).map_err(|_| JwksError::NotAJwks)?;
        let Some(Value::Array(items)) = doc.get("keys") else {
            return Err(JwksError::NotAJwks);
        };
        let mut keys: Vec<VerifyingKey> = Vec::new();
        let mut skipped = Vec::new();
        // (kid, kty) of keys skipped as unreadable: a usable key sharing both is ambiguous.
        let mut unreadable: Vec<(&str, &str)> = Vec::new();
        for item in items {
            match parse_key_with(item, allowed, allow_hmac) {
                Ok(key) => {
                    // The same key again under the same kid: one key, algorithms merged.
                    match keys.iter_mut().find(|k| k.same_as(&key)) {
                        Some(first) => first.merge(key),
                        None => keys.push(key),
                    }
                }
                Err(reason) => {
                    if MALFORMED.contains(&reason.code) {
                        if let (Some(kid), Some(kty)) = (
                            item.get("kid").and_then(Value::as_str),
                            item.get("kty").and_then(Value::as_str),
                        ) {
                            unreadable.push((kid, kty));
                        }
                    }
                    skipped.push(Skipped {
                        kid: item
                            .get("kid")
                            .and_then(Value::as_str)
                            .unwrap_or("(no kid)")
                            .chars()
                            .take(64)
                            .collect(),
                        reason: reason.code,
                        detail: reason.detail,
                    })
                }
            }
        }
        if keys.is_empty() {
            return Err(JwksError::NoUsableKeys(skipped));
        }
        // Different keys under one kid for one algorithm: after the merge above, any two keys
        // that share a kid and an algorithm are different keys.
        let mut conflicts: Vec<(String, Algorithm)> = Vec::new();
        for (i, a) in keys.iter().enumerate() {
            let Some(kid) = &a.kid else { continue };
            for b in &keys[i + 1..] {
                if b.kid.as_ref() != Some(kid) {
                    continue;
                }
                for alg in a.algorithms.iter().filter(|x| b.algorithms.contains(x)) {
                    if !conflicts.iter().any(|(k, x)| k == kid && x == alg) {
                        conflicts.push((kid.clone(), *alg));
                    }
                }
            }
        }
        // A kid that also names an unreadable key of the same type is two keys under one kid
        // as well: another verifier may read the second one (Wycheproof's DuplicateKid).
        for key in &keys {
            let Some(kid) = &key.kid else { continue };
            if unreadable
                .iter()
                .any(|(k, kty)| k == kid && key.kind.starts_with(kty))
            {
                for alg in &key.algorithms {
                    if !conflicts.iter().any(|(k, x)| k == kid && x == alg) {
                        conflicts.push((kid.clone(), *alg));
                    }
                }
            }
        }
        let hmac = keys
            .iter()
            .filter(|k| k.algorithms.iter().any(|a| is_hmac(*a)))
            .count();
        if hmac > 0 && hmac < keys.len() {
            return Err(JwksError::MixedHmac);
        }
        let keys = keys.into_iter().map(Arc::new).collect();
        Ok((KeySet { keys, conflicts }, skipped))
    }

    /// The one key for this `kid` (or, without a `kid`, the one key at all) that admits `alg`.
    pub fn select(&self, kid: Option<&str>, alg: Algorithm) -> Selection {
        if let Some(kid) = kid {
            if self.conflicts.iter().any(|(k, a)| k == kid && *a == alg) {
                return Selection::KidConflict;
            }
        }
        let mut fitting = self
            .keys
            .iter()
            .filter(|k| k.algorithms.contains(&alg))
            .filter(|k| kid.is_none() || k.kid.as_deref() == kid);
        match (fitting.next(), fitting.next(), kid) {
            (Some(key), None, _) => Selection::Found(key.clone()),
            (None, _, _) => Selection::NotFound,
            (Some(_), Some(_), None) => Selection::NoKidSeveralKeys,
            (Some(_), Some(_), Some(_)) => Selection::KidConflict,
        }
    }

    /// The `kid`s with two different keys for one algorithm, each once.
    pub fn conflicting_kids(&self) -> Vec<&str> {
        // Each kid once, in first-seen order (`dedup` alone keeps non-adjacent repeats).
        let mut kids: Vec<&str> = Vec::new();
        for (kid, _) in &self.conflicts {
            if !kids.contains(&kid.as_str()) {
                kids.push(kid.as_str());
            }
        }
        kids
    }

    /// The number of distinct usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set holds no key (a parsed set never does: that is
    /// [`JwksError::NoUsableKeys`]).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// One JWK → a verifying key, or the reason it is skipped.
pub fn parse_key(jwk: &Value, allowed: &[Algorithm]) -> Result<VerifyingKey, SkipReason> {
    parse_key_with(jwk, allowed, false)
}

/// As [`parse_key`]; with `allow_hmac`, a `kty: oct` key is an HMAC key (see
/// [`KeySet::parse_with`]).
pub fn parse_key_with(
    jwk: &Value,
    allowed: &[Algorithm],
    allow_hmac: bool,
) -> Result<VerifyingKey, SkipReason> {
    let Value::Object(jwk) = jwk else {
        return Err(skip("not_an_object", "not a JSON object"));
    };
    let kid = match jwk.get("kid") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(skip("kid_not_string", "kid is not a string")),
    };
    match jwk.get("use") {
        None => {}
        Some(Value::String(u)) if u == "sig" => {}
        Some(other) => return Err(skip("use_not_sig", format!("use is {other}, not \"sig\""))),
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verifies = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o == "verify"));
        if !verifies {
            return Err(skip("key_ops_no_verify", "key_ops does not include verify"));
        }
    }
    let named_alg = match jwk.get("alg") {
        None => None,
        Some(Value::String(name)) => Some(Algorithm::from_name(name).ok_or_else(|| {
            skip(
                "alg_unsupported",
                format!("alg {name} is not a supported signature algorithm"),
            )
        })?),
        Some(_) => return Err(skip("alg_not_string", "alg is not a string")),
    };

    let kty = jwk.get("kty").and_then(Value::as_str).unwrap_or("");
    let ((key, material), fits): ((PublicKey, Vec<u8>), &[Algorithm]) = match kty {
        "RSA" => (
            rsa_key(jwk)?,
            &[
                Algorithm::RS256,
                Algorithm::RS384,
                Algorithm::RS512,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::PS512,
            ],
        ),
        "EC" => {
            let (key, alg) = ec_key(jwk)?;
            (
                key,
                match alg {
                    Algorithm::ES256 => &[Algorithm::ES256],
                    Algorithm::ES384 => &[Algorithm::ES384],
                    _ => &[Algorithm::ES512],
                },
            )
        }
        "OKP" => (ed_key(jwk)?, &[Algorithm::EdDSA]),
        "oct" if allow_hmac => return hmac_key(jwk, kid, named_alg, allowed),
        "oct" => {
            return Err(skip(
                "symmetric_key",
                "symmetric (oct) keys are never taken from a JWKS",
            ))
        }
        other => {
            return Err(skip(
                "kty_unsupported",
                format!("kty {other:?} is not supported"),
            ))
        }
    };
    if let Some(alg) = named_alg {
        if !fits.contains(&alg) {
            return Err(skip(
                "alg_mismatch",
                format!("alg {alg:?} does not fit a {kty} key"),
            ));
        }
    }
    let algorithms: Vec<Algorithm> = fits
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .filter(|a| named_alg.is_none_or(|n| n == *a))
        .collect();
    if algorithms.is_empty() {
        return Err(skip(
            "alg_not_allowed",
            "none of the issuer's allowed algorithms fits this key",
        ));
    }
    let code = if kty == "EC" {
        "ec_point_invalid"
    } else {
        "key_rejected"
    };
    VerifyingKey::new(kid, algorithms, &key, &[kty.as_bytes(), &material])
        .map_err(|e| skip(code, e))
}

/// A `kty: oct` JWK as an HMAC key (inspect --allow-hmac): the HS algorithms of `allowed`
/// that its own `alg` (if any) names, each needing a key as long as its hash output.
fn hmac_key(
    jwk: &Map<String, Value>,
    kid: Option<String>,
    named_alg: Option<Algorithm>,
    allowed: &[Algorithm],
) -> Result<VerifyingKey, SkipReason> {
    let secret = member(jwk, "k")?;
    if let Some(alg) = named_alg.filter(|a| !is_hmac(*a)) {
        return Err(skip(
            "alg_mismatch",
            format!("alg {alg:?} does not fit an oct key"),
        ));
    }
    let algorithms: Vec<Algorithm> = HMAC_ALGORITHMS
        .iter()
        .copied()
        .filter(|a| allowed.contains(a))
        .filter(|a| named_alg.is_none_or(|n| n == *a))
        .filter(|a| secret.len() >= hmac_min_key_bytes(*a))
        .collect();
    if algorithms.is_empty() {
        let needed = named_alg.map_or(32, hmac_min_key_bytes);
        return Err(skip(
            "hmac_key_too_short",
            format!(
                "an HMAC key of {} bytes is shorter than the {needed}-byte hash output (RFC 7518 §3.2)",
                secret.len()
            ),
        ));
    }
    VerifyingKey::hmac(kid, algorithms, &secret).map_err(|e| skip("key_rejected", e))
}

fn member(jwk: &Map<String, Value>, name: &str) -> Result<Vec<u8>, SkipReason> {
    let Some(text) = jwk.get(name).and_then(Value::as_str) else {
        if jwk.contains_key("x5c") {
            return Err(skip(
                "x5c_only",
                format!(
                    "{name} is missing (tokengate reads the key from its members, never from x5c)"
                ),
            ));
        }
        return Err(skip("member_missing", format!("{name} is missing")));
    };
    URL_SAFE_NO_PAD.decode(text).map_err(|_| {
        if text.ends_with('=') {
            skip(
                "base64url_padded",
                format!("{name} is base64url with padding, which RFC 7518 §6 does not allow"),
            )
        } else {
            skip("base64url_invalid", format!("{name} is not base64url"))
        }
    })
}

fn rsa_key(jwk: &Map<String, Value>) -> Result<(PublicKey, Vec<u8>), SkipReason> {
    let n = member(jwk, "n")?;
    let e = member(jwk, "e")?;
    let n = strip_leading_zeros(&n);
    let e = strip_leading_zeros(&e);
    // An empty (or all-zero) modulus is 0 bits, never an underflow.
    let bits = n
        .first()
        .map_or(0, |b| n.len() * 8 - b.leading_zeros() as usize);
    if bits < 2048 {
        return Err(skip(
            "rsa_too_small",
            format!("RSA modulus of {bits} bits is under 2048"),
        ));
    }
    if bits > 8192 {
        return Err(skip(
            "rsa_too_large",
            format!("RSA modulus of {bits} bits is over 8192"),
        ));
    }
    let e_value = e.iter().try_fold(0u64, |acc, b| {
        (acc <= u64::MAX >> 8).then(|| (acc << 8) | u64::from(*b))
    });
    match e_value {
        Some(e) if e >= 3 && e % 2 == 1 && e <= u64::from(u32::MAX) => {}
        _ => {
            return Err(skip(
                "rsa_exponent",
                "RSA exponent is not an odd number from 3 to 2^32",
            ))
        }
    }
    if n.last().is_none_or(|b| b % 2 == 0) {
        return Err(skip("rsa_even_modulus", "RSA modulus is even"));
    }
    if has_roca_fingerprint(n) {
        return Err(skip(
            "rsa_roca",
            "RSA key has the ROCA fingerprint (CVE-2017-15361)",
        ));
    }
    Ok((
        PublicKey::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        },
        [n, e].concat(),
    ))
}

fn ec_key(jwk: &Map<String, Value>) -> Result<((PublicKey, Vec<u8>), Algorithm), SkipReason> {
    let (size, alg) = match jwk.get("crv").and_then(Value::as_str) {
        Some("P-256") => (32, Algorithm::ES256),
        Some("P-384") => (48, Algorithm::ES384),
        // RFC 7518 §6.2.1.2: P-521 coordinates are 66 bytes.
        Some("P-521") => (66, Algorithm::ES512),
        other => {
            return Err(skip(
                "curve_unsupported",
                format!("curve {other:?} is not supported"),
            ))
        }
    };
    let x = member(jwk, "x")?;
    let y = member(jwk, "y")?;
    if x.len() != size || y.len() != size {
        return Err(skip(
            "ec_coordinates_length",
            format!(
                "EC coordinates of {} and {} bytes have the wrong length for the curve ({size})",
                x.len(),
                y.len()
            ),
        ));
    }
    let mut point = Vec::with_capacity(1 + 2 * size);
    point.push(0x04);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    // A point that is not on the curve is refused when the key is parsed (VerifyingKey::new).
    Ok(((PublicKey::Ec(point.clone()), point), alg))
}

fn ed_key(jwk: &Map<String, Value>) -> Result<(PublicKey, Vec<u8>), SkipReason> {
    if jwk.get("crv").and_then(Value::as_str) != Some("Ed25519") {
        return Err(skip(
            "curve_unsupported",
            "only the Ed25519 curve is supported for OKP keys",
        ));
    }
    let x = member(jwk, "x")?;
    if x.len() != 32 {
        return Err(skip("ed25519_length", "Ed25519 key is not 32 bytes"));
    }
    Ok((PublicKey::Ed25519(x.clone()), x))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The ROCA test (Nemec et al., CCS 2017): moduli from the vulnerable Infineon library are,
/// modulo each of these small primes, in the subgroup generated by 65537. A random modulus
/// passes every prime with negligible probability.
fn has_roca_fingerprint(n: &[u8]) -> bool {
    const PRIMES: [u32; 38] = [
        3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
        97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
    ];
    PRIMES.iter().all(|&p| {
        let residue = n
            .iter()
            .fold(0u32, |acc, b| (acc * 256 + u32::from(*b)) % p);
        let generator = 65537 % p;
        let mut power = 1u32;
        for _ in 0..p {
            if power == residue {
                return true;
            }
            power = power * generator % p;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_conflicting_kid_is_listed_once() {
        let set = KeySet {
            keys: Vec::new(),
            conflicts: vec![
                ("k".into(), Algorithm::RS256),
                ("m".into(), Algorithm::ES256),
                ("k".into(), Algorithm::PS256),
            ],
        };
        assert_eq!(set.conflicting_kids(), ["k", "m"]);
    }

    use super::*;
    use serde_json::json;

    const ALL: [Algorithm; 10] = SUPPORTED_ALGORITHMS;

    fn rsa_jwk(bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        if let Some(last) = n.last_mut() {
            *last = 0xC7;
        }
        json!({"kty": "RSA", "kid": "r", "n": URL_SAFE_NO_PAD.encode(&n), "e": "AQAB"})
    }

    #[test]
    fn small_rsa_keys_are_skipped() {
        assert!(parse_key(&rsa_jwk(1024), &ALL).is_err());
        assert!(parse_key(&rsa_jwk(2048), &ALL).is_ok());
    }

    #[test]
    fn algorithms_are_allow_list_and_key_type_and_jwk_alg() {
        let key = parse_key(&rsa_jwk(2048), &[Algorithm::RS256, Algorithm::ES256]).ok();
        // Parsed once for each algorithm it may verify, and for no other.
        assert!(key.as_ref().is_some_and(|k| k.admits(Algorithm::RS256)
            && !k.admits(Algorithm::PS256)
            && !k.admits(Algorithm::ES256)));
        assert_eq!(key.map(|k| k.algorithms), Some(vec![Algorithm::RS256]));
        let mut pinned = rsa_jwk(2048);
        pinned["alg"] = json!("PS256");
        assert_eq!(
            parse_key(&pinned, &ALL).ok().map(|k| k.algorithms),
            Some(vec![Algorithm::PS256])
        );
        assert!(parse_key(&pinned, &[Algorithm::RS256]).is_err());
        pinned["alg"] = json!("ES256");
        assert!(parse_key(&pinned, &ALL).is_err());
    }

    #[test]
    fn use_key_ops_and_kty_hygiene() {
        let mut enc = rsa_jwk(2048);
        enc["use"] = json!("enc");
        assert!(parse_key(&enc, &ALL).is_err());
        let mut ops = rsa_jwk(2048);
        ops["key_ops"] = json!(["encrypt"]);
        assert!(parse_key(&ops, &ALL).is_err());
        ops["key_ops"] = json!(["verify"]);
        assert!(parse_key(&ops, &ALL).is_ok());
        assert!(parse_key(&json!({"kty": "oct", "k": "c2VjcmV0"}), &ALL).is_err());
        let mut bad_kid = rsa_jwk(2048);
        bad_kid["kid"] = json!(5);
        assert!(parse_key(&bad_kid, &ALL).is_err());
        let mut e_one = rsa_jwk(2048);
        e_one["e"] = json!("AQ");
        assert!(parse_key(&e_one, &ALL).is_err());
    }

    #[test]
    fn one_bad_key_does_not_spoil_the_set() {
        let doc = json!({"keys": [rsa_jwk(1024), rsa_jwk(2048), {"kty": "oct"}]});
        let parsed = KeySet::parse(doc.to_string().as_bytes(), &ALL);
        let (set, skipped) = parsed.unwrap_or_default();
        assert_eq!(set.len(), 1);
        assert_eq!(skipped.len(), 2);
        let none = json!({"keys": [rsa_jwk(1024)]});
        assert_eq!(
            KeySet::parse(none.to_string().as_bytes(), &ALL)
                .err()
                .map(|e| match e {
                    JwksError::NoUsableKeys(skipped) =>
                        skipped.iter().map(|s| s.reason).collect::<Vec<_>>(),
                    JwksError::NotAJwks | JwksError::MixedHmac => Vec::new(),
                }),
            Some(vec!["rsa_too_small"])
        );
        assert_eq!(KeySet::parse(b"[]", &ALL).err(), Some(JwksError::NotAJwks));
    }

    #[test]
    fn selection_by_kid_and_without() {
        let mut a = rsa_jwk(2048);
        a["kid"] = json!("a");
        let mut b = rsa_jwk(2048);
        b["kid"] = json!("b");
        let doc = json!({"keys": [a, b]}).to_string();
        let (set, _) = KeySet::parse(doc.as_bytes(), &ALL).unwrap_or_default();
        assert!(
            matches!(set.select(Some("a"), Algorithm::RS256), Selection::Found(k) if k.kid.as_deref() == Some("a"))
        );
        assert!(matches!(
            set.select(Some("c"), Algorithm::RS256),
            Selection::NotFound
        ));
        assert!(matches!(
            set.select(None, Algorithm::RS256),
            Selection::NoKidSeveralKeys
        ));
        assert!(matches!(
            set.select(Some("a"), Algorithm::ES256),
            Selection::NotFound
        ));
    }

    #[test]
    fn the_same_key_twice_under_one_kid_is_one_key_and_different_keys_conflict() {
        let mut a = rsa_jwk(2048);
        a["kid"] = json!("k");
        let mut again = a.clone();
        again["alg"] = json!("PS256");
        let mut other = rsa_jwk(4096);
        other["kid"] = json!("k2");
        let doc = json!({"keys": [a, again, other]}).to_string();
        let (set, skipped) = KeySet::parse(doc.as_bytes(), &ALL).unwrap_or_default();
        assert!(skipped.is_empty());
        assert_eq!(set.len(), 2, "the duplicate counts once");
        assert!(set.conflicts.is_empty());
        assert!(matches!(
            set.select(Some("k"), Algorithm::RS256),
            Selection::Found(_)
        ));
        assert!(matches!(
            set.select(Some("k"), Algorithm::PS384),
            Selection::Found(_)
        ));

        let mut b = rsa_jwk(3072);
        b["kid"] = json!("k");
        let mut c = rsa_jwk(2048);
        c["kid"] = json!("k");
        let mut d = rsa_jwk(4096);
        d["kid"] = json!("d");
        let doc = json!({"keys": [b, c, d]}).to_string();
        let (set, _) = KeySet::parse(doc.as_bytes(), &ALL).unwrap_or_default();
        assert_eq!(set.conflicting_kids(), vec!["k"]);
        assert!(matches!(
            set.select(Some("k"), Algorithm::RS256),
            Selection::KidConflict
        ));
        assert!(matches!(
            set.select(Some("d"), Algorithm::RS256),
            Selection::Found(_)
        ));
    }
}
