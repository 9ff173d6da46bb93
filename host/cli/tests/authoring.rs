//! Authoring in four languages with their real toolchains: `arw new` for
//! Rust, Python (componentize-py), JavaScript (componentize-js) and C
//! (clang + wasi-libc), `arw build`, `arw publish`, `arw install`, then
//! calls over HTTP to a running `arw up`:
//!
//! - the scaffolds are the examples in `components/examples/<lang>/`, byte
//!   for byte, so building the scaffold builds the example from source;
//! - conformance: the same inputs (Unicode, empty, stop words only,
//!   invalid) give the same outputs and error codes in every language;
//! - deny by default: with kv not granted, every language gets `denied`.
//!
//! The Python and JavaScript toolchains come from `$ARW_TOOLS_DIR`
//! (`scripts/test.sh` installs them); C needs clang, lld, wasi-libc and
//! libclang-rt-14-dev-wasm32 (`.ci/run` installs them with apt). CI sets
//! `ARW_REQUIRE_CLIENTS=1`, so a missing toolchain fails there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use common::{Home, path};
use serde_json::{Value, json};

const LANGS: [&str; 4] = ["rust", "python", "js", "c"];
const TOKEN: &str = "authoring-test-admin-token-0123";

/// Grants for components signed by `examples`: config, and kv in the
/// namespace named like the component (`resource.name == principal.name`).
const POLICIES: &str = r#"
permit(principal in Arw::Role::"admin", action == Arw::Action::"tool.invoke", resource);
permit(principal in Arw::Role::"admin", action in Arw::Action::"admin", resource);
permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
permit(principal is Arw::Component, action == Arw::Action::"config.read", resource)
    when { principal.publisher == "examples" };
@id("own-kv")
permit(principal is Arw::Component, action in [Arw::Action::"kv.read", Arw::Action::"kv.write"], resource)
    when { principal.publisher == "examples" && resource.name == principal.name };
"#;

fn toolchains_present() -> bool {
    let tools = std::env::var_os("ARW_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache/arw/tools"));
    let present = tools.join("py/bin/componentize-py").exists()
        && tools.join("node/node_modules/@bytecodealliance/componentize-js").exists()
        && std::process::Command::new("clang").arg("--version").output().is_ok()
        && Path::new("/usr/include/wasm32-wasi").exists();
    if !present {
        assert!(
            std::env::var_os("ARW_REQUIRE_CLIENTS").is_none(),
            "ARW_REQUIRE_CLIENTS is set but a toolchain is missing (componentize-py, componentize-js, clang, wasi-libc)"
        );
        eprintln!("skipping: the Python, JavaScript or C toolchain is not installed (run scripts/test.sh)");
    }
    present
}

fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../components/examples")
}

/// The files of an example that `arw new` writes (everything committed).
fn committed_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if ["wit", "target", "bindings", "__pycache__", "node_modules"].contains(&name.as_str())
            || name.ends_with(".wasm")
        {
            continue;
        }
        if path.is_dir() {
            out.extend(committed_files(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn call(client: &reqwest::blocking::Client, base: &str, tool: &str, input: &Value) -> (u16, Value) {
    let response = client
        .post(format!("{base}/tools/{tool}/invoke"))
        .bearer_auth(TOKEN)
        .header("content-type", "application/json")
        .body(input.to_string())
        .send()
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

/// What a call came to, in a form comparable across languages.
fn outcome((status, body): (u16, Value)) -> Value {
    if status == 200 { json!({"ok": body}) } else { json!({"status": status, "code": body["code"]}) }
}

#[test]
fn four_languages_scaffold_build_publish_install_and_agree() {
    if !toolchains_present() {
        return;
    }
    let home = Home::new(POLICIES);
    let public = home.ok(&["keys", "generate", "examples"]);
    home.ok(&["trust", "add", "examples", public.trim()]);
    let rust_target = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("examples-rust");

    for lang in LANGS {
        let name = format!("slugify-{lang}");
        let project = home.root.join(&name);
        home.ok(&["new", "tool", "--lang", lang, &name, "--namespace", "examples", "--dir", path(&project)]);
        // The scaffold is the example, byte for byte.
        let example = examples().join(lang);
        for file in committed_files(&example) {
            let relative = file.strip_prefix(&example).unwrap();
            let scaffolded = std::fs::read(project.join(relative))
                .unwrap_or_else(|e| panic!("{lang}: {} not scaffolded: {e}", relative.display()));
            assert_eq!(scaffolded, std::fs::read(&file).unwrap(), "{lang}: {} differs", relative.display());
        }
        assert!(project.join("README.md").is_file() && project.join("wit/tool.wit").is_file());

        let started = Instant::now();
        let out = home.cmd(&["build", path(&project)]).env("CARGO_TARGET_DIR", &rust_target).output().unwrap();
        assert!(out.status.success(), "{lang}: arw build failed:\n{}", String::from_utf8_lossy(&out.stderr));
        let wasm = project.join(format!("{name}.wasm"));
        eprintln!(
            "{lang}: built {} bytes in {:.1} s",
            std::fs::metadata(&wasm).unwrap().len(),
            started.elapsed().as_secs_f64()
        );
        home.ok(&["publish", path(&wasm), "--manifest", path(&project.join("manifest.toml")), "--key", "examples"]);
        home.ok(&["install", &format!("examples:{name}"), "--yes"]);
    }

    let up = home.up(&[("ARW_HTTP__ADMIN_TOKEN", TOKEN)]);
    let client = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let tools: Value = client.get(format!("{}/tools", up.base)).send().unwrap().json().unwrap();
    for lang in LANGS {
        let tool = tools.as_array().unwrap().iter().find(|t| t["name"] == format!("slugify-{lang}"));
        assert!(tool.is_some(), "slugify-{lang} is not loaded: {tools}");
    }

    // The same inputs, in the same order, to every language.
    let inputs = [
        json!({"text": "Hello, World!"}),
        json!({"text": "  The Quick  brown fox, a DOG "}),
        json!({"text": "Crème Brûlée à la carte"}),
        json!({"text": "rocket 🚀 launch \u{1F600}"}),
        json!({"text": "tab\tnew\nline \"quoted\" back\\slash"}),
        json!({"text": ""}),
        json!({"text": "!!! ... ???"}),
        json!({"text": "the a an"}),
        json!({"text": 42}),
        json!({"txt": "missing"}),
    ];
    let expected = [
        json!({"ok": {"slug": "hello-world", "calls": 1}}),
        json!({"ok": {"slug": "quick-brown-fox-dog", "calls": 2}}),
        json!({"ok": {"slug": "crème-brûlée-à-la-carte", "calls": 3}}),
        json!({"ok": {"slug": "rocket-🚀-launch-😀", "calls": 4}}),
        json!({"ok": {"slug": "tab-new-line-quoted-back-slash", "calls": 5}}),
        json!({"status": 422, "code": "tool:empty-slug"}),
        json!({"status": 422, "code": "tool:empty-slug"}),
        json!({"status": 422, "code": "tool:empty-slug"}),
        json!({"status": 400, "code": "schema-violation"}),
        json!({"status": 400, "code": "schema-violation"}),
    ];
    for (input, expected) in inputs.iter().zip(&expected) {
        for lang in LANGS {
            let got = outcome(call(&client, &up.base, &format!("slugify-{lang}"), input));
            assert_eq!(&got, expected, "slugify-{lang} on {input}");
        }
    }

    // Deny by default: take away the kv grant; every language is refused.
    let without_kv = POLICIES.split("@id(\"own-kv\")").next().unwrap();
    std::fs::write(home.root.join("policies/p.cedar"), without_kv).unwrap();
    let reload = client.post(format!("{}/admin/policy/reload", up.base)).bearer_auth(TOKEN).send().unwrap();
    assert_eq!(reload.status(), 200);
    for lang in LANGS {
        let got = outcome(call(&client, &up.base, &format!("slugify-{lang}"), &json!({"text": "x"})));
        assert_eq!(got, json!({"status": 422, "code": "tool:denied"}), "slugify-{lang} without a kv grant");
    }
}

#[test]
fn scaffolding_and_wit_export_refuse_bad_input_and_overwrite_nothing() {
    let home = Home::new(POLICIES);
    let (_, stderr) = home.fails(&["new", "tool", "--lang", "rust", "Bad_Name"]);
    assert!(stderr.contains("is not a tool name"), "{stderr}");
    let taken = home.root.join("taken");
    std::fs::create_dir_all(&taken).unwrap();
    std::fs::write(taken.join("keep.txt"), "mine").unwrap();
    let (_, stderr) = home.fails(&["new", "tool", "--lang", "c", "ok-name", "--dir", path(&taken)]);
    assert!(stderr.contains("is not empty"), "{stderr}");
    assert_eq!(std::fs::read_to_string(taken.join("keep.txt")).unwrap(), "mine");

    // Not a project: says how to start one.
    let (_, stderr) = home.fails(&["build", path(&taken)]);
    assert!(stderr.contains("manifest.toml"), "{stderr}");

    // The WIT export: every file, byte for byte; a changed file is not
    // overwritten without --force, and a refusal writes nothing.
    let wit = home.root.join("wit");
    home.ok(&["wit", "export", path(&wit)]);
    let repo_wit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../wit");
    for entry in std::fs::read_dir(&repo_wit).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "wit") {
            continue; // wit/compat/: the frozen 0.1.0, not exported
        }
        let exported = std::fs::read(wit.join(file.file_name().unwrap())).unwrap();
        assert_eq!(exported, std::fs::read(&file).unwrap(), "{}", file.display());
    }
    std::fs::write(wit.join("kv.wit"), "// mine\n").unwrap();
    std::fs::remove_file(wit.join("bus.wit")).unwrap();
    let (_, stderr) = home.fails(&["wit", "export", path(&wit)]);
    assert!(stderr.contains("--force"), "{stderr}");
    assert!(!wit.join("bus.wit").exists(), "a refused export wrote nothing");
    home.ok(&["wit", "export", path(&wit), "--force"]);
    assert_eq!(std::fs::read(wit.join("kv.wit")).unwrap(), std::fs::read(repo_wit.join("kv.wit")).unwrap());
}

/// Wait (bounded) until `request` answers `want`; the last answer.
fn until_status(what: &str, want: u16, request: impl Fn() -> (u16, String)) -> String {
    let started = Instant::now();
    loop {
        let (status, body) = request();
        if status == want {
            return body;
        }
        assert!(started.elapsed().as_secs() < 30, "{what}: still {status}, not {want}: {body}");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn a_gate_in_c_is_scaffolded_built_installed_and_decides() {
    if !toolchains_present() {
        return;
    }
    // Cedar lets anonymous callers call tools and admins administer: what
    // is refused below, the gate refuses.
    let home = Home::new(
        r#"permit(principal == Arw::Caller::"anonymous", action == Arw::Action::"tool.invoke", resource);
permit(principal in Arw::Role::"admin", action, resource);
permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);"#,
    );
    let public = home.ok(&["keys", "generate", "examples"]);
    home.ok(&["trust", "add", "examples", public.trim()]);
    let project = home.root.join("keyguard");
    let created =
        home.ok(&["new", "gate", "--lang", "c", "keyguard-c", "--namespace", "examples", "--dir", path(&project)]);
    assert!(created.contains("(c gate)"), "{created}");
    let example = examples().join("c-gate");
    for file in committed_files(&example) {
        let relative = file.strip_prefix(&example).unwrap();
        let scaffolded = std::fs::read(project.join(relative)).unwrap();
        assert_eq!(scaffolded, std::fs::read(&file).unwrap(), "{} differs from the example", relative.display());
    }
    assert!(project.join("wit/gate.wit").is_file() && project.join("README.md").is_file());
    let (_, stderr) = home.fails(&["new", "gate", "--lang", "python", "nope", "--dir", path(&home.root.join("n"))]);
    assert!(stderr.contains("no python template for a gate"), "{stderr}");

    home.ok(&["build", path(&project)]);
    let wasm = project.join("keyguard-c.wasm");
    assert!(project.join("bindings/gate.h").is_file(), "bindings for the manifest's world");
    home.ok(&["publish", path(&wasm), "--manifest", path(&project.join("manifest.toml")), "--key", "examples"]);
    home.ok(&["install", "examples:keyguard-c", "--yes"]);

    let rules = home.root.join("keyguard.conf");
    std::fs::write(&rules, "# tools only for callers with a token\ndeny-anonymous io:ingress:tools.*\n").unwrap();
    let config = home.root.join("config/arw");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(
        config.join("config.toml"),
        format!(
            "[gating]\ngates = [\"examples:keyguard-c\"]\ntimeout-ms = 5000\n\n[gating.files]\n\"examples:keyguard-c\" = {:?}\n",
            path(&rules)
        ),
    )
    .unwrap();
    let up = home.up(&[("ARW_HTTP__ADMIN_TOKEN", TOKEN)]);
    let client = reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap();
    let send = |request: reqwest::blocking::RequestBuilder| {
        let response = request.send().unwrap();
        (response.status().as_u16(), response.text().unwrap_or_default())
    };
    let anonymous_call = || {
        send(
            client
                .post(format!("{}/tools/text-stats/invoke", up.base))
                .header("content-type", "application/json")
                .body(r#"{"text":"a b"}"#),
        )
    };
    let admin_status = || send(client.get(format!("{}/admin/status", up.base)).bearer_auth(TOKEN));

    // By caller: anonymous refused by line 2, with a token allowed.
    let refused = until_status("an anonymous tool call", 403, anonymous_call);
    assert!(refused.contains("line-2") && refused.contains("io:ingress:tools.text-stats"), "{refused}");
    let (status, body) = send(
        client
            .post(format!("{}/tools/text-stats/invoke", up.base))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"text":"a b"}"#),
    );
    assert_eq!((status, body.contains("\"words\":2")), (200, true), "{body}");
    assert_eq!(admin_status().0, 200);
    let (status, listed) = send(client.get(format!("{}/admin/gating", up.base)).bearer_auth(TOKEN));
    assert_eq!(status, 200, "{listed}");
    assert!(listed.contains("line-2"), "the gate's `covering` names its rule for tool keys: {listed}");

    // A refused edit keeps the rules in force, and says where it is wrong.
    std::fs::write(&rules, "deny admin:*\npermit everything\n").unwrap();
    // (`arw up` tries it as soon as it sees the file change; a reload
    // asked for now tries again, and answers what the gate said.)
    let (status, reload) = send(client.post(format!("{}/admin/gating/reload", up.base)).bearer_auth(TOKEN));
    assert_eq!(status, 200, "{reload}");
    let reload: Value = serde_json::from_str(&reload).unwrap();
    assert_eq!((reload[0]["outcome"].as_str(), reload[0]["line"].as_u64()), (Some("failed"), Some(2)), "{reload}");
    assert!(reload[0]["message"].as_str().unwrap_or_default().contains("expected `deny PATTERN`"), "{reload}");
    assert_eq!(anonymous_call().0, 403, "the old rules still decide");
    assert_eq!(admin_status().0, 200);

    // By key: the next valid edit replaces them.
    std::fs::write(&rules, "deny admin:*\n").unwrap();
    until_status("an anonymous tool call after the edit", 200, anonymous_call);
    let refused = until_status("an admin request", 403, admin_status);
    assert!(refused.contains("line-1"), "{refused}");
    drop(up);
}
