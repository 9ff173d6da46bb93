//! `arw feedback`: the running `arw up`'s feedback engine, over its HTTP
//! API (the state lives in that process). Errors are the API's problem
//! documents, printed with their code.

use std::process::ExitCode;

use arw_host::HostConfig;

use super::api::Api;
use crate::cli::FeedbackCommand;

pub async fn run(config: &HostConfig, command: FeedbackCommand) -> anyhow::Result<ExitCode> {
    use reqwest::Method;
    let (target, method, path, body) = match &command {
        FeedbackCommand::State { target } => (target, Method::GET, "/feedback/state", None),
        FeedbackCommand::Suggestions { target } => (target, Method::GET, "/feedback/suggestions", None),
        FeedbackCommand::Apply { id, target } => {
            (target, Method::POST, "/feedback/apply", Some(serde_json::json!({ "suggestion": id })))
        }
        FeedbackCommand::Rollback { apply_id, to_version, target } => {
            let body = match (apply_id, to_version) {
                (Some(id), _) => serde_json::json!({ "apply_id": id }),
                (None, version) => serde_json::json!({ "to_version": version }),
            };
            (target, Method::POST, "/feedback/rollback", Some(body))
        }
        FeedbackCommand::Mode { mode, knob, target } => {
            (target, Method::PUT, "/feedback/mode", Some(serde_json::json!({ "mode": mode, "knob": knob })))
        }
    };
    let api = Api::new(config, target)?;
    let answer = api.send(method, path, body).await?;
    if let Some(failed) = answer.failure() {
        return Ok(failed);
    }
    if target.json {
        out!("{}", serde_json::to_string_pretty(&answer.body)?);
        return Ok(ExitCode::SUCCESS);
    }
    summarize(&command, &answer.body);
    Ok(ExitCode::SUCCESS)
}

fn summarize(command: &FeedbackCommand, body: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("").to_string();
    match command {
        FeedbackCommand::State { .. } => {
            out!(
                "engine {}  version {}  mode {}  ticks {} (skipped {})  apply budget left {}",
                text(&body["engine"]),
                body["version"],
                text(&body["mode"]),
                body["counters"]["ticks"],
                body["counters"]["ticks-skipped"],
                body["apply-budget-left"]
            );
            for k in body["knobs"].as_array().into_iter().flatten() {
                out!(
                    "{:<48} {:>8} (default {}, {}..={} step {})  {}",
                    text(&k["name"]),
                    k["value"],
                    k["default-value"],
                    k["min"],
                    k["max"],
                    k["step"],
                    text(&k["mode"])
                );
            }
            for r in body["undo"].as_array().into_iter().flatten() {
                out!(
                    "apply {:>4}  {}  {} -> {}  by {} ({})",
                    r["apply-id"],
                    text(&r["knob"]),
                    r["before"],
                    r["after"],
                    text(&r["who"]),
                    text(&r["source"])
                );
            }
        }
        FeedbackCommand::Suggestions { .. } => {
            out!("version {}", body["version"]);
            for s in body["suggestions"].as_array().into_iter().flatten() {
                out!("{}  {} = {}  confidence {}", text(&s["id"]), text(&s["knob"]), s["value"], s["confidence"]);
                out!("    {}", text(&s["rationale"]));
            }
        }
        FeedbackCommand::Apply { .. } => out!(
            "applied {}: {} -> {} (apply {}, version {})",
            text(&body["knob"]),
            body["before"],
            body["after"],
            body["apply-id"],
            body["version"]
        ),
        FeedbackCommand::Rollback { .. } => {
            let undone = body["undone"].as_array().cloned().unwrap_or_default();
            out!("{} apply(s) rolled back", undone.len());
            for r in &undone {
                out!("    {}: back to {}", text(&r["knob"]), r["after"]);
            }
        }
        FeedbackCommand::Mode { .. } => out!("mode {} (version {})", text(&body["mode"]), body["version"]),
    }
}
