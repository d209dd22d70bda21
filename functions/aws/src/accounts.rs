//! Tenants and usage in a DynamoDB table of their own (`NIXERY_ACCOUNTS_TABLE`).
//!
//! Key design: partition key `pk` and sort key `sk`, both strings.
//!
//! | item          | pk                | sk                        | attributes               |
//! |---------------|-------------------|---------------------------|--------------------------|
//! | tenant        | `tenant#<name>`   | `profile`                 | `data`: JSON `Tenant`    |
//! | daily quota   | `quota#<tenant>`  | `<YYYY-MM-DD>`            | `pulls`, `builds` (N)    |
//! | usage         | `usage#<tenant>`  | `<YYYY-MM-DD>#<repository>` | `pulls`, `bytes`, `builds` (N) |
//!
//! A pull or build is checked and counted in one conditional `UpdateItem ... ADD` on the
//! tenant's quota counter for the day (`ReturnValues` gives the new count for the RateLimit
//! headers, without a read); only when it succeeds is the usage row of the repository added
//! to. The quota counters are exact and atomic; a process that died between the two writes
//! would leave one pull out of the per-repository breakdown, never out of the daily total.
//! (A TransactWriteItems of both was tried: real DynamoDB runs it atomically, but moto does
//! not under concurrency, so the conformance suite could not show it; this design needs no
//! transaction.) A day's usage of a tenant is one Query.

use crate::error::sdk_error;
use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use nixery_core::accounts::{Accounts, Counted, Day, Meter, Tenant, UsageQuery, UsageRow};
use nixery_core::storage::StorageError;
use std::collections::HashMap;

type Item = HashMap<String, AttributeValue>;

#[derive(Clone)]
pub struct DynamoAccounts {
    client: Client,
    table: String,
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn error<E: ProvideErrorMetadata + std::fmt::Debug>(op: &str, e: SdkError<E>) -> StorageError {
    sdk_error("DynamoDB", op, "the accounts table", e)
}

fn condition_failed<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

fn number(item: &Item, name: &str) -> u64 {
    item.get(name)
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn text<'a>(item: &'a Item, name: &str) -> &'a str {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map_or("", String::as_str)
}

fn key(pk: String, sk: &str) -> Item {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

fn corrupt(key: &str, reason: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt {
        key: key.into(),
        reason: reason.to_string(),
    }
}

impl DynamoAccounts {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoAccounts {
            client,
            table: table.into(),
        }
    }

    /// Create the table as `infra/` declares it (keys `pk` and `sk`, strings, on-demand):
    /// for tests and self-hosted DynamoDB-compatible servers.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StorageError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StorageError::backend("DynamoDB", e);
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
        };
        let schema = |name: &str, kind| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
        };
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk").map_err(invalid)?)
            .attribute_definitions(attr("sk").map_err(invalid)?)
            .key_schema(schema("pk", KeyType::Hash).map_err(invalid)?)
            .key_schema(schema("sk", KeyType::Range).map_err(invalid)?)
            .send()
            .await
            .map_err(|e| error("CreateTable", e))?;
        Ok(())
    }

    /// Put a tenant if its presence is as `exists` says; whether it was written.
    async fn put_tenant(&self, tenant: &Tenant, exists: bool) -> Result<bool, StorageError> {
        let data =
            serde_json::to_string(tenant).map_err(|e| StorageError::backend("DynamoDB", e))?;
        let condition = match exists {
            true => "attribute_exists(pk)",
            false => "attribute_not_exists(pk)",
        };
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(key(format!("tenant#{}", tenant.name), "profile")))
            .item("data", s(data))
            .condition_expression(condition)
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(error("PutItem", e)),
        }
    }

    async fn get(&self, pk: String, sk: &str) -> Result<Option<Item>, StorageError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key(pk, sk)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| error("GetItem", e))?;
        Ok(out.item)
    }

    /// Every item whose pk starts with `prefix` (admin reports only: a Scan).
    async fn scan(&self, prefix: &str) -> Result<Vec<Item>, StorageError> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("begins_with(pk, :p)")
                .expression_attribute_values(":p", s(prefix))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| error("Scan", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// A tenant's usage rows between two days (a Query).
    async fn query_usage(
        &self,
        tenant: &str,
        query: &UsageQuery,
    ) -> Result<Vec<Item>, StorageError> {
        let low = query
            .since
            .as_ref()
            .map_or("0000".to_string(), |d| d.to_string());
        let high = query
            .until
            .as_ref()
            .map_or("9999".to_string(), |d| format!("{d}#\u{10ffff}"));
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :low AND :high")
                .expression_attribute_values(":pk", s(format!("usage#{tenant}")))
                .expression_attribute_values(":low", s(&low))
                .expression_attribute_values(":high", s(&high))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| error("Query", e))?;
            items.extend(out.items.unwrap_or_default());
            match out.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(items),
            }
        }
    }

    /// Add `by` to counter `attr` of a usage row.
    async fn add(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        attr: &str,
        by: u64,
    ) -> Result<(), StorageError> {
        self.client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(
                format!("usage#{tenant}"),
                &format!("{day}#{repository}"),
            )))
            .update_expression("ADD #m :by")
            .expression_attribute_names("#m", attr)
            .expression_attribute_values(":by", n(by))
            .send()
            .await
            .map_err(|e| error("UpdateItem", e))?;
        Ok(())
    }
}

fn usage_row(item: &Item) -> Result<UsageRow, StorageError> {
    let (pk, sk) = (text(item, "pk"), text(item, "sk"));
    let tenant = pk
        .strip_prefix("usage#")
        .ok_or_else(|| corrupt(pk, "not a usage item"))?;
    let (day, repository) = sk
        .split_once('#')
        .ok_or_else(|| corrupt(sk, "not day#repository"))?;
    Ok(UsageRow {
        tenant: tenant.to_string(),
        day: Day::parse(day).map_err(|e| corrupt(sk, e))?,
        repository: repository.to_string(),
        pulls: number(item, "pulls"),
        bytes: number(item, "bytes"),
        builds: number(item, "builds"),
    })
}

#[async_trait]
impl Accounts for DynamoAccounts {
    async fn create_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        self.put_tenant(tenant, false).await
    }

    async fn get_tenant(&self, name: &str) -> Result<Option<Tenant>, StorageError> {
        let pk = format!("tenant#{name}");
        let Some(item) = self.get(pk.clone(), "profile").await? else {
            return Ok(None);
        };
        serde_json::from_str(text(&item, "data"))
            .map(Some)
            .map_err(|e| corrupt(&pk, e))
    }

    async fn list_tenants(&self) -> Result<Vec<Tenant>, StorageError> {
        let mut tenants: Vec<Tenant> = self
            .scan("tenant#")
            .await?
            .iter()
            .map(|item| {
                serde_json::from_str(text(item, "data")).map_err(|e| corrupt(text(item, "pk"), e))
            })
            .collect::<Result<_, _>>()?;
        tenants.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(tenants)
    }

    async fn update_tenant(&self, tenant: &Tenant) -> Result<bool, StorageError> {
        self.put_tenant(tenant, true).await
    }

    async fn delete_tenant(&self, name: &str) -> Result<bool, StorageError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("tenant#{name}"), "profile")))
            .condition_expression("attribute_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(error("DeleteItem", e)),
        }
    }

    async fn count(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        meter: Meter,
        limit: Option<u64>,
    ) -> Result<Counted, StorageError> {
        let attr = meter.name();
        let mut update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(format!("quota#{tenant}"), day.as_str())))
            .update_expression("ADD #m :one")
            .expression_attribute_names("#m", attr)
            .expression_attribute_values(":one", n(1))
            .return_values(aws_sdk_dynamodb::types::ReturnValue::UpdatedNew);
        if let Some(limit) = limit {
            update = update
                .condition_expression("attribute_not_exists(#m) OR #m < :limit")
                .expression_attribute_values(":limit", n(limit));
        }
        let used = match update.send().await {
            Ok(out) => number(&out.attributes.unwrap_or_default(), attr),
            Err(e) if condition_failed(&e) => {
                let used = self.used(tenant, day, meter).await?;
                return Ok(Counted {
                    allowed: false,
                    used,
                });
            }
            Err(e) => return Err(error("UpdateItem", e)),
        };
        self.add(tenant, day, repository, attr, 1).await?;
        Ok(Counted {
            allowed: true,
            used,
        })
    }

    async fn used(&self, tenant: &str, day: &Day, meter: Meter) -> Result<u64, StorageError> {
        let item = self.get(format!("quota#{tenant}"), day.as_str()).await?;
        Ok(item.map_or(0, |i| number(&i, meter.name())))
    }

    async fn add_bytes(
        &self,
        tenant: &str,
        day: &Day,
        repository: &str,
        bytes: u64,
    ) -> Result<(), StorageError> {
        self.add(tenant, day, repository, "bytes", bytes).await
    }

    async fn usage(&self, query: &UsageQuery) -> Result<Vec<UsageRow>, StorageError> {
        let items = match &query.tenant {
            Some(tenant) => self.query_usage(tenant, query).await?,
            None => self.scan("usage#").await?,
        };
        let mut rows: Vec<UsageRow> = items.iter().map(usage_row).collect::<Result<_, _>>()?;
        rows.retain(|r| query.matches(&r.tenant, &r.day));
        rows.sort_by(|a, b| {
            (&a.tenant, &a.day, &a.repository).cmp(&(&b.tenant, &b.day, &b.repository))
        });
        Ok(rows)
    }
}
