//! The guest components of this repository, compiled for `wasm32-wasip2` by
//! this crate's build script and embedded as bytes.
//!
//! `FIRST_PARTY` are the components `arw up` runs on its embedded defaults;
//! `TESTING` are hostile or probing guests used by the test suite and the
//! benchmarks. Each has a file path too, for tests that exercise loading
//! from disk.

/// One compiled guest component.
#[derive(Debug, Clone, Copy)]
pub struct Artifact {
    /// The crate name under `components/` (`text-stats`).
    pub name: &'static str,
    /// Where the build script left the `.wasm` file.
    pub path: &'static str,
    /// The component's bytes.
    pub bytes: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/components.rs"));

/// The artifact called `name`, first-party or testing.
pub fn by_name(name: &str) -> Option<Artifact> {
    FIRST_PARTY.iter().chain(TESTING).find(|a| a.name == name).copied()
}
