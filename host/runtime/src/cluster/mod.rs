//! What hosts do together over NATS, on the connection of the `nats`
//! capability (`[cluster]`, [`crate::capabilities::nats`]).
//!
//! - [`bridge`]: bus events on the configured topics cross hosts;
//! - [`node_key`]: the key this host signs what it vouches for with.

pub mod bridge;
pub mod node_key;
