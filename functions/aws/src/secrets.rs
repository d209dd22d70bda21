//! The token signing secrets, from an SSM Parameter Store SecureString (created by the
//! Terraform), read once when the registry Lambda starts.

use crate::error::sdk_error;
use nixery_core::registry::auth::SigningKeys;
use nixery_core::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("parameter {0} holds no value")]
    Empty(String),
    #[error("parameter {name}: {source}")]
    Keys {
        name: String,
        source: nixery_core::registry::auth::KeyError,
    },
}

/// The secrets in parameter `name` (whitespace-separated; the first signs).
pub async fn signing_keys(
    client: &aws_sdk_ssm::Client,
    name: &str,
) -> Result<SigningKeys, SecretError> {
    let out = client
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .map_err(|e| sdk_error("SSM", "GetParameter", name, e))?;
    let value = out
        .parameter
        .and_then(|p| p.value)
        .ok_or_else(|| SecretError::Empty(name.to_string()))?;
    SigningKeys::parse(&value).map_err(|source| SecretError::Keys {
        name: name.to_string(),
        source,
    })
}
