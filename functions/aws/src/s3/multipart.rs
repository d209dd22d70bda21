//! Multipart uploads of large layers. S3 checks each part against its SHA-256; for the whole
//! object, SHA-256 exists only as a composite (the SHA-256 of the parts' digests), so the
//! whole-object check is split in two: the bytes read for the parts must hash to the blob's
//! digest (they are what the digest was computed over), and the composite S3 reports for the
//! completed object must be the one of exactly those parts. CompleteMultipartUpload is
//! conditional like a single PUT. A failed upload is aborted, so no parts are left behind.

use super::{
    conditional, object_key, s3_error, Conditional, S3BlobStore, CONFLICT_ATTEMPTS,
    CONFLICT_BACKOFF,
};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart};
use base64::Engine;
use bytes::Bytes;
use nixery_core::digest::Digest;
use nixery_core::storage::StorageError;
use sha2::{Digest as _, Sha256};
use std::path::Path;
use tokio::io::AsyncReadExt;

/// Part size (S3's minimum is 5 MiB for all parts but the last).
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// The parts of an upload, and the composite checksum S3 must report for them.
struct Parts {
    parts: Vec<CompletedPart>,
    composite: String,
}

impl S3BlobStore {
    pub(super) async fn put_multipart(
        &self,
        digest: &Digest,
        file: &Path,
        len: u64,
    ) -> Result<(), StorageError> {
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
        let uploaded = async {
            let parts = self
                .upload_parts(digest, &key, &upload_id, file, len)
                .await?;
            self.complete(digest, &key, &upload_id, parts).await
        };
        let result = uploaded.await;
        if !matches!(result, Ok(Conditional::Written)) {
            // Leave no parts behind (the bucket lifecycle rule is the backstop).
            self.abort(&key, &upload_id).await;
        }
        result.map(drop)
    }

    async fn upload_parts(
        &self,
        digest: &Digest,
        key: &str,
        upload_id: &str,
        file: &Path,
        len: u64,
    ) -> Result<Parts, StorageError> {
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| StorageError::io(file, e))?;
        let (mut whole, mut part_digests) = (Sha256::new(), Sha256::new());
        let mut parts = Vec::new();
        let count = len.div_ceil(PART_SIZE as u64).max(1);
        for number in 1..=count as i32 {
            let chunk = read_chunk(&mut f, PART_SIZE)
                .await
                .map_err(|e| StorageError::io(file, e))?;
            whole.update(&chunk);
            let part_digest = Sha256::digest(&chunk);
            part_digests.update(part_digest);
            let part = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(number)
                .checksum_sha256(b64(&part_digest))
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| s3_error("UploadPart", key, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(part.e_tag().map(str::to_string))
                    .set_checksum_sha256(part.checksum_sha256().map(str::to_string))
                    .build(),
            );
        }
        if Digest::from_hasher(whole) != *digest {
            let msg = format!("{} no longer holds the bytes of {digest}", file.display());
            return Err(StorageError::backend("S3", msg));
        }
        let composite = format!("{}-{count}", b64(&part_digests.finalize()));
        Ok(Parts { parts, composite })
    }

    async fn complete(
        &self,
        digest: &Digest,
        key: &str,
        upload_id: &str,
        parts: Parts,
    ) -> Result<Conditional, StorageError> {
        let upload = CompletedMultipartUpload::builder()
            .set_parts(Some(parts.parts))
            .build();
        for attempt in 0..CONFLICT_ATTEMPTS {
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .if_none_match("*")
                .multipart_upload(upload.clone())
                .send()
                .await;
            let reported = done.as_ref().ok().and_then(|o| o.checksum_sha256());
            if let Some(got) = reported.filter(|got| **got != parts.composite) {
                let want = &parts.composite;
                let msg = format!("{key}: S3 reports checksum {got}, the parts make {want}");
                return Err(StorageError::backend("S3", msg));
            }
            match conditional(done, "CompleteMultipartUpload", key)? {
                Conditional::Conflict => {
                    tokio::time::sleep(CONFLICT_BACKOFF * (1 << attempt)).await
                }
                ended => return Ok(ended),
            }
        }
        self.exists_after_conflict(digest, key).await?;
        Ok(Conditional::Exists)
    }

    async fn abort(&self, key: &str, upload_id: &str) {
        let abort = self
            .client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .send()
            .await;
        if let Err(e) = abort {
            tracing::warn!(key, error = ?e, "aborting a multipart upload failed");
        }
    }
}

fn b64(raw: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(raw)
}

async fn read_chunk(f: &mut tokio::fs::File, size: usize) -> std::io::Result<Bytes> {
    let mut buf = Vec::with_capacity(size);
    f.take(size as u64).read_to_end(&mut buf).await?;
    Ok(buf.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::checksum_b64;

    #[test]
    fn checksums_are_base64_of_raw_digests() {
        let d = Digest::of(b"x");
        assert_eq!(checksum_b64(&d), b64(&Sha256::digest(b"x")));
    }
}
