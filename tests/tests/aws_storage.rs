//! The core's storage conformance suite against the AWS adapters, on real wire-protocol
//! servers: s3s-fs for S3 and moto_server for DynamoDB; and what only S3 does (multipart
//! uploads, presigned URLs).

use nixery_aws::accounts::DynamoAccounts;
use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::s3::{object_key, S3BlobStore};
use nixery_core::accounts::Accounts;
use nixery_core::digest::Digest;
use nixery_core::storage::{BlobAccess, BlobStore, Index};
use nixery_e2e::harness::aws::{create_bucket, dynamodb_client, s3_client, AwsServer, TABLE};
use std::path::PathBuf;
use std::sync::Arc;

async fn s3_store(server: &AwsServer, bucket: &str) -> S3BlobStore {
    let client = s3_client(&server.endpoint).await;
    create_bucket(&client, bucket).await;
    S3BlobStore::new(client, bucket)
}

async fn s3() -> (Arc<dyn BlobStore>, PathBuf, (AwsServer, tempfile::TempDir)) {
    let server = AwsServer::s3s_fs();
    let store = s3_store(&server, "blobs").await;
    let scratch = tempfile::tempdir().expect("scratch");
    (
        Arc::new(store),
        scratch.path().to_path_buf(),
        (server, scratch),
    )
}

async fn dynamodb() -> (Arc<dyn Index>, AwsServer) {
    let server = AwsServer::moto();
    let client = dynamodb_client(&server.endpoint).await;
    DynamoIndex::create_table(&client, TABLE)
        .await
        .expect("create table");
    (Arc::new(DynamoIndex::new(client, TABLE)), server)
}

async fn dynamodb_accounts() -> (Arc<dyn Accounts>, AwsServer) {
    let server = AwsServer::moto();
    let client = dynamodb_client(&server.endpoint).await;
    DynamoAccounts::create_table(&client, "nixery-accounts")
        .await
        .expect("create accounts table");
    (
        Arc::new(DynamoAccounts::new(client, "nixery-accounts")),
        server,
    )
}

mod dynamodb_accounts {
    nixery_core::accounts_conformance!(super::dynamodb_accounts);
}

mod s3_blob_store {
    nixery_core::blob_store_conformance!(super::s3);
}

mod dynamodb_index {
    nixery_core::index_conformance!(super::dynamodb);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn multipart_upload_round_trips() {
    let server = AwsServer::s3s_fs();
    let store = s3_store(&server, "multipart")
        .await
        .with_multipart_threshold(1024);
    let data: Vec<u8> = (0..(12 * 1024 * 1024 + 12345))
        .map(|i| (i % 251) as u8)
        .collect();
    let digest = Digest::of(&data);
    let dir = tempfile::tempdir().expect("scratch");
    let file = dir.path().join("layer");
    std::fs::write(&file, &data).expect("write");
    store.put_file(&digest, &file).await.expect("multipart put");
    assert_eq!(
        store.size(&digest).await.expect("size"),
        Some(data.len() as u64)
    );
    let back = store
        .get_bytes(&digest, u64::MAX)
        .await
        .expect("get")
        .expect("present");
    assert!(
        back[..] == data[..],
        "multipart object differs from the file"
    );
    assert!(!file.exists(), "put_file takes the file over");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn presigned_get_works_and_rejects_head() {
    let server = AwsServer::s3s_fs();
    let store = s3_store(&server, "presign").await;
    let data = b"presigned blob".to_vec();
    let digest = Digest::of(&data);
    store
        .put_bytes(&digest, data.clone().into())
        .await
        .expect("put");
    let Some(BlobAccess::Redirect(url)) = store.access(&digest).await.expect("access") else {
        panic!("S3 access must be a redirect");
    };
    assert!(url.contains(&object_key(&digest)), "{url}");
    let http = reqwest::Client::new();
    let got = http.get(&url).send().await.expect("GET presigned");
    assert_eq!(got.status(), 200, "presigned GET");
    assert_eq!(got.bytes().await.expect("body")[..], data[..]);
    let head = http.head(&url).send().await.expect("HEAD presigned");
    assert_eq!(
        head.status(),
        403,
        "a URL presigned for GET must not allow HEAD"
    );
    let tampered = url.replace(digest.hex(), Digest::of(b"other").hex());
    assert_eq!(
        http.get(&tampered).send().await.expect("GET").status(),
        403,
        "signature covers the key"
    );
}
