//! A running `arw up` picks up changes made by other processes — `arw
//! install`, `arw rollback`, `arw uninstall`, edits to its policy
//! directory — found by polling `arw status`, never by sleeping a fixed time.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ARW: &str = env!("CARGO_BIN_EXE_arw");

struct Home {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl Home {
    fn cmd(&self, args: &[&str]) -> Command {
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
            if key.starts_with("ARW_") {
                cmd.env_remove(key);
            }
        }
        cmd
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.cmd(args).output().unwrap();
        assert!(out.status.success(), "arw {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn status(&self) -> serde_json::Value {
        let out = self.cmd(&["status", "--json"]).output().unwrap();
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// Poll `arw status` until `check` holds (bounded; fails loudly).
    fn wait_for(&self, what: &str, check: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
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

    fn publish(&self, version: &str) {
        let wasm = self.root.join("echo.wasm");
        std::fs::copy(arw_artifacts::PROBE.path, &wasm).unwrap();
        let manifest = self.root.join(format!("echo-{version}.toml"));
        std::fs::write(
            &manifest,
            format!(
                "id = \"acme:echo\"\nversion = \"{version}\"\nworlds = [\"tool\"]\n[config]\ntool-name = \"echo\"\n"
            ),
        )
        .unwrap();
        self.ok(&["publish", path(&wasm), "--manifest", path(&manifest), "--key", "acme"]);
    }
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn active(status: &serde_json::Value, id: &str) -> Option<String> {
    status["components"]
        .as_array()?
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["active-version"].as_str().unwrap_or("").to_string())
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_running_host_follows_installs_rollbacks_uninstalls_and_policy_edits() {
    let dir = tempfile::tempdir().unwrap();
    let home = Home { root: dir.path().to_path_buf(), _dir: dir };
    std::fs::create_dir_all(home.root.join("policies")).unwrap();
    std::fs::write(
        home.root.join("policies/operator.cedar"),
        "permit(principal in Arw::Role::\"operator\", action == Arw::Action::\"tool.invoke\", resource);\n",
    )
    .unwrap();
    let public = home.ok(&["keys", "generate", "acme"]);
    home.ok(&["trust", "add", "acme", public.trim()]);

    let mut child = home.cmd(&["up"]).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let mut up = Running(child);
    let mut lines = BufReader::new(stderr).lines();
    loop {
        match lines.next() {
            Some(Ok(line)) if line.contains("ready") => break,
            Some(Ok(_)) => {}
            other => panic!("arw up ended before ready: {other:?}"),
        }
    }
    // Keep draining the log so the host never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    home.wait_for("the first status", |s| s["running"] == true && active(s, "arw:text-stats").is_some());

    home.publish("1.0.0");
    home.ok(&["install", "acme:echo", "--yes"]);
    home.wait_for("acme:echo 1.0.0 active", |s| active(s, "acme:echo").as_deref() == Some("1.0.0"));

    home.publish("1.1.0");
    home.ok(&["install", "acme:echo@1.1.0", "--yes"]);
    let status = home.wait_for("acme:echo 1.1.0 active", |s| active(s, "acme:echo").as_deref() == Some("1.1.0"));
    let echo = status["components"].as_array().unwrap().iter().find(|c| c["id"] == "acme:echo").unwrap().clone();
    assert!(echo["last-transition"]["event"].as_str().unwrap().starts_with("component."), "{echo}");

    assert!(home.ok(&["rollback", "acme:echo"]).contains("rolled back to 1.0.0"));
    home.wait_for("acme:echo back on 1.0.0", |s| active(s, "acme:echo").as_deref() == Some("1.0.0"));

    home.ok(&["uninstall", "acme:echo"]);
    home.wait_for("acme:echo removed", |s| s["components"].is_array() && active(s, "acme:echo").is_none());

    // Policy edits: an invalid file is refused with its file and line and the
    // old set stays; fixing it reloads.
    let broken = home.root.join("policies/broken.cedar");
    std::fs::write(&broken, "// fine\npermit(principal, action, resource)\nwhen { nope };\n").unwrap();
    let status = home.wait_for("the failed reload", |s| s["last-policy-reload"]["ok"] == false);
    let message = status["last-policy-reload"]["message"].as_str().unwrap();
    assert!(message.contains("broken.cedar:3"), "{message}");
    assert_eq!(status["policies"], 1, "the old policy set stays in force");
    std::fs::write(&broken, "permit(principal, action == Arw::Action::\"log.write\", resource);\n").unwrap();
    home.wait_for("the good reload", |s| s["last-policy-reload"]["ok"] == true && s["policies"] == 2);

    let pid = up.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let code = up.0.wait().unwrap();
    assert!(code.success(), "{code}");
}
