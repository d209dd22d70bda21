//! Tenants and usage in their own redb database (`accounts.redb` in the storage directory).
//!
//! redb lets one process at a time hold a database file, and opening one costs more than a
//! commit (tens of milliseconds here against five), so `nixery serve` holds it for its
//! lifetime; the admin CLI then reaches the accounts through the server's admin socket
//! (see the CLI), and opens the file itself when no server runs. A write transaction is
//! atomic and serialised, which makes a quota check and its count one indivisible step.

use super::{Accounts, Counted, Day, Meter, Tenant, UsageQuery, UsageRow};
use crate::storage::{blocking, StorageError};
use ::redb::{Database, DatabaseError, ReadableTable, TableDefinition};
use async_trait::async_trait;
use std::path::Path;
use std::sync::Arc;

/// name -> JSON `Tenant`
const TENANTS: TableDefinition<&str, &[u8]> = TableDefinition::new("tenants");
/// "tenant\0day\0meter" -> the tenant's count for the day
const QUOTA: TableDefinition<&str, u64> = TableDefinition::new("quota");
/// "tenant\0day\0repository" -> (pulls, bytes, builds)
const USAGE: TableDefinition<&str, (u64, u64, u64)> = TableDefinition::new("usage");

#[derive(Clone)]
pub struct RedbAccounts {
    db: Arc<Database>,
}

/// Why the accounts database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is in use by another process (a running nixery serve)")]
    InUse(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::backend("redb", e)
}

fn corrupt(key: &str, e: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        key: key.to_string(),
        reason: e.to_string(),
    }
}

impl RedbAccounts {
    /// Open (creating if needed) the database at `path`, held until dropped.
    pub fn open(path: &Path) -> Result<Self, OpenError> {
        let db = match Database::create(path) {
            Ok(db) => db,
            Err(DatabaseError::DatabaseAlreadyOpen) => {
                return Err(OpenError::InUse(path.display().to_string()))
            }
            Err(e) => return Err(err(format!("{}: {e}", path.display())).into()),
        };
        let txn = db.begin_write().map_err(err)?;
        txn.open_table(TENANTS).map_err(err)?;
        txn.open_table(QUOTA).map_err(err)?;
        txn.open_table(USAGE).map_err(err)?;
        txn.commit().map_err(err)?;
        Ok(RedbAccounts { db: Arc::new(db) })
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Database) -> Result<T, StorageError> + Send + 'static,
    ) -> Result<T, StorageError> {
        let db = self.db.clone();
        blocking(move || work(&db)).await
    }
}

fn key(parts: &[&str]) -> String {
    parts.join("\0")
}

fn read_tenant(db: &Database, name: &str) -> Result<Option<Tenant>, StorageError> {
    let txn = db.begin_read().map_err(err)?;
    let table = txn.open_table(TENANTS).map_err(err)?;
    let Some(v) = table.get(name).map_err(err)? else {
        return Ok(None);
    };
    serde_json::from_slice(v.value())
        .map(Some)
        .map_err(|e| corrupt(name, e))
}

/// Write `tenant` if its presence is as `exists` says; whether it was written.
fn write_tenant(db: &Database, tenant: &Tenant, exists: bool) -> Result<bool, StorageError> {
    let bytes = serde_json::to_vec(tenant).map_err(err)?;
    let txn = db.begin_write().map_err(err)?;
    let written = {
        let mut table = txn.open_table(TENANTS).map_err(err)?;
        let present = table.get(tenant.name.as_str()).map_err(err)?.is_some();
        if present == exists {
            table
                .insert(tenant.name.as_str(), bytes.as_slice())
                .map_err(err)?;
        }
        present == exists
    };
    txn.commit().map_err(err)?;
    Ok(written)
}

/// Add to one usage row: pulls, bytes, builds.
fn add_usage(
    txn: &::redb::WriteTransaction,
    row: &str,
    add: (u64, u64, u64),
) -> Result<(), StorageError> {
    let mut usage = txn.open_table(USAGE).map_err(err)?;
    let old = usage
        .get(row)
        .map_err(err)?
        .map(|v| v.value())
        .unwrap_or((0, 0, 0));
    let new = (old.0 + add.0, old.1 + add.1, old.2 + add.2);
    usage.insert(row, new).map_err(err)?;
    Ok(())
}

#[async_trait]
impl Accounts for RedbAccounts {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        let tenant = tenant.clone();
        self.run(move |db| write_tenant(db, &tenant, false)).await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StorageError> {
        let name = name.to_string();
        self.run(move |db| read_tenant(db, &name)).await
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StorageError> {
        self.run(|db| {
            let txn = db.begin_read().map_err(err)?;
            let table = txn.open_table(TENANTS).map_err(err)?;
            let mut out = Vec::new();
            for row in table.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                out.push(serde_json::from_slice(v.value()).map_err(|e| corrupt(k.value(), e))?);
            }
            Ok(out)
        })
        .await
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        let tenant = tenant.clone();
        self.run(move |db| write_tenant(db, &tenant, true)).await
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool, StorageError> {
        let name = name.to_string();
        self.run(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let removed = txn
                .open_table(TENANTS)
                .map_err(err)?
                .remove(name.as_str())
                .map_err(err)?
                .is_some();
            txn.commit().map_err(err)?;
            Ok(removed)
        })
        .await
    }

    async fn count(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        meter: Meter,
        limit: Option<u64>,
    ) -> Result<Counted, StorageError> {
        let quota_key = key(&[tenant, day.as_str(), meter.name()]);
        let row = key(&[tenant, day.as_str(), repository]);
        self.run(move |db| {
            let txn = db.begin_write().map_err(err)?;
            let used = {
                let quota = txn.open_table(QUOTA).map_err(err)?;
                let used = quota
                    .get(quota_key.as_str())
                    .map_err(err)?
                    .map(|v| v.value());
                used.unwrap_or(0)
            };
            if limit.is_some_and(|limit| used >= limit) {
                // Dropped without commit: nothing changes.
                return Ok(Counted {
                    allowed: false,
                    used,
                });
            }
            txn.open_table(QUOTA)
                .map_err(err)?
                .insert(quota_key.as_str(), used + 1)
                .map_err(err)?;
            let add = match meter {
                Meter::Pulls => (1, 0, 0),
                Meter::Builds => (0, 0, 1),
            };
            add_usage(&txn, &row, add)?;
            txn.commit().map_err(err)?;
            Ok(Counted {
                allowed: true,
                used: used + 1,
            })
        })
        .await
    }

    async fn used(&self, tenant: &str, day: &Day, meter: Meter) -> Result<u64, StorageError> {
        let quota_key = key(&[tenant, day.as_str(), meter.name()]);
        self.run(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let quota = txn.open_table(QUOTA).map_err(err)?;
            let used = quota
                .get(quota_key.as_str())
                .map_err(err)?
                .map(|v| v.value());
            Ok(used.unwrap_or(0))
        })
        .await
    }

    async fn add_bytes(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        bytes: u64,
    ) -> Result<(), StorageError> {
        let row = key(&[tenant, day.as_str(), repository]);
        self.run(move |db| {
            let txn = db.begin_write().map_err(err)?;
            add_usage(&txn, &row, (0, bytes, 0))?;
            txn.commit().map_err(err)
        })
        .await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
        let query = query.clone();
        self.run(move |db| {
            let txn = db.begin_read().map_err(err)?;
            let usage = txn.open_table(USAGE).map_err(err)?;
            let mut out = Vec::new();
            for row in usage.iter().map_err(err)? {
                let (k, v) = row.map_err(err)?;
                let mut parts = k.value().splitn(3, '\0');
                let (Some(tenant), Some(day), Some(repository)) =
                    (parts.next(), parts.next(), parts.next())
                else {
                    return Err(corrupt(
                        k.value(),
                        "usage key is not tenant, day, repository",
                    ));
                };
                let day = Day::parse(day).map_err(|e| corrupt(k.value(), e))?;
                if query.matches(tenant, &day) {
                    let (pulls, bytes, builds) = v.value();
                    let repository = repository.to_string();
                    let tenant = tenant.to_string();
                    out.push(UsageRow {
                        tenant,
                        day,
                        repository,
                        pulls,
                        bytes,
                        builds,
                    });
                }
            }
            Ok(out)
        })
        .await
    }
}
