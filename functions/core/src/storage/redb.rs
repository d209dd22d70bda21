//! The index in an embedded redb database. redb serialises write
//! transactions, which gives the conditional inserts and leases their
//! atomicity.

use super::{blocking, now_ms, AliasEntry, Index, LayerEntry, ManifestEntry, StorageError};
use crate::image::LayerDesc;
use ::redb::{Database, ReadableTable, TableDefinition};
use async_trait::async_trait;
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const LAYERS: TableDefinition<&str, &[u8]> = TableDefinition::new("layers");
const MANIFESTS: TableDefinition<&str, &[u8]> = TableDefinition::new("manifests");
const ALIASES: TableDefinition<&str, &[u8]> = TableDefinition::new("aliases");
/// key -> (expiry in ms since the epoch, owner)
const LEASES: TableDefinition<&str, (u64, &str)> = TableDefinition::new("leases");

#[derive(Clone)]
pub struct RedbIndex {
    db: Arc<Database>,
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend("redb", e)
}

impl RedbIndex {
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let db = Database::create(path)
            .map_err(|e| StorageError::backend("redb", format!("{}: {e}", path.display())))?;
        let txn = db.begin_write().map_err(err)?;
        for t in [LAYERS, MANIFESTS, ALIASES] {
            txn.open_table(t).map_err(err)?;
        }
        txn.open_table(LEASES).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(RedbIndex { db: Arc::new(db) })
    }

    fn get<T: DeserializeOwned>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        let txn = self.db.begin_read().map_err(err)?;
        let t = txn.open_table(table).map_err(err)?;
        let Some(v) = t.get(key).map_err(err)? else {
            return Ok(None);
        };
        serde_json::from_slice(v.value())
            .map(Some)
            .map_err(|e| StorageError::Corrupt {
                key: key.into(),
                reason: e.to_string(),
            })
    }

    /// Insert `value` under `key`, unless it exists and `replace` is false; whether it
    /// was written.
    fn insert<T: Serialize>(
        &self,
        table: TableDefinition<&str, &[u8]>,
        key: &str,
        value: &T,
        replace: bool,
    ) -> Result<bool, StorageError> {
        let bytes = serde_json::to_vec(value).map_err(err)?;
        let txn = self.db.begin_write().map_err(err)?;
        let written = {
            let mut t = txn.open_table(table).map_err(err)?;
            let write = replace || t.get(key).map_err(err)?.is_none();
            if write {
                t.insert(key, bytes.as_slice()).map_err(err)?;
            }
            write
        };
        txn.commit().map_err(err)?;
        Ok(written)
    }
}

#[async_trait]
impl Index for RedbIndex {
    async fn get_layers(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LayerDesc>, StorageError> {
        let (this, keys) = (self.clone(), keys.to_vec());
        blocking(move || {
            let mut out = HashMap::new();
            for k in keys {
                if let Some(e) = this.get::<LayerEntry>(LAYERS, &k)? {
                    out.insert(k, e.layer);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn layers_within(
        &self,
        closure: &BTreeSet<String>,
    ) -> Result<Vec<LayerEntry>, StorageError> {
        let (this, closure) = (self.clone(), closure.clone());
        blocking(move || {
            let txn = this.db.begin_read().map_err(err)?;
            let table = txn.open_table(LAYERS).map_err(err)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(err)? {
                let (key, value) = row.map_err(err)?;
                let entry: LayerEntry =
                    serde_json::from_slice(value.value()).map_err(|e| StorageError::Corrupt {
                        key: key.value().to_string(),
                        reason: e.to_string(),
                    })?;
                if entry.contents.iter().all(|p| closure.contains(p)) {
                    out.push(entry);
                }
            }
            Ok(out)
        })
        .await
    }

    async fn put_layer(&self, key: &str, entry: &LayerEntry) -> Result<bool, StorageError> {
        let (this, key, entry) = (self.clone(), key.to_string(), entry.clone());
        blocking(move || this.insert(LAYERS, &key, &entry, false)).await
    }

    async fn get_manifest(&self, key: &str) -> Result<Option<ManifestEntry>, StorageError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.get(MANIFESTS, &key)).await
    }

    async fn put_manifest(&self, key: &str, entry: &ManifestEntry) -> Result<bool, StorageError> {
        let (this, key, entry) = (self.clone(), key.to_string(), entry.clone());
        blocking(move || this.insert(MANIFESTS, &key, &entry, false)).await
    }

    async fn get_alias(&self, key: &str) -> Result<Option<AliasEntry>, StorageError> {
        let (this, key) = (self.clone(), key.to_string());
        blocking(move || this.get(ALIASES, &key)).await
    }

    async fn put_alias(&self, key: &str, entry: &AliasEntry) -> Result<(), StorageError> {
        let (this, key, entry) = (self.clone(), key.to_string(), entry.clone());
        blocking(move || this.insert(ALIASES, &key, &entry, true).map(drop)).await
    }

    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let (this, key, owner) = (self.clone(), key.to_string(), owner.to_string());
        blocking(move || {
            let now = now_ms();
            let txn = this.db.begin_write().map_err(err)?;
            let granted = {
                let mut t = txn.open_table(LEASES).map_err(err)?;
                let held_by_other = match t.get(key.as_str()).map_err(err)? {
                    Some(v) => {
                        let (expiry, holder) = v.value();
                        expiry > now && holder != owner
                    }
                    None => false,
                };
                if !held_by_other {
                    let expiry = now + ttl.as_millis() as u64;
                    t.insert(key.as_str(), (expiry, owner.as_str()))
                        .map_err(err)?;
                }
                !held_by_other
            };
            txn.commit().map_err(err)?;
            Ok(granted)
        })
        .await
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StorageError> {
        let (this, key, owner) = (self.clone(), key.to_string(), owner.to_string());
        blocking(move || {
            let txn = this.db.begin_write().map_err(err)?;
            {
                let mut t = txn.open_table(LEASES).map_err(err)?;
                let mine = t
                    .get(key.as_str())
                    .map_err(err)?
                    .is_some_and(|v| v.value().1 == owner);
                if mine {
                    t.remove(key.as_str()).map_err(err)?;
                }
            }
            txn.commit().map_err(err)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::conformance::layer;

    #[tokio::test]
    async fn redb_index_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        {
            let idx = RedbIndex::open(&path).expect("open");
            assert!(idx.put_layer("k", &layer(1)).await.expect("put"));
        }
        let idx = RedbIndex::open(&path).expect("reopen");
        assert_eq!(
            idx.get_layers(&["k".into()]).await.expect("get")["k"],
            layer(1).layer
        );
    }
}
