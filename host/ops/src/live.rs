//! The registry workflows on a running host, as the HTTP API's admin
//! routes run them: the same code as the CLI commands, followed by the
//! switch. `install` resolves, verifies, precompiles and records exactly
//! like `arw install --yes`, then activates at once, so the answer says
//! whether the new version is live; a version that fails to activate is
//! taken back out of the installed set, so the next start does not trip
//! over it.

use std::sync::Arc;

use arw_host::{Host, HostConfig, PolicyReload};
use arw_manifest::ComponentId;
use arw_registry::PackageRef;
use arw_registry::installed::InstalledEntry;

use crate::error::OpsError;
use crate::policies::PolicyOrigin;
use crate::stores::Stores;

/// What an install, uninstall or rollback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub id: String,
    /// The version now active (none after an uninstall).
    pub version: Option<String>,
    /// The version that was active before, if any.
    pub previous: Option<String>,
    pub digest: Option<String>,
    pub publisher: Option<String>,
}

/// A running host with its stores and policy origin.
pub struct Live {
    host: Arc<Host>,
    config: HostConfig,
    policies: PolicyOrigin,
    /// None when the host runs from an unsigned directory (`--components`):
    /// then only the policy reload is available.
    stores: Option<Arc<Stores>>,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").field("registry", &self.stores.is_some()).finish_non_exhaustive()
    }
}

impl Live {
    pub fn new(host: Arc<Host>, config: HostConfig, policies: PolicyOrigin, stores: Option<Stores>) -> Self {
        Live { host, config, policies, stores: stores.map(Arc::new) }
    }

    fn stores(&self) -> Result<&Arc<Stores>, OpsError> {
        self.stores.as_ref().ok_or(OpsError::NoRegistry)
    }

    /// Run blocking registry work off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&HostConfig, &Stores) -> Result<T, OpsError> + Send + 'static,
    ) -> Result<T, OpsError> {
        let (config, stores) = (self.config.clone(), self.stores()?.clone());
        tokio::task::spawn_blocking(move || work(&config, &stores))
            .await
            .map_err(|e| OpsError::Config(format!("a registry task failed: {e}")))?
    }

    fn installed(&self, id: &ComponentId) -> Result<Option<InstalledEntry>, OpsError> {
        Ok(self.stores()?.installed.load()?.components.get(id.as_str()).cloned())
    }

    /// Activate `entry` of `id` now; on failure put `before` back in the
    /// installed set and return why.
    async fn activate(
        &self,
        id: &ComponentId,
        entry: &InstalledEntry,
        before: Option<InstalledEntry>,
    ) -> Result<Outcome, OpsError> {
        let stores = self.stores()?;
        let previous = self.host.active_version(id.as_str()).map(|(v, _)| v);
        let activated = match stores.source().package(id.as_str(), entry) {
            Ok(package) => self.host.activate(package).await,
            Err(e) => Err(arw_host::ActivationError {
                id: id.to_string(),
                version: entry.version.clone(),
                stage: "verify",
                reason: e.to_string(),
            }),
        };
        if let Err(error) = activated {
            let restore = stores.installed.update(|index| match before {
                Some(before) => {
                    index.components.insert(id.to_string(), before);
                }
                None => {
                    index.components.remove(id.as_str());
                }
            });
            if let Err(e) = restore {
                tracing::error!("cannot restore the installed set after a failed activation of {id}: {e}");
            }
            return Err(error.into());
        }
        Ok(Outcome {
            id: id.to_string(),
            version: Some(entry.version.clone()),
            previous,
            digest: Some(entry.digest.clone()),
            publisher: Some(entry.publisher.clone()),
        })
    }

    /// Install `package` (`ns:name[@version|@req]`) and activate it.
    pub async fn install(&self, package: &str) -> Result<Outcome, OpsError> {
        let reference: PackageRef = package.parse()?;
        let before = self.installed(&reference.id)?;
        let id = reference.id.clone();
        let entry = self.blocking(move |config, stores| crate::install::install(config, stores, &reference)).await?;
        tracing::info!(component = %id, version = %entry.version, "installed");
        self.activate(&id, &entry, before).await
    }

    /// Uninstall `id`; it drains and stops.
    pub async fn uninstall(&self, id: &str) -> Result<Outcome, OpsError> {
        let id = parse_id(id)?;
        let entry = crate::rollback::uninstall(self.stores()?, &id)?;
        self.host.remove(id.as_str()).await;
        Ok(Outcome { id: id.to_string(), version: None, previous: Some(entry.version), digest: None, publisher: None })
    }

    /// Go back to `to` (default: the version installed before) and activate it.
    pub async fn rollback(&self, id: &str, to: Option<String>) -> Result<Outcome, OpsError> {
        let id = parse_id(id)?;
        let Some(before) = self.installed(&id)? else {
            return Err(OpsError::NotInstalled { id: id.to_string() });
        };
        if let Some(to) = &to
            && let Err(e) = semver::Version::parse(to)
        {
            return Err(OpsError::InvalidVersion { version: to.clone(), reason: e.to_string() });
        }
        let target = id.clone();
        let (entry, _) =
            self.blocking(move |_, stores| crate::rollback::rollback_to(stores, &target, to.as_deref())).await?;
        self.activate(&id, &entry, Some(before)).await
    }

    /// Re-read the policies and hot-swap them.
    pub async fn reload_policies(&self) -> Result<PolicyReload, OpsError> {
        let sources = self.policies.read()?;
        Ok(self.host.reload_policies(sources).await?)
    }
}

fn parse_id(text: &str) -> Result<ComponentId, OpsError> {
    text.parse().map_err(|reason| OpsError::InvalidReference { reference: text.chars().take(120).collect(), reason })
}
