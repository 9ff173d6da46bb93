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
    /// Load unsigned components from a directory of manifests (`NAME.toml`
    /// next to `NAME.wasm`) instead of the installed set. Development only:
    /// needs --allow-unsigned.
    #[arg(long, global = true, value_name = "DIR")]
    pub components: Option<PathBuf>,
    /// The local component registry. Default: $XDG_DATA_HOME/arw/registry.
    #[arg(long, global = true, value_name = "DIR")]
    pub registry: Option<PathBuf>,
    /// Load components no trusted key signed (logs a warning at every load).
    /// Development only; never the default.
    #[arg(long, global = true)]
    pub allow_unsigned: bool,
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
    /// Inspect and configure the gates (`[gating]`; see docs/gating.md):
    /// which contracts cover each gating key, what a request would meet,
    /// the presets.
    #[command(subcommand)]
    Gate(GateCommand),
    /// The feedback engine of the running `arw up`, over its HTTP API
    /// (docs/feedback.md): its state, suggestions, applies, rollbacks and
    /// modes. Cedar decides as for any HTTP caller: the token is --token,
    /// else `$ARW_TOKEN`, else the configured `http.admin-token`.
    #[command(subcommand)]
    Feedback(FeedbackCommand),
    /// Work queues of the running `arw up`, over its HTTP API
    /// (docs/queues.md): push a task, read a queue's counts and its
    /// dead-letter queue. Cedar decides as for any HTTP caller
    /// (`queue.enqueue`, `queue.read`); the token is --token, else
    /// `$ARW_TOKEN`, else the configured `http.admin-token`.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Manage signing keys ($XDG_CONFIG_HOME/arw/keys).
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Manage the trusted publisher keys ($XDG_CONFIG_HOME/arw/trust).
    #[command(subcommand)]
    Trust(TrustCommand),
    /// Sign a component and publish it to the local registry.
    ///
    /// Checks that the file is a component exporting the manifest's worlds
    /// (by reading its type, not trusting the manifest), signs the manifest
    /// bound to the component's sha256, and writes the version atomically.
    /// Published versions are immutable.
    Publish(PublishArgs),
    /// Add a signature (e.g. a local approver's) to a published version.
    Sign(SignArgs),
    /// Verify a published version or a component file: digest, signatures,
    /// trusted signer, world. Exit status 1 on any failure.
    ///
    /// A file is matched to a published version by its sha256 (so bytes
    /// fetched with `wkg` can be checked against the registry's signatures).
    Verify(VerifyArgs),
    /// Install a component from the registry (resolving semver), after
    /// verifying it and showing its requested capabilities with Cedar's
    /// decision for each. Precompiles it into the AOT cache.
    Install(InstallArgs),
    /// Remove a component from the installed set (the registry keeps it).
    Uninstall(UninstallArgs),
    /// List installed components, or with --available every published version.
    List(ListInstalledArgs),
    /// Mark a published version as not to be newly installed.
    Yank(YankArgs),
    /// Make the previous installed version (or --to VERSION) active again.
    /// A running `arw up` switches to it without a restart.
    Rollback(RollbackArgs),
    /// Show the running host: active version per component, draining
    /// versions with their in-flight calls, last transition, last policy reload.
    Status(StatusArgs),
    /// Write the machine-readable specs (OpenAPI, AsyncAPI, MCP tools, Cedar
    /// schema) and docs/gating-keys.md, generated from the code.
    #[command(subcommand)]
    Spec(SpecCommand),
    /// Scaffold a component project (Rust, Python, JavaScript or C) that
    /// builds out of the box: code, manifest, README and this host's WIT.
    #[command(subcommand)]
    New(NewCommand),
    /// Build the component of a project made by `arw new`, with its
    /// language's toolchain, against this host's WIT (written to `wit/`).
    Build(BuildArgs),
    /// The WIT interfaces components target (`arw:host`), for authors
    /// outside this repository.
    #[command(subcommand)]
    Wit(WitCommand),
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// `ns:name`.
    pub id: String,
    /// The version to go back to (default: the one installed before the current one).
    #[arg(long, value_name = "VERSION")]
    pub to: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create an ed25519 key pair NAME (private key file mode 0600); prints the public key.
    Generate {
        /// Name of the key: 1-64 of a-z, 0-9, `-`, `_`.
        name: String,
    },
    /// List the key pairs with their public keys.
    List,
}

#[derive(Debug, Subcommand)]
pub enum TrustCommand {
    /// Trust signatures by KEY under NAME (Cedar sees NAME as `principal.publisher`).
    Add {
        name: String,
        /// `ed25519:<base64>`, or a file holding it (such as a `NAME.pub`).
        key: String,
    },
    /// List the trusted keys.
    List,
    /// Stop trusting NAME. Installed components it signed are refused at their next load.
    Remove { name: String },
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The component (`.wasm`).
    pub component: PathBuf,
    /// Its manifest (TOML; see docs/configuration.md).
    #[arg(long, value_name = "FILE")]
    pub manifest: PathBuf,
    /// Signing key: a name in the key store, or a path to a `.key` file.
    #[arg(long, value_name = "KEY")]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct SignArgs {
    /// `ns:name@version`.
    pub reference: String,
    /// Signing key: a name in the key store, or a path to a `.key` file.
    #[arg(long, value_name = "KEY")]
    pub key: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// `ns:name[@version]` in the registry, or a path to a `.wasm` file.
    pub target: String,
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// `ns:name`, `ns:name@1.2.3` or `ns:name@^1.2`.
    pub reference: String,
    /// Install without asking (for scripts).
    #[arg(long, short)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// `ns:name`.
    pub id: String,
}

#[derive(Debug, Args)]
pub struct ListInstalledArgs {
    /// List every published version in the registry instead.
    #[arg(long)]
    pub available: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct YankArgs {
    /// `ns:name@version`.
    pub reference: String,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    /// Seconds to wait for in-flight calls on shutdown.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    pub grace: u64,
    /// Serve the HTTP API on this address (default `http.listen`,
    /// 127.0.0.1:8091). A non-loopback address needs a token
    /// (`ARW_HTTP__ADMIN_TOKEN`).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<std::net::SocketAddr>,
    /// Do not serve the HTTP API.
    #[arg(long, conflicts_with = "listen")]
    pub no_http: bool,
}

#[derive(Debug, Args)]
pub struct CallArgs {
    /// The tool's name (see `arw tools`).
    pub tool: String,
    /// The input document, as JSON text. Use `-` to read it from stdin.
    #[arg(long, short, value_name = "JSON")]
    pub input: String,
    /// Call without asking the gates: the local operator's way back in
    /// when a contract locks everyone out. Cedar still decides; the call
    /// is logged and published as `gate.bypassed`.
    #[arg(long)]
    pub break_glass: bool,
}

/// `arw queue ...`.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Put a task on QUEUE: call TOOL with --input later, as the caller the
    /// token names. Prints the task's id (and whether an earlier task with
    /// the same --idem-key stands for it).
    Push {
        /// The queue: `[a-z0-9_-]` segments separated by `.`.
        queue: String,
        /// The tool to call (see `arw tools`).
        tool: String,
        /// The tool's input, as JSON text. Use `-` to read it from stdin.
        #[arg(long, short, value_name = "JSON")]
        input: String,
        /// De-duplication key: a second push with it, while the first task
        /// is queued, running or recently done, adds nothing.
        #[arg(long, value_name = "KEY")]
        idem_key: Option<String>,
        /// Higher runs sooner (equal priorities in push order).
        #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
        priority: i32,
        /// Not before this many milliseconds from now.
        #[arg(long, value_name = "MS")]
        delay_ms: Option<u64>,
        /// Runs at most, 1 to 100 (default: the host's `queues.max-attempts`).
        #[arg(long, value_name = "N")]
        max_attempts: Option<u32>,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// QUEUE's tasks by state: ready, delayed, leased, done, dead.
    Stats {
        queue: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// QUEUE's dead-letter queue, newest first, with each task's last error.
    Dead {
        queue: String,
        /// At most this many (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        target: ApiTarget,
    },
}

/// Where the running host is, and who asks.
#[derive(Debug, clap::Args)]
pub struct ApiTarget {
    /// The host's HTTP API (default: the address in `<state-dir>/status.json`).
    #[arg(long, value_name = "URL", global = true)]
    pub url: Option<String>,
    /// The bearer token (default: `$ARW_TOKEN`, else `http.admin-token`).
    #[arg(long, value_name = "TOKEN", global = true)]
    pub token: Option<String>,
    /// Print the JSON answer instead of a summary.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum FeedbackCommand {
    /// The engine, its knobs with their values and modes, the apply budget,
    /// recent undo records.
    State {
        #[command(flatten)]
        target: ApiTarget,
    },
    /// The current suggestions, with rationale and confidence.
    Suggestions {
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Apply a suggestion (by its id); prints the undo record.
    Apply {
        /// The suggestion's id (`arw feedback suggestions`).
        id: String,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Put back what one apply changed (--apply-id) or every apply after a
    /// version (--to-version).
    Rollback {
        #[arg(long, value_name = "ID", conflicts_with = "to_version", required_unless_present = "to_version")]
        apply_id: Option<u64>,
        #[arg(long, value_name = "VERSION")]
        to_version: Option<u64>,
        #[command(flatten)]
        target: ApiTarget,
    },
    /// Set a knob's mode (--knob), or every knob's without one of its own:
    /// `off`, `shadow`, `manual`, `canary`, `auto`.
    Mode {
        mode: String,
        #[arg(long, value_name = "KNOB")]
        knob: Option<String>,
        #[command(flatten)]
        target: ApiTarget,
    },
}

#[derive(Debug, Subcommand)]
pub enum GateCommand {
    /// Every gating key of the catalogue, with each gate's contracts that
    /// cover it (whoever asks, whenever).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// What a request under KEY would meet now (or --at TIME), and which
    /// gate and contract decide. Exit status 1 when it would be refused.
    Check {
        /// A gating key: `tools:invoke`, `io:ingress:tools.text-stats`,
        /// `io:egress:http.api.example.com:443` (see docs/gating-keys.md).
        key: String,
        /// The caller: a `[[http.tokens]]` name (its roles and tags),
        /// `anonymous`, or `local` (the CLI, the default).
        #[arg(long = "as", value_name = "CALLER", default_value = "local")]
        caller: String,
        /// The time of the request, RFC 3339 (`2026-12-24T12:00:00Z`).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Each gate with its configuration file and whether it is in force
    /// (the gate checks it; a refused file names its line).
    Contracts {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write a preset (`strict`, `standard` or `relaxed`) as arw:gating's
    /// contracts file, keeping the previous file as `<file>.previous`. A
    /// running `arw up` puts it in force at once.
    Preset {
        /// `strict`, `standard` or `relaxed`.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum NewCommand {
    /// A tool component (world `arw:host/tool`), in any of the languages.
    Tool(NewArgs),
    /// A gate component (world `arw:host/gate`): asked before the effect
    /// at every entry point once listed in `[gating] gates`
    /// (docs/gating.md). Scaffolded in C (`--lang c`): a pooled gate in C
    /// costs microseconds; a Rust gate is shown in docs/gating.md.
    Gate(NewArgs),
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// The component's name: a-z, 0-9 and `-` (a tool's is also its kv
    /// namespace).
    pub name: String,
    /// The language.
    #[arg(long, value_enum)]
    pub lang: crate::authoring::Lang,
    /// The id's namespace: the component is `NAMESPACE:NAME`.
    #[arg(long, default_value = "local")]
    pub namespace: String,
    /// Where to write the project (default: ./NAME).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct BuildArgs {
    /// The project directory (with `manifest.toml`).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum WitCommand {
    /// Write the `arw:host` WIT package this host links into DIR (one file
    /// per interface and world), ready for wit-bindgen, componentize-py,
    /// componentize-js or `wasm-tools`. Refuses to overwrite a different
    /// file unless --force.
    Export {
        /// Where the `.wit` files go (created if missing).
        dir: PathBuf,
        /// Overwrite files that differ.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum SpecCommand {
    /// Write `openapi.json`, `asyncapi.yaml`, `mcp-tools.json` (for the
    /// first-party tools) and `arw.cedarschema` into DIR, and
    /// `gating-keys.md` into --docs. CI runs this and fails on any diff.
    Export {
        /// Where the spec files go.
        #[arg(default_value = "spec")]
        dir: PathBuf,
        /// Where `gating-keys.md` goes.
        #[arg(long, default_value = "docs", value_name = "DIR")]
        docs: PathBuf,
    },
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
