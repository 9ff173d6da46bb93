//! The JSON shapes the API returns, with their OpenAPI schemas.

use serde::Serialize;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
    /// Components loaded now.
    pub components: usize,
    /// Components (or versions) the host refused, with why: at start, by
    /// the installed-set watcher, or at an install.
    pub refused: Vec<RefusalView>,
}

/// A refused component, version, stage and reason.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusalView {
    /// The component id, or where it came from when its manifest could not be read.
    pub component: String,
    pub version: Option<String>,
    /// `verify`, `compile`, `link`, `health-check`, `limits`, `conflict` or
    /// `hand-over` (a resident component's snapshot or its successor's start).
    pub stage: String,
    pub reason: String,
}

impl Health {
    pub fn of(host: &arw_host::Host, status: &str) -> Self {
        Health {
            status: status.into(),
            components: host.status().components.len(),
            refused: host
                .refusals()
                .into_iter()
                .map(|r| RefusalView { component: r.component, version: r.version, stage: r.stage, reason: r.reason })
                .collect(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentView {
    /// `ns:name`.
    pub id: String,
    pub version: String,
    /// `tool` and/or `subscriber`.
    pub worlds: Vec<String>,
    pub description: String,
    /// `sha256:<hex>` of the component bytes.
    pub digest: String,
    /// The trusted signer; absent for unsigned development loads.
    pub publisher: Option<String>,
    /// The tool it provides, for the `tool` world.
    pub tool: Option<String>,
    pub limits: LimitsView,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct LimitsView {
    pub memory_mib: u64,
    pub timeout_ms: u64,
    pub concurrency: u32,
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub struct ToolView {
    /// The name to invoke it by.
    pub name: String,
    pub version: String,
    pub summary: String,
    /// The component that provides it, `ns:name`.
    pub component: String,
    /// JSON Schema of the input.
    #[schema(value_type = Object)]
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    #[schema(value_type = Object)]
    pub output_schema: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GrantView {
    /// The Cedar action, `kv.read`.
    pub action: String,
    /// The resource pattern the manifest requested.
    pub resource: String,
    pub allowed: bool,
    /// Which policy decided, or why nothing did.
    pub reason: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ComponentGrants {
    pub id: String,
    pub version: String,
    pub grants: Vec<GrantView>,
}

impl ComponentView {
    pub fn from_info(c: &arw_host::ComponentInfo) -> Self {
        ComponentView {
            id: c.id.clone(),
            version: c.version.clone(),
            worlds: c.worlds.iter().map(|w| w.as_str().to_string()).collect(),
            description: c.description.clone(),
            digest: c.digest.clone(),
            publisher: c.publisher.clone(),
            tool: c.tool.clone(),
            limits: LimitsView {
                memory_mib: c.limits.memory_mib,
                timeout_ms: c.limits.timeout_ms,
                concurrency: c.limits.concurrency,
            },
        }
    }
}

impl ToolView {
    pub fn from_info(t: &arw_host::ToolInfo) -> Self {
        ToolView {
            name: t.descriptor.name.clone(),
            version: t.descriptor.version.clone(),
            summary: t.descriptor.summary.clone(),
            component: t.component.clone(),
            input_schema: t.descriptor.input_schema.clone(),
            output_schema: t.descriptor.output_schema.clone(),
        }
    }
}
