//! Pay per pull: a pull is a manifest GET answered 200 (a HEAD is not, nor are blobs). Its
//! quota check and count are one atomic write, made before the response is sent (Lambda
//! freezes the process once the handler returns). Blob bytes served or redirected and builds
//! are counted too; builds have their own daily limit. Each pull leaves one JSON audit line.

use super::auth::{Auth, Identity};
use super::error::RegistryError;
use crate::accounts::{seconds_until_midnight, today, Accounts, Meter, Tenant};
use crate::builder::{BuildError, BuildGate};
use crate::digest::Digest;
use async_trait::async_trait;
use std::sync::Arc;

/// The window of the RateLimit headers: a day, in seconds.
const WINDOW: u64 = 86_400;

/// Headers to add to a successful manifest response.
pub(super) type RateHeaders = Vec<(&'static str, String)>;

fn rate_headers(limit: Option<u64>, used: u64) -> RateHeaders {
    match limit {
        None => Vec::new(),
        Some(limit) => vec![
            ("RateLimit-Limit", format!("{limit};w={WINDOW}")),
            (
                "RateLimit-Remaining",
                format!("{};w={WINDOW}", limit.saturating_sub(used)),
            ),
        ],
    }
}

fn over_limit(meter: Meter, limit: u64) -> RegistryError {
    let secs = seconds_until_midnight();
    let what = meter.name();
    RegistryError::retry_later(
        format!("this account's daily limit of {limit} {what} is reached; it resets at 00:00 UTC"),
        secs,
    )
    .with_header("RateLimit-Limit", format!("{limit};w={WINDOW}"))
    .with_header("RateLimit-Remaining", format!("0;w={WINDOW}"))
}

/// Before any work on a manifest request: the tenant is active, and not known to be over
/// its pull limit (so a retried 429 costs one read, no write and no build).
pub(super) async fn admit(auth: &Auth, identity: &Identity) -> Result<Tenant, RegistryError> {
    let tenant = auth.current_tenant(identity).await?;
    if let Some(limit) = tenant.pulls_per_day {
        if auth.known_exhausted(&tenant.name, &today(), Meter::Pulls, limit) {
            return Err(over_limit(Meter::Pulls, limit));
        }
    }
    Ok(tenant)
}

/// Count a pull of `repository` (a manifest GET about to be answered 200).
pub(super) async fn count_pull(
    auth: &Auth,
    tenant: &Tenant,
    repository: &str,
    digest: &Digest,
) -> Result<RateHeaders, RegistryError> {
    let (day, limit) = (today(), tenant.pulls_per_day);
    let counted = auth
        .accounts
        .count(&tenant.name, &day, repository, Meter::Pulls, limit)
        .await?;
    let audit = serde_json::json!({
        "event": "pull",
        "tenant": tenant.name,
        "repository": repository,
        "manifest": digest.to_string(),
        "day": day,
        "allowed": counted.allowed,
        "pulls_today": counted.used,
        "limit": limit,
    });
    tracing::info!(target: "nixery::audit", "{audit}");
    match (counted.allowed, limit) {
        (false, Some(limit)) => {
            auth.remember_exhausted(&tenant.name, &day, Meter::Pulls, limit);
            Err(over_limit(Meter::Pulls, limit))
        }
        _ => Ok(rate_headers(limit, counted.used)),
    }
}

/// The RateLimit headers of a manifest HEAD, which is not a pull.
pub(super) async fn peek(auth: &Auth, tenant: &Tenant) -> Result<RateHeaders, RegistryError> {
    let Some(limit) = tenant.pulls_per_day else {
        return Ok(Vec::new());
    };
    let used = auth
        .accounts
        .used(&tenant.name, &today(), Meter::Pulls)
        .await?;
    Ok(rate_headers(Some(limit), used))
}

/// Count blob bytes served or redirected.
pub(super) async fn count_bytes(
    auth: &Auth,
    identity: &Identity,
    repository: &str,
    bytes: u64,
) -> Result<(), RegistryError> {
    let day = today();
    auth.accounts
        .add_bytes(&identity.tenant, &day, repository, bytes)
        .await?;
    Ok(())
}

/// Counts a build against the tenant's daily build limit, right before it starts.
pub(super) struct TenantGate {
    pub accounts: Arc<dyn Accounts>,
    pub tenant: Tenant,
    pub repository: String,
}

#[async_trait]
impl BuildGate for TenantGate {
    async fn admit(&self) -> Result<(), BuildError> {
        let limit = self.tenant.builds_per_day;
        let counted = self
            .accounts
            .count(
                &self.tenant.name,
                &today(),
                &self.repository,
                Meter::Builds,
                limit,
            )
            .await?;
        tracing::info!(target: "nixery::audit", tenant = %self.tenant.name, repository = %self.repository, allowed = counted.allowed, builds_today = counted.used, "build");
        match counted.allowed {
            true => Ok(()),
            false => Err(BuildError::BuildQuota {
                retry_after: seconds_until_midnight(),
            }),
        }
    }
}
