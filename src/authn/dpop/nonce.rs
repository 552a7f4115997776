//! Server-provided DPoP nonces (RFC 9449 §8, §9), stateless: a nonce is the time step it
//! belongs to and an HMAC of that step under a shared secret, so every replica with the
//! same secret issues and accepts the same nonces without talking to the others.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use crate::config::NonceSettings;

/// Bytes of the HMAC kept in a nonce: 128 bits cannot be guessed.
const TAG_BYTES: usize = 16;

/// Issues and checks nonces; one per configuration.
pub struct Nonces {
    key: hmac::Key,
    /// The step length in seconds (`dpop.nonce.lifetime`).
    step_secs: u64,
}

/// What a proof's `nonce` is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceCheck {
    /// The current step's nonce.
    Current,
    /// The previous step's: still accepted, and the response carries the current one.
    Previous,
    /// Absent, malformed, forged or older: the client must retry with the current one.
    Refused,
}

impl Nonces {
    /// From `dpop.nonce`.
    pub fn new(settings: &NonceSettings) -> Nonces {
        Nonces {
            key: hmac::Key::new(hmac::HMAC_SHA256, &settings.secret.bytes),
            step_secs: settings.lifetime.as_secs().max(1),
        }
    }

    /// The nonce to hand out at `now` (seconds since the epoch): base64url of the step
    /// (8 bytes, big-endian) and the first 16 bytes of its HMAC-SHA-256; 32 characters.
    pub fn current(&self, now: u64) -> String {
        self.nonce_for(now / self.step_secs)
    }

    /// Judges `nonce` (the proof's claim, if any) at `now`.
    pub fn check(&self, nonce: Option<&str>, now: u64) -> NonceCheck {
        let Some(bytes) = nonce.and_then(|n| URL_SAFE_NO_PAD.decode(n).ok()) else {
            return NonceCheck::Refused;
        };
        let Some((step, tag)) = bytes.split_first_chunk::<8>() else {
            return NonceCheck::Refused;
        };
        let step = u64::from_be_bytes(*step);
        let current = now / self.step_secs;
        let verdict = if step == current {
            NonceCheck::Current
        } else if step.checked_add(1) == Some(current) {
            NonceCheck::Previous
        } else {
            return NonceCheck::Refused;
        };
        let expected = hmac::sign(&self.key, &step.to_be_bytes());
        // Constant time: the tag is what makes a nonce unforgeable.
        let genuine = tag.len() == TAG_BYTES
            && aws_lc_rs::constant_time::verify_slices_are_equal(
                tag,
                &expected.as_ref()[..TAG_BYTES],
            )
            .is_ok();
        if genuine {
            verdict
        } else {
            NonceCheck::Refused
        }
    }

    fn nonce_for(&self, step: u64) -> String {
        let tag = hmac::sign(&self.key, &step.to_be_bytes());
        let mut bytes = step.to_be_bytes().to_vec();
        bytes.extend_from_slice(&tag.as_ref()[..TAG_BYTES]);
        URL_SAFE_NO_PAD.encode(bytes)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::Secret;

    fn nonces(secret: &[u8]) -> Nonces {
        Nonces::new(&NonceSettings {
            secret: Secret {
                origin: "test".into(),
                bytes: secret.into(),
            },
            lifetime: Duration::from_secs(60),
        })
    }

    #[test]
    fn a_nonce_lives_for_its_step_and_the_next() {
        let n = nonces(&[7; 32]);
        let issued = n.current(6_000);
        assert_eq!(issued.len(), 32);
        assert_eq!(n.check(Some(&issued), 6_000), NonceCheck::Current);
        assert_eq!(n.check(Some(&issued), 6_059), NonceCheck::Current);
        assert_eq!(n.check(Some(&issued), 6_060), NonceCheck::Previous);
        assert_eq!(n.check(Some(&issued), 6_119), NonceCheck::Previous);
        assert_eq!(n.check(Some(&issued), 6_120), NonceCheck::Refused);
        // A nonce from the future is not one tokengate issued yet.
        assert_eq!(n.check(Some(&issued), 5_999), NonceCheck::Refused);
    }

    #[test]
    fn replicas_with_the_same_secret_agree_and_others_do_not() {
        let a = nonces(&[7; 32]);
        let b = nonces(&[7; 32]);
        let other = nonces(&[8; 32]);
        let issued = a.current(6_000);
        assert_eq!(b.check(Some(&issued), 6_000), NonceCheck::Current);
        assert_eq!(other.check(Some(&issued), 6_000), NonceCheck::Refused);
    }

    #[test]
    fn forged_and_malformed_nonces_are_refused() {
        let n = nonces(&[7; 32]);
        let issued = n.current(6_000);
        let mut bytes = URL_SAFE_NO_PAD.decode(&issued).unwrap_or_default();
        if let Some(last) = bytes.last_mut() {
            *last ^= 1;
        }
        let flipped = URL_SAFE_NO_PAD.encode(&bytes);
        for bad in [
            None,
            Some(""),
            Some("not base64!"),
            Some("AAAA"),
            Some(flipped.as_str()),
            Some(&issued[..31]),
        ] {
            assert_eq!(n.check(bad, 6_000), NonceCheck::Refused, "{bad:?}");
        }
    }
}
