//! A component manifest (TOML), as `arw publish` and `--components` read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(manifest) = arw_manifest::Manifest::parse(text) {
        // What parses must pass its own checks and round-trip.
        assert!(manifest.check().is_ok());
        for request in &manifest.capabilities {
            let _ = request.covers(request.action, &request.resource);
        }
        let _ = arw_manifest::validate_topic(text);
    }
});
