//! ARW's signed local component registry.
//!
//! A registry is a directory in the layout `wkg`'s `local` backend reads,
//! `<root>/<namespace>/<name>/<version>.wasm`, with sidecar files next to
//! each version: the signed manifest and one detached signature per signer
//! (see `docs/signing.md` for the exact format).
//!
//! | module | job |
//! |---|---|
//! | [`keys`] | ed25519 key pairs on disk |
//! | [`trust`] | the trust store: named public keys whose signatures count |
//! | [`signature`] | the signed manifest and signature file formats |
//! | [`inspect`] | what a component really exports (its world), read from its bytes |
//! | [`reference`] | `ns:name[@version|@req]` references and safe paths |
//! | [`registry`] | publish, sign, list, resolve, read, yank |
//! | [`verify`] | the whole chain: digest, signatures, trusted signer, world |
//! | [`installed`] | the installed set, and the check every load of an installed entry goes through |

pub mod error;
pub mod inspect;
pub mod installed;
pub mod keys;
pub mod reference;
pub mod registry;
pub mod signature;
pub mod trust;
pub mod verify;

mod lock;

pub use error::RegistryError;
pub use installed::{InstalledCheckError, InstalledSet, verify_installed};
pub use keys::PublicKey;
pub use reference::PackageRef;
pub use registry::Registry;
pub use trust::TrustStore;
pub use verify::{Verified, VerifyError};
