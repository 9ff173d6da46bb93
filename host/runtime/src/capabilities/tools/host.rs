//! `arw:host/tools` for guests.

use std::sync::Arc;

use super::{Directory, NestedCall};
use crate::authz::Grants;
use crate::bindings::imports::arw::host::tools as wit;
use crate::capabilities::ComponentCapabilities;
use crate::error::CallError;
use crate::runtime::entry::Chain;
use crate::runtime::store::InstanceState;

/// Per-instance state: who is calling, through which chain.
#[derive(Debug)]
pub struct ToolsInstance {
    directory: Arc<Directory>,
    component: Arc<str>,
    grants: Arc<Grants>,
    /// The components the entry into this instance came through.
    chain: Chain,
}

impl ToolsInstance {
    pub fn new(directory: Arc<Directory>, component: &ComponentCapabilities, chain: Chain) -> Self {
        ToolsInstance { directory, component: component.component.clone(), grants: component.grants.clone(), chain }
    }

    /// The chain of a new entry into a reused instance.
    pub(crate) fn set_chain(&mut self, chain: Chain) {
        self.chain = chain;
    }
}

fn refusal(error: CallError) -> wit::CallError {
    match error {
        CallError::Denied(denied) => wit::CallError::Denied(denied.to_string()),
        e @ CallError::UnknownTool { .. } => wit::CallError::UnknownTool(e.to_string()),
        e @ (CallError::InvalidInput(_) | CallError::SchemaViolation { .. }) => {
            wit::CallError::InvalidInput(e.to_string())
        }
        e => wit::CallError::Failed(wit::Failure { code: e.code().into_owned(), message: e.to_string() }),
    }
}

/// On the whole instance state: the call needs the entry's deadline.
impl wit::Host for InstanceState {
    async fn invoke(&mut self, name: String, input: String) -> Result<String, wit::CallError> {
        let tools = &self.capabilities.tools;
        let max = tools.directory.config.max_depth;
        if tools.chain.len() >= max {
            let through: Vec<&str> = tools.chain.iter().map(|c| &**c).collect();
            return Err(wit::CallError::TooDeep(format!(
                "calling `{name}` from `{}` would pass through {} components ({} → {}), over the host's \
                 tools.max-depth = {max}",
                tools.component,
                tools.chain.len() + 1,
                through.join(" → "),
                tools.component,
            )));
        }
        let Some(router) = tools.directory.router().cloned() else {
            return Err(wit::CallError::Failed(wit::Failure {
                code: "unavailable".into(),
                message: "this host does not route calls between components".into(),
            }));
        };
        let chain: Chain = tools.chain.iter().cloned().chain([tools.component.clone()]).collect();
        let call = NestedCall { caller: tools.grants.clone(), chain, deadline: self.deadline, tool: name, input };
        // Awaited here, on this guest's stack: the callee runs on a fiber
        // of its own, and Cedar, which must not run on a guest's stack, is
        // asked on a blocking thread when its decision is not cached
        // (`Runtime::invoke_nested`). If this entry is abandoned at its
        // deadline, the callee's future is dropped with it.
        match router.call(call).await {
            Ok(output) => Ok(output.to_string()),
            Err(error) => Err(refusal(error)),
        }
    }
}
