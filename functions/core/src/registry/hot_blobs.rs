//! Small local blobs kept in memory, so a warm blob GET is one write from a shared buffer
//! instead of a read into a fresh buffer and a write per chunk (nginx's `sendfile` does no
//! copy at all; from memory we do one, from the file we did two plus the chunking).
//!
//! Blobs are content-addressed and never change, so an entry is never stale. The cache holds
//! at most [`HOT_BUDGET`] bytes; a blob bigger than [`HOT_MAX_BLOB`] is always streamed from
//! its file. When a new blob does not fit, arbitrary entries are dropped until it does
//! (the cache is a speed-up only: a dropped blob is read again on its next GET).

use crate::digest::Digest;
use bytes::Bytes;
use std::collections::HashMap;
use std::sync::Mutex;

/// Total bytes of blobs kept in memory.
pub const HOT_BUDGET: u64 = 256 << 20;
/// Largest blob kept: most layers of real images are smaller, and the memory of the largest
/// ones is better spent on many small ones.
pub const HOT_MAX_BLOB: u64 = 16 << 20;

pub struct HotBlobs {
    inner: Mutex<Inner>,
    budget: u64,
    max_blob: u64,
}

#[derive(Default)]
struct Inner {
    map: HashMap<Digest, Bytes>,
    bytes: u64,
}

impl HotBlobs {
    pub fn new(budget: u64, max_blob: u64) -> Self {
        HotBlobs {
            inner: Mutex::default(),
            budget,
            max_blob: max_blob.min(budget),
        }
    }

    /// Whether a blob of `size` bytes would be kept.
    pub fn fits(&self, size: u64) -> bool {
        size <= self.max_blob
    }

    pub fn get(&self, digest: &Digest) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.map.get(digest).cloned()
    }

    pub fn put(&self, digest: &Digest, bytes: Bytes) {
        let size = bytes.len() as u64;
        if !self.fits(size) {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if inner.map.contains_key(digest) {
            return;
        }
        while inner.bytes + size > self.budget {
            let Some(victim) = inner.map.keys().next().cloned() else {
                break;
            };
            if let Some(dropped) = inner.map.remove(&victim) {
                inner.bytes -= dropped.len() as u64;
            }
        }
        inner.bytes += size;
        inner.map.insert(digest.clone(), bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(n: u8, len: usize) -> (Digest, Bytes) {
        let bytes = Bytes::from(vec![n; len]);
        (Digest::of(&bytes), bytes)
    }

    #[test]
    fn keeps_small_blobs_within_the_budget() {
        let hot = HotBlobs::new(100, 60);
        let (big, big_bytes) = blob(0, 61);
        hot.put(&big, big_bytes);
        assert!(hot.get(&big).is_none(), "over the per-blob limit");
        let blobs: Vec<_> = (1..=3).map(|n| blob(n, 40)).collect();
        for (d, b) in &blobs {
            hot.put(d, b.clone());
            assert_eq!(hot.get(d).as_ref(), Some(b));
            let inner = hot.inner.lock().expect("lock");
            assert!(inner.bytes <= 100);
            assert_eq!(
                inner.bytes,
                inner.map.values().map(|b| b.len() as u64).sum::<u64>()
            );
        }
    }
}
