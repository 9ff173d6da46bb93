//! The registry commands (`keys`, `trust`, `publish`, `sign`, `verify`,
//! `install`, `uninstall`, `list`, `yank`) and the first-run bootstrap that
//! puts the first-party components through the same path.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use arw_host::HostConfig;
use arw_host::manifest::{ComponentId, Manifest};
use arw_host::runtime::aot::AotCache;
use arw_host::source::ComponentSource;
use arw_policy::{Authorizer, PolicySet, Principal};
use arw_registry::installed::InstalledEntry;
use arw_registry::keys::KeyStore;
use arw_registry::reference::VersionSpec;
use arw_registry::{InstalledSet, InstalledSource, PackageRef, PublicKey, Registry, RegistryError, TrustStore};
use semver::Version;

use crate::cli::{
    InstallArgs, KeysCommand, ListInstalledArgs, PublishArgs, SignArgs, TrustCommand, UninstallArgs, VerifyArgs,
    YankArgs,
};

/// The key `arw up` creates on first run to sign the first-party
/// components; the default policies grant to `principal.publisher == "arw"`.
pub const FIRST_PARTY_KEY: &str = "arw";

/// Where the registry, keys, trust store and installed set live.
pub(crate) struct Stores {
    pub registry: Registry,
    pub keys: KeyStore,
    pub trust: TrustStore,
    pub installed: InstalledSet,
    pub state_dir: PathBuf,
}

impl Stores {
    pub fn new(config: &HostConfig) -> anyhow::Result<Self> {
        let need = |dir: &Option<PathBuf>, what: &str| {
            dir.clone().ok_or_else(|| anyhow!("no {what} directory: set it in the configuration or with a flag"))
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

    /// The source `arw up` loads from.
    pub fn source(&self) -> InstalledSource {
        InstalledSource::new(self.registry.clone(), self.trust.clone(), self.installed.clone())
    }
}

/// On the first run: create and trust the first-party key, publish the
/// embedded first-party components with it and install them. On later runs
/// only upgrades happen: a first-party component that is installed at an
/// older version than the one built into this binary is published and
/// installed at the new version. Components the user uninstalled stay
/// uninstalled.
pub(crate) fn bootstrap(config: &HostConfig, stores: &Stores) -> anyhow::Result<()> {
    let index = stores.installed.load()?;
    let mut wanted = Vec::new();
    for package in crate::defaults::first_party().packages() {
        let package = package?;
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
    if !key_file.exists() {
        let public = stores.keys.generate(FIRST_PARTY_KEY)?;
        tracing::info!(key = %public, "created the first-party signing key `{FIRST_PARTY_KEY}`");
    }
    let (signer, key) = stores.keys.load(FIRST_PARTY_KEY)?;
    stores.trust.add(&signer, &PublicKey(key.verifying_key())).context(
        "the trust store has another key named `arw`; remove it (`arw trust remove arw`) so the first-party key can be trusted",
    )?;
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
        let reference = PackageRef { id, version: VersionSpec::Exact(version) };
        install(config, stores, &reference, Confirm::Quiet)?;
    }
    stores.installed.update(|index| index.bootstrapped = true)?;
    Ok(())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Print the capabilities and ask (or require --yes when not a terminal).
    Ask,
    /// Print the capabilities, do not ask.
    Yes,
    /// Neither print nor ask (bootstrap).
    Quiet,
}

/// Resolve, verify, show the permission prompt, precompile, record.
pub(crate) fn install(
    config: &HostConfig,
    stores: &Stores,
    reference: &PackageRef,
    confirm: Confirm,
) -> anyhow::Result<InstalledEntry> {
    let entry = stores.registry.resolve(reference)?;
    let version = Version::parse(&entry.version)?;
    let package = stores.registry.read(&reference.id, &version)?;
    let verified = arw_registry::verify::verify(&package, &stores.trust)?;

    if confirm != Confirm::Quiet {
        let policies = PolicySet::from_sources(&arw_policy::schema::embedded()?, super::policy_sources(config)?)
            .context("cannot show Cedar's decisions: the policies are invalid (see `arw policy check`)")?;
        let authorizer = Authorizer::new(arw_policy::schema::embedded()?, policies);
        let principal = authorizer.principal(Principal::component(
            reference.id.as_str(),
            version.to_string(),
            verified.publisher.clone(),
            verified.digest.clone(),
        ));
        out!("{}@{} signed by `{}` ({})", reference.id, version, verified.publisher, verified.digest);
        let manifest = &verified.manifest;
        super::print_grants(
            "  ",
            &manifest.limits,
            manifest.capabilities.iter().map(|request| {
                let decision = authorizer.decide(&principal, request.action, &request.resource);
                (request.action, request.resource.clone(), decision.allowed(), decision.reason().to_string())
            }),
        );
        if confirm == Confirm::Ask {
            if !std::io::stdin().is_terminal() {
                bail!("not installing without confirmation: pass --yes to install from a script");
            }
            eprint!("Install {}@{version}? [y/N] ", reference.id);
            let _ = std::io::stderr().flush();
            let mut answer = String::new();
            std::io::stdin().read_line(&mut answer)?;
            if !matches!(answer.trim(), "y" | "Y" | "yes") {
                bail!("installation cancelled");
            }
        }
    }

    // Precompile with the engine `arw up` will use, so its first start loads
    // the artifact instead of compiling.
    let engine = arw_host::runtime::engine::build(&config.engine)?;
    AotCache::new(stores.state_dir.join("aot"))
        .load_or_compile(&engine, &verified.digest, &package.wasm)
        .map_err(|e| anyhow!("precompiling {}@{version}: {e:#}", reference.id))?;
    Ok(stores.installed.record(&reference.id, &version, &verified.digest, &verified.publisher)?)
}

pub fn keys(config: &HostConfig, command: KeysCommand) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    match command {
        KeysCommand::Generate { name } => {
            let public = stores.keys.generate(&name)?;
            out!("{public}");
            eprintln!(
                "created {} (keep it private) and {}.pub; to trust it here: arw trust add {name} {public}",
                stores.keys.dir().join(format!("{name}.key")).display(),
                name
            );
        }
        KeysCommand::List => {
            for (name, key) in stores.keys.list()? {
                out!("{name:<20} {key}");
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn trust(config: &HostConfig, command: TrustCommand) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    match command {
        TrustCommand::Add { name, key } => {
            let looks_like_path = key.contains('/') || key.ends_with(".pub");
            let text = if std::path::Path::new(&key).is_file() {
                std::fs::read_to_string(&key).with_context(|| format!("reading {key}"))?
            } else if looks_like_path && !key.starts_with("ed25519:") {
                bail!("`{key}`: no such file (give a public key `ed25519:<base64>` or the path of a `.pub` file)");
            } else {
                key
            };
            let key: PublicKey = text.parse().map_err(|e| anyhow!("invalid public key: {e}"))?;
            stores.trust.add(&name, &key)?;
            out!("trusting `{name}` ({key})");
        }
        TrustCommand::List => {
            for (name, key) in stores.trust.list()? {
                out!("{name:<20} {key}");
            }
        }
        TrustCommand::Remove { name } => {
            stores.trust.remove(&name)?;
            out!("no longer trusting `{name}`");
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn publish(config: &HostConfig, args: PublishArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let text = std::fs::read_to_string(&args.manifest)
        .with_context(|| format!("reading the manifest {}", args.manifest.display()))?;
    let manifest = Manifest::parse(&text).map_err(|e| anyhow!("{}: invalid manifest: {e}", args.manifest.display()))?;
    let size = std::fs::metadata(&args.component).with_context(|| format!("{}", args.component.display()))?.len();
    if size > arw_registry::registry::DEFAULT_MAX_COMPONENT_BYTES {
        bail!(
            "{}: {size} bytes is over the limit of {} bytes",
            args.component.display(),
            arw_registry::registry::DEFAULT_MAX_COMPONENT_BYTES
        );
    }
    let wasm = std::fs::read(&args.component).with_context(|| format!("reading {}", args.component.display()))?;
    let (signer, key) = stores.keys.load(&args.key)?;
    let digest = arw_registry::signature::digest(&wasm);
    let entry = stores
        .registry
        .publish(&wasm, manifest, &signer, &key)
        .map_err(|e| anyhow!("{}: {e}", args.component.display()))?;
    out!(
        "published {}@{} ({digest}) signed by `{signer}` to {}",
        entry.id,
        entry.version,
        stores.registry.root().display()
    );
    Ok(ExitCode::SUCCESS)
}

pub fn sign(config: &HostConfig, args: SignArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let (id, version) = exact(&args.reference)?;
    let (signer, key) = stores.keys.load(&args.key)?;
    let path = stores.registry.countersign(&id, &version, &signer, &key)?;
    out!("signed {id}@{version} as `{signer}`: {}", path.display());
    Ok(ExitCode::SUCCESS)
}

pub fn verify(config: &HostConfig, args: VerifyArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let path = std::path::Path::new(&args.target);
    let (id, version, file_bytes) = if path.is_file() {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let digest = arw_registry::signature::digest(&bytes);
        let Some(entry) = stores.registry.find_by_digest(&digest)? else {
            eprintln!(
                "FAILED {}: signature check failed: no version in {} has digest {digest} (unsigned or unknown)",
                path.display(),
                stores.registry.root().display()
            );
            return Ok(ExitCode::FAILURE);
        };
        (entry.id.parse::<ComponentId>().map_err(|e: String| anyhow!(e))?, Version::parse(&entry.version)?, Some(bytes))
    } else {
        let reference: PackageRef = args.target.parse()?;
        let version = match &reference.version {
            VersionSpec::Exact(v) => v.clone(),
            _ => {
                let versions = stores.registry.versions(&reference.id)?;
                let matching = versions.into_iter().rev().find(|e| match &reference.version {
                    VersionSpec::Req(req) => Version::parse(&e.version).is_ok_and(|v| req.matches(&v)),
                    _ => true,
                });
                let Some(entry) = matching else {
                    eprintln!("FAILED {reference}: not in the registry at {}", stores.registry.root().display());
                    return Ok(ExitCode::FAILURE);
                };
                Version::parse(&entry.version)?
            }
        };
        (reference.id, version, None)
    };
    let package = match stores.registry.read(&id, &version) {
        Ok(package) => package,
        Err(e) => {
            eprintln!("FAILED {id}@{version}: {e}");
            return Ok(ExitCode::FAILURE);
        }
    };
    if let Some(bytes) = file_bytes
        && bytes != package.wasm
    {
        eprintln!("FAILED {}: digest check failed: the file differs from {id}@{version}", args.target);
        return Ok(ExitCode::FAILURE);
    }
    match arw_registry::verify::verify(&package, &stores.trust) {
        Ok(verified) => {
            out!("ok {id}@{version}");
            out!("  digest    {} ({} bytes)", verified.digest, package.wasm.len());
            for s in &verified.signatures {
                let trust = s.trusted_as.as_deref().map_or("untrusted".to_string(), |n| format!("trusted as `{n}`"));
                out!("  signature {} by `{}` {} ({trust})", s.file, s.signer, s.public_key);
            }
            let worlds: Vec<&str> = verified.manifest.worlds.iter().map(|w| w.as_str()).collect();
            out!("  world     {} (exports checked)", worlds.join(", "));
            if package.yanked {
                out!("  note      this version is yanked");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("FAILED {id}@{version}: {e}");
            Ok(ExitCode::FAILURE)
        }
    }
}

pub fn install_command(config: &HostConfig, args: InstallArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let reference: PackageRef = args.reference.parse()?;
    let confirm = if args.yes { Confirm::Yes } else { Confirm::Ask };
    let entry = install(config, &stores, &reference, confirm)?;
    let replaced = entry.previous.as_deref().map(|p| format!(" (was {p})")).unwrap_or_default();
    out!("installed {}@{}{replaced}", reference.id, entry.version);
    Ok(ExitCode::SUCCESS)
}

pub fn uninstall(config: &HostConfig, args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let id: ComponentId = args.id.parse().map_err(|e: String| anyhow!(e))?;
    match stores.installed.remove(&id)? {
        Some(entry) => {
            out!("uninstalled {id}@{}", entry.version);
            Ok(ExitCode::SUCCESS)
        }
        None => bail!("{id} is not installed (see `arw list`)"),
    }
}

pub fn list(config: &HostConfig, args: ListInstalledArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let index = stores.installed.load()?;
    if args.available {
        let versions = stores.registry.list()?;
        if args.json {
            out!("{}", serde_json::to_string_pretty(&serde_json::json!({ "available": versions }))?);
            return Ok(ExitCode::SUCCESS);
        }
        for v in versions {
            let installed = index.components.get(&v.id).is_some_and(|e| e.version == v.version);
            let flags = [(installed, "installed"), (v.yanked, "yanked")]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, f)| *f)
                .collect::<Vec<_>>()
                .join(", ");
            out!("{}", format!("{:<24} {:<10} {flags}", v.id, v.version).trim_end());
        }
        return Ok(ExitCode::SUCCESS);
    }
    if args.json {
        out!("{}", serde_json::to_string_pretty(&serde_json::json!({ "installed": index.components }))?);
        return Ok(ExitCode::SUCCESS);
    }
    for (id, e) in &index.components {
        out!("{id:<24} {:<10} signed by `{}`  {}", e.version, e.publisher, e.digest);
    }
    Ok(ExitCode::SUCCESS)
}

pub fn yank(config: &HostConfig, args: YankArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let (id, version) = exact(&args.reference)?;
    stores.registry.yank(&id, &version)?;
    out!("yanked {id}@{version}: it stays installed where it is, but is no longer installed anew");
    Ok(ExitCode::SUCCESS)
}

pub fn rollback(config: &HostConfig, args: crate::cli::RollbackArgs) -> anyhow::Result<ExitCode> {
    let stores = Stores::new(config)?;
    let id: ComponentId = args.id.parse().map_err(|e: String| anyhow!(e))?;
    let (entry, was) = rollback_to(&stores, &id, args.to.as_deref())?;
    out!("{id} rolled back to {} (was {was})", entry.version);
    Ok(ExitCode::SUCCESS)
}

/// Record `to` (default: the previous version) as `id`'s installed
/// version, after verifying it. Returns the new entry and the version it
/// replaced.
pub(crate) fn rollback_to(
    stores: &Stores,
    id: &ComponentId,
    to: Option<&str>,
) -> anyhow::Result<(InstalledEntry, String)> {
    let index = stores.installed.load()?;
    let Some(current) = index.components.get(id.as_str()) else {
        bail!("{id} is not installed (see `arw list`)");
    };
    let target = match (to, &current.previous) {
        (Some(to), _) => Version::parse(to).map_err(|e| anyhow!("`{to}` is not a version: {e}"))?,
        (None, Some(previous)) => Version::parse(previous)?,
        (None, None) => bail!("{id} has no previous version recorded; name the version to go back to"),
    };
    // Going back is allowed to a yanked version (it was installed before),
    // but it must still verify.
    let package = stores.registry.read(id, &target)?;
    let verified = arw_registry::verify::verify(&package, &stores.trust)?;
    let entry = stores.installed.record(id, &target, &verified.digest, &verified.publisher)?;
    Ok((entry, current.version.clone()))
}

/// `ns:name@x.y.z`, required exactly.
fn exact(reference: &str) -> anyhow::Result<(ComponentId, Version)> {
    let reference: PackageRef = reference.parse()?;
    match reference.version {
        VersionSpec::Exact(v) => Ok((reference.id, v)),
        _ => bail!("`{reference}` needs an exact version: `ns:name@1.2.3`"),
    }
}
