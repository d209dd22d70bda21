//! Blobs in S3 under `blobs/sha256/<hex>`.
//!
//! Uploads are conditional (`If-None-Match: *`) and carry a SHA-256 checksum
//! that S3 verifies; since keys are content digests, a 412 (someone stored
//! the same bytes first) counts as success. Layers above `MULTIPART_THRESHOLD`
//! go up in parts, and a failed multipart upload is aborted. Objects get no
//! `Content-Encoding`: clients verify digests of the raw bytes. Throttling
//! is retried with backoff by the SDK's standard retry policy (see `clients`).

use async_trait::async_trait;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
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
/// Part size (S3's minimum is 5 MiB for all parts but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

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

fn is_precondition_failed<E: ProvideErrorMetadata>(e: &SdkError<E>) -> bool {
    let code = e.as_service_error().and_then(|s| s.code());
    matches!(
        code,
        Some("PreconditionFailed") | Some("ConditionalRequestConflict")
    ) || e.raw_response().is_some_and(|r| r.status().as_u16() == 412)
}

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
        let result = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&key)
            .if_none_match("*")
            .checksum_sha256(&checksum)
            .content_type("application/octet-stream")
            .body(ByteStream::from(body))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_precondition_failed(&e) => Ok(()),
            Err(e) => Err(s3_error("PutObject", &key, e)),
        }
    }

    async fn put_multipart(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        let key = object_key(digest);
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(&key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .content_type("application/octet-stream")
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", &key, e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_string();
        let result = self.upload_parts(&key, &upload_id, file).await;
        if result.is_err() {
            // Leave no orphaned parts behind (the bucket lifecycle rule is the backstop).
            let abort = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&key)
                .upload_id(&upload_id)
                .send()
                .await;
            if let Err(e) = abort {
                tracing::warn!(key, error = ?e, "aborting multipart upload failed");
            }
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        file: &Path,
    ) -> Result<(), StorageError> {
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| StorageError::io(file, e))?;
        let mut parts = Vec::new();
        for number in 1.. {
            let chunk = read_chunk(&mut f, PART_SIZE)
                .await
                .map_err(|e| StorageError::io(file, e))?;
            if chunk.is_empty() && number > 1 {
                break;
            }
            let checksum = checksum_b64(&Digest::of(&chunk));
            let out = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_sha256(&checksum)
                .body(ByteStream::from(chunk.clone()))
                .send()
                .await
                .map_err(|e| s3_error("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_string))
                    .set_checksum_sha256(out.checksum_sha256().map(str::to_string))
                    .build(),
            );
            if chunk.len() < PART_SIZE {
                break;
            }
        }
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts))
            .build();
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(upload)
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", key, e))?;
        Ok(())
    }
}

/// S3's `x-amz-checksum-sha256`: base64 of the raw digest. A blob's digest
/// is its SHA-256, so S3 checks exactly what clients will check.
fn checksum_b64(digest: &Digest) -> String {
    base64::engine::general_purpose::STANDARD.encode(hex::decode(digest.hex()).unwrap_or_default())
}

async fn read_chunk(f: &mut tokio::fs::File, size: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(size);
    let mut limited = f.take(size as u64);
    limited.read_to_end(&mut buf).await?;
    Ok(buf.into())
}

#[async_trait]
impl BlobStore for S3BlobStore {
    async fn put_file(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        if self.size(digest).await?.is_some() {
            let _ = tokio::fs::remove_file(file).await;
            return Ok(());
        }
        let len = tokio::fs::metadata(file)
            .await
            .map_err(|e| StorageError::io(file, e))?
            .len();
        if len > self.multipart_threshold {
            self.put_multipart(digest, file).await?;
        } else {
            let body = tokio::fs::read(file)
                .await
                .map_err(|e| StorageError::io(file, e))?;
            self.put_single(digest, body.into()).await?;
        }
        let _ = tokio::fs::remove_file(file).await;
        Ok(())
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

    async fn get_bytes(&self, digest: &Digest) -> Result<Option<Bytes>, StorageError> {
        let key = object_key(digest);
        let result = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await;
        match result {
            Ok(out) => {
                let data = out.body.collect().await.map_err(|e| {
                    StorageError::backend("S3", format!("reading GetObject body of {key}: {e}"))
                })?;
                Ok(Some(data.into_bytes()))
            }
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => Ok(None),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(s3_error("GetObject", &key, e)),
        }
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
