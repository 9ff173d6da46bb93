//! `arw up` serves the HTTP API with the registry behind `/admin/*`: the
//! same install, uninstall and policy reload as the CLI, over HTTP, for a
//! caller Cedar permits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::Home;
use serde_json::json;

const POLICIES: &str = include_str!("../../../policies/default.cedar");
const TOKEN: &str = "cli-test-admin-token-0123456789";
const ECHO: &str = "description = \"echo\"\n";

fn client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().pool_max_idle_per_host(0).build().unwrap()
}

fn post(base: &str, path: &str, token: Option<&str>, body: serde_json::Value) -> (u16, serde_json::Value) {
    let mut request = client().post(format!("{base}{path}")).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    (status, response.json().unwrap_or_default())
}

fn component_ids(base: &str) -> Vec<String> {
    let list: serde_json::Value = client().get(format!("{base}/components")).send().unwrap().json().unwrap();
    list.as_array().unwrap().iter().map(|c| c["id"].as_str().unwrap().to_string()).collect()
}

#[test]
fn admin_operations_over_http_install_uninstall_and_reload_like_the_cli() {
    let home = Home::new(POLICIES);
    home.setup_acme();
    assert!(home.publish("1.0.0", ECHO).status.success());
    let up = home.up(&[("ARW_HTTP__ADMIN_TOKEN", TOKEN)]);
    let base = up.base.as_str();
    assert!(!component_ids(base).contains(&"acme:echo".to_string()));

    // Without a token: 401; with it: installed and active at once.
    let (status, body) = post(base, "/admin/install", None, json!({"package": "acme:echo"}));
    assert_eq!(status, 401, "{body}");
    let (status, body) = post(base, "/admin/install", Some(TOKEN), json!({"package": "acme:echo"}));
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["id"].as_str(), body["version"].as_str()), (Some("acme:echo"), Some("1.0.0")));
    assert_eq!(body["publisher"], "acme");
    assert!(component_ids(base).contains(&"acme:echo".to_string()));
    // ... and recorded like `arw install` records it.
    assert!(home.ok(&["list"]).contains("acme:echo"), "arw list shows the HTTP install");

    // Bad requests are refused with what is wrong.
    let (status, body) = post(base, "/admin/install", Some(TOKEN), json!({"package": "acme:nothing"}));
    assert_eq!((status, body["code"].as_str()), (404, Some("not-found")), "{body}");
    let (status, body) = post(base, "/admin/install", Some(TOKEN), json!({"package": "Not A Ref"}));
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid-reference")), "{body}");

    // An upgrade, then a rollback, over HTTP.
    assert!(home.publish("1.1.0", ECHO).status.success());
    let (status, body) = post(base, "/admin/install", Some(TOKEN), json!({"package": "acme:echo@1.1.0"}));
    assert_eq!((status, body["previous"].as_str()), (200, Some("1.0.0")), "{body}");
    let (status, body) = post(base, "/admin/rollback", Some(TOKEN), json!({"id": "acme:echo"}));
    assert_eq!((status, body["version"].as_str()), (200, Some("1.0.0")), "{body}");

    let (status, body) = post(base, "/admin/uninstall", Some(TOKEN), json!({"id": "acme:echo"}));
    assert_eq!(status, 200, "{body}");
    assert!(!component_ids(base).contains(&"acme:echo".to_string()));
    let (status, _) = post(base, "/admin/uninstall", Some(TOKEN), json!({"id": "acme:echo"}));
    assert_eq!(status, 404);

    // A broken policy file: 422 naming the file, the old policies stay.
    std::fs::write(home.root.join("policies/broken.cedar"), "permit(principal, action, resource").unwrap();
    let (status, body) = post(base, "/admin/policy/reload", Some(TOKEN), json!(null));
    assert_eq!((status, body["code"].as_str()), (422, Some("invalid-policy")), "{body}");
    assert!(body["detail"].as_str().unwrap().contains("broken.cedar"), "{body}");
    let (status, _) = post(base, "/tools/text-stats/invoke", None, json!({"text": "still allowed"}));
    assert_eq!(status, 200);
    std::fs::remove_file(home.root.join("policies/broken.cedar")).unwrap();
    let (status, body) = post(base, "/admin/policy/reload", Some(TOKEN), json!(null));
    assert_eq!(status, 200, "{body}");
    drop(up);
}

#[test]
fn a_public_bind_without_a_token_stops_arw_up_with_the_fix() {
    let home = Home::new(POLICIES);
    let out = home.cmd(&["up", "--listen", "0.0.0.0:0"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ARW_HTTP__ADMIN_TOKEN"), "{stderr}");
}

/// SIGTERM while a call is in flight: the call finishes (200, its answer)
/// before the process exits, and it exits 0.
#[test]
fn sigterm_drains_a_call_in_flight() {
    let home = Home::new(
        "permit(principal in Arw::Role::\"admin\", action == Arw::Action::\"tool.invoke\", resource);\n\
         permit(principal, action == Arw::Action::\"config.read\", resource) when { principal.publisher == \"acme\" };\n",
    );
    home.setup_acme();
    let slow = "[limits]\ntimeout-ms = 10000\n[[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n\
                [config]\ntool-name = \"echo\"\n";
    assert!(home.publish("1.0.0", slow).status.success());
    home.ok(&["install", "acme:echo", "--yes"]);
    let mut up = home.up(&[("ARW_HTTP__ADMIN_TOKEN", TOKEN)]);
    let base = up.base.clone();
    let call = std::thread::spawn(move || {
        reqwest::blocking::Client::new()
            .post(format!("{base}/tools/echo/invoke"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(r#"{"op":"sleep","ms":3000}"#)
            .send()
            .map(|r| (r.status().as_u16(), r.text().unwrap_or_default()))
    });
    home.wait_for("the call in flight", |s| {
        s["components"].as_array().is_some_and(|c| c.iter().any(|c| c["id"] == "acme:echo" && c["in-flight"] == 1))
    });
    let pid = up.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let (status, body) = call.join().unwrap().unwrap();
    assert_eq!((status, body.as_str()), (200, r#"{"ok":null}"#), "the call in flight finished");
    let exit = up.child.wait().unwrap();
    assert!(exit.success(), "{exit}");
}
