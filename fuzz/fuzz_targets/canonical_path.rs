//! Bytes → raw request path → `route::canonicalize`, under every combination of path options.
//! Never panics; the canonical path is canonical (canonicalising it again changes nothing) and
//! holds nothing an upstream could read two ways.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tokengate::route::{canonicalize, PathOptions};

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    for (allow_parameters, case_insensitive) in
        [(false, false), (true, false), (false, true), (true, true)]
    {
        let options = PathOptions {
            allow_parameters,
            case_insensitive,
        };
        let Ok(once) = canonicalize(raw, options) else {
            continue;
        };
        let path = &once.path;
        assert!(path.starts_with('/'), "{raw:?} → {path:?}");
        assert!(!path.contains("//"), "{raw:?} → {path:?}: empty segment");
        for segment in path.split('/') {
            assert!(
                segment != "." && segment != "..",
                "{raw:?} → {path:?}: dot segment"
            );
        }
        assert!(
            !path.bytes().any(|b| b <= 0x20 || b >= 0x7f || b == b'\\'),
            "{raw:?} → {path:?}: a byte an upstream could read another way"
        );
        let upper = path.to_ascii_uppercase();
        assert!(
            !upper.contains("%2F") && !upper.contains("%5C"),
            "{raw:?} → {path:?}: an encoded separator"
        );
        if !allow_parameters {
            assert!(!path.contains(';'), "{raw:?} → {path:?}: a parameter");
        }
        let twice = canonicalize(path, options)
            .unwrap_or_else(|e| panic!("{raw:?} → {path:?}, which is refused: {e:?}"));
        assert_eq!(&twice.path, path, "not idempotent for {raw:?}");
        // The rules see what the upstream is sent, with or without `allow_parameters`
        // (`attacks::paths::parameter_on_a_dot_segment_cannot_hide_a_prefix`).
        assert_eq!(
            twice.matched, once.matched,
            "matched form moved for {raw:?}"
        );
    }
});
