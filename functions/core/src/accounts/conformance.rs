//! One conformance suite for every `Accounts` implementation (redb here, DynamoDB in the AWS
//! crate), one test per scenario per backend, like the storage suite.

use super::{Accounts, Day, Meter, Tenant, TenantStatus, UsageQuery};
use std::sync::Arc;

/// Stamps out one `#[tokio::test]` per scenario. `$make` is an async fn returning
/// `(Arc<dyn Accounts>, guard)`; the guard keeps the backend alive.
#[macro_export]
macro_rules! accounts_conformance {
    ($make:path) => {
        $crate::accounts_conformance!(@each $make,
            tenants_are_created_once_updated_and_deleted, counts_stop_at_the_limit,
            racing_counts_never_pass_the_limit, usage_is_reported_per_tenant_day_repository);
    };
    (@each $make:path, $($scenario:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $scenario() {
            let (accounts, _guard) = $make().await;
            $crate::accounts::conformance::$scenario(accounts).await;
        }
    )*};
}

fn day(s: &str) -> Day {
    Day::parse(s).expect("valid day")
}

pub async fn tenants_are_created_once_updated_and_deleted(accounts: Arc<dyn Accounts>) {
    let (mut acme, key) = Tenant::create("acme", Some(10), None);
    assert!(accounts.create_tenant(&acme).await.expect("create"));
    let (again, _) = Tenant::create("acme", None, None);
    assert!(
        !accounts.create_tenant(&again).await.expect("create"),
        "names are unique"
    );
    let stored = accounts
        .get_tenant("acme")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored, acme);
    assert!(stored.accepts(&key.reveal()));
    acme.status = TenantStatus::Suspended;
    let new_key = acme.rotate_key();
    assert!(accounts.update_tenant(&acme).await.expect("update"));
    let stored = accounts
        .get_tenant("acme")
        .await
        .expect("get")
        .expect("present");
    assert_eq!(stored.status, TenantStatus::Suspended);
    assert!(!stored.accepts(&key.reveal()) && stored.accepts(&new_key.reveal()));
    let (ghost, _) = Tenant::create("ghost", None, None);
    assert!(
        !accounts.update_tenant(&ghost).await.expect("update"),
        "no upsert"
    );
    let (beta, _) = Tenant::create("beta", None, None);
    assert!(accounts.create_tenant(&beta).await.expect("create"));
    let names: Vec<String> = accounts
        .list_tenants()
        .await
        .expect("list")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(names, ["acme", "beta"]);
    assert!(accounts.delete_tenant("acme").await.expect("delete"));
    assert!(!accounts.delete_tenant("acme").await.expect("delete"));
    assert_eq!(accounts.get_tenant("acme").await.expect("get"), None);
}

pub async fn counts_stop_at_the_limit(accounts: Arc<dyn Accounts>) {
    let d = day("2026-11-28");
    for want in 1..=2 {
        let c = accounts
            .count("t", &d, "git", Meter::Pulls, Some(2))
            .await
            .expect("count");
        assert!(c.allowed);
        assert_eq!(c.used, want);
    }
    let denied = accounts
        .count("t", &d, "htop", Meter::Pulls, Some(2))
        .await
        .expect("count");
    assert!(!denied.allowed, "the limit holds across repositories");
    assert_eq!(denied.used, 2);
    assert_eq!(accounts.used("t", &d, Meter::Pulls).await.expect("used"), 2);
    // Builds have their own count; a new day starts from zero.
    assert!(
        accounts
            .count("t", &d, "git", Meter::Builds, Some(1))
            .await
            .expect("count")
            .allowed
    );
    let next = day("2026-11-29");
    assert!(
        accounts
            .count("t", &next, "git", Meter::Pulls, Some(2))
            .await
            .expect("count")
            .allowed
    );
    let unlimited = accounts
        .count("u", &d, "git", Meter::Pulls, None)
        .await
        .expect("count");
    assert!(unlimited.allowed && unlimited.used == 1);
}

pub async fn racing_counts_never_pass_the_limit(accounts: Arc<dyn Accounts>) {
    let d = day("2026-11-28");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let accounts = accounts.clone();
            let d = d.clone();
            tokio::spawn(async move {
                accounts
                    .count("racer", &d, "git", Meter::Pulls, Some(5))
                    .await
                    .expect("count")
            })
        })
        .collect();
    let mut allowed = 0;
    for t in tasks {
        allowed += usize::from(t.await.expect("join").allowed);
    }
    assert_eq!(
        allowed, 5,
        "exactly the limit's worth of racing pulls is counted"
    );
    assert_eq!(
        accounts
            .used("racer", &d, Meter::Pulls)
            .await
            .expect("used"),
        5
    );
}

pub async fn usage_is_reported_per_tenant_day_repository(accounts: Arc<dyn Accounts>) {
    let (d1, d2) = (day("2026-11-27"), day("2026-11-28"));
    accounts
        .count("a", &d1, "git", Meter::Pulls, None)
        .await
        .expect("count");
    accounts
        .count("a", &d2, "git", Meter::Pulls, None)
        .await
        .expect("count");
    accounts
        .count("a", &d2, "git", Meter::Pulls, None)
        .await
        .expect("count");
    accounts
        .count("a", &d2, "git", Meter::Builds, None)
        .await
        .expect("count");
    accounts
        .add_bytes("a", &d2, "git", 1000)
        .await
        .expect("bytes");
    accounts
        .add_bytes("a", &d2, "shell/htop", 7)
        .await
        .expect("bytes");
    accounts
        .count("b", &d2, "git", Meter::Pulls, None)
        .await
        .expect("count");
    let all = accounts.usage(&UsageQuery::default()).await.expect("usage");
    let rows: Vec<(String, String, String, u64, u64, u64)> = all
        .iter()
        .map(|r| {
            (
                r.tenant.clone(),
                r.day.to_string(),
                r.repository.clone(),
                r.pulls,
                r.bytes,
                r.builds,
            )
        })
        .collect();
    let row = |t: &str, d: &str, r: &str, p, y, b| (t.into(), d.into(), r.into(), p, y, b);
    assert_eq!(
        rows,
        vec![
            row("a", "2026-11-27", "git", 1, 0, 0),
            row("a", "2026-11-28", "git", 2, 1000, 1),
            row("a", "2026-11-28", "shell/htop", 0, 7, 0),
            row("b", "2026-11-28", "git", 1, 0, 0),
        ]
    );
    let query = UsageQuery {
        tenant: Some("a".into()),
        since: Some(d2.clone()),
        until: Some(d2),
    };
    assert_eq!(accounts.usage(&query).await.expect("usage").len(), 2);
}

#[cfg(test)]
mod tests {
    use super::super::redb::RedbAccounts;
    use super::*;

    async fn redb() -> (Arc<dyn Accounts>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let accounts = RedbAccounts::open(&dir.path().join("accounts.redb")).expect("open");
        (Arc::new(accounts), dir)
    }

    mod redb_accounts {
        crate::accounts_conformance!(super::redb);
    }

    /// A second opener (the admin CLI while the server runs) is told the file is in use.
    #[tokio::test]
    async fn a_held_file_is_reported_in_use() {
        let (_first, dir) = redb().await;
        let second = RedbAccounts::open(&dir.path().join("accounts.redb"));
        assert!(matches!(
            second,
            Err(super::super::redb::OpenError::InUse(_))
        ));
    }
}
