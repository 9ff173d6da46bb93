//! ARW's authorization core: the Cedar schema, policy files and the
//! decision cache.
//!
//! Everything the host lets a component or a caller do is a Cedar request
//! `(principal, action, resource)`: this crate turns ARW's types into those
//! requests, loads and validates the policy set, and answers with a
//! [`Decision`] that cannot be mistaken for an error (a failed evaluation is
//! a denial, never an allow).
//!
//! ```
//! use arw_policy::{Action, Authorizer, PolicySet, Principal};
//!
//! let schema = arw_policy::schema::embedded()?;
//! let policies = PolicySet::from_sources(
//!     &schema,
//!     [arw_policy::PolicySource::new(
//!         "inline.cedar",
//!         r#"permit(principal == Arw::Component::"acme:x", action == Arw::Action::"kv.read", resource);"#,
//!     )],
//! )?;
//! let authorizer = Authorizer::new(schema, policies);
//! let me = Principal::component("acme:x", "1.0.0", "acme", "sha256:00");
//! let handle = authorizer.principal(me);
//! assert!(authorizer.decide(&handle, Action::new("kv.read"), "anything").allowed());
//! assert!(!authorizer.decide(&handle, Action::new("kv.write"), "anything").allowed());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod authorizer;
mod cache;
mod context;
mod error;
mod model;
mod policy_set;
pub mod schema;
mod vocabulary;

pub use authorizer::{Authorizer, Decision, DecisionCounters, PrincipalHandle};
pub use context::{ApplyContext, Clock, Node, RequestContext, SystemClock};
pub use error::{PolicyDiagnostic, PolicyError};
pub use model::{Action, Principal, Resource};
pub use policy_set::{PolicySet, PolicySource};
pub use vocabulary::{ActionInfo, MAX_ACTIONS, Vocabulary};
