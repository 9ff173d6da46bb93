//! What keeps a running `arw up` in step with the outside world:
//!
//! - the installed set (`<state-dir>/installed.json`): `arw install`,
//!   `arw rollback`, `arw uninstall` run in another terminal are applied to
//!   the running host (activate, switch, remove);
//! - the policy directory (when `--policies DIR` is given): every `.cedar`
//!   edit, addition or removal is validated as a whole and hot-reloaded;
//! - `<state-dir>/status.json`, rewritten twice a second and after every
//!   change, which `arw status` reads.
//!
//! File events are debounced: a burst of writes leads to one reconcile.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arw_host::Host;
use arw_host::supervisor::events;
use arw_policy::PolicySource;
use arw_registry::InstalledSource;
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
    updated_at_ms: u64,
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
    let last_reload: Arc<Mutex<Option<PolicyReloadStatus>>> = Arc::new(Mutex::new(None));

    let status_path = state_dir.join("status.json");
    let status_task = {
        let host = host.clone();
        let last_reload = last_reload.clone();
        let path = status_path.clone();
        tokio::spawn(async move {
            loop {
                write_status(&host, &path, http, last_reload.lock().as_ref());
                tokio::time::sleep(STATUS_EVERY).await;
            }
        })
    };

    let rollback_task = source.clone().map(|source| {
        let host = host.clone();
        tokio::spawn(async move { record_rollbacks(host, source).await })
    });

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
                write_status(&host, &status_path, http, last_reload.lock().as_ref());
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

/// Bring the running host to the installed set: activate what is new or
/// changed, remove what is gone.
pub async fn reconcile(host: &Host, source: &InstalledSource) {
    let index = match source.installed().load() {
        Ok(index) => index,
        Err(e) => {
            tracing::error!("cannot read the installed set: {e}; keeping the running components");
            return;
        }
    };
    for (id, entry) in &index.components {
        let current = host.active_version(id);
        if current.as_ref().is_some_and(|(v, d)| *v == entry.version && *d == entry.digest) {
            continue;
        }
        match source.package(id, entry) {
            Ok(package) => match host.activate(package).await {
                Ok(version) => tracing::info!(component = %id, %version, "active"),
                Err(e) => tracing::error!("{e}"),
            },
            Err(e) => {
                let payload = serde_json::json!({
                    "component": id,
                    "from": current.map(|(v, _)| v),
                    "to": entry.version,
                    "reason": format!("verify: {e}"),
                });
                tracing::error!("{e}");
                let _ = host.bus().publish(
                    "host",
                    events::ACTIVATION_FAILED,
                    arw_host::capabilities::bus::Payload::Json(payload.to_string()),
                );
            }
        }
    }
    let running: Vec<String> = host.status().components.into_iter().map(|c| c.id).collect();
    for id in running {
        if !index.components.contains_key(&id) && host.remove(&id).await {
            tracing::info!(component = %id, "removed");
        }
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

/// Keep the installed set in step with auto-rollbacks, so a restart runs
/// the version the host rolled back to.
async fn record_rollbacks(host: Arc<Host>, source: InstalledSource) {
    let mut events = host.bus().observe();
    loop {
        let event = match events.recv().await {
            Ok(event) => event,
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
            Err(_) => break,
        };
        if event.topic != events::ROLLED_BACK {
            continue;
        }
        let Some(payload) = event.json() else { continue };
        let (Some(id), Some(to)) = (payload["component"].as_str(), payload["to"].as_str()) else { continue };
        let Some((version, digest)) = host.active_version(id) else { continue };
        if version != to {
            continue;
        }
        let (Ok(id), Ok(version)) = (id.parse::<arw_host::manifest::ComponentId>(), semver::Version::parse(&version))
        else {
            continue;
        };
        let publisher = source
            .installed()
            .load()
            .ok()
            .and_then(|index| index.components.get(id.as_str()).map(|e| e.publisher.clone()))
            .unwrap_or_default();
        if let Err(e) = source.installed().record(&id, &version, &digest, &publisher) {
            tracing::error!("cannot record the rollback of {id} in the installed set: {e}");
        }
    }
}

fn write_status(
    host: &Host,
    path: &Path,
    http: Option<std::net::SocketAddr>,
    last_reload: Option<&PolicyReloadStatus>,
) {
    let status = StatusFile {
        format: STATUS_FORMAT,
        pid: std::process::id(),
        http,
        updated_at_ms: now_ms(),
        host: host.status(),
        last_policy_reload: last_reload,
    };
    let mut bytes = serde_json::to_vec_pretty(&status).unwrap_or_default();
    bytes.push(b'\n');
    if let Err(e) = arw_host::fsutil::write_atomic(path, &bytes) {
        tracing::warn!(path = %path.display(), "cannot write the status file: {e}");
    }
}
