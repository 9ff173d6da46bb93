//! The `arw` command as a library: argument definitions, configuration
//! layering, the embedded defaults and one module per command. `main.rs`
//! only parses arguments and reports errors.

pub mod authoring;
pub mod cli;
pub mod commands;
pub mod defaults;
pub mod settings;
