//! [`InstalledSource`]: the host's source of components. Each installed
//! version is read from the registry and verified (signature chain,
//! publisher and digest recorded at install) at every load, so removing a
//! trusted key or tampering with the registry takes effect at the next
//! load.

use std::borrow::Cow;

use arw_host::LoadError;
use arw_host::source::{ComponentPackage, ComponentSource};
use arw_registry::installed::InstalledEntry;
use arw_registry::{InstalledSet, Registry, TrustStore};

#[derive(Debug, Clone)]
pub struct InstalledSource {
    registry: Registry,
    trust: TrustStore,
    installed: InstalledSet,
}

impl InstalledSource {
    pub fn new(registry: Registry, trust: TrustStore, installed: InstalledSet) -> Self {
        InstalledSource { registry, trust, installed }
    }

    pub fn installed(&self) -> &InstalledSet {
        &self.installed
    }

    /// Read and verify one installed entry (what a running host does when
    /// the installed set changes).
    pub fn package(&self, id: &str, entry: &InstalledEntry) -> Result<ComponentPackage, LoadError> {
        let origin = format!("registry:{id}@{}", entry.version);
        let (package, verified) = arw_registry::verify_installed(&self.registry, &self.trust, id, entry)
            .map_err(|e| LoadError::Verify { origin: origin.clone(), check: e.check, message: e.message })?;
        Ok(ComponentPackage {
            manifest: verified.manifest,
            wasm: Cow::Owned(package.wasm),
            origin,
            publisher: Some(entry.publisher.clone()),
        })
    }
}

impl ComponentSource for InstalledSource {
    fn describe(&self) -> String {
        format!("installed components ({}) from {}", self.installed.path().display(), self.registry.root().display())
    }

    fn packages(&self) -> Vec<Result<ComponentPackage, LoadError>> {
        let index = match self.installed.load() {
            Ok(index) => index,
            Err(e) => {
                return vec![Err(LoadError::Verify {
                    origin: self.installed.path().display().to_string(),
                    check: "installed-set",
                    message: e.to_string(),
                })];
            }
        };
        index.components.iter().map(|(id, entry)| self.package(id, entry)).collect()
    }
}
