//! `arw:host/log` for guests.

use std::fmt::Write as _;
use std::sync::Arc;

use super::{MAX_FIELDS, MAX_MESSAGE_BYTES};
use crate::authz::Grants;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::log as wit;
use crate::capabilities::ComponentCapabilities;

#[derive(Debug)]
pub struct LogInstance {
    component: Arc<str>,
    grants: Arc<Grants>,
}

impl LogInstance {
    pub fn new(component: &ComponentCapabilities) -> Self {
        LogInstance { component: component.component.clone(), grants: component.grants.clone() }
    }
}

fn level_name(level: wit::Level) -> &'static str {
    match level {
        wit::Level::Trace => "trace",
        wit::Level::Debug => "debug",
        wit::Level::Info => "info",
        wit::Level::Warn => "warn",
        wit::Level::Error => "error",
    }
}

fn truncate(text: &str, max: usize) -> &str {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.get(..end).unwrap_or_default()
}

impl wit::Host for LogInstance {
    async fn write(
        &mut self,
        level: wit::Level,
        message: String,
        fields: Vec<wit::Field>,
    ) -> Result<(), CapabilityError> {
        self.grants.check(crate::capabilities::log::WRITE, level_name(level)).await?;
        let mut rendered = String::new();
        for field in fields.iter().take(MAX_FIELDS) {
            let _ = write!(rendered, "{}={:?} ", truncate(&field.key, 64), truncate(&field.value, 1024));
        }
        let rendered = rendered.trim_end();
        let truncated = message.len() > MAX_MESSAGE_BYTES;
        let message = truncate(&message, MAX_MESSAGE_BYTES);
        let message = if truncated { format!("{message}… (truncated)") } else { message.to_string() };
        let component = &*self.component;
        match level {
            wit::Level::Trace => tracing::trace!(target: "arw::guest", component, fields = rendered, "{message}"),
            wit::Level::Debug => tracing::debug!(target: "arw::guest", component, fields = rendered, "{message}"),
            wit::Level::Info => tracing::info!(target: "arw::guest", component, fields = rendered, "{message}"),
            wit::Level::Warn => tracing::warn!(target: "arw::guest", component, fields = rendered, "{message}"),
            wit::Level::Error => tracing::error!(target: "arw::guest", component, fields = rendered, "{message}"),
        }
        Ok(())
    }
}

/// `arw:host/log@0.1.0`: the same function (its types converted).
impl crate::bindings::v0_1::tool::arw::host::log::Host for LogInstance {
    async fn write(
        &mut self,
        level: crate::bindings::v0_1::tool::arw::host::log::Level,
        message: String,
        fields: Vec<crate::bindings::v0_1::tool::arw::host::log::Field>,
    ) -> Result<(), CapabilityError> {
        use crate::bindings::v0_1::tool::arw::host::log::Level as V1;
        let level = match level {
            V1::Trace => wit::Level::Trace,
            V1::Debug => wit::Level::Debug,
            V1::Info => wit::Level::Info,
            V1::Warn => wit::Level::Warn,
            V1::Error => wit::Level::Error,
        };
        let fields = fields.into_iter().map(|f| wit::Field { key: f.key, value: f.value }).collect();
        wit::Host::write(self, level, message, fields).await
    }
}
