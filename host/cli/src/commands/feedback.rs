//! `arw feedback`: the running `arw up`'s feedback engine, over its HTTP
//! API (the state lives in that process). Errors are the API's problem
//! documents, printed with their code.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use arw_host::HostConfig;

use crate::cli::{FeedbackCommand, FeedbackTarget};

/// Where to send, with what token.
struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    fn new(config: &HostConfig, target: &FeedbackTarget) -> anyhow::Result<Self> {
        let base = match &target.url {
            Some(url) => url.trim_end_matches('/').to_string(),
            None => running_address(config)?,
        };
        let token = target
            .token
            .clone()
            .or_else(|| std::env::var("ARW_TOKEN").ok())
            .or_else(|| config.http.admin_token.as_ref().map(|s| s.0.clone()));
        let client = reqwest::Client::builder().timeout(std::time::Duration::from_secs(30)).build()?;
        Ok(Api { base, token, client })
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = self.client.request(method, format!("{}{path}", self.base));
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("no answer from {}", self.base))?;
        let status = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        Ok(Answer { status, body })
    }
}

struct Answer {
    status: u16,
    body: serde_json::Value,
}

/// The HTTP address `arw up` wrote to the status file.
fn running_address(config: &HostConfig) -> anyhow::Result<String> {
    let state = config.state_dir.clone().ok_or_else(|| anyhow!("no state directory configured"))?;
    let path = state.join("status.json");
    let text = arw_fs::read_text_bounded(&path, 16 << 20)
        .map_err(|e| anyhow!("{e}: is `arw up` running with this state directory? (or give --url)"))?;
    let status: serde_json::Value = serde_json::from_str(&text).context("reading the status file")?;
    let addr = status["http"].as_str().ok_or_else(|| anyhow!("the running host serves no HTTP API (give --url)"))?;
    Ok(format!("http://{addr}"))
}

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
    if !(200..300).contains(&answer.status) {
        let code = answer.body["code"].as_str().unwrap_or("error");
        let detail = answer.body["detail"].as_str().unwrap_or("");
        eprintln!("error[{code}]: {detail} (HTTP {})", answer.status);
        return Ok(ExitCode::FAILURE);
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
