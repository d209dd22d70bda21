//! Blobs in a local directory: `<root>/blobs/sha256/<hex>`, written to a temp
//! file under `<root>/tmp`, fsynced, renamed into place and the directory
//! fsynced, so that a blob is either whole or absent after a crash.

use super::{blocking, BlobAccess, BlobStore, StorageError};
use crate::digest::Digest;
use async_trait::async_trait;
use bytes::Bytes;
use std::io::Write;
use std::path::{Path, PathBuf};
use tokio::io::AsyncReadExt;

#[derive(Debug, Clone)]
pub struct FsBlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl FsBlobStore {
    pub fn open(root: &Path) -> Result<Self, StorageError> {
        let blobs = root.join("blobs").join("sha256");
        let tmp = root.join("tmp");
        for dir in [&blobs, &tmp] {
            std::fs::create_dir_all(dir).map_err(|e| StorageError::io(dir, e))?;
        }
        Ok(FsBlobStore { blobs, tmp })
    }

    /// Scratch space on the same filesystem, so that `put_file` is a rename.
    pub fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    fn path(&self, digest: &Digest) -> PathBuf {
        self.blobs.join(digest.hex())
    }

    fn commit(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        let dest = self.path(digest);
        std::fs::File::open(file)
            .and_then(|f| f.sync_all())
            .map_err(|e| StorageError::io(file, e))?;
        std::fs::rename(file, &dest).map_err(|e| StorageError::io(&dest, e))?;
        std::fs::File::open(&self.blobs)
            .and_then(|d| d.sync_all())
            .map_err(|e| StorageError::io(&self.blobs, e))
    }
}

#[async_trait]
impl BlobStore for FsBlobStore {
    async fn put_file(&self, digest: &Digest, file: &Path) -> Result<(), StorageError> {
        let (this, digest, file) = (self.clone(), digest.clone(), file.to_path_buf());
        blocking(move || {
            let stored = match this.path(&digest).exists() {
                true => Ok(()),
                false => this.commit(&digest, &file),
            };
            // Gone either way: renamed into place, a duplicate, or a failed commit's leftover.
            let _ = std::fs::remove_file(&file);
            stored
        })
        .await
    }

    async fn put_bytes(&self, digest: &Digest, bytes: Bytes) -> Result<(), StorageError> {
        let (this, digest) = (self.clone(), digest.clone());
        blocking(move || {
            if this.path(&digest).exists() {
                return Ok(());
            }
            let mut tmp = tempfile::NamedTempFile::new_in(&this.tmp)
                .map_err(|e| StorageError::io(&this.tmp, e))?;
            tmp.write_all(&bytes)
                .map_err(|e| StorageError::io(tmp.path(), e))?;
            let (_, path) = tmp
                .keep()
                .map_err(|e| StorageError::io(&this.tmp, e.error))?;
            this.commit(&digest, &path)
        })
        .await
    }

    async fn size(&self, digest: &Digest) -> Result<Option<u64>, StorageError> {
        let path = self.path(digest);
        match tokio::fs::metadata(&path).await {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    async fn get_bytes(
        &self,
        digest: &Digest,
        max_len: u64,
    ) -> Result<Option<Bytes>, StorageError> {
        match self.size(digest).await? {
            Some(len) if len <= max_len => {}
            _ => return Ok(None),
        }
        let path = self.path(digest);
        let mut bytes = Vec::new();
        let read = async {
            let file = tokio::fs::File::open(&path).await?;
            file.take(max_len.saturating_add(1))
                .read_to_end(&mut bytes)
                .await
        };
        match read.await {
            Ok(n) if n as u64 <= max_len => Ok(Some(bytes.into())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(StorageError::io(&path, e)),
        }
    }

    async fn access(&self, digest: &Digest) -> Result<Option<BlobAccess>, StorageError> {
        Ok(self
            .size(digest)
            .await?
            .map(|_| BlobAccess::File(self.path(digest))))
    }
}
