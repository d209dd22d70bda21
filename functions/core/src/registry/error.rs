//! Registry errors, each declared once with its code and HTTP status, and
//! rendered as `{"errors":[{"code","message","detail"}]}`.
//!
//! The one rule for failures inside the registry, in the `From` impls below: log them in full
//! here, and tell the client what it can act on, never internals (paths, URLs, stderr,
//! storage or AWS details).

use crate::builder::{BuildError, RemoteError};
use crate::nix::NixError;
use crate::storage::StorageError;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

/// Seconds a client is asked to wait before retrying a build that is still running.
pub const RETRY_AFTER_SECS: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BlobUnknown,
    Denied,
    DigestInvalid,
    ManifestUnknown,
    NameInvalid,
    PaginationNumberInvalid,
    TagInvalid,
    Unsupported,
    MethodNotAllowed,
    TooManyRequests,
    Unauthorized,
    Unavailable,
    Unknown,
}

impl ErrorCode {
    /// The spec's code string and HTTP status.
    pub fn parts(self) -> (&'static str, StatusCode) {
        use ErrorCode::*;
        match self {
            BlobUnknown => ("BLOB_UNKNOWN", StatusCode::NOT_FOUND),
            Denied => ("DENIED", StatusCode::FORBIDDEN),
            DigestInvalid => ("DIGEST_INVALID", StatusCode::BAD_REQUEST),
            ManifestUnknown => ("MANIFEST_UNKNOWN", StatusCode::NOT_FOUND),
            NameInvalid => ("NAME_INVALID", StatusCode::BAD_REQUEST),
            // Not in the OCI spec's table; the code distribution (the reference registry) uses.
            PaginationNumberInvalid => ("PAGINATION_NUMBER_INVALID", StatusCode::BAD_REQUEST),
            TagInvalid => ("TAG_INVALID", StatusCode::BAD_REQUEST),
            Unsupported => ("UNSUPPORTED", StatusCode::NOT_FOUND),
            MethodNotAllowed => ("UNSUPPORTED", StatusCode::METHOD_NOT_ALLOWED),
            TooManyRequests => ("TOOMANYREQUESTS", StatusCode::TOO_MANY_REQUESTS),
            Unauthorized => ("UNAUTHORIZED", StatusCode::UNAUTHORIZED),
            Unavailable => ("UNAVAILABLE", StatusCode::SERVICE_UNAVAILABLE),
            Unknown => ("UNKNOWN", StatusCode::INTERNAL_SERVER_ERROR),
        }
    }
}

#[derive(Debug, Clone)]
pub struct RegistryError {
    pub code: ErrorCode,
    pub message: String,
    pub detail: Value,
    /// Seconds, for 429 answers.
    pub retry_after: Option<u64>,
    /// More headers: the auth challenge of a 401, the rate limits of a 429.
    pub headers: Vec<(&'static str, String)>,
}

impl RegistryError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RegistryError {
            code,
            message: message.into(),
            detail: Value::Null,
            retry_after: None,
            headers: Vec::new(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn status(&self) -> StatusCode {
        self.code.parts().1
    }

    /// 503 with Retry-After: the storage behind the registry is shedding load.
    pub fn unavailable_for(secs: u64) -> Self {
        let message = "the registry's storage is busy; retry shortly";
        RegistryError::new(ErrorCode::Unavailable, message).with_retry_after(secs)
    }

    /// A 429 that tells the client when to come back.
    pub fn retry_later(message: impl Into<String>, secs: u64) -> Self {
        RegistryError::new(ErrorCode::TooManyRequests, message).with_retry_after(secs)
    }

    fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }
}

impl From<StorageError> for RegistryError {
    fn from(e: StorageError) -> Self {
        if let StorageError::Throttled { .. } = e {
            tracing::warn!(error = %e, "storage throttled");
            return RegistryError::unavailable_for(RETRY_AFTER_SECS);
        }
        tracing::error!(error = %e, "storage error");
        RegistryError::new(
            ErrorCode::Unknown,
            "the registry's storage failed; see the server log",
        )
    }
}

impl From<&BuildError> for RegistryError {
    fn from(e: &BuildError) -> Self {
        use BuildError as B;
        match e {
            B::UnknownPackages { missing, .. } => {
                RegistryError::new(ErrorCode::ManifestUnknown, e.to_string())
                    .with_detail(json!({ "missing": missing }))
            }
            B::Nix(NixError::Timeout { .. }) | B::LeaseTimeout(_) => {
                tracing::warn!(error = %e, "build timed out");
                RegistryError::new(ErrorCode::Unavailable, e.to_string())
            }
            B::BuildQuota { retry_after } => RegistryError::retry_later(
                "the daily build limit of this account is reached; cached images can still be pulled",
                *retry_after,
            ),
            B::Storage(StorageError::Throttled { .. }) => {
                tracing::warn!(error = %e, "build throttled by storage");
                RegistryError::unavailable_for(RETRY_AFTER_SECS)
            }
            B::Remote(RemoteError::Throttled) => RegistryError::retry_later(
                "the registry is building many images; retry shortly",
                RETRY_AFTER_SECS,
            ),
            B::Remote(RemoteError::Timeout(_)) => {
                RegistryError::new(ErrorCode::Unavailable, e.to_string())
            }
            B::Remote(RemoteError::Failed {
                unavailable,
                message,
            }) => {
                let code = match unavailable {
                    true => ErrorCode::Unavailable,
                    false => ErrorCode::Unknown,
                };
                RegistryError::new(code, message.clone())
            }
            _ => {
                tracing::error!(error = %e, "image build failed");
                RegistryError::new(
                    ErrorCode::Unknown,
                    format!("the image build failed ({}); see the server log", stage(e)),
                )
            }
        }
    }
}

/// Where a build failed, in words a client may see.
fn stage(e: &BuildError) -> &'static str {
    use BuildError as B;
    match e {
        B::Nix(_) => "evaluating the package set with Nix",
        B::Storage(_) => "storing the image",
        B::Pack(_) | B::StorePath { .. } => "packing a layer",
        B::Image(_) => "writing the image metadata",
        B::Cache(_) => "fetching store paths from the binary cache",
        B::Remote(_) => "in the builder function",
        B::Source(_) => "resolving the package source",
        B::UnknownPackages { .. }
        | B::LeaseTimeout(_)
        | B::Interrupted(_)
        | B::BuildQuota { .. } => "inside the registry",
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (code, status) = self.code.parts();
        let body =
            json!({"errors": [{"code": code, "message": self.message, "detail": self.detail}]});
        let mut resp = (status, axum::Json(body)).into_response();
        let headers = resp.headers_mut();
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.code == ErrorCode::MethodNotAllowed {
            headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        }
        for (name, value) in self.headers {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.append(name, v);
            }
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the fault soak: storage still throttling after the SDK's retries answered
    /// 500 UNKNOWN, which clients do not retry; it is a 503 with Retry-After.
    #[test]
    fn throttled_storage_is_a_503_with_retry_after() {
        let throttled = || StorageError::Throttled {
            service: "DynamoDB",
            message: "PutItem of the index table failed (ProvisionedThroughputExceededException)"
                .into(),
        };
        for response in [
            RegistryError::from(throttled()).into_response(),
            RegistryError::from(&BuildError::Storage(throttled())).into_response(),
        ] {
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(response.headers()[header::RETRY_AFTER], "10");
        }
        let failed = StorageError::backend("S3", "PutObject of the bucket failed (AccessDenied)");
        let response = RegistryError::from(failed).into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    }
}
