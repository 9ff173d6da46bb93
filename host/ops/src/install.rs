//! Installing: resolve → read → verify → (the caller shows what it asks
//! for) → precompile → record. And the first-run bootstrap, which puts the
//! first-party components built into the binary through the same path.

use arw_host::HostConfig;
use arw_host::runtime::aot::AotCache;
use arw_host::source::ComponentSource;
use arw_policy::{Action, Authorizer, Decision, PolicySet, PolicySource, Principal};
use arw_registry::installed::InstalledEntry;
use arw_registry::reference::VersionSpec;
use arw_registry::registry::Package;
use arw_registry::{PackageRef, PublicKey, RegistryError, Verified};
use semver::Version;

use crate::error::OpsError;
use crate::stores::Stores;

/// The key `arw up` creates on first run to sign the first-party
/// components; the default policies grant to `principal.publisher == "arw"`.
pub const FIRST_PARTY_KEY: &str = "arw";

/// A version chosen and verified for installation, not yet recorded.
#[derive(Debug)]
pub struct Candidate {
    pub reference: PackageRef,
    pub version: Version,
    pub package: Package,
    pub verified: Verified,
}

/// Resolve `reference` (semver, skipping yanked versions), read the version
/// and verify its whole signature chain. Changes nothing.
pub fn prepare(stores: &Stores, reference: &PackageRef) -> Result<Candidate, OpsError> {
    let entry = stores.registry.resolve(reference)?;
    let version = Version::parse(&entry.version)
        .map_err(|e| OpsError::InvalidVersion { version: entry.version.clone(), reason: e.to_string() })?;
    let package = stores.registry.read(&reference.id, &version)?;
    let verified = arw_registry::verify::verify(&package, &stores.trust)?;
    arw_host::check_manifest(&verified.manifest).map_err(|message| OpsError::Capabilities {
        id: reference.id.to_string(),
        version: version.to_string(),
        message,
    })?;
    Ok(Candidate { reference: reference.clone(), version, package, verified })
}

impl Candidate {
    /// Cedar's decision, under `policies`, for each capability the
    /// candidate's manifest requests (what the install prompt shows).
    pub fn decisions(&self, policies: Vec<PolicySource>) -> Result<Vec<(Action, String, Decision)>, OpsError> {
        let schema = arw_policy::schema::embedded()?;
        let set = PolicySet::from_sources(&schema, policies)?;
        let authorizer = Authorizer::new(schema, set);
        let principal = authorizer.principal(Principal::component(
            self.reference.id.as_str(),
            self.version.to_string(),
            self.verified.publisher.clone(),
            self.verified.digest.clone(),
        ));
        Ok(self
            .verified
            .manifest
            .capabilities
            .iter()
            // `prepare` checked every action is one this host knows.
            .filter_map(|r| Some((arw_host::capabilities::action(&r.action)?, &r.resource)))
            .map(|(action, resource)| (action, resource.clone(), authorizer.decide(&principal, action, resource)))
            .collect())
    }
}

/// Precompile `candidate` with the engine `arw up` will use (so its next
/// start loads the artifact instead of compiling), then record it as the
/// installed version.
pub fn commit(config: &HostConfig, stores: &Stores, candidate: Candidate) -> Result<InstalledEntry, OpsError> {
    let id = &candidate.reference.id;
    let version = &candidate.version;
    let precompile =
        |message: String| OpsError::Precompile { id: id.to_string(), version: version.to_string(), message };
    let engine = arw_host::runtime::engine::build(&config.engine).map_err(|e| precompile(e.to_string()))?;
    AotCache::for_config(config)
        .map_err(|e| precompile(e.to_string()))?
        .load_or_compile(&engine, &candidate.verified.digest, &candidate.package.wasm)
        .map_err(|e| precompile(format!("{e:#}")))?;
    arw_fs::fault_point("install:precompiled", id.as_str());
    Ok(stores.installed.record(id, version, &candidate.verified.digest, &candidate.verified.publisher)?)
}

/// [`prepare`] then [`commit`], with nothing shown or asked.
pub fn install(config: &HostConfig, stores: &Stores, reference: &PackageRef) -> Result<InstalledEntry, OpsError> {
    commit(config, stores, prepare(stores, reference)?)
}

/// On the first run: create and trust the first-party key, publish the
/// first-party components with it and install them. On later runs only
/// upgrades happen: a first-party component installed at an older version
/// than the one in `first_party` is published and installed at the new
/// version. Components the user uninstalled stay uninstalled.
pub fn bootstrap(config: &HostConfig, stores: &Stores, first_party: &dyn ComponentSource) -> Result<(), OpsError> {
    let index = stores.installed.load()?;
    let mut wanted = Vec::new();
    for package in first_party.packages() {
        let package = package.map_err(|e| OpsError::Config(format!("a built-in component is broken: {e}")))?;
        let installed = index.components.get(package.manifest.id.as_str());
        let needed = match installed {
            None => !index.bootstrapped,
            Some(entry) => Version::parse(&entry.version).is_ok_and(|v| v < package.manifest.version),
        };
        if needed {
            wanted.push(package);
        }
    }
    if wanted.is_empty() {
        if !index.bootstrapped {
            stores.installed.update(|index| index.bootstrapped = true)?;
        }
        return Ok(());
    }
    tracing::info!(
        components = wanted.len(),
        "publishing and installing the first-party components built into this binary"
    );
    let key_file = stores.keys.dir().join(format!("{FIRST_PARTY_KEY}.key"));
    if std::fs::symlink_metadata(&key_file).is_err() {
        let public = stores.keys.generate(FIRST_PARTY_KEY)?;
        tracing::info!(key = %public, "created the first-party signing key `{FIRST_PARTY_KEY}`");
    }
    let (signer, key) = stores.keys.load(FIRST_PARTY_KEY)?;
    stores.trust.add(&signer, &PublicKey(key.verifying_key())).map_err(|e| match e {
        RegistryError::TrustConflict { .. } => OpsError::Config(
            "the trust store has another key named `arw`; remove it (`arw trust remove arw`) so the first-party \
             key can be trusted"
                .into(),
        ),
        other => other.into(),
    })?;
    for package in wanted {
        let id = package.manifest.id.clone();
        let version = package.manifest.version.clone();
        match stores.registry.publish(&package.wasm, package.manifest, &signer, &key) {
            Ok(_) => {}
            Err(RegistryError::AlreadyPublished { .. }) => {
                let published = stores.registry.read(&id, &version)?;
                if published.wasm != package.wasm.as_ref() {
                    tracing::warn!(
                        "{id}@{version} in the registry differs from the one built into this binary; \
                         using the registry's (bump the version in manifests/ to publish the new build)"
                    );
                }
            }
            Err(e) => return Err(e.into()),
        }
        install(config, stores, &PackageRef { id, version: VersionSpec::Exact(version) })?;
    }
    stores.installed.update(|index| index.bootstrapped = true)?;
    Ok(())
}
