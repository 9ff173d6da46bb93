//! Rollback and uninstall: changes of the installed set that need no new
//! package.

use arw_manifest::ComponentId;
use arw_registry::installed::InstalledEntry;
use semver::Version;

use crate::error::OpsError;
use crate::stores::Stores;

/// Record `to` (default: the previous version) as `id`'s installed
/// version, after verifying it. Returns the new entry and the version it
/// replaced. Going back to a yanked version is allowed (it was installed
/// before), but it must still verify.
pub fn rollback_to(stores: &Stores, id: &ComponentId, to: Option<&str>) -> Result<(InstalledEntry, String), OpsError> {
    let index = stores.installed.load()?;
    let Some(current) = index.components.get(id.as_str()) else {
        return Err(OpsError::NotInstalled { id: id.to_string() });
    };
    let parse = |v: &str| {
        Version::parse(v).map_err(|e| OpsError::InvalidVersion { version: v.to_string(), reason: e.to_string() })
    };
    let target = match (to, &current.previous) {
        (Some(to), _) => parse(to)?,
        (None, Some(previous)) => parse(previous)?,
        (None, None) => return Err(OpsError::NoPrevious { id: id.to_string() }),
    };
    let package = stores.registry.read(id, &target)?;
    let verified = arw_registry::verify::verify(&package, &stores.trust)?;
    let entry = stores.installed.record(id, &target, &verified.digest, &verified.publisher)?;
    Ok((entry, current.version.clone()))
}

/// Take `id` out of the installed set; returns the entry it had.
pub fn uninstall(stores: &Stores, id: &ComponentId) -> Result<InstalledEntry, OpsError> {
    stores.installed.remove(id)?.ok_or_else(|| OpsError::NotInstalled { id: id.to_string() })
}
