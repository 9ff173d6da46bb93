//! Every guest component built by `arw-artifacts` is exercised by at least
//! one test (as wasmtime's test-programs do), so a new guest cannot be
//! added and forgotten.

use std::path::Path;

#[test]
fn every_artifact_is_used_by_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut sources = String::new();
    for dir in [root.join("tests"), root.join("host/cli/tests")] {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
            let is_this_file = path.file_name().is_some_and(|n| n == "every_guest_is_tested.rs");
            if path.extension().is_some_and(|e| e == "rs") && !is_this_file {
                sources.push_str(&std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}")));
            }
        }
    }
    for artifact in arw_artifacts::FIRST_PARTY.iter().chain(arw_artifacts::TESTING) {
        let constant = artifact.name.replace('-', "_").to_uppercase();
        let used = sources.contains(&format!("artifacts::{constant}"))
            || sources.contains(&format!("arw_artifacts::{constant}"))
            || (arw_artifacts::FIRST_PARTY.iter().any(|a| a.name == artifact.name)
                && sources.contains("Components::first_party()"));
        assert!(used, "guest `{}` is built but no test uses it", artifact.name);
    }
}
