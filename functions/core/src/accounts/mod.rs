//! Tenants, their API keys, and metered usage: what makes the registry pay-per-pull.
//!
//! A tenant holds one API key (`nxr_<id>_<secret>`); only a SHA-256 of the secret is stored.
//! Usage is counted per tenant, UTC day and repository: pulls (manifest GETs answered 200),
//! bytes (blobs served or redirected) and builds. A tenant's daily limits on pulls and
//! builds are checked and counted in one atomic conditional write, so concurrent requests
//! can never pass a limit together.
//!
//! The `Accounts` trait has a redb implementation here (its own database file, opened per
//! operation, so that the admin CLI can work while `nixery serve` runs) and a DynamoDB one
//! in the AWS crate; both run the same conformance suite.

#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod day;
mod keys;
pub mod redb;

pub use day::{seconds_until_midnight, today, Day, DayError};
pub use keys::{ApiKey, KeyError};

use crate::storage::StorageError;
use async_trait::async_trait;
use serde::{Deserialize, Serialize};

/// Tenant names: 1 to 63 lowercase letters, digits and `-`, starting with a letter or digit.
/// They appear in Basic credentials (no `:`), keys and CSV reports.
pub fn valid_tenant_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

/// A customer of the registry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    pub name: String,
    pub status: TenantStatus,
    /// The public part of the tenant's key, and the SHA-256 (hex) of its secret part.
    pub key_id: String,
    pub key_hash: String,
    /// Daily limits (UTC days); None means unlimited.
    pub pulls_per_day: Option<u64>,
    pub builds_per_day: Option<u64>,
    /// Milliseconds since the epoch.
    pub created_ms: u64,
}

impl Tenant {
    /// A new active tenant with a fresh key; the key is returned once and never stored.
    pub fn create(
        name: &str,
        pulls_per_day: Option<u64>,
        builds_per_day: Option<u64>,
    ) -> (Tenant, ApiKey) {
        let key = ApiKey::generate();
        let tenant = Tenant {
            name: name.to_string(),
            status: TenantStatus::Active,
            key_id: key.id().to_string(),
            key_hash: key.secret_hash(),
            pulls_per_day,
            builds_per_day,
            created_ms: crate::storage::now_ms(),
        };
        (tenant, key)
    }

    /// Replace the key; the old one stops working at once.
    pub fn rotate_key(&mut self) -> ApiKey {
        let key = ApiKey::generate();
        self.key_id = key.id().to_string();
        self.key_hash = key.secret_hash();
        key
    }

    /// Whether `key` is this tenant's key (compared in constant time).
    pub fn accepts(&self, key: &str) -> bool {
        ApiKey::parse(key).is_ok_and(|k| k.matches(&self.key_id, &self.key_hash))
    }

    pub fn limit(&self, meter: Meter) -> Option<u64> {
        match meter {
            Meter::Pulls => self.pulls_per_day,
            Meter::Builds => self.builds_per_day,
        }
    }
}

/// What a daily limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Meter {
    Pulls,
    Builds,
}

impl Meter {
    pub fn name(self) -> &'static str {
        match self {
            Meter::Pulls => "pulls",
            Meter::Builds => "builds",
        }
    }
}

/// The outcome of counting against a daily limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Whether the event was within the limit, and so counted.
    pub allowed: bool,
    /// The tenant's count for the day after this call.
    pub used: u64,
}

/// One row of the usage report: a tenant's activity on one repository on one day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    pub tenant: String,
    pub day: Day,
    pub repository: String,
    pub pulls: u64,
    pub bytes: u64,
    pub builds: u64,
}

/// Which usage to report; days are inclusive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UsageQuery {
    pub tenant: Option<String>,
    pub since: Option<Day>,
    pub until: Option<Day>,
}

impl UsageQuery {
    pub fn matches(&self, tenant: &str, day: &Day) -> bool {
        self.tenant.as_deref().is_none_or(|t| t == tenant)
            && self.since.as_ref().is_none_or(|s| day >= s)
            && self.until.as_ref().is_none_or(|u| day <= u)
    }
}

/// Tenants and usage.
#[async_trait]
pub trait Accounts: Send + Sync {
    /// Insert unless a tenant of that name exists; whether this call inserted it.
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError>;
    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StorageError>;
    /// Every tenant, by name.
    async fn list_tenants(&self) -> Result<Vec<Tenant>, StorageError>;
    /// Replace an existing tenant (status, limits, key); false if there is none.
    async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError>;
    /// Remove a tenant (its usage stays for billing); whether it existed.
    async fn delete_tenant(&self, name: &str) -> Result<bool, StorageError>;
    /// Count one pull or build of `repository` on `day`, unless the tenant's count for the
    /// day has reached `limit`: the check and the count are one atomic write.
    async fn count(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        meter: Meter,
        limit: Option<u64>,
    ) -> Result<Counted, StorageError>;
    /// The tenant's count for `day` so far.
    async fn used(&self, tenant: &str, day: &Day, meter: Meter) -> Result<u64, StorageError>;
    /// Add bytes served (or redirected to) on `repository`.
    async fn add_bytes(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        bytes: u64,
    ) -> Result<(), StorageError>;
    /// Usage rows matching `query`, ordered by tenant, day and repository.
    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StorageError>;
}
