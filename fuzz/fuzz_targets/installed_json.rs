//! `installed.json`, as the host reads it at every start and change.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(index) = arw_registry::installed::InstalledIndex::parse(data) {
        for (id, entry) in &index.components {
            let _ = id.parse::<arw_manifest::ComponentId>();
            let _ = semver::Version::parse(&entry.version);
        }
    }
});
