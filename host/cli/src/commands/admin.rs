//! The HTTP API's admin operations (`/admin/*`), done with the same code
//! as the CLI commands: `install` resolves, verifies, precompiles and
//! records exactly like `arw install --yes`. Unlike the CLI (which leaves
//! the switch to the running host's watcher) these activate at once, so
//! the response says whether the new version is live; a version that fails
//! to activate is taken out of the installed set again, so the next start
//! does not trip over it.

use std::sync::Arc;

use anyhow::anyhow;
use arw_host::manifest::ComponentId;
use arw_host::{Host, HostConfig};
use arw_registry::installed::InstalledEntry;
use arw_registry::{InstalledSource, PackageRef, RegistryError};
use arw_server::admin::{
    AdminError, AdminErrorKind, AdminOps, AdminOutcome, InstallRequest, PolicyReloadOutcome, RollbackRequest,
    UninstallRequest,
};

use super::packages::{self, Confirm, Stores};

pub struct CliAdmin {
    host: Arc<Host>,
    config: HostConfig,
    /// None when the host runs from an unsigned directory (`--components`):
    /// then only the policy reload is available.
    registry: Option<(Arc<Stores>, InstalledSource)>,
}

impl CliAdmin {
    pub fn new(host: Arc<Host>, config: HostConfig, with_registry: bool) -> anyhow::Result<Self> {
        let registry = if with_registry {
            let stores = Stores::new(&config)?;
            let source = stores.source();
            Some((Arc::new(stores), source))
        } else {
            None
        };
        Ok(CliAdmin { host, config, registry })
    }

    fn registry(&self) -> Result<(&Arc<Stores>, &InstalledSource), AdminError> {
        self.registry.as_ref().map(|(stores, source)| (stores, source)).ok_or_else(|| {
            AdminError::new(
                AdminErrorKind::Unsupported,
                "unsupported",
                "this host runs components from a directory (--components), not from the registry: it cannot \
                 install, uninstall or roll back",
            )
        })
    }

    /// Run blocking registry work off the async executor.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&HostConfig, &Stores) -> anyhow::Result<T> + Send + 'static,
    ) -> Result<T, AdminError> {
        let (config, stores) = (self.config.clone(), self.registry()?.0.clone());
        tokio::task::spawn_blocking(move || work(&config, &stores))
            .await
            .map_err(|e| AdminError::new(AdminErrorKind::Internal, "internal", e.to_string()))?
            .map_err(classify)
    }

    fn installed(&self, id: &ComponentId) -> Result<Option<InstalledEntry>, AdminError> {
        let index = self.registry()?.0.installed.load().map_err(|e| classify(e.into()))?;
        Ok(index.components.get(id.as_str()).cloned())
    }

    /// Activate `entry` of `id` now; on failure put `before` back in the
    /// installed set and report the stage.
    async fn activate(
        &self,
        id: &ComponentId,
        entry: &InstalledEntry,
        before: Option<InstalledEntry>,
    ) -> Result<AdminOutcome, AdminError> {
        let (stores, source) = self.registry()?;
        let previous = self.host.active_version(id.as_str()).map(|(v, _)| v);
        let activated = match source.package(id.as_str(), entry) {
            Ok(package) => self.host.activate(package).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        if let Err(reason) = activated {
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
            return Err(AdminError::new(AdminErrorKind::Refused, "activation-failed", reason));
        }
        Ok(AdminOutcome {
            id: id.to_string(),
            version: Some(entry.version.clone()),
            previous,
            digest: Some(entry.digest.clone()),
            publisher: Some(entry.publisher.clone()),
        })
    }
}

/// Map a registry or verification failure to an HTTP-level kind.
fn classify(error: anyhow::Error) -> AdminError {
    let message = format!("{error:#}");
    let kind = match error.downcast_ref::<RegistryError>() {
        Some(RegistryError::NotFound { .. }) => (AdminErrorKind::NotFound, "not-found"),
        Some(RegistryError::InvalidReference { .. } | RegistryError::InvalidName { .. }) => {
            (AdminErrorKind::Invalid, "invalid-reference")
        }
        Some(RegistryError::Yanked { .. }) => (AdminErrorKind::Refused, "yanked"),
        Some(RegistryError::Verify(_) | RegistryError::NotTrusted { .. }) => (AdminErrorKind::Refused, "verify-failed"),
        Some(RegistryError::Io { .. } | RegistryError::CorruptIndex { .. }) => (AdminErrorKind::Internal, "storage"),
        _ if error.downcast_ref::<arw_registry::verify::VerifyError>().is_some() => {
            (AdminErrorKind::Refused, "verify-failed")
        }
        _ => (AdminErrorKind::Refused, "refused"),
    };
    AdminError::new(kind.0, kind.1, message)
}

fn component_id(text: &str) -> Result<ComponentId, AdminError> {
    text.parse().map_err(|e: String| AdminError::new(AdminErrorKind::Invalid, "invalid-reference", e))
}

#[async_trait::async_trait]
impl AdminOps for CliAdmin {
    async fn install(&self, request: InstallRequest) -> Result<AdminOutcome, AdminError> {
        let reference: PackageRef = request.package.parse().map_err(|e: RegistryError| classify(e.into()))?;
        let before = self.installed(&reference.id)?;
        let id = reference.id.clone();
        let entry =
            self.blocking(move |config, stores| packages::install(config, stores, &reference, Confirm::Quiet)).await?;
        tracing::info!(component = %id, version = %entry.version, "installed over HTTP");
        self.activate(&id, &entry, before).await
    }

    async fn uninstall(&self, request: UninstallRequest) -> Result<AdminOutcome, AdminError> {
        let id = component_id(&request.id)?;
        let removed = self.registry()?.0.installed.remove(&id).map_err(|e| classify(e.into()))?;
        let Some(entry) = removed else {
            return Err(AdminError::new(
                AdminErrorKind::NotFound,
                "not-installed",
                format!("{id} is not installed (see GET /components)"),
            ));
        };
        self.host.remove(id.as_str()).await;
        Ok(AdminOutcome {
            id: id.to_string(),
            version: None,
            previous: Some(entry.version),
            digest: None,
            publisher: None,
        })
    }

    async fn rollback(&self, request: RollbackRequest) -> Result<AdminOutcome, AdminError> {
        let id = component_id(&request.id)?;
        let Some(before) = self.installed(&id)? else {
            return Err(AdminError::new(
                AdminErrorKind::NotFound,
                "not-installed",
                format!("{id} is not installed (see GET /components)"),
            ));
        };
        if let Some(to) = &request.to
            && semver::Version::parse(to).is_err()
        {
            return Err(AdminError::new(
                AdminErrorKind::Invalid,
                "invalid-version",
                format!("`to` must be a version such as 1.2.3, not `{to}`"),
            ));
        }
        let target = id.clone();
        let (entry, _) =
            self.blocking(move |_, stores| packages::rollback_to(stores, &target, request.to.as_deref())).await?;
        self.activate(&id, &entry, Some(before)).await
    }

    async fn reload_policies(&self) -> Result<PolicyReloadOutcome, AdminError> {
        let sources = super::policy_sources(&self.config).map_err(classify)?;
        let reload = self
            .host
            .reload_policies(sources)
            .await
            .map_err(|e| AdminError::new(AdminErrorKind::Refused, "invalid-policy", anyhow!(e).to_string()))?;
        Ok(PolicyReloadOutcome {
            policies: reload.policies,
            added: reload.added,
            removed: reload.removed,
            changed: reload.changed,
        })
    }
}
