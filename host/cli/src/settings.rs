//! Configuration layering: embedded defaults, then a TOML file, then
//! `ARW_*` environment variables, then command-line flags (each layer wins
//! over the one before).
//!
//! The file is `--config FILE`, else `$XDG_CONFIG_HOME/arw/config.toml` if it
//! exists. Environment variables name keys in upper case with `__` between
//! sections: `ARW_ENGINE__MAX_INSTANCES=32` sets `[engine] max-instances`.

use std::path::PathBuf;

use anyhow::{Context, bail};
use arw_host::HostConfig;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};

use crate::cli::GlobalArgs;

/// `$XDG_CONFIG_HOME/arw/config.toml`.
pub fn default_config_file() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("arw").join("config.toml"))
}

/// `$XDG_CONFIG_HOME/arw` (`~/.config/arw`).
pub fn default_config_dir() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("arw"))
}

/// `$XDG_DATA_HOME/arw/registry` (`~/.local/share/arw/registry`).
pub fn default_registry_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("arw").join("registry"))
}

/// `$XDG_STATE_HOME/arw` (`~/.local/state/arw`).
pub fn default_state_dir() -> Option<PathBuf> {
    dirs::state_dir().or_else(|| dirs::home_dir().map(|h| h.join(".local").join("state"))).map(|d| d.join("arw"))
}

/// The environment layer: `ARW_SECTION__KEY_NAME` → `section.key-name`.
/// Only variables naming a top-level key or section of [`HostConfig`] are
/// taken (read from its defaults, so every section, a capability's too, is
/// settable); other `ARW_*` variables belong to someone else and are
/// ignored.
fn env_layer() -> Env {
    let (keys, sections) = top_level_names();
    Env::prefixed("ARW_")
        .filter(move |key| {
            let key = key.as_str().to_ascii_lowercase();
            keys.contains(&key) || sections.iter().any(|s| key.starts_with(s.as_str()))
        })
        .map(|key| key.as_str().replace("__", ".").replace('_', "-").into())
}

/// HostConfig's top-level keys (`state_dir`) and sections (`kv__`), as
/// environment variable names write them.
fn top_level_names() -> (Vec<String>, Vec<String>) {
    let defaults = serde_json::to_value(HostConfig::default()).unwrap_or_default();
    let mut keys = Vec::new();
    let mut sections = Vec::new();
    for (name, value) in defaults.as_object().into_iter().flatten() {
        let name = name.replace('-', "_");
        if value.is_object() { sections.push(format!("{name}__")) } else { keys.push(name) }
    }
    (keys, sections)
}

/// Resolve the host configuration for this invocation.
pub fn load(args: &GlobalArgs) -> anyhow::Result<HostConfig> {
    let mut figment = Figment::from(Serialized::defaults(HostConfig::default()));
    match &args.config {
        Some(file) => {
            if !file.is_file() {
                bail!("config file `{}` does not exist", file.display());
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        None => {
            if let Some(file) = default_config_file().filter(|f| f.is_file()) {
                figment = figment.merge(Toml::file_exact(file));
            }
        }
    }
    figment = figment.merge(env_layer());
    let mut config: HostConfig = figment
        .extract()
        .map_err(|e| anyhow::anyhow!("{e}"))
        .context("invalid configuration (see docs/configuration.md for the keys)")?;
    if let Some(dir) = &args.state_dir {
        config.state_dir = Some(dir.clone());
    }
    if let Some(dir) = &args.policies {
        config.policies_dir = Some(dir.clone());
    }
    if let Some(dir) = &args.components {
        config.components_dir = Some(dir.clone());
    }
    if let Some(dir) = &args.registry {
        config.registry_dir = Some(dir.clone());
    }
    if args.allow_unsigned {
        config.allow_unsigned = true;
    }
    if config.state_dir.is_none() {
        config.state_dir = default_state_dir();
    }
    if config.registry_dir.is_none() {
        config.registry_dir = default_registry_dir();
    }
    if config.keys_dir.is_none() {
        config.keys_dir = default_config_dir().map(|d| d.join("keys"));
    }
    if config.trust_dir.is_none() {
        config.trust_dir = default_config_dir().map(|d| d.join("trust"));
    }
    if config.gating.gates.iter().any(|g| g == GATING)
        && !config.gating.files.contains_key(GATING)
        && let Some(file) = default_gating_file()
    {
        config.gating.files.insert(GATING.into(), file);
    }
    Ok(config)
}

/// The first-party gate.
pub const GATING: &str = "arw:gating";

/// arw:gating's contracts file when `[gating.files]` names none:
/// `$XDG_CONFIG_HOME/arw/gating.toml`.
pub fn default_gating_file() -> Option<std::path::PathBuf> {
    default_config_dir().map(|d| d.join("gating.toml"))
}

#[cfg(test)]
mod tests {
    /// Every section of the configuration, a capability's or a role's too,
    /// can be set from the environment.
    #[test]
    fn every_section_is_settable_from_the_environment() {
        let (keys, sections) = super::top_level_names();
        for key in ["state_dir", "allow_unsigned", "trust_dir"] {
            assert!(keys.iter().any(|k| k == key), "{key}: {keys:?}");
        }
        for section in ["engine__", "kv__", "bus__", "log__", "outgoing_http__", "tools__", "resident__", "node__"] {
            assert!(sections.iter().any(|s| s == section), "{section}: {sections:?}");
        }
    }
}
