//! Bytes → YAML text → `config::load_str`. Never panics, however odd the document.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tokengate::config::{load_str, Overrides};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match load_str(Path::new("fuzz.yaml"), text, &Overrides::default()) {
        Ok(settings) => {
            // A configuration that loads names at least one issuer with an audience.
            assert!(!settings.issuers.is_empty() || settings.dev_issuer.is_some());
            for issuer in &settings.issuers {
                assert!(!issuer.audiences.is_empty(), "{text:?}");
                assert!(!issuer.algorithms.is_empty(), "{text:?}");
                assert!(issuer.leeway.as_secs() <= 300, "{text:?}");
            }
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "an error with no problem in it");
            // Every problem renders.
            let _ = errors.to_string();
        }
    }
});
