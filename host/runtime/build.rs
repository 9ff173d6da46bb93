//! Embeds every file of `wit/` (the `arw:host` package) into the host, so
//! a new interface or world needs no line in `src/wit.rs`.

use std::path::Path;

fn main() {
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    println!("cargo:rerun-if-changed={}", wit.display());
    let mut names: Vec<String> = std::fs::read_dir(&wit)
        .unwrap_or_else(|e| panic!("{}: {e}", wit.display()))
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|name| name.ends_with(".wit"))
        .collect();
    names.sort();
    let mut out =
        format!("/// Every file of `wit/`, by name (sorted).\npub const FILES: [(&str, &str); {}] = [\n", names.len());
    for name in &names {
        let path = wit.join(name);
        out.push_str(&format!("    ({name:?}, include_str!({:?})),\n", path.display().to_string()));
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|e| panic!("OUT_DIR: {e}"))).join("wit_files.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("{}: {e}", dest.display()));
}
