//! Where the registry, the keys, the trust store and the installed set
//! live, resolved once from the host configuration.

use std::path::PathBuf;

use arw_host::HostConfig;
use arw_registry::keys::KeyStore;
use arw_registry::{InstalledSet, Registry, TrustStore};

use crate::error::OpsError;
use crate::source::InstalledSource;

#[derive(Debug, Clone)]
pub struct Stores {
    pub registry: Registry,
    pub keys: KeyStore,
    pub trust: TrustStore,
    pub installed: InstalledSet,
    pub state_dir: PathBuf,
}

impl Stores {
    /// The stores `config` names; each directory must be configured (the
    /// CLI fills in XDG defaults).
    pub fn new(config: &HostConfig) -> Result<Self, OpsError> {
        let need = |dir: &Option<PathBuf>, what: &str| {
            dir.clone().ok_or_else(|| {
                OpsError::Config(format!("no {what} directory: set it in the configuration or with a flag"))
            })
        };
        let state_dir = need(&config.state_dir, "state")?;
        Ok(Stores {
            registry: Registry::new(need(&config.registry_dir, "registry")?),
            keys: KeyStore::new(need(&config.keys_dir, "keys")?),
            trust: TrustStore::new(need(&config.trust_dir, "trust")?),
            installed: InstalledSet::new(&state_dir),
            state_dir,
        })
    }

    /// The source a host loads the installed set from.
    pub fn source(&self) -> InstalledSource {
        InstalledSource::new(self.registry.clone(), self.trust.clone(), self.installed.clone())
    }
}
