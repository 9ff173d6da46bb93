//! What keeps a running `arw up` in step with the outside world:
//!
//! - the installed set (`<state-dir>/installed.json`): `arw install`,
//!   `arw rollback`, `arw uninstall` run in another terminal are applied to
//!   the running host (activate, switch, remove);
//! - the policy directory (when `--policies DIR` is given): every `.cedar`
//!   edit, addition or removal is validated as a whole and hot-reloaded;
//! - each gate's configuration file (`[gating.files]`, arw:gating's
//!   `gating.toml`): an edit is handed to the gate, which puts it in force
//!   or refuses it with its line (the previous one stays in force);
//! - `<state-dir>/status.json`, which `arw status` reads: checked twice a
//!   second and after every change, rewritten (on a blocking thread) only
//!   when what it says changed.
//!
//! File events are debounced: a burst of writes leads to one reconcile.
//! The reconcile itself and the recording of auto-rollbacks are
//! `arw-ops`'s ([`arw_ops::reconcile`]).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arw_host::Host;
use arw_ops::InstalledSource;
use arw_ops::reconcile::{follow_rollbacks, reconcile};
use arw_policy::PolicySource;
use notify::{RecursiveMode, Watcher};
use parking_lot::Mutex;
use serde::Serialize;

/// How long to wait for a burst of file events to settle.
const DEBOUNCE: Duration = Duration::from_millis(150);
/// How often `status.json` is refreshed.
const STATUS_EVERY: Duration = Duration::from_millis(500);

/// The outcome of the last policy reload, for `arw status`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct PolicyReloadStatus {
    pub ok: bool,
    pub message: String,
    pub at_ms: u64,
}

/// What `status.json` holds.
#[derive(Debug, Serialize)]
#[serde(rename_all = "kebab-case")]
struct StatusFile<'a> {
    format: &'static str,
    pid: u32,
    /// Where the HTTP API listens (`None` with `--no-http`).
    http: Option<std::net::SocketAddr>,
    #[serde(flatten)]
    host: arw_host::HostStatus,
    last_policy_reload: Option<&'a PolicyReloadStatus>,
}

pub const STATUS_FORMAT: &str = "arw-status/1";

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

pub struct Watch {
    _watcher: notify::RecommendedWatcher,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Watch {
    /// Stop watching and wait until nothing holds the host any more.
    pub async fn stop(self) {
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Start watching. Dropping the returned value stops it.
pub fn start(
    host: Arc<Host>,
    source: Option<InstalledSource>,
    policies_dir: Option<PathBuf>,
    state_dir: PathBuf,
    http: Option<std::net::SocketAddr>,
) -> anyhow::Result<Watch> {
    // The watcher reports paths in absolute form: compare against the same.
    let state_dir = std::fs::canonicalize(&state_dir).unwrap_or(state_dir);
    let policies_dir = policies_dir.map(|d| std::fs::canonicalize(&d).unwrap_or(d));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<notify::Event>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Only changes count: opening or reading a file (which the host
        // itself does on every reload) must not wake the watcher.
        if let Ok(event) = event
            && is_change(&event.kind)
        {
            let _ = tx.send(event);
        }
    })?;
    let installed_path = source.as_ref().map(|_| state_dir.join("installed.json"));
    if installed_path.is_some() {
        watcher.watch(&state_dir, RecursiveMode::NonRecursive)?;
    }
    if let Some(dir) = &policies_dir {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    // Gate files: their directories are watched (an editor or `arw gate
    // preset` replaces the file), compared by absolute path.
    let mut gate_files = Vec::new();
    for file in host.gates().files() {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else { continue };
        let dir = if dir.as_os_str().is_empty() { Path::new(".") } else { dir };
        match std::fs::canonicalize(dir) {
            Ok(dir) => {
                if !gate_files.iter().any(|f: &PathBuf| f.parent() == Some(dir.as_path())) {
                    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
                }
                gate_files.push(dir.join(name));
            }
            Err(e) => tracing::warn!(
                "the gate file {} is not watched ({}: {e}); create the directory and restart to have edits picked up",
                file.display(),
                dir.display()
            ),
        }
    }
    let last_reload: Arc<Mutex<Option<PolicyReloadStatus>>> = Arc::new(Mutex::new(None));

    let status = Arc::new(StatusWriter { path: state_dir.join("status.json"), last: Mutex::new(Vec::new()) });
    let status_task = {
        let host = host.clone();
        let last_reload = last_reload.clone();
        let status = status.clone();
        tokio::spawn(async move {
            loop {
                let reload = last_reload.lock().clone();
                status.update(&host, http, reload).await;
                tokio::time::sleep(STATUS_EVERY).await;
            }
        })
    };

    let rollback_task = source.clone().map(|source| tokio::spawn(follow_rollbacks(host.clone(), source)));

    let changes_task = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            tokio::time::sleep(DEBOUNCE).await;
            while let Ok(event) = rx.try_recv() {
                batch.push(event);
            }
            let touches = |path: &Path| batch.iter().any(|e| e.paths.iter().any(|p| p == path));
            let touches_dir = |dir: &Path| {
                batch.iter().any(|e| {
                    e.paths.iter().any(|p| p.parent() == Some(dir) && p.extension().is_some_and(|x| x == "cedar"))
                })
            };
            let mut changed = false;
            if let (Some(source), Some(path)) = (&source, &installed_path)
                && touches(path)
            {
                reconcile(&host, source).await;
                changed = true;
            }
            if gate_files.iter().any(|f| touches(f)) {
                for reload in host.reload_gates().await {
                    if reload.outcome == "reloaded" {
                        tracing::info!(gate = %reload.gate, "gate configuration reloaded");
                    }
                }
            }
            if let Some(dir) = &policies_dir
                && touches_dir(dir)
            {
                let status = reload_policies(&host, dir).await;
                *last_reload.lock() = Some(status);
                changed = true;
            }
            // Only after a change: the status file lives in the watched
            // directory, so writing it unconditionally would wake us again.
            if changed {
                let reload = last_reload.lock().clone();
                status.update(&host, http, reload).await;
            }
        }
    });

    let mut tasks = vec![status_task, changes_task];
    tasks.extend(rollback_task);
    Ok(Watch { _watcher: watcher, tasks })
}

/// A creation, removal, rename or content change (not an open, a read, a
/// close or a metadata change such as an access time).
fn is_change(kind: &notify::EventKind) -> bool {
    use notify::EventKind;
    use notify::event::ModifyKind;
    match kind {
        EventKind::Create(_) | EventKind::Remove(_) => true,
        EventKind::Modify(ModifyKind::Metadata(_)) => false,
        EventKind::Modify(_) => true,
        EventKind::Access(_) | EventKind::Any | EventKind::Other => false,
    }
}

async fn reload_policies(host: &Host, dir: &Path) -> PolicyReloadStatus {
    let result = match PolicySource::read_dir(dir) {
        Ok(sources) => host.reload_policies(sources).await.map_err(|e| e.to_string()),
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(summary) => PolicyReloadStatus {
            ok: true,
            message: format!(
                "{} policies; added {:?}, removed {:?}, changed {:?}",
                summary.policies, summary.added, summary.removed, summary.changed
            ),
            at_ms: now_ms(),
        },
        Err(message) => PolicyReloadStatus { ok: false, message, at_ms: now_ms() },
    }
}

/// `status.json`, written when what it says changes (never on the executor).
struct StatusWriter {
    path: PathBuf,
    last: Mutex<Vec<u8>>,
}

impl StatusWriter {
    async fn update(&self, host: &Host, http: Option<std::net::SocketAddr>, last_reload: Option<PolicyReloadStatus>) {
        let status = StatusFile {
            format: STATUS_FORMAT,
            pid: std::process::id(),
            http,
            host: host.status(),
            last_policy_reload: last_reload.as_ref(),
        };
        let mut bytes = serde_json::to_vec_pretty(&status).unwrap_or_default();
        bytes.push(b'\n');
        if *self.last.lock() == bytes {
            return;
        }
        let path = self.path.clone();
        let written = bytes.clone();
        let result = tokio::task::spawn_blocking(move || arw_fs::write_atomic(&path, &written)).await;
        match result {
            Ok(Ok(())) => *self.last.lock() = bytes,
            Ok(Err(e)) => tracing::warn!(path = %self.path.display(), "cannot write the status file: {e}"),
            Err(e) => tracing::warn!("the status writer failed: {e}"),
        }
    }
}
