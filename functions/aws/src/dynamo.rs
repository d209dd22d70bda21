//! The index in one DynamoDB table.
//!
//! Key design: a single string partition key `pk`, no sort key.
//!
//! | item            | pk               | attributes                                   |
//! |-----------------|------------------|----------------------------------------------|
//! | layer entry     | `layer#<key>`    | `data`: JSON `LayerEntry`                    |
//! | manifest entry  | `manifest#<key>` | `data`: JSON `ManifestEntry`                 |
//! | build lease     | `lease#<key>`    | `owner`, `expires_ms`, `expires_at` (TTL, s) |
//!
//! Entries are written once with `attribute_not_exists(pk)`. Leases are taken
//! with a condition that the item is absent, expired or already ours; the
//! table's TTL on `expires_at` deletes stale leases eventually, and the
//! `expires_ms` comparison makes expiry exact meanwhile.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use aws_sdk_dynamodb::Client;
use nixery_core::storage::{now_ms, Index, LayerEntry, ManifestEntry, StorageError};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::HashMap;
use std::time::Duration;

/// BatchGetItem takes at most 100 keys.
const BATCH: usize = 100;
/// Rounds of retrying unprocessed keys before giving up.
const UNPROCESSED_ROUNDS: u32 = 8;

#[derive(Clone)]
pub struct DynamoIndex {
    client: Client,
    table: String,
}

fn dynamo_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    op: &str,
    e: SdkError<E>,
) -> StorageError {
    crate::error::sdk_error("DynamoDB", op, "the index table", e)
}

fn condition_failed<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    e.as_service_error().and_then(|s| s.code()) == Some("ConditionalCheckFailedException")
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn decode<T: DeserializeOwned>(
    pk: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<T, StorageError> {
    let corrupt = |reason: String| StorageError::Corrupt {
        key: pk.to_string(),
        reason,
    };
    let data = item
        .get("data")
        .and_then(|v| v.as_s().ok())
        .ok_or_else(|| corrupt("no data attribute".into()))?;
    serde_json::from_str(data).map_err(|e| corrupt(e.to_string()))
}

impl DynamoIndex {
    /// Create the table as `infra/` declares it (hash key `pk` of type S,
    /// on-demand capacity): for tests and self-hosted DynamoDB-compatible servers.
    pub async fn create_table(client: &Client, table: &str) -> Result<(), StorageError> {
        use aws_sdk_dynamodb::types::{
            AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
        };
        let invalid = |e: aws_sdk_dynamodb::error::BuildError| StorageError::backend("DynamoDB", e);
        let attr = AttributeDefinition::builder()
            .attribute_name("pk")
            .attribute_type(ScalarAttributeType::S)
            .build()
            .map_err(invalid)?;
        let key = KeySchemaElement::builder()
            .attribute_name("pk")
            .key_type(KeyType::Hash)
            .build()
            .map_err(invalid)?;
        client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr)
            .key_schema(key)
            .send()
            .await
            .map_err(|e| dynamo_error("CreateTable", e))?;
        Ok(())
    }

    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoIndex {
            client,
            table: table.into(),
        }
    }

    async fn put_new<T: Serialize>(&self, pk: String, value: &T) -> Result<bool, StorageError> {
        let data =
            serde_json::to_string(value).map_err(|e| StorageError::backend("DynamoDB", e))?;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("data", s(data))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_error("PutItem", e)),
        }
    }

    /// BatchGetItem for up to 100 keys, retrying unprocessed keys with backoff.
    async fn batch_get(
        &self,
        pks: &[String],
    ) -> Result<Vec<HashMap<String, AttributeValue>>, StorageError> {
        let keys = pks
            .iter()
            .map(|pk| HashMap::from([("pk".to_string(), s(pk.clone()))]))
            .collect();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| StorageError::backend("DynamoDB", e))?;
        let mut items = Vec::new();
        for round in 0..UNPROCESSED_ROUNDS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| dynamo_error("BatchGetItem", e))?;
            if let Some(found) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                items.extend(found);
            }
            match out.unprocessed_keys.and_then(|mut u| u.remove(&self.table)) {
                Some(rest) if !rest.keys.is_empty() => {
                    request = rest;
                    tokio::time::sleep(Duration::from_millis(50 << round)).await;
                }
                _ => return Ok(items),
            }
        }
        Err(StorageError::backend(
            "DynamoDB",
            "BatchGetItem kept returning unprocessed keys (throttled)",
        ))
    }
}

#[async_trait]
impl Index for DynamoIndex {
    async fn get_layers(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LayerEntry>, StorageError> {
        let mut out = HashMap::new();
        for chunk in keys.chunks(BATCH) {
            let pks: Vec<String> = chunk.iter().map(|k| format!("layer#{k}")).collect();
            for item in self.batch_get(&pks).await? {
                let Some(pk) = item.get("pk").and_then(|v| v.as_s().ok()) else {
                    continue;
                };
                let entry: LayerEntry = decode(pk, &item)?;
                out.insert(pk.trim_start_matches("layer#").to_string(), entry);
            }
        }
        Ok(out)
    }

    async fn put_layer(&self, key: &str, entry: &LayerEntry) -> Result<bool, StorageError> {
        self.put_new(format!("layer#{key}"), entry).await
    }

    async fn get_manifest(&self, key: &str) -> Result<Option<ManifestEntry>, StorageError> {
        let pk = format!("manifest#{key}");
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("pk", s(pk.clone()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| dynamo_error("GetItem", e))?;
        out.item.map(|item| decode(&pk, &item)).transpose()
    }

    async fn put_manifest(&self, key: &str, entry: &ManifestEntry) -> Result<bool, StorageError> {
        self.put_new(format!("manifest#{key}"), entry).await
    }

    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        let now = now_ms();
        let expires = now + ttl.as_millis() as u64;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(format!("lease#{key}")))
            .item("owner", s(owner))
            .item("expires_ms", AttributeValue::N(expires.to_string()))
            .item(
                "expires_at",
                AttributeValue::N((expires / 1000 + 1).to_string()),
            )
            .condition_expression("attribute_not_exists(pk) OR expires_ms < :now OR #owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":now", AttributeValue::N(now.to_string()))
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(e) if condition_failed(&e) => Ok(false),
            Err(e) => Err(dynamo_error("PutItem (lease)", e)),
        }
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StorageError> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("pk", s(format!("lease#{key}")))
            .condition_expression("#owner = :me")
            .expression_attribute_names("#owner", "owner")
            .expression_attribute_values(":me", s(owner))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(dynamo_error("DeleteItem (lease)", e)),
        }
    }
}
