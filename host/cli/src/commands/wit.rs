//! `arw wit export`: the WIT an author's component must target.

use std::process::ExitCode;

use anyhow::{Context, bail};
use arw_host::wit::{FILES, PACKAGE};

use crate::cli::WitCommand;

pub fn run(command: WitCommand) -> anyhow::Result<ExitCode> {
    let WitCommand::Export { dir, force } = command;
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Check everything first, so a refusal writes nothing.
    for (name, text) in FILES {
        let path = dir.join(name);
        if let Ok(existing) = std::fs::read_to_string(&path)
            && existing != *text
            && !force
        {
            bail!("{} exists and differs from this host's {PACKAGE}; pass --force to overwrite it", path.display());
        }
    }
    for (name, text) in FILES {
        let path = dir.join(name);
        arw_host::fsutil::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    out!("wrote {PACKAGE} ({} files) to {}", FILES.len(), dir.display());
    out!(
        "worlds: `tool` (export tool-handler), `subscriber` (export event-handler) and `resident` (exports lifecycle, event-handler); see docs/wit.md"
    );
    Ok(ExitCode::SUCCESS)
}
