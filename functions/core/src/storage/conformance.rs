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

use super::{AliasEntry, BlobAccess, BlobRef, BlobStore, Index, LayerEntry, ManifestEntry};
use crate::digest::Digest;
use crate::image::LayerDesc;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A layer entry of one path whose fields all derive from `n`.
pub fn layer(n: u8) -> LayerEntry {
    layer_of(n, &[n])
}

/// A layer entry of the paths `paths` (numbered like [`path`]), its blob derived from `n`.
pub fn layer_of(n: u8, paths: &[u8]) -> LayerEntry {
    LayerEntry {
        layer: LayerDesc {
            digest: Digest::of(&[n]),
            diff_id: Digest::of(&[n, n]),
            size: n as u64,
        },
        contents: paths.iter().map(|p| path(*p)).collect(),
    }
}

pub fn path(n: u8) -> String {
    format!("/nix/store/{n:032}-p{n}")
}

fn manifest(n: u8) -> ManifestEntry {
    ManifestEntry {
        docker: BlobRef {
            digest: Digest::of(&[b'd', n]),
            size: 1,
        },
        oci: BlobRef {
            digest: Digest::of(&[b'o', n]),
            size: 2,
        },
    }
}

/// Stamps out one `#[tokio::test]` per blob-store scenario. `$make` is an async fn returning
/// `(Arc<dyn BlobStore>, scratch: PathBuf, guard)`; the guard keeps the backend alive.
#[macro_export]
macro_rules! blob_store_conformance {
    ($make:path) => {
        $crate::blob_store_conformance!(@each $make,
            absent_blob_is_none, put_file_then_read_back, storing_again_succeeds, small_blobs,
            get_bytes_refuses_blobs_over_the_limit);
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
            leases_exclude_other_owners, expired_leases_can_be_taken, aliases_are_replaced,
            layers_within_a_closure, many_layers_and_large_layers);
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
    assert!(store.get_bytes(&digest, 1024).await.expect("get").is_none());
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
        store
            .get_bytes(&digest, 1024)
            .await
            .expect("get")
            .as_deref(),
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
        store
            .get_bytes(&digest, 1024)
            .await
            .expect("get")
            .as_deref(),
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
        store
            .get_bytes(&digest, 1024)
            .await
            .expect("get")
            .as_deref(),
        Some(&small[..])
    );
    assert_eq!(
        store.size(&digest).await.expect("size"),
        Some(small.len() as u64)
    );
}

/// A blob longer than the caller's limit reads as absent, and a failed `put_file` still
/// takes its file away.
pub async fn get_bytes_refuses_blobs_over_the_limit(store: &dyn BlobStore, scratch: &Path) {
    let data = vec![9u8; 4096];
    let digest = Digest::of(&data);
    let file = scratch.join("big");
    std::fs::write(&file, &data).expect("write scratch");
    store.put_file(&digest, &file).await.expect("put_file");
    assert!(!file.exists(), "put_file takes the file over");
    assert_eq!(store.get_bytes(&digest, 4095).await.expect("get"), None);
    let whole = store.get_bytes(&digest, 4096).await.expect("get");
    assert_eq!(whole.as_deref(), Some(&data[..]));
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
    assert_eq!(got["layer-1"], layer(1).layer);
    assert_eq!(got["layer-3"], layer(3).layer);
}

pub async fn manifests_are_inserted_once(index: Arc<dyn Index>) {
    let entry = manifest(1);
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

pub async fn aliases_are_replaced(index: Arc<dyn Index>) {
    assert_eq!(index.get_alias("a").await.expect("get"), None);
    let first = AliasEntry {
        manifest: manifest(1),
        manifest_key: "m1".into(),
        resolved_ms: 1000,
    };
    index.put_alias("a", &first).await.expect("put");
    assert_eq!(index.get_alias("a").await.expect("get"), Some(first));
    let moved = AliasEntry {
        manifest: manifest(2),
        manifest_key: "m2".into(),
        resolved_ms: 2000,
    };
    index.put_alias("a", &moved).await.expect("replace");
    assert_eq!(index.get_alias("a").await.expect("get"), Some(moved));
}

/// Only layers whose every path is in the closure come back, with their contents.
pub async fn layers_within_a_closure(index: Arc<dyn Index>) {
    let (inside, straddling, elsewhere) = (layer_of(1, &[1, 2]), layer_of(2, &[3, 4]), layer(5));
    for (key, entry) in [
        ("in", &inside),
        ("straddling", &straddling),
        ("out", &elsewhere),
    ] {
        assert!(index.put_layer(key, entry).await.expect("put"));
    }
    let closure: BTreeSet<String> = [1, 2, 3, 9].into_iter().map(path).collect();
    let got = index.layers_within(&closure).await.expect("within");
    assert_eq!(got, vec![inside]);
    assert!(index
        .layers_within(&BTreeSet::new())
        .await
        .expect("empty")
        .is_empty());
}

/// Layers of thousands of paths (a merged layer) are stored and found, and batch reads go
/// past the backends' per-request limits.
pub async fn many_layers_and_large_layers(index: Arc<dyn Index>) {
    let paths: Vec<String> = (0..3000)
        .map(|i| format!("/nix/store/{i:032}-big-{i}"))
        .collect();
    let big = LayerEntry {
        layer: layer(200).layer,
        contents: paths.clone(),
    };
    assert!(index
        .put_layer("big", &big)
        .await
        .expect("put a 3000-path layer"));
    let keys: Vec<String> = (0..150).map(|i| format!("k{i}")).collect();
    for (i, k) in keys.iter().enumerate().step_by(10) {
        assert!(index.put_layer(k, &layer(i as u8)).await.expect("put"));
    }
    assert_eq!(index.get_layers(&keys).await.expect("get").len(), 15);
    let closure: BTreeSet<String> = paths.into_iter().collect();
    let within = index.layers_within(&closure).await.expect("within");
    assert_eq!(within, vec![big]);
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
