//! Gating keys: the one catalogue of every guarded action. Each HTTP route
//! and admin action has its key here ([`KEYS`]); the entry points inside
//! the host (tool ingress, outgoing HTTP, bus publish, calls between
//! components) are families of keys defined next to the code that asks
//! ([`arw_host::gating::keys::FAMILIES`]). Route metrics are labelled with
//! the route keys, Cedar's admin resources are named by them
//! (`Arw::Operation::"admin:install"`), gates are asked with them before
//! the handler runs (`middleware.rs`), and `arw spec export` writes the
//! whole catalogue to docs/gating-keys.md and spec/gating-keys.json. Keys
//! never change meaning; new ones are only added.
//!
//! The grammar is `domain:verb[:sub]` (see [`arw_host::gating::keys`]).

use arw_policy::Action;

/// One gated operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GatingKey {
    /// The stable name, `area:verb`.
    pub key: &'static str,
    pub method: &'static str,
    pub path: &'static str,
    /// The Cedar action asked about for the caller, if any.
    pub action: Option<Action>,
    pub summary: &'static str,
}

macro_rules! keys {
    ($($name:ident = $key:literal, $method:literal $path:literal, $action:expr, $summary:literal;)*) => {
        $(pub const $name: GatingKey =
            GatingKey { key: $key, method: $method, path: $path, action: $action, summary: $summary };)*
        /// Every gating key, in documentation order.
        pub const KEYS: &[GatingKey] = &[$($name),*];
        /// Each key with the name of its constant.
        #[cfg(test)]
        const KEYS_BY_NAME: &[(&str, GatingKey)] = &[$((stringify!($name), $name)),*];
    };
}

keys! {
    HEALTH = "health:live", "GET" "/healthz", None, "Liveness: the process serves HTTP.";
    READY = "health:ready", "GET" "/readyz", None, "Readiness: components are loaded and the host is not stopping.";
    COMPONENTS_LIST = "components:list", "GET" "/components", None, "The loaded components: versions, worlds, digests, publishers, tools, limits.";
    TOOLS_LIST = "tools:list", "GET" "/tools", None, "The callable tools with their input and output JSON Schemas.";
    TOOLS_INVOKE = "tools:invoke", "POST" "/tools/{name}/invoke", Some(Action::TOOL_INVOKE),
        "Call a tool: Cedar `tool.invoke` on `Arw::Tool::\"<name>\"`.";
    QUEUES_PUSH = "queues:push", "POST" "/queues/{name}/tasks", Some(arw_host::capabilities::queue::ENQUEUE),
        "Put a task on a queue: Cedar `queue.enqueue` on `Arw::Queue::\"<name>\"` and `tool.invoke` on its tool (again when it runs).";
    QUEUES_STATS = "queues:stats", "GET" "/queues/{name}", Some(arw_host::capabilities::queue::READ),
        "A queue's tasks by state: Cedar `queue.read` on the queue.";
    QUEUES_DEAD = "queues:dead", "GET" "/queues/{name}/dead", Some(arw_host::capabilities::queue::READ),
        "A queue's dead-letter queue, newest first, with each task's last error: Cedar `queue.read` on the queue.";
    EVENTS_SUBSCRIBE = "events:subscribe", "GET" "/events", Some(arw_host::capabilities::bus::EVENTS_SUBSCRIBE),
        "Live bus events (SSE); each event is shown only if Cedar permits `events.subscribe` on its topic.";
    METRICS = "metrics:scrape", "GET" "/metrics", None, "Prometheus text exposition.";
    SPEC_OPENAPI = "spec:openapi", "GET" "/spec/openapi.json", None, "This API as OpenAPI 3.1.";
    SPEC_ASYNCAPI = "spec:asyncapi", "GET" "/spec/asyncapi.yaml", None, "The event stream as AsyncAPI 3.1.";
    SPEC_MCP_TOOLS = "spec:mcp-tools", "GET" "/spec/mcp-tools.json", None, "The tools as MCP `Tool` objects.";
    SPEC_CEDAR = "spec:cedar-schema", "GET" "/spec/arw.cedarschema", None, "The Cedar schema policies are checked against.";
    MCP = "mcp:session", "POST" "/mcp", Some(Action::TOOL_INVOKE),
        "Model Context Protocol (Streamable HTTP); `tools/call` is authorized like `tools:invoke`.";
    ADMIN_INSTALL = "admin:install", "POST" "/admin/install", Some(Action::ADMIN_INSTALL),
        "Install (or upgrade to) a package from the local registry and activate it.";
    ADMIN_UNINSTALL = "admin:uninstall", "POST" "/admin/uninstall", Some(Action::ADMIN_UNINSTALL),
        "Uninstall a component; it drains and stops.";
    ADMIN_ROLLBACK = "admin:rollback", "POST" "/admin/rollback", Some(Action::ADMIN_ROLLBACK),
        "Go back to the previous (or a named) installed version.";
    ADMIN_POLICY_RELOAD = "admin:policy-reload", "POST" "/admin/policy/reload", Some(Action::ADMIN_POLICY_RELOAD),
        "Re-read and hot-swap the Cedar policies.";
    ADMIN_GRANTS = "admin:grants", "GET" "/admin/grants", Some(Action::ADMIN_GRANTS),
        "Every component's requested capabilities with Cedar's decision.";
    ADMIN_STATUS = "admin:status", "GET" "/admin/status", Some(Action::ADMIN_STATUS),
        "Active and draining versions, last transitions, policies, bus counters.";
    ADMIN_GATING = "admin:gating", "GET" "/admin/gating", Some(Action::ADMIN_GATING),
        "The gates in order with their files and whether each is in force, and every gating key with the contracts that cover it (`arw gate list`, `arw gate contracts`).";
    ADMIN_GATING_CHECK = "admin:gating-check", "POST" "/admin/gating/check", Some(Action::ADMIN_GATING_CHECK),
        "What a request under a gating key would meet, as a caller, at a time, and which gate and contract decide (`arw gate check`).";
    ADMIN_GATING_RELOAD = "admin:gating-reload", "POST" "/admin/gating/reload", Some(Action::ADMIN_GATING_RELOAD),
        "Read the gates' files again; each changed one is put in force once its gate accepts it.";
    FEEDBACK_STATE = "feedback:state", "GET" "/feedback/state", Some(Action::FEEDBACK_READ),
        "The feedback engine: knobs with their modes, suggestions, recent undo records, canaries, signals.";
    FEEDBACK_SUGGESTIONS = "feedback:suggestions", "GET" "/feedback/suggestions", Some(Action::FEEDBACK_READ),
        "The current suggestions and their version.";
    FEEDBACK_UPDATES = "feedback:updates", "GET" "/feedback/updates", Some(Action::FEEDBACK_READ),
        "The deltas since a version (`?since=N`), or the whole state with `reset: true`; 204 when current.";
    FEEDBACK_APPLY = "feedback:apply", "POST" "/feedback/apply", None,
        "Apply a suggestion: Cedar `feedback.apply` on its `Arw::Knob`, with its bounds, cooldown and the apply budget.";
    FEEDBACK_ROLLBACK = "feedback:rollback", "POST" "/feedback/rollback", None,
        "Put back the values one apply (or every apply after a version) changed: Cedar `feedback.apply` per knob.";
    FEEDBACK_MODE = "feedback:mode", "PUT" "/feedback/mode", None,
        "Set a knob's mode (`off`, `shadow`, `manual`, `canary`, `auto`): Cedar `feedback.mode` on the knob.";
}

/// docs/gating-keys.md.
pub fn markdown() -> String {
    let mut out = String::from(
        "# Gating keys\n\n\
         <!-- Generated by `arw spec export` from host/server/src/gating.rs and \
         host/runtime/src/gating/keys.rs; do not edit. -->\n\n\
         Every guarded action has a stable key, and gates ([gating.md](gating.md)) are asked with it \
         before the effect. Keys are never renamed or reused. The grammar is `domain:verb[:sub]`: \
         lower-case segments separated by `:`, with `.` inside a segment; the last segment of an \
         entry point's key carries its target verbatim (a tool name, a topic, or `host:port`). \
         The same catalogue, machine-readable, is `spec/gating-keys.json`.\n\n\
         ## Routes\n\n\
         Each HTTP route and admin action. Route metrics carry the key as the `route` label, admin \
         actions are Cedar requests on `Arw::Operation::\"<key>\"`, and gates are asked with it \
         before the route's handler runs.\n\n\
         | key | route | Cedar action | what |\n|---|---|---|---|\n",
    );
    for k in KEYS {
        let action = k.action.map_or("—".to_string(), |a| format!("`{a}`"));
        out.push_str(&format!("| `{}` | `{} {}` | {} | {} |\n", k.key, k.method, k.path, action, k.summary));
    }
    out.push_str(
        "\n## Entry points\n\n\
         Inside the host, each effect a caller or a component causes is asked about under a key of \
         its family, before it happens. A tool called over HTTP is asked about twice: as the route \
         (`tools:invoke`) and as the tool (`io:ingress:tools.<tool>`).\n\n\
         | key | asked at | target | what |\n|---|---|---|---|\n",
    );
    for f in arw_host::gating::keys::FAMILIES {
        out.push_str(&format!("| `{}` | {} | {} | {} |\n", f.pattern, f.entry, f.target, f.summary));
    }
    out
}

/// spec/gating-keys.json: the same catalogue for programs.
pub fn json() -> String {
    let routes: Vec<serde_json::Value> = KEYS
        .iter()
        .map(|k| {
            serde_json::json!({
                "key": k.key, "method": k.method, "path": k.path,
                "cedar-action": k.action.map(|a| a.as_str()), "summary": k.summary,
            })
        })
        .collect();
    let entry_points: Vec<serde_json::Value> = arw_host::gating::keys::FAMILIES
        .iter()
        .map(|f| {
            serde_json::json!({
                "pattern": f.pattern, "prefix": f.prefix, "asked-at": f.entry, "target": f.target,
                "summary": f.summary,
            })
        })
        .collect();
    let document = serde_json::json!({
        "format": "arw-gating-keys/1",
        "grammar": "domain:verb[:sub]; lower-case segments separated by `:`, `.` inside a segment; \
                    the last segment of an entry point's key is its target verbatim",
        "routes": routes,
        "entry-points": entry_points,
    });
    format!("{}\n", serde_json::to_string_pretty(&document).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for k in KEYS {
            assert!(seen.insert(k.key), "duplicate gating key {}", k.key);
            let (area, verb) = k.key.split_once(':').unwrap_or_default();
            assert!(!area.is_empty() && !verb.is_empty(), "{} is not area:verb", k.key);
            assert!(k.key.bytes().all(|b| b.is_ascii_lowercase() || b == b':' || b == b'-'), "{}", k.key);
        }
    }

    /// Every route the router serves is registered under its key (so a
    /// route added without one fails here, and in CI).
    #[test]
    fn every_route_is_registered_by_its_key() {
        let source = include_str!("routes/mod.rs");
        let routes: Vec<&str> = source
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with(".route(") || l.starts_with(".route_service("))
            .collect();
        assert!(routes.len() >= KEYS.len() - 1, "{routes:?}");
        for line in routes.iter().filter(|l| l.starts_with(".route(")) {
            assert!(line.contains("gating::"), "a route without a gating key: {line}");
        }
        // `route_service(` puts its path on the next line.
        let services = source.matches(".route_service(\n            gating::").count();
        assert_eq!(services, source.matches(".route_service(").count(), "a service route without a gating key");
        for key in KEYS {
            let name = KEYS_BY_NAME.iter().find(|(_, k)| k.key == key.key).map(|(n, _)| *n).unwrap_or_default();
            assert!(source.contains(&format!("gating::{name}.path")), "`{}` is not routed", key.key);
        }
        for k in KEYS {
            assert!(arw_host::gating::keys::is_well_formed(k.key), "{}", k.key);
        }
    }

    #[test]
    fn every_admin_action_has_exactly_one_key() {
        for action in Action::CORE.into_iter().filter(|a| a.as_str().starts_with("admin.")) {
            assert_eq!(KEYS.iter().filter(|k| k.action == Some(action)).count(), 1, "{action}");
        }
    }
}
