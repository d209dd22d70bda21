//! S3- and DynamoDB-compatible servers speaking the AWS wire protocol, started on free
//! loopback ports: s3s-fs (checks SigV4 and presigned URLs) and moto_server (enforces
//! DynamoDB condition expressions); SDK clients for them, and the bucket and tables a
//! deployment has.

use std::process::Command;
use std::time::Duration;

use nixery_aws::dynamo::DynamoIndex;

use super::process::{free_port, ChildGuard};

/// Credentials the test servers accept.
pub const ACCESS_KEY: &str = "nixerytestkey";
pub const SECRET_KEY: &str = "nixerytestsecretkey0123456789";
pub const REGION: &str = "us-east-1";
/// The names a test deployment uses.
pub const BUCKET: &str = "nixery-blobs";
pub const TABLE: &str = "nixery-index";

/// How long a server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process, stopped on drop, with its log in a temp dir.
pub struct AwsServer {
    process: ChildGuard,
    pub endpoint: String,
    _dir: tempfile::TempDir,
}

impl AwsServer {
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// s3s-fs serving a temp directory (install: `cargo install s3s-fs --features binary`).
    pub fn s3s_fs() -> AwsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("fs");
        std::fs::create_dir(&root).expect("mkdir");
        let port = free_port();
        let mut cmd = Command::new("s3s-fs");
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&root);
        let what = "s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary)";
        start(cmd, dir, port, what)
    }

    /// moto's server (install: `pip install 'moto[server]'`), handling one request at a time.
    /// `moto_server` runs threaded, and then its UpdateItem is not atomic: of 32 racing
    /// conditional ADDs against a limit of 5, 6 to 8 passed in 5 rounds of 40. DynamoDB
    /// applies each write atomically; serving requests one by one gives the same semantics.
    pub fn moto() -> AwsServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let mut cmd = Command::new("python3");
        cmd.args(["-c", MOTO_SERIAL, &port.to_string()])
            .env("MOTO_PORT", port.to_string());
        start(cmd, dir, port, "moto (pip install 'moto[server]')")
    }
}

/// moto_server's own main, with `threaded=False`.
const MOTO_SERIAL: &str = "import sys
from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
run_simple('127.0.0.1', int(sys.argv[1]), DomainDispatcherApplication(create_backend_app), threaded=False)
";

fn start(cmd: Command, dir: tempfile::TempDir, port: u16, what: &str) -> AwsServer {
    let mut process = ChildGuard::spawn(cmd, &dir.path().join("server.log"), what);
    process.wait_port(port, START_TIMEOUT);
    AwsServer {
        process,
        endpoint: format!("http://127.0.0.1:{port}"),
        _dir: dir,
    }
}

/// An SDK config for one of the test servers (or a proxy in front of one).
pub async fn sdk(endpoint: &str) -> aws_config::SdkConfig {
    nixery_aws::clients::static_config(endpoint, ACCESS_KEY, SECRET_KEY, REGION).await
}

/// An S3 client with path-style addressing, as S3-compatible servers need.
pub async fn s3_client(endpoint: &str) -> aws_sdk_s3::Client {
    nixery_aws::clients::s3_with_path_style(&sdk(endpoint).await, true)
}

pub async fn dynamodb_client(endpoint: &str) -> aws_sdk_dynamodb::Client {
    nixery_aws::clients::dynamodb(&sdk(endpoint).await)
}

/// Items in the index table whose key starts with `prefix` (one Scan: test tables are small).
pub async fn index_items(dynamodb: &aws_sdk_dynamodb::Client, prefix: &str) -> usize {
    let out = dynamodb
        .scan()
        .table_name(TABLE)
        .send()
        .await
        .expect("scan");
    out.items()
        .iter()
        .filter_map(|i| i.get("pk").and_then(|v| v.as_s().ok()))
        .filter(|pk| pk.starts_with(prefix))
        .count()
}

/// Create the bucket [`BUCKET`] and the index table [`TABLE`], as the Terraform does.
pub async fn create_resources(s3: &aws_sdk_s3::Client, dynamodb: &aws_sdk_dynamodb::Client) {
    create_bucket(s3, BUCKET).await;
    DynamoIndex::create_table(dynamodb, TABLE)
        .await
        .expect("create table");
}

pub async fn create_bucket(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.create_bucket()
        .bucket(bucket)
        .send()
        .await
        .expect("create bucket");
}

/// Blocking: start s3s-fs and moto with the resources created; for tests without a runtime.
pub fn start_with_resources(rt: &tokio::runtime::Runtime) -> (AwsServer, AwsServer) {
    let (s3, moto) = (AwsServer::s3s_fs(), AwsServer::moto());
    rt.block_on(async {
        let (s3c, ddb) = (
            s3_client(&s3.endpoint).await,
            dynamodb_client(&moto.endpoint).await,
        );
        create_resources(&s3c, &ddb).await;
    });
    (s3, moto)
}
