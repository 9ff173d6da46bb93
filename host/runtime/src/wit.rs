//! The WIT package `arw:host` that components target, compiled into the
//! host so `arw wit export DIR` gives an author the exact interfaces this
//! host links, without a checkout of ARW.

/// The package id, as components import it.
pub const PACKAGE: &str = "arw:host@0.2.0";

/// Every file of `wit/`, by name (sorted), as the manifest crate embeds
/// them (it reads the worlds from the same text).
pub const FILES: &[(&str, &str)] = arw_manifest::wit::CURRENT;

#[cfg(test)]
mod tests {
    #[test]
    fn every_wit_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".wit"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = super::FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded, "wit/ and wit.rs disagree");
        for (_, text) in super::FILES {
            assert!(text.starts_with(&format!("package {};", super::PACKAGE)));
        }
    }
}
