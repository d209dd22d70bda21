//! One mapping of AWS SDK errors to storage errors: logged in full here,
//! reported with only the service, operation, target and AWS error code.

// The S3 and DynamoDB crates re-export the same smithy types.
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use nixery_core::storage::StorageError;

pub(crate) fn sdk_error<E>(
    service: &'static str,
    op: &str,
    target: &str,
    e: SdkError<E, HttpResponse>,
) -> StorageError
where
    E: ProvideErrorMetadata + std::fmt::Debug,
{
    let code = e
        .as_service_error()
        .and_then(|s| s.code())
        .unwrap_or("no error code")
        .to_string();
    tracing::error!(service, op, target, error = ?e, "AWS request failed");
    let message = format!("{op} of {target} failed ({code})");
    // A HEAD answer has no body, so a throttled HeadObject carries only its 503.
    let unavailable = e.raw_response().is_some_and(|r| r.status().as_u16() == 503);
    match unavailable || THROTTLING.contains(&code.as_str()) {
        // Still throttled after the SDK's retries: the client should come back later.
        true => StorageError::Throttled { service, message },
        false => StorageError::backend(service, message),
    }
}

/// The error codes S3 and DynamoDB send when they shed load (the SDK retries these first).
const THROTTLING: &[&str] = &[
    "SlowDown",
    "ServiceUnavailable",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "ThrottlingException",
    "Throttling",
];
