//! A signed manifest (`<version>.manifest.json`), as verification reads it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = arw_registry::signature::SignedManifest::parse(data) {
        // Re-serialising what parsed gives something that parses again.
        let bytes = signed.to_bytes();
        assert!(arw_registry::signature::SignedManifest::parse(&bytes).is_ok());
    }
});
