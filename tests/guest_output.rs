//! Hardening #2: a guest's stdout and stderr are a log channel under the
//! same rules as `arw:host/log`: granted per stream (`log.write` on
//! `stdout` / `stderr`), rate-limited per component (a token bucket; what
//! is over it is dropped and counted), and handed to a log thread so no
//! executor thread waits on the log writer. Counted, not timed.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use arw_host::Host;
use arw_policy::Principal;
use arw_tests::{Components, OPERATOR_INVOKES, artifacts, policies, probe_manifest};

const GRANT_OUTPUT: &str = r#"permit(principal == Arw::Component::"test:probe", action == Arw::Action::"log.write", resource)
when { resource.name == "stdout" || resource.name == "stderr" };"#;

async fn print(requested: &[(&str, &str)], policy: &[&str], times: u32, burst: u32) -> arw_host::HostStatus {
    let state = tempfile::tempdir().unwrap();
    let mut config = arw_tests::config(state.path());
    config.log.guest_burst_lines = burst;
    config.log.guest_lines_per_second = 0.0; // exactly the burst, then nothing
    let components = Components::new().with(&probe_manifest("test:probe", requested, &[]), artifacts::PROBE.bytes);
    let (host, refused) = Host::start(config, policies(policy), &components).await.unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    let caller = host.caller(Principal::local_operator());
    let input = serde_json::json!({"op": "print", "message": "line", "times": times}).to_string();
    host.call(&caller, "probe", &input).await.unwrap();
    // `stop` waits for the log thread to handle what is queued.
    host.stop(Duration::from_secs(5)).await;
    host.status()
}

#[tokio::test(flavor = "multi_thread")]
async fn granted_output_is_logged_up_to_the_rate_limit_and_the_rest_counted() {
    // 50 lines to stdout and 50 to stderr against a burst of 10.
    let status = print(&[("log.write", "std*")], &[OPERATOR_INVOKES, GRANT_OUTPUT], 50, 10).await;
    let output = status.guest_output;
    assert_eq!((output.logged, output.rate_limited, output.denied, output.overflowed), (10, 90, 0, 0), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn ungranted_output_is_dropped_and_audited() {
    // Requested, not permitted.
    let status = print(&[("log.write", "std*")], &[OPERATOR_INVOKES], 3, 100).await;
    assert_eq!((status.guest_output.logged, status.guest_output.denied), (0, 6), "{:?}", status.guest_output);
    assert!(status.audit.denials >= 6, "{:?}", status.audit);
    // Permitted, not requested.
    let everything = r#"permit(principal, action == Arw::Action::"log.write", resource);"#;
    let status = print(&[], &[OPERATOR_INVOKES, everything], 3, 100).await;
    assert_eq!((status.guest_output.logged, status.guest_output.denied), (0, 6), "{:?}", status.guest_output);
}
