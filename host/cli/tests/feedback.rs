//! The feedback engine in a real `arw up`: a slow tool's suggestion is
//! applied with `arw feedback`, the debounced book reaches `feedback.json`, and
//! after `kill -9` and a restart the undo record and the applied value
//! are still there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::Home;

const TOKEN: &str = "cli-feedback-admin-token-0123456789";
const POLICIES: &str = "\
permit(principal in Arw::Role::\"admin\", action == Arw::Action::\"tool.invoke\", resource);
permit(principal, action == Arw::Action::\"config.read\", resource)
  when { principal.publisher == \"acme\" || principal.publisher == \"arw\" };
permit(principal in Arw::Role::\"admin\",
  action in [Arw::Action::\"feedback.read\", Arw::Action::\"feedback.apply\"], resource);
";
const ENV: &[(&str, &str)] = &[
    ("ARW_HTTP__ADMIN_TOKEN", TOKEN),
    ("ARW_FEEDBACK__TICK_MS", "100"),
    ("ARW_FEEDBACK__PERSIST_MS", "100"),
    ("ARW_SIGNALS__MIN_SAMPLES", "5"),
];

fn get(base: &str, path: &str) -> serde_json::Value {
    let client = reqwest::blocking::Client::new();
    client.get(format!("{base}{path}")).bearer_auth(TOKEN).send().unwrap().json().unwrap_or_default()
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let started = Instant::now();
    loop {
        if let Some(value) = f() {
            return value;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn echo_timeout(base: &str) -> serde_json::Value {
    let list = get(base, "/components");
    let echo = list.as_array().unwrap().iter().find(|c| c["id"] == "acme:echo").cloned().unwrap();
    echo["limits"]["timeout-ms"].clone()
}

#[test]
fn an_apply_survives_kill_9_and_a_restart() {
    let home = Home::new(POLICIES);
    home.setup_acme();
    let slow = "[limits]\ntimeout-ms = 400\nconcurrency = 8\n\
                [[capabilities]]\naction = \"config.read\"\nresource = \"tool-name\"\n[config]\ntool-name = \"echo\"\n";
    assert!(home.publish("1.0.0", slow).status.success());
    home.ok(&["install", "acme:echo", "--yes"]);
    let mut up = home.up(ENV);
    let base = up.base.clone();
    // Calls whose p95 is close to the 400 ms timeout.
    let calls: Vec<_> = (0..16)
        .map(|_| {
            let base = base.clone();
            std::thread::spawn(move || {
                reqwest::blocking::Client::new()
                    .post(format!("{base}/tools/echo/invoke"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(r#"{"op":"sleep","ms":350}"#)
                    .send()
                    .map(|r| r.status().as_u16())
            })
        })
        .collect();
    for call in calls {
        // 200, or 504 for a call that ran into the timeout: slow either way.
        let status = call.join().unwrap().unwrap();
        assert!(status == 200 || status == 504, "{status}");
    }
    let (id, value) = until("a suggestion", || {
        let listing = get(&base, "/feedback/suggestions");
        let first = &listing["suggestions"][0];
        Some((first["id"].as_str()?.to_string(), first["value"].as_i64()?))
    });
    assert!(value >= 600, "at least 1.5 × the timeout: {value}");
    assert_eq!(id, "raise-timeout:acme:echo");
    // `arw feedback` finds the running host through its status file.
    let listed = home.ok(&["feedback", "suggestions", "--token", TOKEN]);
    assert!(listed.contains(&id) && listed.contains("confidence"), "{listed}");
    let (_, refused) = home.fails(&["feedback", "apply", &id, "--token", "no-such-token-0123456789abcdef"]);
    assert!(refused.contains("error[unauthorized]"), "{refused}");
    let applied = home.ok(&["feedback", "apply", &id, "--token", TOKEN]);
    assert!(applied.contains(&format!("null -> {value}")), "{applied}");
    assert_eq!(echo_timeout(&base), value);

    // The debounced write lands, then the process dies without a word.
    let book = home.root.join("state/feedback.json");
    until("the apply in feedback.json", || {
        let text = std::fs::read_to_string(&book).ok()?;
        let written: serde_json::Value = serde_json::from_str(&text).ok()?;
        written["undo"].as_array().is_some_and(|u| u.len() == 1).then_some(())
    });
    let pid = up.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = up.child.wait();
    drop(up);

    // The dead process's status file still names its address.
    std::fs::remove_file(home.root.join("state/status.json")).unwrap();
    let up = home.up(ENV);
    let state: serde_json::Value =
        serde_json::from_str(&home.ok(&["feedback", "state", "--json", "--token", TOKEN])).unwrap();
    let undo = state["undo"].as_array().cloned().unwrap_or_default();
    assert_eq!(undo.len(), 1, "{state:#}");
    assert_eq!(
        (undo[0]["knob"].as_str(), undo[0]["after"].as_i64()),
        (Some("component.acme:echo.timeout-ms"), Some(value))
    );
    assert_eq!(echo_timeout(&up.base), value, "the applied value is in force again after the restart");
    assert!(state["version"].as_u64().unwrap_or_default() >= undo[0]["version"].as_u64().unwrap_or(u64::MAX));
}
