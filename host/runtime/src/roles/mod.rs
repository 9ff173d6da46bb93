//! One unit per role: a world a component exports, and how the host
//! drives it.
//!
//! Each role is a module here with its bindings, a `UNIT` ([`Role`]), a
//! [`RoleUnit`] type (what it keeps of a loaded component, and how it
//! prepares and health-checks it) and the code that enters the component
//! for it; [`for_each_role`] lists them, one line each. A test checks each
//! is complete: its world is in `wit/`, exports what the unit says, and is
//! documented in `docs/wit.md`.
//!
//! | role | world | export | lifecycle |
//! |---|---|---|---|
//! | [`tool`] | `arw:host/tool` | `arw:host/tool-handler` | per call, or pooled (`[pooled]`) |
//! | [`subscriber`] | `arw:host/subscriber` | `arw:host/event-handler` | per delivery |
//! | [`resident`] | `arw:host/resident` | `arw:host/lifecycle`, `arw:host/event-handler` | resident |
//! | [`gate`] | `arw:host/gate` | `arw:host/gate-handler` | pooled, stateless (the host is its only caller) |
//! | [`feedback`] | `arw:host/feedback` | `arw:host/feedback-engine`, `arw:host/lifecycle` | resident (one engine per host, entered each feedback tick) |
//! | [`queue_backend`] | `arw:host/queue-backend` | `arw:host/queue-store`, `arw:host/lifecycle` | resident (entered by the host's queue service, one call at a time) |

pub mod feedback;
pub mod gate;
pub mod queue_backend;
pub mod resident;
pub mod subscriber;
pub mod tool;

use arw_manifest::Manifest;

/// How the host drives a role's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lifecycle {
    /// A fresh instance for every entry (a call, a delivery), dropped after
    /// it: no state survives in the instance.
    PerEntry,
    /// Instances made ahead and reused between entries, one caller per
    /// instance unless the component is declared stateless, discarded
    /// after a fault (`runtime/warm.rs`; a manifest's `[pooled]`).
    Pooled,
    /// One long-lived instance per active version, entered one entry at a
    /// time by its driver task (mailbox, ticks, hand-over at a swap).
    Resident,
}

/// A role's task that feeds a component from the bus: a subscriber's
/// worker or a resident component's driver.
#[derive(Debug)]
pub struct Worker {
    pub subscription: u64,
    pub task: tokio::task::JoinHandle<()>,
    /// Where the control plane sends a resident driver its commands.
    pub(crate) commands: Option<tokio::sync::mpsc::Sender<resident::Command>>,
    /// What a resident driver has done.
    pub(crate) counters: Option<std::sync::Arc<resident::Counters>>,
}

/// One role, described.
#[derive(Debug, Clone, Copy)]
pub struct Role {
    /// The manifest's name for it (`worlds = ["tool"]`): a world of
    /// `wit/` (`arw_manifest::World` reads them from the WIT).
    pub world: &'static str,
    /// The WIT world, `arw:host/<name>`.
    pub wit_world: &'static str,
    /// The interface the component must export (the world's first).
    pub export: &'static str,
    /// Its rules for a manifest (its own sections, how its world combines
    /// with others), checked for every manifest: a section of a role the
    /// manifest does not name is an error too.
    pub check: fn(&Manifest) -> Result<(), String>,
    /// The lifecycles it supports, its default first.
    pub lifecycles: &'static [Lifecycle],
    /// The task that feeds a loaded component of this role from the bus
    /// (a subscriber's worker, a resident's driver), started when the
    /// component is first activated; `None` for a role entered only by
    /// callers (a tool).
    pub worker: Option<fn(WorkerStart) -> Worker>,
}

/// What a role's worker is started with.
pub struct WorkerStart {
    pub(crate) runtime: std::sync::Arc<crate::runtime::Runtime>,
    /// The component's slot: the worker enters whichever version is
    /// active.
    pub(crate) slot: std::sync::Arc<crate::supervisor::Slot>,
    /// How the worker reports a faulting version on probation.
    pub(crate) rollback: crate::host::control::Rollback,
    /// Fires when the host stops.
    pub(crate) shutdown: tokio::sync::watch::Receiver<bool>,
}

/// Subscribe `slot`'s component to the bus: the filter (run inside
/// `publish`, possibly on a guest's stack) lets through the topics its
/// active version's manifest requests; Cedar is asked per event by the
/// worker. The slot, not a version: after a swap the same queue feeds the
/// new version, so no event is lost and order is kept.
pub(crate) fn subscribe(
    runtime: &crate::runtime::Runtime,
    slot: &std::sync::Arc<crate::supervisor::Slot>,
) -> (u64, tokio::sync::mpsc::Receiver<std::sync::Arc<crate::capabilities::bus::Event>>) {
    let filter_slot = slot.clone();
    runtime
        .capabilities
        .bus
        .subscribe(move |topic| filter_slot.active().grants().requests(crate::capabilities::bus::SUBSCRIBE, topic))
}

/// Every role of the host, one line each: `field: module::Type`, where
/// `Type` implements [`RoleUnit`]. Expanded into [`ROLES`] and
/// [`Prepared`] (what a loaded component keeps per role).
macro_rules! for_each_role {
    ($then:ident) => {
        $then! {
            tool: tool::ToolRole,
            subscriber: subscriber::SubscriberRole,
            resident: resident::ResidentRole,
            gate: gate::GateRole,
            feedback: feedback::FeedbackRole,
            queue_backend: queue_backend::QueueBackendRole,
        }
    };
}

/// What a role module implements, on a type of its own.
pub(crate) trait RoleUnit {
    /// Its world, export, lifecycles and worker.
    const UNIT: Role;
    /// What the role keeps of a loaded component of its world (its
    /// export's `*Pre`, a tool's descriptor and pool), made at load.
    type Prepared: Send + Sync + 'static;

    /// Link `loaded`'s export for this role and run the role's health
    /// check. `loaded` has no role's part yet; `exports` are the names the
    /// component exports.
    fn prepare<'a>(
        runtime: &'a crate::runtime::Runtime,
        loaded: &'a crate::runtime::component::LoadedComponent,
        pre: &'a wasmtime::component::InstancePre<crate::runtime::store::InstanceState>,
        exports: &'a [String],
    ) -> impl std::future::Future<Output = Result<Self::Prepared, crate::LoadError>> + Send + 'a;
}

macro_rules! define_roles {
    ($($field:ident: $module:ident::$ty:ident,)*) => {
        /// Every role's description.
        pub const ROLES: &[Role] = &[$(<$module::$ty as RoleUnit>::UNIT,)*];

        /// What a loaded component keeps for each role its manifest names.
        #[derive(Default)]
        pub struct Prepared {
            $(pub(crate) $field: Option<<$module::$ty as RoleUnit>::Prepared>,)*
        }

        impl std::fmt::Debug for Prepared {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct("Prepared")$(.field(stringify!($field), &self.$field.is_some()))*.finish()
            }
        }

        /// Prepare every role `loaded`'s manifest names, in list order.
        pub(crate) async fn prepare(
            runtime: &crate::runtime::Runtime,
            loaded: &mut crate::runtime::component::LoadedComponent,
            pre: &wasmtime::component::InstancePre<crate::runtime::store::InstanceState>,
            exports: &[String],
        ) -> Result<(), crate::LoadError> {
            $(
                if loaded.manifest.names_world(<$module::$ty as RoleUnit>::UNIT.world) {
                    let prepared = <$module::$ty as RoleUnit>::prepare(runtime, loaded, pre, exports).await?;
                    loaded.roles.$field = Some(prepared);
                }
            )*
            Ok(())
        }
    };
}

for_each_role!(define_roles);

/// Check a manifest against every role's rules.
pub fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    ROLES.iter().try_for_each(|role| (role.check)(manifest))
}

/// For a role with no rules of its own.
pub(crate) fn no_rules(_: &Manifest) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::ROLES;
    use arw_manifest::World;

    /// The subscriber role is needed by nothing else in the host: no
    /// source file outside `roles/subscriber.rs` names it, except its
    /// registration line. (The resident role is named where the control
    /// plane hands a swap over, the host reports its status, and its
    /// `[resident]` bounds are configured.)
    #[test]
    fn a_role_is_its_file_and_one_line() {
        let own = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/roles/subscriber.rs");
        let names = ["roles::subscriber", "subscriber::", "SubscriberRole", "EventExport"];
        let mentions: Vec<String> = crate::source_scan::mentions_outside(&own, &names)
            .into_iter()
            .filter(|m| !m.contains("tracing_subscriber"))
            .collect();
        assert_eq!(mentions.len(), 1, "the subscriber role is named outside its file: {mentions:#?}");
        assert!(mentions[0].contains("roles/mod.rs"), "{mentions:?}");
    }

    #[test]
    fn every_role_unit_is_complete() {
        let wit_doc =
            std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/wit.md"))
                .unwrap_or_else(|e| panic!("{e}"));
        for world in World::all() {
            let roles: Vec<_> = ROLES.iter().filter(|r| r.world == world.as_str()).collect();
            assert_eq!(roles.len(), 1, "`{world}` must have exactly one role unit");
        }
        for role in ROLES {
            let name = role.wit_world.strip_prefix("arw:host/").unwrap_or_else(|| panic!("{}", role.wit_world));
            let wit = crate::wit::FILES
                .iter()
                .find(|(file, _)| *file == format!("{name}.wit"))
                .map(|(_, text)| *text)
                .unwrap_or_else(|| panic!("no wit/{name}.wit"));
            assert!(wit.contains(&format!("world {name} {{")), "wit/{name}.wit declares no world `{name}`");
            let interface = role.export.strip_prefix("arw:host/").and_then(|e| e.split('@').next());
            let interface = interface.unwrap_or_else(|| panic!("{}", role.export));
            assert!(wit.contains(&format!("export {interface};")), "`{name}` does not export `{interface}`");
            let world = World::named(role.world).unwrap_or_else(|| panic!("`{}` is not a world of wit/", role.world));
            assert_eq!(role.wit_world, format!("arw:host/{world}"));
            assert_eq!(role.export, world.required_exports()[0], "the manifest's world and the role disagree");
            assert!(wit_doc.contains(&format!("| `{name}` |")), "world `{name}` is not in docs/wit.md's table");
        }
    }
}
