//! `/metrics`: Prometheus text exposition (format 0.0.4), written by the
//! `prometheus-client` crate. Counters the server owns (routes, tool calls)
//! live in a registry; what the host already counts (bus, Cedar decisions,
//! active versions) is read at scrape time by a collector, so there is one
//! source of truth for each number.

use std::sync::{Arc, Weak};
use std::time::Duration;

use arw_host::Host;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// The gating key (`tools:invoke`), or `unmatched`.
    pub route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub component: String,
    pub tool: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallErrorLabels {
    pub component: String,
    pub tool: String,
    pub code: String,
}

fn latency_histogram() -> Histogram {
    // 50 µs .. ~26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Distinct error codes kept as label values per (component, tool); a
/// tool's codes come from the guest, so past this they are `tool:other`.
pub const MAX_CODES_PER_TOOL: usize = 16;

/// The server's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// The error codes seen per (component, tool), bounding the label set.
    codes: parking_lot::Mutex<std::collections::HashMap<(String, String), std::collections::HashSet<String>>>,
    registry: Registry,
    route_requests: Family<RouteLabels, Counter>,
    route_errors: Family<RouteLabels, Counter>,
    route_latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    calls: Family<CallLabels, Counter>,
    call_errors: Family<CallErrorLabels, Counter>,
    call_latency: Family<CallLabels, Histogram, fn() -> Histogram>,
}

impl Metrics {
    pub fn new(host: Weak<Host>) -> Self {
        let mut registry = Registry::with_prefix("arw");
        let route_requests = Family::<RouteLabels, Counter>::default();
        let route_errors = Family::<RouteLabels, Counter>::default();
        let route_latency =
            Family::<RouteLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let calls = Family::<CallLabels, Counter>::default();
        let call_errors = Family::<CallErrorLabels, Counter>::default();
        let call_latency = Family::<CallLabels, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        registry.register("http_requests", "HTTP requests, by route (gating key)", route_requests.clone());
        registry.register(
            "http_request_errors",
            "HTTP responses with status 4xx or 5xx, by route",
            route_errors.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to produce the response head, by route",
            route_latency.clone(),
        );
        registry.register("component_calls", "Tool calls over HTTP and MCP, by component", calls.clone());
        registry.register(
            "component_call_errors",
            "Failed tool calls over HTTP and MCP, by component and error code",
            call_errors.clone(),
        );
        registry.register(
            "component_call_duration_seconds",
            "Tool call latency over HTTP and MCP (authorization, validation, instantiation, run)",
            call_latency.clone(),
        );
        registry.register_collector(Box::new(HostCollector { host }));
        Metrics {
            codes: parking_lot::Mutex::new(std::collections::HashMap::new()),
            registry,
            route_requests,
            route_errors,
            route_latency,
            calls,
            call_errors,
            call_latency,
        }
    }

    pub fn record_route(&self, route: &str, status: u16, elapsed: Duration) {
        let labels = RouteLabels { route: route.to_string() };
        self.route_requests.get_or_create(&labels).inc();
        if status >= 400 {
            self.route_errors.get_or_create(&labels).inc();
        }
        self.route_latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    pub fn record_call(&self, component: &str, tool: &str, error: Option<&str>, elapsed: Duration) {
        let labels = CallLabels { component: component.to_string(), tool: tool.to_string() };
        self.calls.get_or_create(&labels).inc();
        if let Some(code) = error {
            let code = self.bounded_code(component, tool, code);
            let labels = CallErrorLabels { component: labels.component.clone(), tool: labels.tool.clone(), code };
            self.call_errors.get_or_create(&labels).inc();
        }
        self.call_latency.get_or_create(&labels).observe(elapsed.as_secs_f64());
    }

    /// `code` as a label value: host codes as they are, a tool's own codes
    /// (`tool:...`) up to [`MAX_CODES_PER_TOOL`] distinct per tool, then
    /// `tool:other`.
    fn bounded_code(&self, component: &str, tool: &str, code: &str) -> String {
        if !code.starts_with("tool:") {
            return code.to_string();
        }
        let mut codes = self.codes.lock();
        let seen = codes.entry((component.to_string(), tool.to_string())).or_default();
        if seen.contains(code) || seen.len() < MAX_CODES_PER_TOOL {
            seen.insert(code.to_string());
            code.to_string()
        } else {
            "tool:other".to_string()
        }
    }

    /// The exposition text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry) {
            tracing::error!("cannot encode metrics: {e}");
        }
        out
    }
}

/// What the host counts, read at scrape time.
#[derive(Debug)]
struct HostCollector {
    host: Weak<Host>,
}

fn counter(encoder: &mut DescriptorEncoder, name: &str, help: &str, value: u64) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Counter)?)
}

impl Collector for HostCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let build = encoder.encode_descriptor("build_info", "The running ARW build", None, MetricType::Gauge)?;
        let mut build = build;
        ConstGauge::new(1).encode(build.encode_family(&[("version", env!("CARGO_PKG_VERSION"))])?)?;

        let Some(host) = self.host.upgrade() else { return Ok(()) };
        let bus = host.bus_stats();
        counter(&mut encoder, "bus_events_published", "Events published on the bus", bus.published)?;
        counter(&mut encoder, "bus_events_delivered", "Events subscribers handled", bus.delivered)?;
        counter(
            &mut encoder,
            "bus_events_dropped",
            "Events dropped because a subscriber's queue was full",
            bus.dropped,
        )?;
        counter(&mut encoder, "bus_events_failed", "Events a subscriber's handler failed on", bus.failed)?;
        counter(&mut encoder, "bus_events_streamed", "Events sent to event-stream (SSE) clients", bus.observed)?;
        counter(
            &mut encoder,
            "bus_events_stream_lagged",
            "Events event-stream (SSE) clients missed because they read too slowly",
            bus.observer_lagged,
        )?;

        // Only on a host that bridges (`cluster.bridge-topics`).
        if let Some(bridge) = host.bridge_counts() {
            let mut events = encoder.encode_descriptor(
                "bridge_events",
                "Bus bridge events, by direction (out, in) and outcome (sent, failed; delivered, duplicate, refused)",
                None,
                MetricType::Counter,
            )?;
            for (direction, outcome, value) in [
                ("out", "sent", bridge.exported),
                ("out", "failed", bridge.export_failed),
                ("in", "delivered", bridge.imported),
                ("in", "duplicate", bridge.duplicates),
                ("in", "refused", bridge.refused),
            ] {
                ConstCounter::new(value)
                    .encode(events.encode_family(&[("direction", direction), ("outcome", outcome)])?)?;
            }
        }

        let queues = host.queue_counts();
        let mut tasks = encoder.encode_descriptor(
            "queue_tasks",
            "Work-queue tasks since start, by outcome (enqueued, duplicate, done, retried, dead, late: finished after its lease, rejected: its ticket did not open)",
            None,
            MetricType::Counter,
        )?;
        for (outcome, value) in [
            ("enqueued", queues.enqueued),
            ("duplicate", queues.duplicates),
            ("done", queues.done),
            ("retried", queues.retried),
            ("dead", queues.dead),
            ("late", queues.late),
            ("rejected", queues.rejected),
        ] {
            ConstCounter::new(value).encode(tasks.encode_family(&[("outcome", outcome)])?)?;
        }

        let mut decisions = encoder.encode_descriptor(
            "cedar_decisions",
            "Cedar authorization decisions, by action and outcome",
            None,
            MetricType::Counter,
        )?;
        let counters = host.authorizer().counters();
        for (action, allowed, denied) in counters.iter() {
            for (decision, value) in [("allow", allowed), ("deny", denied)] {
                ConstCounter::new(value)
                    .encode(decisions.encode_family(&[("action", action), ("decision", decision)])?)?;
            }
        }

        let mut active = encoder.encode_descriptor(
            "component_active",
            "The active version of each loaded component (value 1)",
            None,
            MetricType::Gauge,
        )?;
        let status = host.status();
        let components = status.components;
        for component in &components {
            let labels = [
                ("component", component.id.as_str()),
                ("version", component.active_version.as_str()),
                ("digest", component.digest.as_str()),
            ];
            ConstGauge::new(1).encode(active.encode_family(&labels)?)?;
        }

        let in_flight = components.iter().map(|c| c.in_flight as i64).sum::<i64>();
        ConstGauge::new(in_flight).encode(encoder.encode_descriptor(
            "component_calls_in_flight",
            "Calls running on active versions now",
            None,
            MetricType::Gauge,
        )?)?;

        let mut nested = encoder.encode_descriptor(
            "component_tool_calls",
            "Calls of a tool by another component (arw:host/tools), by outcome",
            None,
            MetricType::Counter,
        )?;
        let calls = status.component_calls;
        for (outcome, value) in [("ok", calls.ok), ("failed", calls.failed), ("refused", calls.refused)] {
            ConstCounter::new(value).encode(nested.encode_family(&[("outcome", outcome)])?)?;
        }

        let mut gate_decisions = encoder.encode_descriptor(
            "gate_decisions",
            "Gate decisions, by gate, deciding contract (empty for an allow or a failure) and verdict \
             (allow, deny, retry-after, failed)",
            None,
            MetricType::Counter,
        )?;
        for (series, value) in host.gates().counts() {
            let labels =
                [("gate", series.gate.as_str()), ("contract", series.contract.as_str()), ("verdict", series.verdict)];
            ConstCounter::new(value).encode(gate_decisions.encode_family(&labels)?)?;
        }

        let mut resident_faults = encoder.encode_descriptor(
            "resident_faults",
            "Entries of a resident component that trapped, ran past their deadline or hit the memory cap",
            None,
            MetricType::Counter,
        )?;
        for component in &components {
            if let Some(resident) = &component.resident {
                ConstCounter::new(resident.faults)
                    .encode(resident_faults.encode_family(&[("component", component.id.as_str())])?)?;
            }
        }
        Ok(())
    }
}

/// Keep the registry alive next to its users.
pub type SharedMetrics = Arc<Metrics>;
