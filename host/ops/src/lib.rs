//! ARW's registry workflows, shared by the `arw` command and the HTTP
//! API's admin routes so both do exactly the same thing.
//!
//! | module | job |
//! |---|---|
//! | [`stores`] | where the registry, keys, trust store and installed set live |
//! | [`source`] | [`InstalledSource`]: the host's source, verifying each installed version at every load |
//! | [`install`] | resolve → verify → (prompt) → precompile → record; the first-run bootstrap |
//! | [`rollback`] | rollback to an earlier installed version; uninstall |
//! | [`reconcile`] | bring a running host to the installed set; record its auto-rollbacks |
//! | [`live`] | the workflows on a running host, followed by the switch (the admin API) |
//! | [`policies`] | where a host's policies come from |
//! | [`error`] | [`OpsError`], classified for exit codes and HTTP statuses |

pub mod error;
pub mod install;
pub mod live;
pub mod policies;
pub mod reconcile;
pub mod rollback;
pub mod source;
pub mod stores;

pub use error::{ErrorKind, OpsError};
pub use live::{Live, Outcome};
pub use policies::PolicyOrigin;
pub use source::InstalledSource;
pub use stores::Stores;
