//! `arw components` and `arw tools`.

use std::process::ExitCode;
use std::time::Duration;

use arw_host::HostConfig;

use crate::cli::ListArgs;

pub async fn components(config: HostConfig, args: ListArgs) -> anyhow::Result<ExitCode> {
    let (host, refused) = super::start_host(config).await?;
    let components = host.components();
    host.shutdown(Duration::from_secs(1)).await;
    if args.json {
        let refused: Vec<String> = refused.iter().map(ToString::to_string).collect();
        out!("{}", serde_json::to_string_pretty(&serde_json::json!({ "components": components, "refused": refused }))?);
        return Ok(ExitCode::SUCCESS);
    }
    for c in &components {
        let worlds: Vec<&str> = c.worlds.iter().map(|w| w.as_str()).collect();
        out!("{} {}  [{}]  {}", c.id, c.version, worlds.join(", "), c.description);
        if let Some(tool) = &c.tool {
            out!("    tool: {tool}");
        }
        super::print_grants(
            "    ",
            &c.limits,
            c.grants.iter().map(|g| (g.action, g.resource.clone(), g.allowed, g.reason.clone())),
        );
    }
    for error in &refused {
        out!("refused: {error}");
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn tools(config: HostConfig, args: ListArgs) -> anyhow::Result<ExitCode> {
    let (host, _) = super::start_host(config).await?;
    let tools = host.tools();
    host.shutdown(Duration::from_secs(1)).await;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&serde_json::json!({ "tools": tools }))?);
        return Ok(ExitCode::SUCCESS);
    }
    for t in &tools {
        out!("{:<14} {:<8} {}  ({})", t.descriptor.name, t.descriptor.version, t.descriptor.summary, t.component);
        out!("    input:  {}", t.descriptor.input_schema);
        out!("    output: {}", t.descriptor.output_schema);
    }
    Ok(ExitCode::SUCCESS)
}
