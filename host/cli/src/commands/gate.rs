//! `arw gate list|check|contracts|preset`: the gates of this
//! configuration, asked in-process (like `arw call`), and arw:gating's
//! presets.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arw_host::HostConfig;
use arw_host::gating::{GateCaller, GateDenied, GateRequest, keys};
use serde_json::json;

use crate::cli::GateCommand;

pub async fn run(config: HostConfig, command: GateCommand) -> anyhow::Result<ExitCode> {
    match command {
        GateCommand::Preset { name } => preset(&config, &name),
        GateCommand::List { json } => list(config, json).await,
        GateCommand::Check { key, caller, at, json } => check(config, &key, &caller, at.as_deref(), json).await,
        GateCommand::Contracts { json } => contracts(config, json).await,
    }
}

/// Start a host of this configuration, with its gates.
async fn host(config: HostConfig) -> anyhow::Result<arw_host::Host> {
    if config.gating.gates.is_empty() {
        eprintln!("note: no gates are configured (`[gating] gates` is empty): Cedar alone decides");
    }
    let (host, refused) = super::start_host(config).await?;
    for error in &refused {
        eprintln!("warning: {error}");
    }
    Ok(host)
}

/// Every key of the catalogue, with the contracts of each gate that cover it.
async fn list(config: HostConfig, as_json: bool) -> anyhow::Result<ExitCode> {
    let host = host(config).await?;
    let mut keys: Vec<String> = arw_server::gating::KEYS.iter().map(|k| k.key.to_string()).collect();
    for tool in host.tools() {
        keys.push(keys::TOOL_INGRESS.key(&tool.descriptor.name));
    }
    keys.extend(keys::FAMILIES.iter().map(|f| f.pattern.to_string()));
    let mut rows = Vec::new();
    for key in keys {
        let covering = host.gates().covering(&key).await;
        rows.push((key, covering));
    }
    host.shutdown(Duration::from_secs(5)).await;
    if as_json {
        let rows: Vec<_> = rows
            .iter()
            .map(|(key, covering)| {
                let gates: serde_json::Map<String, serde_json::Value> = covering
                    .iter()
                    .map(|(gate, answer)| {
                        let value = match answer {
                            Ok(ids) => json!({"contracts": ids}),
                            Err(why) => json!({"error": why}),
                        };
                        (gate.clone(), value)
                    })
                    .collect();
                json!({"key": key, "gates": gates})
            })
            .collect();
        out!("{}", serde_json::to_string_pretty(&json!({"keys": rows}))?);
        return Ok(ExitCode::SUCCESS);
    }
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    out!("{:width$}  contracts (per gate)", "key");
    for (key, covering) in rows {
        let shown: Vec<String> = covering
            .iter()
            .map(|(gate, answer)| match answer {
                Ok(ids) if ids.is_empty() => format!("{gate}: none"),
                Ok(ids) => format!("{gate}: {}", ids.join(", ")),
                Err(why) => format!("{gate}: error: {why}"),
            })
            .collect();
        let shown = if shown.is_empty() { "no gates".to_string() } else { shown.join("; ") };
        out!("{key:width$}  {shown}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The caller called `name` in this configuration.
fn caller(config: &HostConfig, name: &str) -> anyhow::Result<GateCaller> {
    let principal = match name {
        "local" => arw_policy::Principal::local_operator(),
        "anonymous" => arw_policy::Principal::caller("anonymous", ["anonymous"]),
        _ => {
            let token = config.http.tokens.iter().find(|t| t.name == name);
            let token = match (token, &config.http.admin_token) {
                (Some(token), _) => token.clone(),
                (None, Some(_)) if name == "admin" => arw_host::config::TokenConfig {
                    name: "admin".into(),
                    token: None,
                    token_sha256: None,
                    roles: vec!["admin".into()],
                    tags: Vec::new(),
                },
                _ => {
                    let known: Vec<&str> = config.http.tokens.iter().map(|t| t.name.as_str()).collect();
                    bail!(
                        "no caller `{name}`: use `local`, `anonymous` or a `[[http.tokens]]` name ({})",
                        if known.is_empty() { "none configured".to_string() } else { known.join(", ") }
                    );
                }
            };
            let principal = arw_policy::Principal::caller(token.name.clone(), token.roles.clone());
            return Ok(GateCaller::of(&principal, token.tags));
        }
    };
    Ok(GateCaller::of(&principal, Vec::new()))
}

/// What a request under `key` would meet.
async fn check(config: HostConfig, key: &str, who: &str, at: Option<&str>, as_json: bool) -> anyhow::Result<ExitCode> {
    if !keys::is_well_formed(key) {
        bail!("`{key}` is not a gating key (`domain:verb[:sub]`, lower case; see docs/gating-keys.md)");
    }
    let gate_caller = caller(&config, who)?;
    let when = match at {
        None => None,
        Some(text) => {
            let parsed = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                .with_context(|| format!("--at `{text}` is not an RFC 3339 time (e.g. 2026-12-24T12:00:00Z)"))?;
            Some(std::time::SystemTime::from(parsed))
        }
    };
    let host = host(config).await?;
    let mut request = GateRequest::new(key, Arc::new(gate_caller));
    request.at = when;
    let gates: Vec<String> = host.gates().order().map(str::to_string).collect();
    let decided = host.gate(&request).await;
    host.shutdown(Duration::from_secs(5)).await;
    let (verdict, gate, contract, detail) = match &decided {
        Ok(()) => ("allow", None, None, None),
        Err(GateDenied::Denied { gate, contract, retry_after_ms: Some(_), .. }) => {
            ("retry-after", Some(gate.as_str()), Some(contract.as_str()), Some(decided_text(&decided)))
        }
        Err(GateDenied::Denied { gate, contract, .. }) => {
            ("deny", Some(gate.as_str()), Some(contract.as_str()), Some(decided_text(&decided)))
        }
        Err(GateDenied::Failed { gate, .. }) => ("failed", Some(gate.as_str()), None, Some(decided_text(&decided))),
    };
    if as_json {
        out!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "key": key, "caller": who, "at": at, "gates": gates, "verdict": verdict,
                "gate": gate, "contract": contract, "detail": detail,
            }))?
        );
    } else if let Some(detail) = detail {
        out!("{verdict}: {detail}");
    } else if gates.is_empty() {
        out!("allow: no gates are configured");
    } else {
        out!("allow: {} allowed it", gates.join(", "));
    }
    Ok(if decided.is_ok() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn decided_text(decided: &Result<(), GateDenied>) -> String {
    decided.as_ref().err().map(ToString::to_string).unwrap_or_default()
}

/// Each gate's file, and whether the gate took it.
async fn contracts(config: HostConfig, as_json: bool) -> anyhow::Result<ExitCode> {
    let host = host(config).await?;
    let reloads = host.gates().reload(true).await;
    host.shutdown(Duration::from_secs(5)).await;
    let ok = reloads.iter().all(|r| r.outcome != "failed");
    if as_json {
        out!("{}", serde_json::to_string_pretty(&json!({"gates": reloads}))?);
        return Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE });
    }
    for reload in &reloads {
        let file = reload.file.as_ref().map_or("(no file: empty configuration)".into(), |f| f.display().to_string());
        match reload.outcome {
            "failed" => out!(
                "{}  {file}{}  REFUSED: {}",
                reload.gate,
                reload.line.map(|l| format!(":{l}")).unwrap_or_default(),
                reload.message.as_deref().unwrap_or_default()
            ),
            _ => out!("{}  {file}  in force", reload.gate),
        }
        if let Some(path) = &reload.file
            && let Ok(text) = std::fs::read_to_string(path)
        {
            for line in text.lines() {
                out!("    {line}");
            }
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// Write preset `name` as arw:gating's file.
fn preset(config: &HostConfig, name: &str) -> anyhow::Result<ExitCode> {
    let Some((_, text)) = crate::defaults::GATING_PRESETS.iter().find(|(n, _)| *n == name) else {
        let names: Vec<&str> = crate::defaults::GATING_PRESETS.iter().map(|(n, _)| *n).collect();
        bail!("no preset `{name}`: the presets are {}", names.join(", "));
    };
    let gating = crate::settings::GATING;
    let file = config
        .gating
        .files
        .get(gating)
        .cloned()
        .or_else(crate::settings::default_gating_file)
        .context("no file for arw:gating: set `[gating.files] \"arw:gating\"`")?;
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    if let Ok(previous) = std::fs::read(&file)
        && previous != text.as_bytes()
    {
        let kept = file.with_extension("toml.previous");
        arw_host::fsutil::write_atomic(&kept, &previous).with_context(|| format!("writing {}", kept.display()))?;
        out!("kept the previous contracts as {}", kept.display());
    }
    arw_host::fsutil::write_atomic(&file, text.as_bytes()).with_context(|| format!("writing {}", file.display()))?;
    out!("wrote preset `{name}` to {}", file.display());
    if !config.gating.gates.iter().any(|g| g == gating) {
        out!("note: arw:gating is not in force: add `gates = [\"arw:gating\"]` to `[gating]` (docs/gating.md)");
    }
    Ok(ExitCode::SUCCESS)
}
