//! `arw policy check [DIR]`.

use std::process::ExitCode;

use arw_host::HostConfig;
use arw_policy::{PolicySet, PolicySource};

use crate::cli::PolicyCommand;

pub fn run(config: HostConfig, command: PolicyCommand) -> anyhow::Result<ExitCode> {
    let PolicyCommand::Check { dir } = command;
    let sources = match dir {
        Some(dir) => PolicySource::read_dir(&dir)?,
        None => super::policy_sources(&config)?,
    };
    let files = sources.len();
    let schema = arw_policy::schema::embedded()?;
    match PolicySet::from_sources(&schema, sources) {
        Ok(set) => {
            out!("ok: {} policies in {files} file(s) are valid against the ARW schema", set.len());
            if set.is_empty() {
                out!("note: with no policies nothing is granted to any component or caller");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            for diagnostic in error.diagnostics() {
                eprintln!("error: {diagnostic}");
            }
            if error.diagnostics().is_empty() {
                eprintln!("error: {error}");
            }
            Ok(ExitCode::FAILURE)
        }
    }
}
