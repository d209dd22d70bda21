//! One conformance suite for every blob store and index (local here; S3 and DynamoDB in the
//! AWS crate), so that all backends keep the same promises. Compiled only for tests and under
//! the `conformance` feature, never into production.
//!
//! Each scenario is its own test, stamped out per backend by [`blob_store_conformance!`] and
//! [`index_conformance!`], so that one broken promise does not hide the others:
//!
//! ```ignore
//! async fn redb() -> (Arc<dyn Index>, tempfile::TempDir) { ... }
//! nixery_core::index_conformance!(redb);
//! ```

use super::{BlobAccess, BlobRef, BlobStore, Index, LayerEntry, ManifestEntry};
use crate::digest::Digest;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A layer entry whose fields all derive from `n`.
pub fn layer(n: u8) -> LayerEntry {
    LayerEntry {
        digest: Digest::of(&[n]),
        diff_id: Digest::of(&[n, n]),
        size: n as u64,
        contents: vec![format!("/nix/store/{n:032}-p{n}")],
    }
}

/// Stamps out one `#[tokio::test]` per blob-store scenario. `$make` is an async fn returning
/// `(Arc<dyn BlobStore>, scratch: PathBuf, guard)`; the guard keeps the backend alive.
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:path) => {
        $crate::blob_store_conformance!(@each $make,
            absent_blob_is_none, put_file_then_read_back, storing_again_succeeds, small_blobs);
    };
    (@each $make:path, $($scenario:ident),*) => {$(
        #[tokio::test]
        async fn $scenario() {
            let (store, scratch, _guard) = $make().await;
            $crate::storage::conformance::$scenario(store.as_ref(), &scratch).await;
        }
    )*};
}

/// Stamps out one `#[tokio::test]` per index scenario. `$make` is an async fn returning
/// `(Arc<dyn Index>, guard)`; the guard keeps the backend alive.
#[macro_export]
macro_rules! index_conformance {
    ($make:path) => {
        $crate::index_conformance!(@each $make,
            layers_are_inserted_once, manifests_are_inserted_once, racing_inserts_have_one_winner,
            leases_exclude_other_owners, expired_leases_can_be_taken);
    };
    (@each $make:path, $($scenario:ident),*) => {$(
        #[tokio::test]
        async fn $scenario() {
            let (index, _guard) = $make().await;
            $crate::storage::conformance::$scenario(index).await;
        }
    )*};
}

pub async fn absent_blob_is_none(store: &dyn BlobStore, _scratch: &Path) {
    let digest = Digest::of(b"never stored");
    assert_eq!(store.size(&digest).await.expect("size"), None);
    assert!(store.get_bytes(&digest).await.expect("get").is_none());
    assert!(store.access(&digest).await.expect("access").is_none());
}

pub async fn put_file_then_read_back(store: &dyn BlobStore, scratch: &Path) {
    let data = b"layer bytes".to_vec();
    let digest = Digest::of(&data);
    let file = scratch.join("upload-1");
    std::fs::write(&file, &data).expect("write scratch");
    store.put_file(&digest, &file).await.expect("put_file");
    assert_eq!(
        store.size(&digest).await.expect("size"),
        Some(data.len() as u64)
    );
    assert_eq!(
        store.get_bytes(&digest).await.expect("get").as_deref(),
        Some(&data[..])
    );
    match store.access(&digest).await.expect("access") {
        Some(BlobAccess::File(p)) => assert_eq!(std::fs::read(p).expect("read"), data),
        Some(BlobAccess::Redirect(url)) => assert!(!url.is_empty()),
        None => panic!("stored blob not accessible"),
    }
}

/// Content addressing: storing the same digest again succeeds, by file or by bytes.
pub async fn storing_again_succeeds(store: &dyn BlobStore, scratch: &Path) {
    let data = b"stored twice".to_vec();
    let digest = Digest::of(&data);
    for name in ["first", "second"] {
        let file = scratch.join(name);
        std::fs::write(&file, &data).expect("write scratch");
        store.put_file(&digest, &file).await.expect("put_file");
    }
    store
        .put_bytes(&digest, data.clone().into())
        .await
        .expect("re-put_bytes");
    assert_eq!(
        store.get_bytes(&digest).await.expect("get").as_deref(),
        Some(&data[..])
    );
}

pub async fn small_blobs(store: &dyn BlobStore, _scratch: &Path) {
    let small = b"{\"manifest\":true}".to_vec();
    let digest = Digest::of(&small);
    store
        .put_bytes(&digest, small.clone().into())
        .await
        .expect("put_bytes");
    assert_eq!(
        store.get_bytes(&digest).await.expect("get").as_deref(),
        Some(&small[..])
    );
    assert_eq!(
        store.size(&digest).await.expect("size"),
        Some(small.len() as u64)
    );
}

pub async fn layers_are_inserted_once(index: Arc<dyn Index>) {
    let keys: Vec<String> = (1..=3).map(|n| format!("layer-{n}")).collect();
    assert!(index.get_layers(&keys).await.expect("get").is_empty());
    assert!(index.put_layer("layer-1", &layer(1)).await.expect("put"));
    assert!(index.put_layer("layer-3", &layer(3)).await.expect("put"));
    // A second insert under the same key is refused and changes nothing.
    assert!(!index.put_layer("layer-1", &layer(9)).await.expect("put"));
    let got = index.get_layers(&keys).await.expect("get");
    assert_eq!(got.len(), 2);
    assert_eq!(got["layer-1"], layer(1));
    assert_eq!(got["layer-3"], layer(3));
}

pub async fn manifests_are_inserted_once(index: Arc<dyn Index>) {
    let entry = ManifestEntry {
        docker: BlobRef {
            digest: Digest::of(b"d"),
            size: 1,
        },
        oci: BlobRef {
            digest: Digest::of(b"o"),
            size: 2,
        },
    };
    assert_eq!(index.get_manifest("m").await.expect("get"), None);
    assert!(index.put_manifest("m", &entry).await.expect("put"));
    assert!(!index.put_manifest("m", &entry).await.expect("put"));
    assert_eq!(index.get_manifest("m").await.expect("get"), Some(entry));
}

pub async fn racing_inserts_have_one_winner(index: Arc<dyn Index>) {
    let tasks: Vec<_> = (0..16u8)
        .map(|n| {
            let index = index.clone();
            tokio::spawn(async move { index.put_layer("race", &layer(n + 10)).await.expect("put") })
        })
        .collect();
    let mut winners = 0;
    for t in tasks {
        winners += usize::from(t.await.expect("join"));
    }
    assert_eq!(winners, 1, "exactly one racing conditional insert must win");
    let got = index.get_layers(&["race".to_string()]).await.expect("get");
    assert_eq!(got.len(), 1);
}

pub async fn leases_exclude_other_owners(index: Arc<dyn Index>) {
    let ttl = Duration::from_secs(60);
    assert!(index.acquire_lease("build", "a", ttl).await.expect("lease"));
    assert!(
        !index.acquire_lease("build", "b", ttl).await.expect("lease"),
        "lease held by a"
    );
    // The holder may renew.
    assert!(index.acquire_lease("build", "a", ttl).await.expect("lease"));
    // Releasing by a non-holder does nothing.
    index.release_lease("build", "b").await.expect("release");
    assert!(!index.acquire_lease("build", "b", ttl).await.expect("lease"));
    index.release_lease("build", "a").await.expect("release");
    assert!(
        index.acquire_lease("build", "b", ttl).await.expect("lease"),
        "released lease"
    );
}

pub async fn expired_leases_can_be_taken(index: Arc<dyn Index>) {
    let ttl = Duration::from_secs(2);
    assert!(index.acquire_lease("build", "a", ttl).await.expect("lease"));
    assert!(!index.acquire_lease("build", "c", ttl).await.expect("lease"));
    tokio::time::sleep(ttl + Duration::from_millis(300)).await;
    assert!(
        index.acquire_lease("build", "c", ttl).await.expect("lease"),
        "expired lease"
    );
    index.release_lease("build", "c").await.expect("release");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::fs::FsBlobStore;
    use crate::storage::redb::RedbIndex;
    use std::path::PathBuf;

    async fn local_blobs() -> (Arc<dyn BlobStore>, PathBuf, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        let scratch = store.tmp_dir().to_path_buf();
        (Arc::new(store), scratch, dir)
    }

    async fn redb_index() -> (Arc<dyn Index>, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = RedbIndex::open(&dir.path().join("index.redb")).expect("open");
        (Arc::new(idx), dir)
    }

    mod fs_blob_store {
        crate::blob_store_conformance!(super::local_blobs);
    }

    mod redb {
        crate::index_conformance!(super::redb_index);
    }
}
