//! The registry commands (`keys`, `trust`, `publish`, `sign`, `verify`,
//! `install`, `uninstall`, `list`, `yank`, `rollback`). The workflows are
//! `arw-ops`'s (the HTTP admin routes run the same code); this module adds
//! the permission prompt and the output.

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use arw_host::HostConfig;
use arw_host::manifest::{ComponentId, Manifest};
use arw_ops::Stores;
use arw_ops::install::Candidate;
use arw_registry::installed::InstalledEntry;
use arw_registry::reference::VersionSpec;
use arw_registry::{PackageRef, PublicKey};
use semver::Version;

use crate::cli::{
    InstallArgs, KeysCommand, ListInstalledArgs, PublishArgs, SignArgs, TrustCommand, UninstallArgs, VerifyArgs,
    YankArgs,
};

/// The first-run bootstrap (see [`arw_ops::install::bootstrap`]) with the
/// first-party components built into this binary.
pub(crate) fn bootstrap(config: &HostConfig, stores: &Stores) -> anyhow::Result<()> {
    Ok(arw_ops::install::bootstrap(config, stores, &crate::defaults::first_party())?)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Confirm {
    /// Print the capabilities and ask (or require --yes when not a terminal).
    Ask,
    /// Print the capabilities, do not ask.
    Yes,
}

/// Show what `candidate` asks for with Cedar's decision for each, and ask.
fn prompt(config: &HostConfig, candidate: &Candidate, confirm: Confirm) -> anyhow::Result<()> {
    let decisions = candidate
        .decisions(super::policy_sources(config)?)
        .context("cannot show Cedar's decisions: the policies are invalid (see `arw policy check`)")?;
    let id = &candidate.reference.id;
    let version = &candidate.version;
    out!("{id}@{version} signed by `{}` ({})", candidate.verified.publisher, candidate.verified.digest);
    super::print_grants(
        "  ",
        &candidate.verified.manifest.limits,
        decisions.into_iter().map(|(action, resource, d)| (action, resource, d.allowed(), d.reason().to_string())),
    );
    if confirm == Confirm::Ask {
        if !std::io::stdin().is_terminal() {
            bail!("not installing without confirmation: pass --yes to install from a script");
        }
        eprint!("Install {id}@{version}? [y/N] ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().read_line(&mut answer)?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            bail!("installation cancelled");
        }
    }
    Ok(())
}

/// Resolve, verify, show the permission prompt, precompile, record.
fn install(
    config: &HostConfig,
    stores: &Stores,
    reference: &PackageRef,
    confirm: Confirm,
) -> anyhow::Result<InstalledEntry> {
    let candidate = arw_ops::install::prepare(stores, reference)?;
    prompt(config, &candidate, confirm)?;
    Ok(arw_ops::install::commit(config, stores, candidate)?)
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
                let bytes = arw_fs::read_user_file(std::path::Path::new(&key), 16 << 10)?;
                String::from_utf8(bytes).map_err(|_| anyhow!("{key}: not a public key file (not UTF-8)"))?
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
    let text = arw_fs::read_user_file(&args.manifest, arw_registry::error::MAX_MANIFEST_BYTES)
        .context("reading the manifest")?;
    let text =
        String::from_utf8(text).map_err(|_| anyhow!("{}: the manifest is not UTF-8", args.manifest.display()))?;
    let manifest = Manifest::parse(&text).map_err(|e| anyhow!("{}: invalid manifest: {e}", args.manifest.display()))?;
    arw_host::check_manifest(&manifest).map_err(|e| anyhow!("{}: invalid manifest: {e}", args.manifest.display()))?;
    let wasm = arw_fs::read_user_file(&args.component, arw_registry::registry::DEFAULT_MAX_COMPONENT_BYTES)
        .context("reading the component")?;
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
        let bytes = arw_fs::read_user_file(path, arw_registry::registry::DEFAULT_MAX_COMPONENT_BYTES)?;
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
    let entry = arw_ops::rollback::uninstall(&stores, &id)?;
    out!("uninstalled {id}@{}", entry.version);
    Ok(ExitCode::SUCCESS)
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
    let (entry, was) = arw_ops::rollback::rollback_to(&stores, &id, args.to.as_deref())?;
    out!("{id} rolled back to {} (was {was})", entry.version);
    Ok(ExitCode::SUCCESS)
}

/// `ns:name@x.y.z`, required exactly.
fn exact(reference: &str) -> anyhow::Result<(ComponentId, Version)> {
    let reference: PackageRef = reference.parse()?;
    match reference.version {
        VersionSpec::Exact(v) => Ok((reference.id, v)),
        _ => bail!("`{reference}` needs an exact version: `ns:name@1.2.3`"),
    }
}
