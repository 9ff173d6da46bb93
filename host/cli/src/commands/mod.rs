//! One module per command, plus what they share: resolving policies and
//! components and starting a host.

/// `println!` that treats a closed stdout (`arw tools | head`) as the end
/// of output rather than a panic.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::commands::write_stdout(format_args!($($arg)*))
    };
}

mod api;
mod call;
mod feedback;
mod gate;
mod list;
mod packages;
mod policy;
mod queue;
mod spec;
mod status;
mod up;
mod watch;
mod wit;

use std::process::ExitCode;

use anyhow::{Context, bail};
use arw_host::source::{ComponentSource, DirectorySource};
use arw_host::{Host, HostConfig, LoadError};
use arw_policy::{PolicySet, PolicySource};

use crate::cli::{Cli, Command};

/// Run a parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = crate::settings::load(&cli.global)?;
    match cli.command {
        Command::Up(args) => up::run(config, args).await,
        Command::Call(args) => call::run(config, args).await,
        Command::Components(args) => list::components(config, args).await,
        Command::Tools(args) => list::tools(config, args).await,
        Command::Policy(command) => policy::run(config, command),
        Command::Gate(command) => gate::run(config, command).await,
        Command::Feedback(command) => feedback::run(&config, command).await,
        Command::Queue(command) => queue::run(&config, command).await,
        Command::Keys(command) => packages::keys(&config, command),
        Command::Trust(command) => packages::trust(&config, command),
        Command::Publish(args) => packages::publish(&config, args),
        Command::Sign(args) => packages::sign(&config, args),
        Command::Verify(args) => packages::verify(&config, args),
        Command::Install(args) => packages::install_command(&config, args),
        Command::Uninstall(args) => packages::uninstall(&config, args),
        Command::List(args) => packages::list(&config, args),
        Command::Yank(args) => packages::yank(&config, args),
        Command::Rollback(args) => packages::rollback(&config, args),
        Command::Status(args) => status::run(&config, args),
        Command::Spec(command) => spec::run(command).await,
        Command::Wit(command) => wit::run(command),
        Command::New(command) => {
            use crate::authoring::scaffold::{Kind, new_project};
            let (kind, args) = match command {
                crate::cli::NewCommand::Tool(args) => (Kind::Tool, args),
                crate::cli::NewCommand::Gate(args) => (Kind::Gate, args),
            };
            let lang = args.lang;
            let dir = new_project(kind, lang, &args.name, &args.namespace, args.dir.as_deref())?;
            out!("created {} ({lang} {kind}); next: cd {} && arw build", dir.display(), dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Build(args) => {
            let wasm = crate::authoring::build::build(&args.dir)?;
            out!("{}", wasm.display());
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A reader that went away (EPIPE) is not an error worth reporting.
    let _ = stdout.write_fmt(args).and_then(|()| stdout.write_all(b"\n"));
}

/// The lines that show a component's limits and each requested capability
/// with Cedar's decision (shared by `arw components` and the install
/// prompt, so both read the same).
pub(crate) fn print_grants(
    indent: &str,
    limits: &arw_host::manifest::Limits,
    grants: impl IntoIterator<Item = (arw_policy::Action, String, bool, String)>,
) {
    out!(
        "{indent}limits: {} MiB, {} ms per call, {} concurrent",
        limits.memory_mib,
        limits.timeout_ms,
        limits.concurrency
    );
    let mut none = true;
    for (action, resource, allowed, reason) in grants {
        none = false;
        let verdict = if allowed { "granted" } else { "DENIED " };
        out!("{indent}{verdict} {:<14} {:<20} ({reason})", action.as_str(), resource);
    }
    if none {
        out!("{indent}capabilities: none requested");
    }
}

/// Where the policies come from: `policies-dir` if configured, else the
/// embedded defaults.
pub(crate) fn policy_origin(config: &HostConfig) -> arw_ops::PolicyOrigin {
    match &config.policies_dir {
        Some(dir) => arw_ops::PolicyOrigin::Directory(dir.clone()),
        None => arw_ops::PolicyOrigin::Fixed(crate::defaults::policies()),
    }
}

/// The policy sources in force.
pub(crate) fn policy_sources(config: &HostConfig) -> anyhow::Result<Vec<PolicySource>> {
    Ok(policy_origin(config).read()?)
}

/// Validate the policies (refusing to go on if any is invalid) and start a
/// host on them. Components that could not be loaded are logged and
/// returned.
pub(crate) async fn start_host(config: HostConfig) -> anyhow::Result<(Host, Vec<LoadError>)> {
    let (host, refused, _) = start_host_with_source(config).await?;
    Ok((host, refused))
}

/// [`start_host`], also returning the stores (none when the components
/// come from an unsigned directory) so `arw up` can watch the installed set
/// and serve the admin routes.
pub(crate) async fn start_host_with_source(
    config: HostConfig,
) -> anyhow::Result<(Host, Vec<LoadError>, Option<arw_ops::Stores>)> {
    let schema = arw_policy::schema::embedded()?;
    let policies = PolicySet::from_sources(&schema, policy_sources(&config)?)
        .context("the host does not start on invalid policies; fix them (see `arw policy check`)")?;
    if policies.is_empty() {
        tracing::warn!("no policies loaded: nothing is granted to any component or caller");
    }
    let mut installed = None;
    let source: Box<dyn ComponentSource> = match &config.components_dir {
        Some(dir) => {
            if !config.allow_unsigned {
                bail!(
                    "components from a directory are unsigned: publish and install them (`arw publish`, \
                     `arw install`; see docs/registry.md) or pass --allow-unsigned for development"
                );
            }
            Box::new(DirectorySource::new(dir))
        }
        None => {
            let stores = arw_ops::Stores::new(&config)?;
            packages::bootstrap(&config, &stores)?;
            let source = Box::new(stores.source());
            installed = Some(stores);
            source
        }
    };
    tracing::debug!(source = %source.describe(), policies = policies.len(), "starting host");
    let (host, refused) = Host::start(config, policies, source.as_ref()).await?;
    Ok((host, refused, installed))
}
