//! `/spec/mcp-tools.json`: the tools as MCP `Tool` objects (`name`,
//! `title`, `description`, `inputSchema`, `outputSchema`), in the shape of
//! a `tools/list` result.

pub fn document(tools: &[arw_host::ToolInfo]) -> serde_json::Value {
    serde_json::json!({ "tools": crate::mcp::tools(tools) })
}
