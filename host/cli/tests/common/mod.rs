//! What the CLI tests share: an isolated home (state, config, data and
//! policy directories in a temporary directory) and ways to run `arw` in it.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const ARW: &str = env!("CARGO_BIN_EXE_arw");

/// A temporary home for `arw`: nothing of the developer's own
/// configuration, keys, registry or `ARW_*` environment leaks in.
pub struct Home {
    _dir: tempfile::TempDir,
    pub root: PathBuf,
}

impl Home {
    /// A home whose policy directory holds `policies` as `p.cedar`.
    pub fn new(policies: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        std::fs::create_dir_all(root.join("policies")).unwrap();
        std::fs::write(root.join("policies/p.cedar"), policies).unwrap();
        Home { _dir: dir, root }
    }

    pub fn cmd(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(ARW);
        cmd.args(args)
            .arg("--state-dir")
            .arg(self.root.join("state"))
            .arg("--policies")
            .arg(self.root.join("policies"))
            .env("XDG_CONFIG_HOME", self.root.join("config"))
            .env("XDG_DATA_HOME", self.root.join("data"))
            .stdin(Stdio::null());
        for (key, _) in std::env::vars() {
            // Where the toolchains are is the machine's, not configuration.
            if key.starts_with("ARW_") && key != "ARW_TOOLS_DIR" {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.cmd(args).output().unwrap()
    }

    /// Run `arw args`, which must succeed; its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "arw {args:?} failed:\n{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Run `arw args`, which must fail; its exit code and stderr.
    pub fn fails(&self, args: &[&str]) -> (Option<i32>, String) {
        let out = self.run(args);
        assert!(!out.status.success(), "arw {args:?} should fail:\n{}", String::from_utf8_lossy(&out.stdout));
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    }

    pub fn registry(&self) -> PathBuf {
        self.root.join("data/arw/registry")
    }

    /// Create key `acme` and trust it.
    pub fn setup_acme(&self) {
        let public = self.ok(&["keys", "generate", "acme"]);
        assert!(public.starts_with("ed25519:"), "{public}");
        self.ok(&["trust", "add", "acme", public.trim()]);
    }

    /// The probe guest as `acme:echo@version`, with `body` appended to its
    /// manifest; returns (wasm, manifest) paths.
    pub fn component(&self, version: &str, body: &str) -> (PathBuf, PathBuf) {
        let wasm = self.root.join("echo.wasm");
        std::fs::copy(arw_artifacts::PROBE.path, &wasm).unwrap();
        let manifest = self.root.join(format!("echo-{version}.toml"));
        std::fs::write(&manifest, format!("id = \"acme:echo\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n{body}"))
            .unwrap();
        (wasm, manifest)
    }

    /// Publish `acme:echo@version` signed by `acme`.
    pub fn publish(&self, version: &str, body: &str) -> Output {
        let (wasm, manifest) = self.component(version, body);
        self.cmd(&["publish", path(&wasm), "--manifest", path(&manifest), "--key", "acme"]).output().unwrap()
    }

    /// `arw status --json` (empty when none was written yet).
    pub fn status(&self) -> serde_json::Value {
        let out = self.cmd(&["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Poll `arw status` until `check` holds (bounded; fails loudly).
    pub fn wait_for(&self, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
        let started = Instant::now();
        loop {
            let status = self.status();
            if check(&status) {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "timed out waiting for {what}; last status:\n{status:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A running `arw up` with its HTTP API on an ephemeral port; killed on drop.
pub struct Up {
    pub child: std::process::Child,
    /// `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Home {
    /// Start `arw up --listen 127.0.0.1:0` with extra environment, and wait
    /// until its status file names the bound address.
    pub fn up(&self, env: &[(&str, &str)]) -> Up {
        let mut cmd = self.cmd(&["up", "--listen", "127.0.0.1:0", "--grace", "5"]);
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = cmd.stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let mut up = Up { child, base: String::new() };
        let status = self.wait_for("the HTTP address in the status file", |s| s["http"].is_string());
        up.base = format!("http://{}", status["http"].as_str().unwrap());
        up
    }
}
