//! Batch reads and writes, with DynamoDB's per-request limits and its unprocessed-item retries.

use super::{dynamo_error, s, DynamoIndex};
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, PutRequest, WriteRequest};
use nixery_core::storage::StorageError;
use std::collections::HashMap;
use std::time::Duration;

/// BatchGetItem takes at most 100 keys.
const GET_BATCH: usize = 100;
/// BatchWriteItem takes at most 25 requests.
const WRITE_BATCH: usize = 25;
/// Rounds of retrying unprocessed items before giving up.
const UNPROCESSED_ROUNDS: u32 = 8;

pub(super) type Item = HashMap<String, AttributeValue>;

fn backoff(round: u32) -> Duration {
    Duration::from_millis(50 << round)
}

impl DynamoIndex {
    /// The items under `pks` that exist, in any order, `GET_BATCH` keys per request.
    pub(super) async fn batch_get(&self, pks: &[String]) -> Result<Vec<Item>, StorageError> {
        let mut items = Vec::new();
        for chunk in pks.chunks(GET_BATCH) {
            items.extend(self.batch_get_chunk(chunk).await?);
        }
        Ok(items)
    }

    async fn batch_get_chunk(&self, pks: &[String]) -> Result<Vec<Item>, StorageError> {
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
                    tokio::time::sleep(backoff(round)).await;
                }
                _ => return Ok(items),
            }
        }
        Err(StorageError::backend(
            "DynamoDB",
            "BatchGetItem kept returning unprocessed keys (throttled)",
        ))
    }

    /// Put (replace) `items`, `WRITE_BATCH` per request.
    pub(super) async fn batch_put(&self, items: Vec<Item>) -> Result<(), StorageError> {
        let mut requests = Vec::new();
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(|e| StorageError::backend("DynamoDB", e))?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        for chunk in requests.chunks(WRITE_BATCH) {
            self.batch_write_chunk(chunk.to_vec()).await?;
        }
        Ok(())
    }

    async fn batch_write_chunk(&self, mut requests: Vec<WriteRequest>) -> Result<(), StorageError> {
        for round in 0..UNPROCESSED_ROUNDS {
            let out = self
                .client
                .batch_write_item()
                .request_items(&self.table, requests)
                .send()
                .await
                .map_err(|e| dynamo_error("BatchWriteItem", e))?;
            match out
                .unprocessed_items
                .and_then(|mut u| u.remove(&self.table))
            {
                Some(rest) if !rest.is_empty() => {
                    requests = rest;
                    tokio::time::sleep(backoff(round)).await;
                }
                _ => return Ok(()),
            }
        }
        Err(StorageError::backend(
            "DynamoDB",
            "BatchWriteItem kept returning unprocessed items (throttled)",
        ))
    }
}
