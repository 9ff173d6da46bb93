//! Durable key-value storage on redb (an embedded ACID store) in
//! `<state-dir>/kv.redb`.
//!
//! Keys live under their namespace in one table keyed by
//! `(namespace, key)`, so namespaces cannot overlap and listing a prefix
//! never crosses into another namespace. Which namespaces a component may
//! read or write is Cedar's call (`kv.read`, `kv.write`).

use arw_policy::Action;

use crate::capabilities::unit::Request;

mod host;

pub use host::KvInstance;

use std::path::{Path, PathBuf};

use redb::{Database, TableDefinition};
use serde::{Deserialize, Serialize};

/// A component reading a key of a namespace (`Arw::KvNamespace`).
pub const READ: Action = Action::new("kv.read");
/// A component writing or deleting a key of a namespace.
pub const WRITE: Action = Action::new("kv.write");

/// This capability, described (see [`crate::capabilities::unit`]).
pub const UNIT: crate::capabilities::Unit = crate::capabilities::Unit {
    name: "kv",
    wit: &["arw:host/kv"],
    actions: &[READ, WRITE],
    requests: &[Request::any(READ), Request::any(WRITE)],
    schema: include_str!("schema.cedarschema"),
    config_section: Some("kv"),
    link,
};

/// This folder as a capability unit (see [`crate::capabilities::Capability`]).
#[derive(Debug)]
pub struct KvCapability;

impl crate::capabilities::Capability for KvCapability {
    const UNIT: crate::capabilities::Unit = UNIT;
    type Config = KvConfig;
    type State = std::sync::Arc<KvStore>;
    type Instance = KvInstance;

    fn start(
        config: &KvConfig,
        env: &crate::capabilities::StartEnv<'_>,
    ) -> Result<std::sync::Arc<KvStore>, crate::HostError> {
        Ok(std::sync::Arc::new(KvStore::open(env.state_dir, config.clone())?))
    }

    fn instance(
        state: &std::sync::Arc<KvStore>,
        component: &crate::capabilities::ComponentCapabilities,
        chain: &crate::runtime::entry::Chain,
    ) -> KvInstance {
        let _ = chain;
        KvInstance::new(state.clone(), component)
    }
}

/// `arw:host/kv` (0.2.0 and 0.1.0) on [`KvInstance`].
fn link(linker: &mut wasmtime::component::Linker<crate::runtime::store::InstanceState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    type State = crate::runtime::store::InstanceState;
    crate::bindings::imports::arw::host::kv::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.kv
    })?;
    crate::bindings::v0_1::tool::arw::host::kv::add_to_linker::<_, HasSelf<_>>(linker, |s: &mut State| {
        &mut s.capabilities.kv
    })
}

const TABLE: TableDefinition<(&str, &str), &[u8]> = TableDefinition::new("kv");

/// Longest namespace name, in bytes.
pub const MAX_NAMESPACE_BYTES: usize = 128;

#[derive(Debug, thiserror::Error)]
pub enum KvError {
    #[error("cannot open the kv store `{path}`: {message}")]
    Open { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
    #[error("{what} of {size} bytes is over the limit of {limit} bytes ({setting})")]
    TooLarge { what: &'static str, size: usize, limit: usize, setting: &'static str },
    #[error("kv store error: {0}")]
    Storage(String),
}

fn storage(e: impl std::fmt::Display) -> KvError {
    KvError::Storage(e.to_string())
}

/// The store. Share it behind an `Arc`; redb serialises writers itself.
#[derive(Debug)]
pub struct KvStore {
    db: Database,
    config: KvConfig,
}

impl KvStore {
    /// Open (or create) the store in `state_dir`.
    pub fn open(state_dir: &Path, config: KvConfig) -> Result<Self, KvError> {
        let path = state_dir.join("kv.redb");
        let open_error = |message: String| KvError::Open { path: path.clone(), message };
        std::fs::create_dir_all(state_dir).map_err(|e| open_error(e.to_string()))?;
        let db = Database::create(&path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                open_error("it is in use by another arw process; stop it or pass a different --state-dir".into())
            }
            other => open_error(other.to_string()),
        })?;
        // Create the table up front so readers never see "no such table".
        let tx = db.begin_write().map_err(storage)?;
        tx.open_table(TABLE).map_err(storage)?;
        tx.commit().map_err(storage)?;
        Ok(KvStore { db, config })
    }

    fn check_namespace(namespace: &str) -> Result<(), KvError> {
        if namespace.is_empty() {
            return Err(KvError::Invalid("namespace must not be empty".into()));
        }
        if namespace.len() > MAX_NAMESPACE_BYTES {
            return Err(KvError::TooLarge {
                what: "namespace",
                size: namespace.len(),
                limit: MAX_NAMESPACE_BYTES,
                setting: "fixed",
            });
        }
        Ok(())
    }

    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.len() > self.config.max_key_bytes {
            return Err(KvError::TooLarge {
                what: "key",
                size: key.len(),
                limit: self.config.max_key_bytes,
                setting: "kv.max-key-bytes",
            });
        }
        Ok(())
    }

    /// Check arguments without touching storage (done before authorization
    /// so malformed input is reported as such).
    pub fn check_args(&self, namespace: &str, key: &str) -> Result<(), KvError> {
        Self::check_namespace(namespace)?;
        self.check_key(key)
    }

    pub fn get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        self.check_args(namespace, key)?;
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(TABLE).map_err(storage)?;
        Ok(table.get((namespace, key)).map_err(storage)?.map(|v| v.value().to_vec()))
    }

    pub fn set(&self, namespace: &str, key: &str, value: &[u8]) -> Result<(), KvError> {
        self.check_args(namespace, key)?;
        if value.len() > self.config.max_value_bytes {
            return Err(KvError::TooLarge {
                what: "value",
                size: value.len(),
                limit: self.config.max_value_bytes,
                setting: "kv.max-value-bytes",
            });
        }
        let tx = self.db.begin_write().map_err(storage)?;
        {
            let mut table = tx.open_table(TABLE).map_err(storage)?;
            table.insert((namespace, key), value).map_err(storage)?;
        }
        tx.commit().map_err(storage)
    }

    pub fn delete(&self, namespace: &str, key: &str) -> Result<bool, KvError> {
        self.check_args(namespace, key)?;
        let tx = self.db.begin_write().map_err(storage)?;
        let existed = {
            let mut table = tx.open_table(TABLE).map_err(storage)?;
            table.remove((namespace, key)).map_err(storage)?.is_some()
        };
        tx.commit().map_err(storage)?;
        Ok(existed)
    }

    /// Keys of `namespace` starting with `prefix`, in byte order, at most `limit`.
    pub fn list_keys(&self, namespace: &str, prefix: &str, limit: u32) -> Result<Vec<String>, KvError> {
        self.check_args(namespace, prefix)?;
        let tx = self.db.begin_read().map_err(storage)?;
        let table = tx.open_table(TABLE).map_err(storage)?;
        let mut keys = Vec::new();
        for entry in table.range((namespace, prefix)..).map_err(storage)? {
            if keys.len() >= limit as usize {
                break;
            }
            let (k, _) = entry.map_err(storage)?;
            let (ns, key) = k.value();
            if ns != namespace || !key.starts_with(prefix) {
                break;
            }
            keys.push(key.to_string());
        }
        Ok(keys)
    }
}

/// `[kv]`: this capability's section of the host configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct KvConfig {
    /// Largest value a component may store, in bytes.
    pub max_value_bytes: usize,
    /// Largest key, in bytes.
    pub max_key_bytes: usize,
}

impl Default for KvConfig {
    fn default() -> Self {
        KvConfig { max_value_bytes: 1 << 20, max_key_bytes: 1024 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> KvStore {
        KvStore::open(dir, KvConfig { max_value_bytes: 8, max_key_bytes: 8 }).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn namespaces_are_isolated_and_prefixes_stay_inside() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let kv = store(dir.path());
        kv.set("a", "k1", b"1").unwrap_or_else(|e| panic!("{e}"));
        kv.set("a", "k2", b"2").unwrap_or_else(|e| panic!("{e}"));
        kv.set("ab", "k1", b"3").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(kv.get("b", "k1").ok(), Some(None));
        assert_eq!(kv.list_keys("a", "", 10).ok(), Some(vec!["k1".into(), "k2".into()]));
        assert_eq!(kv.list_keys("a", "k", 1).ok(), Some(vec!["k1".into()]));
        assert_eq!(kv.delete("a", "k1").ok(), Some(true));
        assert_eq!(kv.delete("a", "k1").ok(), Some(false));
        assert_eq!(kv.get("ab", "k1").ok(), Some(Some(b"3".to_vec())));
    }

    #[test]
    fn caps_and_durability() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let kv = store(dir.path());
            assert!(matches!(kv.set("a", "k", b"123456789"), Err(KvError::TooLarge { what: "value", .. })));
            assert!(matches!(kv.set("a", "123456789", b"1"), Err(KvError::TooLarge { what: "key", .. })));
            assert!(matches!(kv.set("", "k", b"1"), Err(KvError::Invalid(_))));
            kv.set("a", "k", b"kept").unwrap_or_else(|e| panic!("{e}"));
            let second = KvStore::open(dir.path(), KvConfig::default());
            assert!(second.unwrap_err().to_string().contains("another arw process"));
        }
        assert_eq!(store(dir.path()).get("a", "k").ok(), Some(Some(b"kept".to_vec())));
    }
}
