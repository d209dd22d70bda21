//! A writer that hashes what passes through it: the packer's digests in one pass.

use std::io::{self, Write};

use sha2::{Digest as _, Sha256};

use crate::digest::Digest;

/// A writer that hashes and counts what passes through it.
pub(super) struct Hashing<W> {
    pub(super) inner: W,
    hasher: Sha256,
    pub(super) count: u64,
}

impl<W> Hashing<W> {
    pub(super) fn new(inner: W) -> Self {
        let hasher = Sha256::new();
        Hashing {
            inner,
            hasher,
            count: 0,
        }
    }

    pub(super) fn digest(&self) -> Digest {
        Digest::from_hasher(self.hasher.clone())
    }
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
