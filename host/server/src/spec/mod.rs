//! The machine-readable descriptions of this API, generated from code:
//! OpenAPI from the route definitions, AsyncAPI from the host's event
//! catalogue, MCP tool objects from the loaded tools. `arw spec export`
//! writes them into `spec/`, where CI checks they are current.

pub mod asyncapi;
pub mod mcp_tools;
pub mod openapi;
