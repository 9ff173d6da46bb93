//! `arw queue push|stats|dead`: the running `arw up`'s work queues, over
//! its HTTP API (the tasks live in that host's backend).

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use arw_host::HostConfig;
use reqwest::Method;
use serde_json::json;

use super::api::Api;
use crate::cli::QueueCommand;

pub async fn run(config: &HostConfig, command: QueueCommand) -> anyhow::Result<ExitCode> {
    match command {
        QueueCommand::Push { queue, tool, input, idem_key, priority, delay_ms, max_attempts, target } => {
            let input = if input == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text).context("reading the input from stdin")?;
                text
            } else {
                input
            };
            let input: serde_json::Value =
                serde_json::from_str(&input).context("--input is not JSON (give a JSON document, or `-` for stdin)")?;
            let not_before_ms = delay_ms.map(|delay| now_ms().saturating_add(delay));
            let body = json!({
                "tool": tool,
                "input": input,
                "idem-key": idem_key,
                "priority": priority,
                "not-before-ms": not_before_ms,
                "max-attempts": max_attempts,
            });
            let api = Api::new(config, &target)?;
            let answer = api.send(Method::POST, &format!("/queues/{queue}/tasks"), Some(body)).await?;
            if let Some(failed) = answer.failure() {
                return Ok(failed);
            }
            if target.json {
                out!("{}", serde_json::to_string_pretty(&answer.body)?);
            } else if answer.body["duplicate"] == json!(true) {
                out!(
                    "{} (a duplicate: task {} has this idem-key)",
                    answer.body["id"].as_str().unwrap_or(""),
                    answer.body["id"].as_str().unwrap_or("")
                );
            } else {
                out!("{}", answer.body["id"].as_str().unwrap_or(""));
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Stats { queue, target } => {
            let api = Api::new(config, &target)?;
            let answer = api.send(Method::GET, &format!("/queues/{queue}"), None).await?;
            if let Some(failed) = answer.failure() {
                return Ok(failed);
            }
            let b = &answer.body;
            if target.json {
                out!("{}", serde_json::to_string_pretty(b)?);
            } else {
                out!(
                    "{queue}: ready {}  delayed {}  leased {}  done {}  dead {}",
                    b["ready"],
                    b["delayed"],
                    b["leased"],
                    b["done"],
                    b["dead"]
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        QueueCommand::Dead { queue, limit, target } => {
            let api = Api::new(config, &target)?;
            let answer = api.send(Method::GET, &format!("/queues/{queue}/dead?limit={limit}"), None).await?;
            if let Some(failed) = answer.failure() {
                return Ok(failed);
            }
            if target.json {
                out!("{}", serde_json::to_string_pretty(&answer.body)?);
                return Ok(ExitCode::SUCCESS);
            }
            let list = answer.body.as_array().cloned().unwrap_or_default();
            if list.is_empty() {
                out!("{queue}: no dead tasks");
            }
            for d in list {
                let text = |k: &str| d[k].as_str().unwrap_or("").to_string();
                out!(
                    "{}  {} as {}  after {} attempt(s): {}",
                    text("id"),
                    text("tool"),
                    text("caller"),
                    d["attempts"],
                    text("error")
                );
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
