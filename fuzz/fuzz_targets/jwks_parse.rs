//! Bytes → `jwk::KeySet::parse`. Never panics; whatever it keeps is usable and consistent.
#![no_main]

use tokengate::algorithm::Algorithm;
use libfuzzer_sys::fuzz_target;
use tokengate::jwk::{KeySet, Selection};
use tokengate_fuzz::ALL;

fuzz_target!(|data: &[u8]| {
    for allowed in [
        &ALL[..],
        &[Algorithm::RS256][..],
        &[Algorithm::ES256, Algorithm::EdDSA][..],
    ] {
        let Ok((set, _skipped)) = KeySet::parse(data, allowed) else {
            continue;
        };
        assert!(!set.is_empty(), "Ok with no keys");
        for key in &set.keys {
            assert!(!key.algorithms.is_empty(), "a key that verifies nothing");
            for alg in &key.algorithms {
                assert!(allowed.contains(alg), "{alg:?} is not allowed");
            }
            // Selection by this key's own kid and algorithm finds a key (or says ambiguous).
            let found = set.select(key.kid.as_deref(), key.algorithms[0]);
            assert!(
                !matches!(found, Selection::NotFound),
                "a parsed key cannot be selected"
            );
        }
    }
});
