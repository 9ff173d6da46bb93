//! `arw status`: what the running `arw up` reports in
//! `<state-dir>/status.json`.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use arw_host::HostConfig;

use crate::cli::StatusArgs;

pub fn run(config: &HostConfig, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let state = config.state_dir.clone().ok_or_else(|| anyhow!("no state directory configured"))?;
    let path = state.join("status.json");
    let text = match arw_fs::read_text_bounded(&path, 16 << 20) {
        Ok(text) => text,
        Err(e) if e.is_not_found() => {
            eprintln!("no host has run with the state directory {} (start one with `arw up`)", state.display());
            return Ok(ExitCode::FAILURE);
        }
        Err(e) => return Err(e).context("reading the status file"),
    };
    let mut status: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("{} is not a status file", path.display()))?;
    let pid = status["pid"].as_u64().unwrap_or(0);
    let running = pid != 0 && std::path::Path::new(&format!("/proc/{pid}")).exists();
    status["running"] = serde_json::Value::Bool(running);
    if args.json {
        out!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(if running { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    if running {
        match status["http"].as_str() {
            Some(addr) => out!("arw up is running (pid {pid}), HTTP API on http://{addr}"),
            None => out!("arw up is running (pid {pid}), no HTTP API"),
        }
    } else {
        out!("arw up is NOT running; last status written by pid {pid}:");
    }
    for c in status["components"].as_array().cloned().unwrap_or_default() {
        out!(
            "{:<24} {:<10} {} call(s) in flight",
            c["id"].as_str().unwrap_or(""),
            c["active-version"].as_str().unwrap_or(""),
            c["in-flight"]
        );
        for d in c["draining"].as_array().cloned().unwrap_or_default() {
            out!("    draining {} with {} call(s) in flight", d["version"].as_str().unwrap_or(""), d["in-flight"]);
        }
        if let Some(idle) = c["pooled-idle"].as_u64() {
            out!("    pooled: {idle} idle instance(s) of at most {}", c["pool-size"]);
        }
        if let Some(r) = c["resident"].as_object() {
            let n = |key: &str| r.get(key).and_then(|v| v.as_u64()).unwrap_or(0);
            out!(
                "    resident: {} start(s), {} fault(s), {} tick error(s), {} cold hand-over(s)",
                n("starts"),
                n("faults"),
                n("tick-errors"),
                n("cold-hand-overs")
            );
            if let Some(fault) = r.get("last-fault").and_then(|f| f.as_str()) {
                out!("    last fault: {fault}");
            }
        }
        if let Some(t) = c["last-transition"].as_object() {
            let reason = t.get("reason").and_then(|r| r.as_str()).map(|r| format!(" ({r})")).unwrap_or_default();
            out!("    last: {}{reason}", t.get("event").and_then(|e| e.as_str()).unwrap_or(""));
        }
    }
    for r in status["refused"].as_array().cloned().unwrap_or_default() {
        out!(
            "REFUSED {} {} at the {} stage: {}",
            r["component"].as_str().unwrap_or(""),
            r["version"].as_str().unwrap_or(""),
            r["stage"].as_str().unwrap_or(""),
            r["reason"].as_str().unwrap_or("")
        );
    }
    for g in status["gates"].as_array().cloned().unwrap_or_default() {
        let file = g["file"].as_str().map(|f| format!(" ({f})")).unwrap_or_default();
        out!(
            "gate {}{file}: {} allowed, {} denied, {} undecided (refused)",
            g["gate"].as_str().unwrap_or(""),
            g["allowed"],
            g["denied"],
            g["failed"]
        );
        if let Some(why) = g["refused"].as_str() {
            out!("    DENIES EVERYTHING: {why}");
        }
    }
    out!("policies: {}", status["policies"]);
    if let Some(reload) = status["last-policy-reload"].as_object() {
        let verdict =
            if reload.get("ok").and_then(|o| o.as_bool()) == Some(true) { "reloaded" } else { "reload FAILED" };
        out!("last policy change: {verdict}: {}", reload.get("message").and_then(|m| m.as_str()).unwrap_or(""));
    }
    Ok(if running { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
