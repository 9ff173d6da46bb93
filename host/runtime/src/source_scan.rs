//! For the tests that keep a unit in its folder: where the host's source
//! (every crate's `src/`, without unit tests) names something.

use std::path::{Path, PathBuf};

/// Every line, outside `own` (a folder or a file), of the host's sources
/// (`host/*/src`, `registry/src`) that contains one of `names`, as
/// `file:line: text`.
pub(crate) fn mentions_outside(own: &Path, names: &[&str]) -> Vec<String> {
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let repo = canonical(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."));
    let own = canonical(own);
    let files: Vec<PathBuf> = ["host", "registry"].iter().flat_map(|dir| sources(&repo.join(dir))).collect();
    assert!(files.len() > 50, "found only {} source files under {}", files.len(), repo.display());
    let mut mentions = Vec::new();
    for file in files.iter().filter(|f| !f.starts_with(&own)) {
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        // The code, not its unit tests.
        let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
        for (n, line) in code.lines().enumerate() {
            if names.iter().any(|name| line.contains(name)) {
                mentions.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    mentions
}

/// The `.rs` files under each `src/` below `root`.
fn sources(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())).flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() && !matches!(name.as_str(), "tests" | "benches" | "target") {
                dirs.push(path);
            } else if name.ends_with(".rs") && path.components().any(|c| c.as_os_str() == "src") {
                files.push(path);
            }
        }
    }
    files
}
