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

/// Top-level keys (and sections) the environment layer may set; other
/// `ARW_*` variables belong to someone else and are ignored.
const ENV_KEYS: &[&str] =
    &["state_dir", "policies_dir", "components_dir", "allow_unsigned", "registry_dir", "keys_dir", "trust_dir"];
const ENV_SECTIONS: &[&str] = &[
    "engine__",
    "kv__",
    "bus__",
    "swap__",
    "http__",
    "outgoing_http__",
    "log__",
    "limits__",
    "node__",
    "components__",
];

/// The environment layer: `ARW_SECTION__KEY_NAME` → `section.key-name`.
fn env_layer() -> Env {
    Env::prefixed("ARW_")
        .filter(|key| {
            let key = key.as_str().to_ascii_lowercase();
            ENV_KEYS.contains(&key.as_str()) || ENV_SECTIONS.iter().any(|s| key.starts_with(s))
        })
        .map(|key| key.as_str().replace("__", ".").replace('_', "-").into())
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
    Ok(config)
}
