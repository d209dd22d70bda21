//! One conformance suite for every blob store and index implementation
//! (local here; S3 and DynamoDB in the AWS crate), so that all backends
//! promise the same things. Panics on the first broken promise.

use super::{BlobAccess, BlobRef, BlobStore, Index, LayerEntry, ManifestEntry};
use crate::digest::Digest;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

fn layer(n: u8) -> LayerEntry {
    LayerEntry {
        digest: Digest::of(&[n]),
        diff_id: Digest::of(&[n, n]),
        size: n as u64,
        contents: vec![format!("/nix/store/{n:032}-p{n}")],
    }
}

/// Put, size, read back, idempotent re-put, and absence.
pub async fn blob_store(store: &dyn BlobStore, scratch: &Path) {
    let data = b"layer bytes".to_vec();
    let digest = Digest::of(&data);
    assert_eq!(
        store.size(&digest).await.expect("size"),
        None,
        "fresh store has the blob"
    );
    assert!(store.get_bytes(&digest).await.expect("get").is_none());
    assert!(store.access(&digest).await.expect("access").is_none());

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

    // Content addressing: storing the same digest again succeeds.
    let again = scratch.join("upload-2");
    std::fs::write(&again, &data).expect("write scratch");
    store.put_file(&digest, &again).await.expect("re-put_file");
    store
        .put_bytes(&digest, data.clone().into())
        .await
        .expect("re-put_bytes");

    let small = b"{\"manifest\":true}".to_vec();
    let d2 = Digest::of(&small);
    store
        .put_bytes(&d2, small.clone().into())
        .await
        .expect("put_bytes");
    assert_eq!(
        store.get_bytes(&d2).await.expect("get").as_deref(),
        Some(&small[..])
    );
}

/// Conditional inserts (also under races), batch reads, and leases.
pub async fn index(index: Arc<dyn Index>) {
    layers(index.as_ref()).await;
    manifests(index.as_ref()).await;
    racing_inserts(index.clone()).await;
    leases(index.as_ref()).await;
}

async fn layers(index: &dyn Index) {
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

async fn manifests(index: &dyn Index) {
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

async fn racing_inserts(index: Arc<dyn Index>) {
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

async fn leases(index: &dyn Index) {
    let ttl = Duration::from_secs(2);
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
    // Expiry: after the TTL another owner may take it.
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

    #[tokio::test]
    async fn local_blob_store_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = FsBlobStore::open(dir.path()).expect("open");
        blob_store(&store, store.tmp_dir()).await;
    }

    #[tokio::test]
    async fn redb_index_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = RedbIndex::open(&dir.path().join("index.redb")).expect("open");
        index(Arc::new(idx)).await;
    }

    #[tokio::test]
    async fn redb_lists_layers_within_a_closure() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = RedbIndex::open(&dir.path().join("index.redb")).expect("open");
        for n in 1..=3 {
            assert!(idx
                .put_layer(&format!("k{n}"), &layer(n))
                .await
                .expect("put"));
        }
        let closure = [layer(1), layer(3)]
            .iter()
            .flat_map(|l| l.contents.clone())
            .collect();
        let mut got = idx.layers_within(&closure).await.expect("list");
        got.sort_by_key(|e| e.size);
        assert_eq!(got, vec![layer(1), layer(3)]);
    }

    #[tokio::test]
    async fn redb_index_survives_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("index.redb");
        {
            let idx = RedbIndex::open(&path).expect("open");
            assert!(idx.put_layer("k", &layer(1)).await.expect("put"));
        }
        let idx = RedbIndex::open(&path).expect("reopen");
        assert_eq!(
            idx.get_layers(&["k".into()]).await.expect("get")["k"],
            layer(1)
        );
    }
}
