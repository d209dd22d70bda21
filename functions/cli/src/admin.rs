//! `nixery tenant …` and `nixery usage`: the operator's side of pay-per-pull, on the local
//! storage (directly, or through a running server's admin socket) or on the DynamoDB
//! accounts table of the AWS deployment.

use crate::admin_socket::SocketAccounts;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand, ValueEnum};
use nixery_aws::accounts::DynamoAccounts;
use nixery_core::accounts::redb::{OpenError, RedbAccounts};
use nixery_core::accounts::{valid_tenant_name, Accounts, Day, Tenant, TenantStatus, UsageQuery};
use serde_json::json;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Args)]
pub struct AccountsArgs {
    /// Storage directory of `nixery serve` (its accounts.redb, or its admin socket while it
    /// runs).
    #[arg(
        long,
        env = "NIXERY_STORAGE",
        default_value = "nixery-data",
        global = true
    )]
    storage: PathBuf,
    /// The AWS deployment's DynamoDB accounts table instead (credentials and region from
    /// the standard AWS environment).
    #[arg(long, env = "NIXERY_ACCOUNTS_TABLE", global = true)]
    table: Option<String>,
}

#[derive(Args)]
pub struct TenantArgs {
    #[command(subcommand)]
    command: TenantCommand,
    #[command(flatten)]
    accounts: AccountsArgs,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant; prints its API key, which is shown this once.
    Create {
        name: String,
        /// Most pulls (manifest GETs) per UTC day; unlimited if absent.
        #[arg(long)]
        pulls_per_day: Option<u64>,
        /// Most builds per UTC day; unlimited if absent.
        #[arg(long)]
        builds_per_day: Option<u64>,
    },
    /// List the tenants.
    List,
    /// Refuse the tenant's requests (403 DENIED) until resumed.
    Suspend {
        name: String,
    },
    Resume {
        name: String,
    },
    /// Replace the tenant's API key; prints the new one, the old one stops working.
    RotateKey {
        name: String,
    },
    /// Remove the tenant (its usage stays for billing).
    Delete {
        name: String,
    },
}

#[derive(Args)]
pub struct UsageArgs {
    /// Only this tenant.
    #[arg(long)]
    tenant: Option<String>,
    /// First day, YYYY-MM-DD (UTC), included.
    #[arg(long, value_parser = Day::parse)]
    since: Option<Day>,
    /// Last day, YYYY-MM-DD (UTC), included.
    #[arg(long, value_parser = Day::parse)]
    until: Option<Day>,
    #[arg(long, value_enum, default_value_t = Format::Json)]
    format: Format,
    #[command(flatten)]
    accounts: AccountsArgs,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Json,
    Csv,
}

async fn open(a: &AccountsArgs) -> Result<Arc<dyn Accounts>> {
    if let Some(table) = &a.table {
        let config = nixery_aws::clients::sdk_config().await;
        let client = nixery_aws::clients::dynamodb(&config);
        return Ok(Arc::new(DynamoAccounts::new(client, table)));
    }
    if !a.storage.is_dir() {
        bail!("no storage directory at {}", a.storage.display());
    }
    match RedbAccounts::open(&a.storage.join("accounts.redb")) {
        Ok(accounts) => Ok(Arc::new(accounts)),
        Err(OpenError::InUse(_)) => Ok(Arc::new(SocketAccounts::new(&a.storage))),
        Err(e) => Err(e).context("opening the accounts"),
    }
}

pub async fn tenant(a: TenantArgs) -> Result<()> {
    let accounts = open(&a.accounts).await?;
    let out = match a.command {
        TenantCommand::Create {
            name,
            pulls_per_day,
            builds_per_day,
        } => {
            if !valid_tenant_name(&name) {
                bail!("tenant names are 1-63 lowercase letters, digits and '-', starting with a letter or digit");
            }
            let (tenant, key) = Tenant::create(&name, pulls_per_day, builds_per_day);
            if !accounts.create_tenant(&tenant).await? {
                bail!("tenant {name} exists already");
            }
            json!({"tenant": name, "key": key.reveal(), "status": tenant.status,
                   "pulls_per_day": pulls_per_day, "builds_per_day": builds_per_day})
        }
        TenantCommand::List => {
            let tenants = accounts.list_tenants().await?;
            let rows: Vec<_> = tenants
                .iter()
                .map(|t| {
                    json!({"tenant": t.name, "status": t.status,
                "key_id": t.key_id, "pulls_per_day": t.pulls_per_day,
                "builds_per_day": t.builds_per_day, "created_ms": t.created_ms})
                })
                .collect();
            json!(rows)
        }
        TenantCommand::Suspend { name } => {
            set_status(&*accounts, &name, TenantStatus::Suspended).await?
        }
        TenantCommand::Resume { name } => {
            set_status(&*accounts, &name, TenantStatus::Active).await?
        }
        TenantCommand::RotateKey { name } => {
            let mut tenant = existing(&*accounts, &name).await?;
            let key = tenant.rotate_key();
            accounts.update_tenant(&tenant).await?;
            json!({"tenant": name, "key": key.reveal()})
        }
        TenantCommand::Delete { name } => {
            if !accounts.delete_tenant(&name).await? {
                bail!("no tenant {name}");
            }
            json!({"tenant": name, "deleted": true})
        }
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

async fn existing(accounts: &dyn Accounts, name: &str) -> Result<Tenant> {
    accounts
        .get_tenant(name)
        .await?
        .with_context(|| format!("no tenant {name}"))
}

async fn set_status(
    accounts: &dyn Accounts,
    name: &str,
    status: TenantStatus,
) -> Result<serde_json::Value> {
    let mut tenant = existing(accounts, name).await?;
    tenant.status = status;
    accounts.update_tenant(&tenant).await?;
    Ok(json!({"tenant": name, "status": status}))
}

pub async fn usage(a: UsageArgs) -> Result<()> {
    let accounts = open(&a.accounts).await?;
    let query = UsageQuery {
        tenant: a.tenant,
        since: a.since,
        until: a.until,
    };
    let rows = accounts.usage(&query).await?;
    match a.format {
        Format::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
        Format::Csv => {
            println!("tenant,day,repository,pulls,bytes,builds");
            for r in rows {
                // Tenant names and repositories never hold commas or quotes (their grammars).
                println!(
                    "{},{},{},{},{},{}",
                    r.tenant, r.day, r.repository, r.pulls, r.bytes, r.builds
                );
            }
        }
    }
    Ok(())
}
