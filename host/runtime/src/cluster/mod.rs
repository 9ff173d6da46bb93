//! What hosts do together over NATS, on the connection of the `nats`
//! capability (`[cluster]`, [`crate::capabilities::nats`]).
//!
//! - [`bridge`]: bus events on the configured topics cross hosts.

pub mod bridge;
