//! The registry commands as a user runs them: keys, trust, publish, verify,
//! install (with its permission prompt), list, yank, uninstall; and a
//! crash after any write step never leaves a broken version or install.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;

mod common;

use common::{Home, path};

const POLICIES: &str = "permit(principal in Arw::Role::\"operator\", action == Arw::Action::\"tool.invoke\", resource);\n\
permit(principal, action == Arw::Action::\"config.read\", resource) when { principal.publisher == \"acme\" };\n";

/// The echo component's manifest body: it asks for config and for kv.
const ECHO: &str = "[[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n\
[[capabilities]]\naction = \"kv.write\"\nresource = \"anything\"\n[config]\ntool-name = \"echo\"\n";

#[test]
fn publish_verify_install_call_and_manage() {
    let home = Home::new(POLICIES);
    home.setup_acme();
    let out = home.publish("1.0.0", ECHO);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(home.registry().join("acme/echo/1.0.0.wasm").exists());

    let verified = home.ok(&["verify", "acme:echo@1.0.0"]);
    assert!(verified.starts_with("ok acme:echo@1.0.0") && verified.contains("trusted as `acme`"), "{verified}");

    // The permission prompt needs a terminal or --yes.
    let (code, stderr) = home.fails(&["install", "acme:echo"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("pass --yes"), "{stderr}");
    let shown = home.ok(&["install", "acme:echo", "--yes"]);
    assert!(shown.contains("granted config.read"), "{shown}");
    assert!(shown.contains("DENIED  kv.write"), "{shown}");
    assert!(shown.contains("installed acme:echo@1.0.0"), "{shown}");

    let listed = home.ok(&["list"]);
    assert!(listed.contains("acme:echo") && listed.contains("signed by `acme`"), "{listed}");
    let called = home.ok(&["call", "echo", "--input", r#"{"op":"echo","value":"hi"}"#]);
    assert_eq!(called.trim(), r#"{"ok":"hi"}"#);
    // The first host start also published and installed the first-party components.
    let listed = home.ok(&["list"]);
    assert!(listed.contains("arw:text-stats") && listed.contains("signed by `arw`"), "{listed}");

    // Upgrade, then yank and uninstall.
    assert!(home.publish("1.1.0", ECHO).status.success());
    let (_, stderr) = {
        let out = home.publish("1.1.0", ECHO);
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    assert!(stderr.contains("already published"), "{stderr}");
    assert!(home.ok(&["install", "acme:echo@^1", "--yes"]).contains("installed acme:echo@1.1.0 (was 1.0.0)"));
    assert!(home.ok(&["rollback", "acme:echo", "--to", "1.0.0"]).contains("rolled back to 1.0.0 (was 1.1.0)"));
    let (_, stderr) = home.fails(&["rollback", "acme:echo", "--to", "9.9.9"]);
    assert!(stderr.contains("not in the registry"), "{stderr}");
    assert!(home.ok(&["install", "acme:echo@1.1.0", "--yes"]).contains("installed acme:echo@1.1.0 (was 1.0.0)"));
    home.ok(&["yank", "acme:echo@1.1.0"]);
    let (_, stderr) = home.fails(&["install", "acme:echo@1.1.0", "--yes"]);
    assert!(stderr.contains("yanked"), "{stderr}");
    let available = home.ok(&["list", "--available"]);
    assert!(available.contains("1.1.0") && available.contains("installed, yanked"), "{available}");
    home.ok(&["uninstall", "acme:echo"]);
    let (_, stderr) = home.fails(&["call", "echo", "--input", "{}"]);
    assert!(stderr.contains("no tool named `echo`"), "{stderr}");
}

#[test]
fn verify_fails_loudly_on_tampering_and_untrusted_keys() {
    let home = Home::new(POLICIES);
    home.setup_acme();
    assert!(home.publish("1.0.0", ECHO).status.success());
    home.ok(&["install", "acme:echo", "--yes"]);

    // Bytes fetched elsewhere (e.g. by wkg) are matched by digest.
    let fetched = home.root.join("fetched.wasm");
    std::fs::copy(home.registry().join("acme/echo/1.0.0.wasm"), &fetched).unwrap();
    assert!(home.ok(&["verify", path(&fetched)]).starts_with("ok acme:echo@1.0.0"));
    let mut bytes = std::fs::read(&fetched).unwrap();
    bytes[100] ^= 1;
    std::fs::write(&fetched, &bytes).unwrap();
    let (code, stderr) = home.fails(&["verify", path(&fetched)]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("no version in"), "{stderr}");

    // Tamper with the registry copy: verify fails, and the host refuses it.
    std::fs::write(home.registry().join("acme/echo/1.0.0.wasm"), &bytes).unwrap();
    let (code, stderr) = home.fails(&["verify", "acme:echo@1.0.0"]);
    assert_eq!(code, Some(1));
    assert!(stderr.contains("digest check failed"), "{stderr}");
    let components = home.ok(&["components"]);
    assert!(components.contains("refused") && components.contains("digest check failed"), "{components}");
    assert!(!components.contains("acme:echo 1.0.0"), "{components}");

    // Untrusting the publisher: the trust check fails.
    home.ok(&["trust", "remove", "acme"]);
    std::fs::write(home.registry().join("acme/echo/1.0.0.wasm"), std::fs::read(arw_artifacts::PROBE.path).unwrap())
        .unwrap();
    let (_, stderr) = home.fails(&["verify", "acme:echo@1.0.0"]);
    assert!(stderr.contains("trust check failed") && stderr.contains("arw trust add"), "{stderr}");
}

#[test]
fn unsigned_directories_need_the_escape_hatch() {
    let home = Home::new(POLICIES);
    let dir = home.root.join("dev");
    std::fs::create_dir_all(&dir).unwrap();
    let (code, stderr) = home.fails(&["tools", "--components", path(&dir)]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--allow-unsigned"), "{stderr}");
    home.ok(&["tools", "--components", path(&dir), "--allow-unsigned"]);
}

/// Every crash window of `publish` and `install`, one at a time: the
/// process aborts (as `kill -9` would) right after the named step
/// (`ARW_FAULT_POINT`, see `arw_fs::fault_point`), then the state must be
/// consistent (every listed and installed version verifies, the host loads
/// everything installed) and the operation must succeed when redone.
#[test]
fn a_crash_after_any_write_step_leaves_a_consistent_registry_and_installed_set() {
    let home = Home::new(POLICIES);
    home.setup_acme();
    // First run: bootstrap the first-party components, so the commands
    // below exercise only publish and install.
    home.ok(&["list"]);
    home.ok(&["tools"]);
    let check = |what: &str| {
        let available: serde_json::Value = serde_json::from_str(&home.ok(&["list", "--available", "--json"])).unwrap();
        for entry in available["available"].as_array().unwrap() {
            let reference = format!("{}@{}", entry["id"].as_str().unwrap(), entry["version"].as_str().unwrap());
            home.ok(&["verify", &reference]);
        }
        let installed: serde_json::Value = serde_json::from_str(&home.ok(&["list", "--json"])).unwrap();
        for (id, entry) in installed["installed"].as_object().unwrap() {
            home.ok(&["verify", &format!("{id}@{}", entry["version"].as_str().unwrap())]);
        }
        let components = home.ok(&["components"]);
        assert!(!components.contains("refused"), "{what}:\n{components}");
        installed
    };
    let crashes = |cmd: &mut std::process::Command, point: &str| {
        let out = cmd.env("ARW_FAULT_POINT", point).stdout(Stdio::null()).output().unwrap();
        assert!(!out.status.success(), "{point}: the fault point was never reached");
        assert!(String::from_utf8_lossy(&out.stderr).contains("fault injected"), "{point}: {out:?}");
    };

    let mut round = 0;
    for step in ["write-atomic:created", "write-atomic:written", "write-atomic:renamed"] {
        for file in ["manifest.json", "acme.sig", "wasm"] {
            let version = format!("1.0.{round}");
            round += 1;
            let (wasm, manifest) = home.component(&version, ECHO);
            let args = ["publish", path(&wasm), "--manifest", path(&manifest), "--key", "acme"];
            crashes(&mut home.cmd(&args), &format!("{step}:{version}.{file}"));
            check(&format!("publish crashed at {step} of {file}"));
            // The version exists only if its `.wasm` was renamed into place.
            let exists = home.registry().join(format!("acme/echo/{version}.wasm")).exists();
            assert_eq!(exists, file == "wasm" && step == "write-atomic:renamed", "{step} {file}");
            if !exists {
                home.ok(&args);
            }
        }
    }
    for point in ["publish:manifest", "publish:signature", "publish:committed"] {
        let version = format!("1.0.{round}");
        round += 1;
        let (wasm, manifest) = home.component(&version, ECHO);
        let args = ["publish", path(&wasm), "--manifest", path(&manifest), "--key", "acme"];
        crashes(&mut home.cmd(&args), point);
        check(point);
        if !home.registry().join(format!("acme/echo/{version}.wasm")).exists() {
            home.ok(&args);
        }
    }
    let mut installed_version = None::<String>;
    for point in [
        "install:precompiled",
        "write-atomic:created:installed.json",
        "write-atomic:written:installed.json",
        "write-atomic:renamed:installed.json",
    ] {
        let version = format!("1.0.{}", round - 1);
        round -= 1;
        crashes(&mut home.cmd(&["install", &format!("acme:echo@{version}"), "--yes"]), point);
        let installed = check(point);
        let now = installed["installed"]["acme:echo"]["version"].as_str().map(str::to_string);
        // Only a crash after the rename has installed it; before, the old
        // entry (or none) is still what counts.
        if point == "write-atomic:renamed:installed.json" {
            assert_eq!(now.as_deref(), Some(version.as_str()), "{point}");
        } else {
            assert_eq!(now, installed_version, "{point}: the installed set changed before its commit");
        }
        home.ok(&["install", &format!("acme:echo@{version}"), "--yes"]);
        installed_version = Some(version);
        check(&format!("{point}, redone"));
    }
}

#[test]
fn first_party_bootstrap_upgrades_but_respects_uninstalls() {
    let home = Home::new(POLICIES);
    home.ok(&["tools"]); // first run: publish + install the first-party components
    home.ok(&["uninstall", "arw:kv-counter"]);
    // Pretend text-stats was installed at an older version than this binary's.
    let index_path = home.root.join("state/installed.json");
    let mut index: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["components"]["arw:text-stats"]["version"] = "0.0.1".into();
    std::fs::write(&index_path, serde_json::to_vec_pretty(&index).unwrap()).unwrap();

    let tools = home.ok(&["tools"]);
    assert!(!tools.contains("kv-counter"), "an uninstalled first-party component stays uninstalled:\n{tools}");
    let installed: serde_json::Value = serde_json::from_str(&home.ok(&["list", "--json"])).unwrap();
    assert_eq!(installed["installed"]["arw:text-stats"]["version"], "0.1.0", "upgraded to the built-in version");
    assert_eq!(installed["installed"]["arw:text-stats"]["previous"], "0.0.1");
}
