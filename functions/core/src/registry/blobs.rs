//! `GET|HEAD /v2/<name>/blobs/<digest>`: HEAD answered here, GET redirected
//! or streamed from a local file with Range support.

use super::error::{ErrorCode, RegistryError};
use super::Registry;
use crate::digest::{Digest, DigestError};
use crate::storage::{BlobAccess, StorageError};
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::ServeFile;

pub(super) async fn get(
    reg: &Registry,
    digest: &str,
    req: Request,
) -> Result<Response, RegistryError> {
    let digest = parse_digest(digest)?;
    let unknown = || {
        RegistryError::new(
            ErrorCode::BlobUnknown,
            format!("blob {digest} is not in this registry"),
        )
    };
    if req.method() == Method::HEAD {
        let size = reg
            .blobs
            .size(&digest)
            .await
            .map_err(storage_error)?
            .ok_or_else(unknown)?;
        return Ok(blob_headers(
            StatusCode::OK.into_response(),
            &digest,
            Some(size),
        ));
    }
    match reg
        .blobs
        .access(&digest)
        .await
        .map_err(storage_error)?
        .ok_or_else(unknown)?
    {
        BlobAccess::Redirect(url) => {
            Ok((StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response())
        }
        BlobAccess::File(path) => {
            let resp = ServeFile::new(path).oneshot(req).await.map_err(|e| {
                RegistryError::new(ErrorCode::Unknown, format!("reading blob {digest}: {e}"))
            })?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(unknown());
            }
            Ok(blob_headers(resp.map(axum::body::Body::new), &digest, None))
        }
    }
}

fn blob_headers(mut resp: Response, digest: &Digest, size: Option<u64>) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("Docker-Content-Digest", v);
    }
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Some(size) = size {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
        h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    }
    resp
}

pub(super) fn parse_digest(s: &str) -> Result<Digest, RegistryError> {
    s.parse().map_err(|e: DigestError| match e {
        DigestError::Malformed(_) => RegistryError::new(ErrorCode::DigestInvalid, e.to_string()),
        DigestError::Unsupported(_) => RegistryError::new(ErrorCode::DigestInvalid, e.to_string()),
    })
}

/// Storage failures are logged in full and reach the client as a short 500.
pub(super) fn storage_error(e: StorageError) -> RegistryError {
    tracing::error!(error = %e, "storage error");
    RegistryError::new(
        ErrorCode::Unknown,
        "the registry's storage failed; see the server log",
    )
}
