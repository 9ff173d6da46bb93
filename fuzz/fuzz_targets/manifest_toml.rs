//! A component manifest (TOML), as `arw publish` and `--components` read it.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(manifest) = arw_manifest::Manifest::parse(text) {
        // What parses must pass its own checks and round-trip.
        assert!(manifest.check().is_ok());
        // Every world named is one of the WIT's, with what it must export.
        for world in &manifest.worlds {
            assert!(arw_manifest::World::named(world.as_str()).is_some());
            assert!(!world.required_exports().is_empty());
        }
        for request in &manifest.capabilities {
            let _ = arw_manifest::glob_match(&request.resource, &request.resource);
        }
        let _ = arw_manifest::validate_topic(text);
    }
});
