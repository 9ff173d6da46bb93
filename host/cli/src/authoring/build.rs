//! `arw build [DIR]`: the project's component, built with its language's
//! toolchain against this host's WIT (written into `DIR/wit/` first, so a
//! project always targets the host that builds it).
//!
//! | language | marker | command |
//! |---|---|---|
//! | Rust | `Cargo.toml` | `cargo build --release --target wasm32-wasip2` |
//! | Python | `app.py` | `componentize-py -d wit -w arw:host/tool componentize app` |
//! | JavaScript | `app.js` | `componentize-js app.js --wit wit -n tool` |
//! | C | `app.c` | bindings for the manifest's world from `wit-bindgen-c` (built in), then `clang --target=wasm32-wasi` linked by `wasm-component-ld` |
//!
//! Toolchains are looked up on `PATH`, then in `$ARW_TOOLS_DIR`
//! (`~/.cache/arw/tools`: `py/bin`, `node/node_modules`, `bin`), where the
//! test suite installs them; for JavaScript, the project's own
//! `node_modules` comes first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use arw_host::manifest::Manifest;

use super::Lang;

/// Write this host's WIT into `dir/wit`.
pub fn export_wit(dir: &Path) -> anyhow::Result<()> {
    let wit = dir.join("wit");
    std::fs::create_dir_all(&wit)?;
    for (name, text) in arw_host::wit::FILES {
        arw_host::fsutil::write_atomic(&wit.join(name), text.as_bytes())?;
    }
    Ok(())
}

/// `$ARW_TOOLS_DIR`, else `~/.cache/arw/tools` (where scripts/test.sh
/// installs the toolchains).
fn tools_dir() -> Option<PathBuf> {
    std::env::var_os("ARW_TOOLS_DIR")
        .map(PathBuf::from)
        .or_else(|| dirs::home_dir().map(|h| h.join(".cache").join("arw").join("tools")))
}

/// `name` on PATH, else `<tools>/<fallback>`.
fn find(name: &str, fallback: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    on_path.or_else(|| tools_dir().map(|t| t.join(fallback)).filter(|p| p.exists()))
}

fn run(command: &mut Command, what: &str) -> anyhow::Result<()> {
    tracing::debug!(?command, "running");
    let status = command.status().with_context(|| format!("cannot run {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

/// The project's language, from its marker file.
pub fn detect(dir: &Path) -> anyhow::Result<Lang> {
    Lang::ALL.into_iter().find(|l| dir.join(l.marker()).is_file()).ok_or_else(|| {
        anyhow!(
            "{} is not an ARW project: no Cargo.toml, app.py, app.js or app.c (start one with `arw new tool --lang LANG NAME`)",
            dir.display()
        )
    })
}

/// Build the project in `dir`; returns the component's path.
pub fn build(dir: &Path) -> anyhow::Result<PathBuf> {
    // Toolchains run inside the project: every path must be absolute.
    let dir = &std::fs::canonicalize(dir).with_context(|| format!("{} is not a directory", dir.display()))?;
    let manifest_path = dir.join("manifest.toml");
    let text = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("reading {} (every project has one)", manifest_path.display()))?;
    let manifest = Manifest::parse(&text).map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    arw_host::check_manifest(&manifest).map_err(|e| anyhow!("{}: {e}", manifest_path.display()))?;
    let name = manifest.id.name().to_string();
    let output = dir.join(manifest.component.clone().unwrap_or_else(|| PathBuf::from(format!("{name}.wasm"))));
    let lang = detect(dir)?;
    export_wit(dir)?;
    let started = Instant::now();
    match lang {
        Lang::Rust => build_rust(dir, &name, &output)?,
        Lang::Python => build_python(dir, &output)?,
        Lang::Js => build_js(dir, &output)?,
        Lang::C => {
            let world = manifest.worlds.first().map_or("tool", |w| w.as_str());
            build_c(dir, world, &output)?
        }
    }
    let size = std::fs::metadata(&output).with_context(|| format!("{} was not written", output.display()))?.len();
    tracing::info!(lang = %lang, bytes = size, seconds = started.elapsed().as_secs_f64(), "built {}", output.display());
    Ok(output)
}

fn build_rust(dir: &Path, name: &str, output: &Path) -> anyhow::Result<()> {
    let target_dir = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| dir.join("target"));
    run(
        Command::new("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "--manifest-path"])
            .arg(dir.join("Cargo.toml"))
            .env("CARGO_TARGET_DIR", &target_dir),
        "cargo build --target wasm32-wasip2 (is the target installed? `rustup target add wasm32-wasip2`)",
    )?;
    let built = target_dir.join("wasm32-wasip2/release").join(format!("{}.wasm", name.replace('-', "_")));
    std::fs::copy(&built, output).with_context(|| format!("copying {}", built.display()))?;
    Ok(())
}

fn build_python(dir: &Path, output: &Path) -> anyhow::Result<()> {
    let tool = find("componentize-py", "py/bin/componentize-py").ok_or_else(|| {
        anyhow!("componentize-py not found: `pip install componentize-py` (or put it in $ARW_TOOLS_DIR/py)")
    })?;
    run(
        Command::new(tool)
            .current_dir(dir)
            .args(["-d", "wit", "-w", "arw:host/tool", "componentize", "app", "-o"])
            .arg(output),
        "componentize-py",
    )
}

fn build_js(dir: &Path, output: &Path) -> anyhow::Result<()> {
    // The project's own node_modules first (`npm install` in the project).
    let local = dir.join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    let found = if local.is_file() {
        Some(local)
    } else {
        find("componentize-js", "node/node_modules/@bytecodealliance/componentize-js/src/cli.js")
    };
    let mut command = match found {
        Some(path) if path.extension().is_some_and(|e| e == "js") => {
            let mut c = Command::new("node");
            c.arg(path);
            c
        }
        Some(path) => Command::new(path),
        None => bail!(
            "componentize-js not found: `npm install @bytecodealliance/componentize-js @bytecodealliance/preview2-shim@0.17` \
             (or into $ARW_TOOLS_DIR/node)"
        ),
    };
    run(command.current_dir(dir).args(["app.js", "--wit", "wit", "-n", "tool", "-o"]).arg(output), "componentize-js")
}

/// Rust's linker for components, shipped with every rustup toolchain.
fn wasm_component_ld() -> anyhow::Result<PathBuf> {
    let sysroot = Command::new("rustc").args(["--print", "sysroot"]).output().context("running rustc")?;
    let host = Command::new("rustc").args(["-vV"]).output().context("running rustc")?;
    let host = String::from_utf8_lossy(&host.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: ").map(str::to_string))
        .ok_or_else(|| anyhow!("cannot tell rustc's host triple"))?;
    let path = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim())
        .join("lib/rustlib")
        .join(host)
        .join("bin/wasm-component-ld");
    path.is_file().then_some(path).ok_or_else(|| anyhow!("wasm-component-ld not found in the Rust toolchain"))
}

/// A C project of `world` (its manifest's first): bindings `<world>.h`,
/// `<world>.c` and `<world>_component_type.o` for that world.
fn build_c(dir: &Path, world: &str, output: &Path) -> anyhow::Result<()> {
    let bindings = dir.join("bindings");
    super::c_bindings::generate(&dir.join("wit"), &format!("arw:host/{world}"), &bindings)?;
    let (source, component_type) = (format!("bindings/{world}.c"), format!("bindings/{world}_component_type.o"));
    let clang = find("clang", "bin/clang").ok_or_else(|| {
        anyhow!("clang not found: `apt-get install clang lld wasi-libc libclang-rt-14-dev-wasm32` (Debian)")
    })?;
    let wasm_ld = ["wasm-ld", "wasm-ld-14", "wasm-ld-15", "wasm-ld-16"]
        .into_iter()
        .find_map(|n| find(n, &format!("bin/{n}")))
        .ok_or_else(|| anyhow!("wasm-ld not found: `apt-get install lld`"))?;
    let linker = wasm_component_ld()?;
    run(
        Command::new(clang)
            .current_dir(dir)
            .args(["--target=wasm32-wasi", "-mexec-model=reactor", "-O2", "-Wall", "-Werror", "-Ibindings"])
            .args(["app.c", source.as_str(), component_type.as_str(), "-o"])
            .arg(output)
            .arg(format!("-fuse-ld={}", linker.display()))
            .arg(format!("-Wl,--wasm-ld-path={}", wasm_ld.display()))
            .arg("-Wl,--wasi-adapter=reactor"),
        "clang (wasm32-wasi)",
    )
}
