//! SDK clients, built once in `main` and passed in.

use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, SdkConfig};
use std::time::Duration;

/// Attempts per request: the SDK's standard policy backs off exponentially
/// with jitter on throttling and transient errors.
const MAX_ATTEMPTS: u32 = 5;

/// Load the shared SDK config from the environment (region, credentials,
/// and `AWS_ENDPOINT_URL*` overrides, which the tests use).
pub async fn sdk_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(MAX_ATTEMPTS)
                .with_initial_backoff(Duration::from_millis(100)),
        )
        .load()
        .await
}

/// An S3 client. S3-compatible servers behind a custom endpoint get
/// path-style addressing, which they support and virtual hosts need DNS for.
pub fn s3(config: &SdkConfig) -> aws_sdk_s3::Client {
    let path_style = std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
        || std::env::var_os("AWS_ENDPOINT_URL").is_some();
    s3_with_path_style(config, path_style)
}

pub fn s3_with_path_style(config: &SdkConfig, path_style: bool) -> aws_sdk_s3::Client {
    let conf = aws_sdk_s3::config::Builder::from(config)
        .force_path_style(path_style)
        .build();
    aws_sdk_s3::Client::from_conf(conf)
}

pub fn dynamodb(config: &SdkConfig) -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::new(config)
}

pub fn lambda(config: &SdkConfig) -> aws_sdk_lambda::Client {
    aws_sdk_lambda::Client::new(config)
}

/// The SDK clients a function uses, made once in `main` (or per service by tests that put a
/// proxy in front of one of them).
#[derive(Clone)]
pub struct Clients {
    pub s3: aws_sdk_s3::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub ssm: aws_sdk_ssm::Client,
}

impl Clients {
    pub fn from_sdk(config: &SdkConfig) -> Self {
        Clients {
            s3: s3(config),
            dynamodb: dynamodb(config),
            lambda: lambda(config),
            ssm: aws_sdk_ssm::Client::new(config),
        }
    }
}

/// A config with fixed credentials and one endpoint for every service: for
/// S3/DynamoDB-compatible servers and the Lambda runtime emulator.
pub async fn static_config(
    endpoint: &str,
    access_key: &str,
    secret_key: &str,
    region: &str,
) -> SdkConfig {
    let creds = aws_sdk_s3::config::Credentials::new(access_key, secret_key, None, None, "static");
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.to_string()))
        .endpoint_url(endpoint)
        .credentials_provider(creds)
        .load()
        .await
}
