//! Interop with the real `wkg` client (wasm-pkg-tools): it fetches a
//! component from our registry directory through its `local` backend, and
//! the fetched bytes verify with `arw verify`.
//!
//! `wkg` is found via `$WKG`, then `$HOME/.cache/arw/tools/bin/wkg` (where
//! `scripts/test.sh` installs it), then `PATH`. CI sets `ARW_REQUIRE_WKG=1`
//! so a missing `wkg` fails there instead of skipping.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::process::{Command, Stdio};

const ARW: &str = env!("CARGO_BIN_EXE_arw");

fn find_wkg() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WKG") {
        return Some(PathBuf::from(path));
    }
    let cached = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/arw/tools/bin/wkg"));
    if let Some(path) = cached.filter(|p| p.is_file()) {
        return Some(path);
    }
    let on_path = Command::new("wkg").arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status();
    on_path.ok().filter(|s| s.success()).map(|_| PathBuf::from("wkg"))
}

#[test]
fn wkg_fetches_from_our_registry_and_the_bytes_verify() {
    let Some(wkg) = find_wkg() else {
        assert!(
            std::env::var_os("ARW_REQUIRE_WKG").is_none(),
            "ARW_REQUIRE_WKG is set but no wkg was found (scripts/test.sh installs it)"
        );
        eprintln!("skipping: wkg is not installed (run scripts/test.sh, or set WKG=/path/to/wkg)");
        return;
    };
    let home = tempfile::tempdir().unwrap();
    let root = home.path();
    let arw = |args: &[&str]| {
        let out = Command::new(ARW)
            .args(args)
            .arg("--state-dir")
            .arg(root.join("state"))
            .env("XDG_CONFIG_HOME", root.join("config"))
            .env("XDG_DATA_HOME", root.join("data"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The first run publishes the first-party components into the registry.
    let (ok, _, stderr) = arw(&["list"]);
    assert!(ok, "{stderr}");
    let (ok, _, stderr) = arw(&["tools"]);
    assert!(ok, "{stderr}");
    let registry = root.join("data/arw/registry");
    assert!(registry.join("arw/text-stats/0.1.0.wasm").is_file());

    let wkg_config = root.join("wkg.toml");
    std::fs::write(
        &wkg_config,
        format!(
            "default_registry = \"arw.local\"\n\n[registry.\"arw.local\"]\ntype = \"local\"\n\n[registry.\"arw.local\".local]\nroot = {:?}\n",
            registry.display().to_string()
        ),
    )
    .unwrap();
    let fetched = root.join("fetched.wasm");
    let out = Command::new(&wkg)
        .args(["get", "arw:text-stats@0.1.0", "--overwrite", "-o"])
        .arg(&fetched)
        .arg("--config")
        .arg(&wkg_config)
        .arg("--cache")
        .arg(root.join("wkg-cache"))
        .env("XDG_CONFIG_HOME", root.join("config"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "wkg get failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&fetched).unwrap(), std::fs::read(registry.join("arw/text-stats/0.1.0.wasm")).unwrap());

    let (ok, stdout, stderr) = arw(&["verify", fetched.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("ok arw:text-stats@0.1.0") && stdout.contains("trusted as `arw`"), "{stdout}");

    // wkg sees every published version (and ignores our sidecar files).
    let (ok, _, stderr) = arw(&["list", "--available"]);
    assert!(ok, "{stderr}");
}
