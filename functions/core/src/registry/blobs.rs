//! `GET|HEAD /v2/<name>/blobs/<digest>`: HEAD answered here, GET redirected
//! or streamed from a local file with Range support.

use super::auth::Identity;
use super::error::{ErrorCode, RegistryError};
use super::metering;
use super::Registry;
use crate::digest::{Digest, DigestError};
use crate::storage::BlobAccess;
use axum::extract::Request;
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// Read size when streaming a local blob.
const BLOB_CHUNK: usize = 512 * 1024;

pub(super) async fn get(
    reg: &Registry,
    name: &str,
    digest: &str,
    req: Request,
    identity: Option<&Identity>,
) -> Result<Response, RegistryError> {
    let resp = serve(reg, digest, req).await?;
    if let (Some(auth), Some(identity)) = (&reg.auth, identity) {
        let (status, headers) = (resp.status(), resp.headers().clone());
        if let Some(bytes) = billed_bytes(reg, status, &headers).await? {
            metering::count_bytes(auth, identity, name, bytes).await?;
        }
    }
    Ok(resp)
}

/// The bytes a blob response hands out: its body, or the whole blob it redirects to.
async fn billed_bytes(
    reg: &Registry,
    status: StatusCode,
    headers: &axum::http::HeaderMap,
) -> Result<Option<u64>, RegistryError> {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    match status {
        StatusCode::OK | StatusCode::PARTIAL_CONTENT => {
            Ok(header("content-length").and_then(|v| v.parse().ok()))
        }
        StatusCode::TEMPORARY_REDIRECT => {
            match header("docker-content-digest").and_then(|v| v.parse::<Digest>().ok()) {
                Some(d) => blob_size(reg, &d).await,
                None => Ok(None),
            }
        }
        _ => Ok(None),
    }
}

/// A blob's size, remembered: blobs never change once stored.
async fn blob_size(reg: &Registry, digest: &Digest) -> Result<Option<u64>, RegistryError> {
    if let Some(size) = reg.blob_sizes.get(digest) {
        return Ok(Some(size));
    }
    let size = reg.blobs.size(digest).await?;
    if let Some(size) = size {
        reg.blob_sizes.put(digest, &size);
    }
    Ok(size)
}

async fn serve(reg: &Registry, digest: &str, req: Request) -> Result<Response, RegistryError> {
    let digest = parse_digest(digest)?;
    let unknown = || {
        RegistryError::new(
            ErrorCode::BlobUnknown,
            format!("blob {digest} is not in this registry"),
        )
    };
    if req.method() == Method::HEAD {
        let size = blob_size(reg, &digest).await?.ok_or_else(unknown)?;
        return Ok(blob_headers(
            StatusCode::OK.into_response(),
            &digest,
            Some(size),
        ));
    }
    let access = match reg.local_blobs.get(&digest) {
        Some(path) => BlobAccess::File(path),
        None => {
            let access = reg.blobs.access(&digest).await?.ok_or_else(unknown)?;
            // Local paths are stable; presigned URLs expire and are never kept.
            if let BlobAccess::File(path) = &access {
                reg.local_blobs.put(&digest, path);
            }
            access
        }
    };
    match access {
        BlobAccess::Redirect(url) => {
            let resp = (StatusCode::TEMPORARY_REDIRECT, [(header::LOCATION, url)]).into_response();
            Ok(blob_headers(resp, &digest, None))
        }
        BlobAccess::File(path) => {
            let ranged = req.headers().contains_key(header::RANGE);
            if let Some(resp) = from_memory(reg, &digest, &path, ranged).await? {
                return Ok(resp);
            }
            let resp = ServeFile::new(path)
                // Larger reads than the 64 KiB default: fewer syscalls and frames per layer.
                .with_buf_chunk_size(BLOB_CHUNK)
                .oneshot(req)
                .await
                .map_err(|e| {
                    RegistryError::new(ErrorCode::Unknown, format!("reading blob {digest}: {e}"))
                })?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Err(unknown());
            }
            Ok(blob_headers(resp.map(axum::body::Body::new), &digest, None))
        }
    }
}

/// A whole-blob GET of a small local blob, answered from memory (read from its file once).
/// None for ranges, big blobs and unreadable files: the file server handles those.
async fn from_memory(
    reg: &Registry,
    digest: &Digest,
    path: &std::path::Path,
    ranged: bool,
) -> Result<Option<Response>, RegistryError> {
    if ranged {
        return Ok(None);
    }
    let bytes = match reg.hot_blobs.get(digest) {
        Some(bytes) => bytes,
        None => {
            match blob_size(reg, digest).await? {
                Some(size) if reg.hot_blobs.fits(size) => {}
                _ => return Ok(None),
            }
            let Ok(read) = tokio::fs::read(path).await else {
                return Ok(None);
            };
            let bytes = Bytes::from(read);
            reg.hot_blobs.put(digest, bytes.clone());
            bytes
        }
    };
    let len = bytes.len() as u64;
    let resp = Response::new(axum::body::Body::from(bytes));
    Ok(Some(blob_headers(resp, digest, Some(len))))
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
