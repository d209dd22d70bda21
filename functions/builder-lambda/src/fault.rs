//! Fault injection for the end-to-end tests, off unless its variable is set:
//! `NIXERY_FAULT_ABORT_AFTER_UPLOADS=N` kills the process after N blob
//! uploads, as a builder that dies mid-build (out of memory, timeout) would;
//! with `NIXERY_FAULT_ONCE_FILE=PATH` it fires only while PATH does not exist
//! (and creates it), so the restarted builder then succeeds. Nothing else in
//! the builder knows about it.

use async_trait::async_trait;
use bytes::Bytes;
use nixery_core::digest::Digest;
use nixery_core::storage::{BlobAccess, BlobStore, StorageError};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

const VAR: &str = "NIXERY_FAULT_ABORT_AFTER_UPLOADS";

pub fn wrap(inner: Arc<dyn BlobStore>) -> Arc<dyn BlobStore> {
    match std::env::var(VAR).ok().and_then(|v| v.parse().ok()) {
        Some(limit) => {
            tracing::warn!(
                limit,
                "fault injection on: the process aborts after {limit} uploads"
            );
            Arc::new(AbortAfter {
                inner,
                limit,
                done: AtomicUsize::new(0),
            })
        }
        None => inner,
    }
}

struct AbortAfter {
    inner: Arc<dyn BlobStore>,
    limit: usize,
    done: AtomicUsize,
}

impl AbortAfter {
    fn count(&self) {
        if self.done.fetch_add(1, Ordering::SeqCst) + 1 >= self.limit {
            if let Ok(once) = std::env::var("NIXERY_FAULT_ONCE_FILE") {
                if std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&once)
                    .is_err()
                {
                    return;
                }
            }
            tracing::error!("fault injection: aborting the builder mid-build");
            std::process::abort();
        }
    }
}

#[async_trait]
impl BlobStore for AbortAfter {
    async fn put_file(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        self.inner.put_file(digest, file).await?;
        self.count();
        Ok(())
    }
    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        self.inner.put_bytes(digest, bytes).await?;
        self.count();
        Ok(())
    }
    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        self.inner.size(digest).await
    }
    async fn get_bytes(
        &self,
        digest: &Digest,
        max_len: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        self.inner.get_bytes(digest, max_len).await
    }
    async fn access(&self, digest: &Digest) -> Result<Option<BlobAccess>, StorageError> {
        self.inner.access(digest).await
    }
}
