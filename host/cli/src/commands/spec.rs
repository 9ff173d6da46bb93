//! `arw spec export`: write the generated specs into the repository, so
//! they can be read (and diffed) without running a host.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use arw_host::{Host, HostConfig};
use arw_policy::PolicySet;

use crate::cli::SpecCommand;

pub async fn run(command: SpecCommand) -> anyhow::Result<ExitCode> {
    let SpecCommand::Export { dir, docs } = command;
    // The MCP tool list is the first-party tools', described by the
    // components themselves: load them in a throwaway host.
    let scratch = tempfile::tempdir().context("creating a scratch state directory")?;
    // They are built into this binary, so loading them unsigned is safe here.
    let config =
        HostConfig { state_dir: Some(scratch.path().to_path_buf()), allow_unsigned: true, ..HostConfig::default() };
    let (host, refused) = Host::start(config, PolicySet::empty(), &crate::defaults::first_party())
        .await
        .context("loading the first-party components")?;
    if let Some(error) = refused.first() {
        anyhow::bail!("a first-party component did not load: {error}");
    }
    let mcp_tools = arw_server::spec::mcp_tools::document(&host.tools());
    host.shutdown(std::time::Duration::from_secs(1)).await;

    let files: [(&Path, &str, String); 6] = [
        (&dir, "openapi.json", arw_server::spec::openapi::json()),
        (&dir, "asyncapi.yaml", arw_server::spec::asyncapi::yaml()),
        (&dir, "mcp-tools.json", format!("{}\n", serde_json::to_string_pretty(&mcp_tools)?)),
        (&dir, "arw.cedarschema", arw_host::capabilities::schema()?.1),
        (&dir, "gating-keys.json", arw_server::gating::json()),
        (&docs, "gating-keys.md", arw_server::gating::markdown()),
    ];
    for (dir, name, text) in files {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(name);
        let unchanged = std::fs::read_to_string(&path).is_ok_and(|old| old == text);
        if !unchanged {
            arw_host::fsutil::write_atomic(&path, text.as_bytes())
                .with_context(|| format!("writing {}", path.display()))?;
        }
        out!("{} {}", if unchanged { "unchanged" } else { "wrote    " }, path.display());
    }
    Ok(ExitCode::SUCCESS)
}
