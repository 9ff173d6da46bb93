//! A running `arw up` picks up changes made by other processes — `arw
//! install`, `arw rollback`, `arw uninstall`, edits to its policy
//! directory — found by polling `arw status`, never by sleeping a fixed time.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

mod common;

use common::Home;

const ECHO: &str = "[config]\ntool-name = \"echo\"\n";

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
    let home =
        Home::new("permit(principal in Arw::Role::\"operator\", action == Arw::Action::\"tool.invoke\", resource);\n");
    let public = home.ok(&["keys", "generate", "acme"]);
    home.ok(&["trust", "add", "acme", public.trim()]);

    // Relative paths, as a user would type them: the watcher must still
    // recognise its files.
    let mut child = Command::new(common::ARW)
        .current_dir(&home.root)
        .args(["up", "--state-dir", "state", "--policies", "policies", "--listen", "127.0.0.1:0"])
        .env("XDG_CONFIG_HOME", home.root.join("config"))
        .env("XDG_DATA_HOME", home.root.join("data"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
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

    assert!(home.publish("1.0.0", ECHO).status.success());
    home.ok(&["install", "acme:echo", "--yes"]);
    home.wait_for("acme:echo 1.0.0 active", |s| active(s, "acme:echo").as_deref() == Some("1.0.0"));

    assert!(home.publish("1.1.0", ECHO).status.success());
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
    let status = home.wait_for("the good reload", |s| s["last-policy-reload"]["ok"] == true && s["policies"] == 2);
    // Reading the policies (as `arw policy check` or the host's own reload
    // does) is not a change: no further reload happens.
    let reloaded_at = status["last-policy-reload"]["at-ms"].clone();
    home.ok(&["policy", "check", home.root.join("policies").to_str().unwrap()]);
    for _ in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        assert_eq!(home.status()["last-policy-reload"]["at-ms"], reloaded_at, "a read triggered a reload");
    }

    let pid = up.0.id().to_string();
    assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let code = up.0.wait().unwrap();
    assert!(code.success(), "{code}");
}

/// Hardening #17, as a user ran into it: with `arw up` running, uninstall
/// the component serving `text-stats` and at once install another serving
/// the same tool name. The new one becomes active (removals are applied
/// first); a component refused for a conflict shows in `arw status` until
/// what blocked it goes, then activates. And an idle host does not rewrite
/// its status file (hardening #15).
#[test]
fn the_watcher_applies_removals_first_and_retries_refused_components() {
    let home = Home::new(
        "permit(principal in Arw::Role::\"operator\", action == Arw::Action::\"tool.invoke\", resource);\n\
         permit(principal, action == Arw::Action::\"config.read\", resource) when { principal.publisher == \"acme\" };\n",
    );
    home.setup_acme();
    let stats =
        "[[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n[config]\ntool-name = \"text-stats\"\n";
    assert!(home.publish("1.0.0", stats).status.success());
    let _up = home.up(&[]);
    home.wait_for("text-stats served", |s| active(s, "arw:text-stats").is_some());

    // Installed while text-stats holds the name: refused, and visible.
    home.ok(&["install", "acme:echo", "--yes"]);
    let status = home.wait_for("the refusal", |s| {
        s["refused"].as_array().is_some_and(|r| r.iter().any(|r| r["component"] == "acme:echo"))
    });
    let refusal = status["refused"].as_array().unwrap().iter().find(|r| r["component"] == "acme:echo").unwrap().clone();
    assert_eq!(refusal["stage"], "conflict", "{refusal}");
    assert!(refusal["reason"].as_str().unwrap().contains("already provided by `arw:text-stats`"), "{refusal}");
    let shown = home.cmd(&["status"]).output().unwrap();
    assert!(String::from_utf8_lossy(&shown.stdout).contains("REFUSED acme:echo"), "{shown:?}");

    // The blocker goes: the refused one is retried and activates.
    home.ok(&["uninstall", "arw:text-stats"]);
    home.wait_for("acme:echo active", |s| active(s, "acme:echo").as_deref() == Some("1.0.0"));
    let status = home.status();
    assert!(status["refused"].as_array().is_some_and(Vec::is_empty), "{status:#}");

    // Uninstall and reinstall in one breath, the other way round.
    home.ok(&["uninstall", "acme:echo"]);
    home.ok(&["install", "arw:text-stats", "--yes"]);
    home.wait_for("arw:text-stats active again", |s| {
        active(s, "arw:text-stats").is_some() && active(s, "acme:echo").is_none()
    });

    // Once idle (the removed version's drain reported), the status file is
    // not rewritten, though it is checked twice a second.
    let status_file = home.root.join("state/status.json");
    let modified = || std::fs::metadata(&status_file).unwrap().modified().unwrap();
    let idle_window = (0..10).any(|_| {
        let before = modified();
        std::thread::sleep(std::time::Duration::from_millis(1500));
        modified() == before
    });
    assert!(idle_window, "the status file was rewritten in every 1.5 s window, though nothing changed");
}
