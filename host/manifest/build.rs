//! Embeds the `arw:host` WIT package (`wit/`, and each frozen version in
//! `wit/compat/`) so the manifest crate reads the worlds a manifest may
//! name, and what each must export, from the WIT itself.

use std::path::{Path, PathBuf};

fn wit_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "wit"))
        .collect();
    files.sort();
    files
}

fn array(name: &str, files: &[PathBuf]) -> String {
    let mut out = format!("pub const {name}: &[(&str, &str)] = &[\n");
    for path in files {
        let file = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        out.push_str(&format!("    ({file:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    out.push_str("];\n");
    out
}

fn main() {
    // Read at run time, not baked in with `env!`: cargo reuses a build
    // script's binary for a checkout at another path (a shared target
    // directory), and a baked-in path would point at the old checkout.
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|e| panic!("CARGO_MANIFEST_DIR: {e}"));
    let wit = Path::new(&manifest_dir).join("../../wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let mut out = array("CURRENT", &wit_files(&wit));
    let compat = wit.join("compat");
    println!("cargo:rerun-if-changed={}", compat.display());
    let mut versions: Vec<PathBuf> = std::fs::read_dir(&compat)
        .unwrap_or_else(|e| panic!("{}: {e}", compat.display()))
        .filter_map(|entry| Some(entry.ok()?.path()))
        .filter(|path| path.is_dir())
        .collect();
    versions.sort();
    out.push_str("pub const COMPAT: &[&[(&str, &str)]] = &[\n");
    for (i, dir) in versions.iter().enumerate() {
        println!("cargo:rerun-if-changed={}", dir.display());
        out.push_str(&format!("    COMPAT_{i},\n"));
    }
    out.push_str("];\n");
    for (i, dir) in versions.iter().enumerate() {
        out.push_str(&array(&format!("COMPAT_{i}"), &wit_files(dir)));
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"))).join("wit_files.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
