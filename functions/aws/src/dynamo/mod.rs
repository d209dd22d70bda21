//! The index in one DynamoDB table.
//!
//! Key design: a single string partition key `pk`, no sort key.
//!
//! | item            | pk                   | attributes                                    |
//! |-----------------|----------------------|-----------------------------------------------|
//! | layer entry     | `layer#<key>`        | `data`: JSON `LayerDesc`; `n`: paths in it    |
//! | store path      | `path#<store path>`  | `layer`: key of the last layer stored with it; `n`: that layer's path count |
//! | manifest entry  | `manifest#<key>`     | `data`: JSON `ManifestEntry`                  |
//! | alias           | `alias#<key>`        | `data`: JSON `AliasEntry`                     |
//! | build lease     | `lease#<key>`        | `owner`, `expires_ms`, `expires_at` (TTL, s)  |
//!
//! Layer and manifest entries are written once with `attribute_not_exists(pk)`; aliases are
//! replaced when their source moves. A layer item holds no path list, so it stays small
//! whatever the layer (items are capped at 400 KB); instead every path gets an item naming
//! its layer, written after the layer item, and a layer lies within a closure when all of
//! its `n` paths point at it (`layers_within`, no scan). Leases are taken with a condition
//! that the item is absent, expired or already ours; the table's TTL on `expires_at` deletes
//! stale leases eventually, and the `expires_ms` comparison makes expiry exact meanwhile.

mod batch;
mod layers;
mod leases;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_dynamodb::Client;
use nixery_core::image::LayerDesc;
use nixery_core::storage::{AliasEntry, Index, LayerEntry, ManifestEntry, StorageError};
use serde::{de::DeserializeOwned, Serialize};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

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

    /// Store `value` as the item's `data`, replacing any item there.
    async fn put<T: Serialize>(&self, pk: String, value: &T) -> Result<(), StorageError> {
        let data =
            serde_json::to_string(value).map_err(|e| StorageError::backend("DynamoDB", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .item("pk", s(pk))
            .item("data", s(data))
            .send()
            .await
            .map_err(|e| dynamo_error("PutItem", e))?;
        Ok(())
    }

    /// The `data` of one item, decoded; None if absent.
    async fn get<T: DeserializeOwned>(&self, pk: String) -> Result<Option<T>, StorageError> {
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
}

#[async_trait]
impl Index for DynamoIndex {
    async fn get_layers(
        &self,
        keys: &[String],
    ) -> Result<HashMap<String, LayerDesc>, StorageError> {
        self.layer_blobs(keys).await
    }

    async fn put_layer(&self, key: &str, entry: &LayerEntry) -> Result<bool, StorageError> {
        self.put_layer_items(key, entry).await
    }

    async fn layers_within(
        &self,
        closure: &BTreeSet<String>,
    ) -> Result<Vec<LayerEntry>, StorageError> {
        self.stored_layers_within(closure).await
    }

    async fn get_manifest(&self, key: &str) -> Result<Option<ManifestEntry>, StorageError> {
        self.get(format!("manifest#{key}")).await
    }

    async fn put_manifest(&self, key: &str, entry: &ManifestEntry) -> Result<bool, StorageError> {
        self.put_new(format!("manifest#{key}"), entry).await
    }

    async fn get_alias(&self, key: &str) -> Result<Option<AliasEntry>, StorageError> {
        self.get(format!("alias#{key}")).await
    }

    async fn put_alias(&self, key: &str, entry: &AliasEntry) -> Result<(), StorageError> {
        self.put(format!("alias#{key}"), entry).await
    }

    async fn acquire_lease(
        &self,
        key: &str,
        owner: &str,
        ttl: Duration,
    ) -> Result<bool, StorageError> {
        self.take_lease(key, owner, ttl).await
    }

    async fn release_lease(&self, key: &str, owner: &str) -> Result<(), StorageError> {
        self.give_back_lease(key, owner).await
    }
}
