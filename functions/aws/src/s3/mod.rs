//! Blobs in S3 under `blobs/sha256/<hex>`.
//!
//! Uploads are conditional (`If-None-Match: *`) and carry a SHA-256 checksum that S3
//! verifies against the blob's digest, so an object is either exactly the blob or absent.
//! Since keys are content digests, a 412 (someone stored the same bytes first) counts as
//! success; a 409 (a conditional write to the same key in flight) is retried and then
//! checked. Layers above `MULTIPART_THRESHOLD` go up in parts (see `multipart`). Objects get
//! no `Content-Encoding`: clients verify digests of the raw bytes. Throttling is retried with
//! backoff by the SDK's standard retry policy (see `clients`).

mod multipart;

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::Client;
use base64::Engine;
use bytes::Bytes;
use nixery_core::digest::Digest;
use nixery_core::storage::{BlobAccess, BlobStore, StorageError};
use std::path::Path;
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// Objects larger than this are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
pub use multipart::PART_SIZE;

/// How long presigned blob URLs stay valid unless configured.
pub const DEFAULT_PRESIGN_TTL: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct S3BlobStore {
    client: Client,
    bucket: String,
    presign_ttl: Duration,
    multipart_threshold: u64,
}

/// The object key of a blob: the one place the layout is defined.
pub fn object_key(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

fn s3_error<E: ProvideErrorMetadata + std::fmt::Debug>(
    op: &str,
    key: &str,
    e: SdkError<E>,
) -> StorageError {
    crate::error::sdk_error("S3", op, key, e)
}

/// How an S3 write to a content-addressed key ended.
enum Conditional {
    Written,
    /// 412: the object exists already, with the same bytes since the key is their digest.
    Exists,
    /// 409: another conditional write to the key is in flight; try again, then check.
    Conflict,
}

/// How a conditional write ended; other errors become storage errors for `op` on `key`.
fn conditional<T, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, SdkError<E>>,
    op: &str,
    key: &str,
) -> Result<Conditional, StorageError> {
    let status = |e: &SdkError<E>| e.raw_response().map(|r| r.status().as_u16());
    match result {
        Ok(_) => Ok(Conditional::Written),
        Err(e) if status(&e) == Some(412) || e.code() == Some("PreconditionFailed") => {
            Ok(Conditional::Exists)
        }
        Err(e) if status(&e) == Some(409) || e.code() == Some("ConditionalRequestConflict") => {
            Ok(Conditional::Conflict)
        }
        Err(e) => Err(s3_error(op, key, e)),
    }
}

/// Attempts at a conditional write that keeps meeting a 409.
const CONFLICT_ATTEMPTS: u32 = 3;
/// Backoff after a 409, doubled each time.
const CONFLICT_BACKOFF: Duration = Duration::from_millis(200);

impl S3BlobStore {
    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        S3BlobStore {
            client,
            bucket: bucket.into(),
            presign_ttl: DEFAULT_PRESIGN_TTL,
            multipart_threshold: MULTIPART_THRESHOLD,
        }
    }

    /// How long the presigned URLs that blob GETs redirect to stay valid.
    pub fn with_presign_ttl(mut self, ttl: Duration) -> Self {
        self.presign_ttl = ttl;
        self
    }

    /// Lower the multipart threshold (tests exercise multipart with small files).
    pub fn with_multipart_threshold(mut self, bytes: u64) -> Self {
        self.multipart_threshold = bytes;
        self
    }

    async fn put_single(&self, digest: &Digest, body: Bytes) -> Result<(), StorageError> {
        let key = object_key(digest);
        let checksum = checksum_b64(digest);
        for attempt in 0..CONFLICT_ATTEMPTS {
            let put = self
                .client
                .put_object()
                .bucket(&self.bucket)
                .key(&key)
                .if_none_match("*")
                .checksum_sha256(&checksum)
                .content_type("application/octet-stream")
                .body(ByteStream::from(body.clone()))
                .send()
                .await;
            match conditional(put, "PutObject", &key)? {
                Conditional::Written | Conditional::Exists => return Ok(()),
                Conditional::Conflict => {
                    tokio::time::sleep(CONFLICT_BACKOFF * (1 << attempt)).await
                }
            }
        }
        self.exists_after_conflict(digest, &key).await
    }

    /// After repeated 409s: the other writer's object counts if it is there now.
    async fn exists_after_conflict(&self, digest: &Digest, key: &str) -> Result<(), StorageError> {
        match self.size(digest).await? {
            Some(_) => Ok(()),
            None => Err(StorageError::backend(
                "S3",
                format!("conditional write of {key} kept conflicting (409)"),
            )),
        }
    }

    async fn store_file(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        if self.size(digest).await?.is_some() {
            return Ok(());
        }
        let len = tokio::fs::metadata(file)
            .await
            .map_err(|e| StorageError::io(file, e))?
            .len();
        if len > self.multipart_threshold {
            return self.put_multipart(digest, file, len).await;
        }
        let body = tokio::fs::read(file)
            .await
            .map_err(|e| StorageError::io(file, e))?;
        self.put_single(digest, body.into()).await
    }
}

/// S3's `x-amz-checksum-sha256`: base64 of the raw digest. A blob's digest
/// is its SHA-256, so S3 checks exactly what clients will check.
fn checksum_b64(digest: &Digest) -> String {
    base64::engine::general_purpose::STANDARD.encode(hex::decode(digest.hex()).unwrap_or_default())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_file(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        let stored = self.store_file(digest, file).await;
        // Taken over whatever happened: a warm builder's /tmp must not fill up.
        let _ = tokio::fs::remove_file(file).await;
        stored
    }

    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.put_single(digest, bytes).await
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let key = object_key(digest);
        let result = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(out.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(s3_error("HeadObject", &key, e)),
        }
    }

    async fn get_bytes(
        &self,
        digest: &Digest,
        max_len: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        let key = object_key(digest);
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        let out = match result {
            Ok(out) => out,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => return Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => {
                return Ok(None)
            }
            Err(e) => return Err(s3_error("GetObject", &key, e)),
        };
        // Dropping the body unread closes the connection: a long object is never fetched.
        if out
            .content_length()
            .is_none_or(|n| n < 0 || n as u64 > max_len)
        {
            return Ok(None);
        }
        let mut bytes = Vec::new();
        let body = out.body.into_async_read().take(max_len.saturating_add(1));
        tokio::io::BufReader::new(body)
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| StorageError::backend("S3", format!("reading {key}: {e}")))?;
        Ok((bytes.len() as u64 <= max_len).then(|| bytes.into()))
    }

    async fn access(&self, digest: &Digest) -> Result<Option<BlobAccess>, StorageError> {
        if self.size(digest).await?.is_none() {
            return Ok(None);
        }
        let key = object_key(digest);
        let config = PresigningConfig::expires_in(self.presign_ttl)
            .map_err(|e| StorageError::backend("S3", e))?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .presigned(config)
            .await
            .map_err(|e| s3_error("presign GetObject", &key, e))?;
        Ok(Some(BlobAccess::Redirect(req.uri().to_string())))
    }
}
