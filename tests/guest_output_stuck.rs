//! Hardening #2: a stuck log writer (a full pipe nobody reads) never blocks
//! a guest's call. Its own test binary: it installs a global `tracing`
//! subscriber whose writer blocks, which other tests must not share.

// Test helpers: an unwrap that fails is a failed test, with its message.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use arw_host::Host;
use arw_policy::Principal;
use arw_tests::{Components, OPERATOR_INVOKES, artifacts, policies, probe_manifest};

const GRANT_OUTPUT: &str = r#"permit(principal == Arw::Component::"test:probe", action == Arw::Action::"log.write", resource)
when { resource.name == "stdout" || resource.name == "stderr" };"#;

/// A writer that blocks every write until released: a log pipe nobody reads.
#[derive(Clone)]
struct StuckWriter(Arc<(std::sync::Mutex<bool>, std::sync::Condvar)>);

impl std::io::Write for StuckWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (released, wake) = &*self.0;
        let mut released = released.lock().unwrap();
        while !*released {
            released = wake.wait(released).unwrap();
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Even when the log writer is stuck (a full pipe), a guest that prints a
/// lot finishes its call: lines wait on the log thread's bounded queue,
/// and past it they are dropped and counted, never waited for.
#[tokio::test(flavor = "multi_thread")]
async fn a_stuck_log_writer_never_blocks_a_call() {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    let stuck = StuckWriter(Arc::new((std::sync::Mutex::new(false), std::sync::Condvar::new())));
    let writer = stuck.clone();
    let subscriber = tracing_subscriber::registry().with(
        tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_filter(tracing_subscriber::filter::Targets::new().with_target("arw::guest", tracing::Level::INFO)),
    );
    tracing::subscriber::set_global_default(subscriber).unwrap();

    let state = tempfile::tempdir().unwrap();
    let mut config = arw_tests::config(state.path());
    config.log.guest_queue_lines = 4;
    let components =
        Components::new().with(&probe_manifest("test:probe", &[("log.write", "std*")], &[]), artifacts::PROBE.bytes);
    let (host, _) = Host::start(config, policies(&[OPERATOR_INVOKES, GRANT_OUTPUT]), &components).await.unwrap();
    let caller = host.caller(Principal::local_operator());
    let input = serde_json::json!({"op": "print", "message": "line", "times": 50}).to_string();
    let call = tokio::time::timeout(Duration::from_secs(30), host.call(&caller, "probe", &input)).await;
    assert!(matches!(call, Ok(Ok(_))), "the call finished while the writer was stuck: {call:?}");
    let output = host.status().guest_output;
    // At most one line in the writer, four queued; the rest of the 100
    // dropped (the burst of 200 lets every line reach the queue).
    assert!(output.overflowed >= 100 - 1 - 4, "{output:?}");
    *stuck.0.0.lock().unwrap() = true;
    stuck.0.1.notify_all();
    host.stop(Duration::from_secs(5)).await;
}
