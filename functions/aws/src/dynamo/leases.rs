//! Build leases: conditional writes with an exact expiry in `expires_ms` and a TTL attribute
//! that lets DynamoDB delete stale ones eventually.

use super::{condition_failed, dynamo_error, s, DynamoIndex};
use aws_sdk_dynamodb::types::AttributeValue;
use nixery_core::storage::{now_ms, StorageError};
use std::time::Duration;

impl DynamoIndex {
    /// Absent, expired or already ours: then it is (again) ours until `ttl` from now.
    pub(super) async fn take_lease(
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

    /// Delete the lease if `owner` still holds it.
    pub(super) async fn give_back_lease(&self, key: &str, owner: &str) -> Result<(), StorageError> {
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
