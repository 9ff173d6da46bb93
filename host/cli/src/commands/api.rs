//! The running `arw up`'s HTTP API, for the commands that act on its live
//! state (`arw feedback`, `arw queue`): where it is, which token to send,
//! and its problem documents printed with their code.

use std::process::ExitCode;

use anyhow::{Context, anyhow};
use arw_host::HostConfig;

use crate::cli::ApiTarget;

/// Where to send, with what token.
pub struct Api {
    base: String,
    token: Option<String>,
    client: reqwest::Client,
}

impl Api {
    pub fn new(config: &HostConfig, target: &ApiTarget) -> anyhow::Result<Self> {
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

    pub async fn send(
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

pub struct Answer {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Answer {
    /// A failed request, printed (`error[code]: detail (HTTP status)`),
    /// as the exit code; `None` for a success.
    pub fn failure(&self) -> Option<ExitCode> {
        if (200..300).contains(&self.status) {
            return None;
        }
        let code = self.body["code"].as_str().unwrap_or("error");
        let detail = self.body["detail"].as_str().unwrap_or("");
        eprintln!("error[{code}]: {detail} (HTTP {})", self.status);
        Some(ExitCode::FAILURE)
    }
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
