//! Argument definitions (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// ARW: a WebAssembly component host where every capability a component
/// uses is granted by Cedar policy.
#[derive(Debug, Parser)]
#[command(name = "arw", version, propagate_version = true, max_term_width = 100)]
#[command(after_help = "Run `arw up` to start the host with its embedded first-party components and \
default policies. Docs: docs/README.md")]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Options every command accepts.
#[derive(Debug, Clone, Default, Args)]
pub struct GlobalArgs {
    /// Configuration file (TOML). Default: $XDG_CONFIG_HOME/arw/config.toml when it exists.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for durable state (the kv store). Default: $XDG_STATE_HOME/arw.
    #[arg(long, global = true, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Directory of `*.cedar` policies. Default: the embedded policies/ of this build.
    #[arg(long, global = true, value_name = "DIR")]
    pub policies: Option<PathBuf>,
    /// Directory of component manifests (`NAME.toml` next to `NAME.wasm`).
    /// Default: the embedded first-party components.
    #[arg(long, global = true, value_name = "DIR")]
    pub components: Option<PathBuf>,
    /// Log filter, in `tracing` syntax (e.g. `debug`, `arw=debug,wasmtime=warn`).
    /// Default: `info` for `arw up`, `warn` otherwise. `RUST_LOG` also works.
    #[arg(long, global = true, value_name = "FILTER")]
    pub log: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the host headless until SIGINT or SIGTERM, then drain in-flight calls.
    Up(UpArgs),
    /// Call one tool in-process and print its JSON output.
    ///
    /// Exit status: 0 on success, 1 when the call fails (the error is printed
    /// to stderr with its code), 2 on bad usage or configuration.
    Call(CallArgs),
    /// List the components with their worlds, versions, and requested
    /// capabilities next to Cedar's decision for each.
    Components(ListArgs),
    /// List the tools with their input and output schemas.
    Tools(ListArgs),
    /// Work with Cedar policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Seconds to wait for in-flight calls on shutdown.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool's name (see `arw tools`).
    pub tool: String,
    /// The input document, as JSON text. Use `-` to read it from stdin.
    #[arg(long, short, value_name = "JSON")]
    pub input: String,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate policies against ARW's Cedar schema (strict mode) and report
    /// each error with its file and line. Exit status 1 when any is invalid.
    Check {
        /// Directory of `*.cedar` files. Default: --policies, else the embedded policies.
        dir: Option<PathBuf>,
    },
}
