//! The registry Lambda's wiring: settings from the environment, and the
//! core's `Registry` on S3 blobs, the DynamoDB index and the builder Lambda.
//! `main` serves `nixery_core::registry::router` of it with `lambda_http`;
//! the same router is what `nixery serve` serves locally.

use aws_config::SdkConfig;
use nixery_aws::clients;
use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::env;
use nixery_aws::lambda::LambdaBuilder;
use nixery_aws::s3::S3BlobStore;
use nixery_core::registry::{Registry, RegistrySettings};
use std::sync::Arc;
use std::time::Duration;

/// Seconds a manifest request waits for a build before answering 429: under
/// the function's 29 s timeout, which is under API Gateway's 30 s.
pub const DEFAULT_BUILD_WAIT_SECS: u64 = 25;
/// Seconds a presigned blob URL stays valid.
pub const DEFAULT_PRESIGN_TTL_SECS: u64 = 300;
/// Build leases outlive the builder Lambda's 15-minute timeout, so a live
/// build keeps its lease and a dead one frees it soon after.
pub const LEASE_TTL: Duration = Duration::from_secs(16 * 60);

/// Everything the function reads from its environment (see `infra/contract.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub bucket: String,
    pub table: String,
    pub builder_function: String,
    pub build_wait: Duration,
    pub presign_ttl: Duration,
}

/// The environment is incomplete or malformed; lists every problem at once.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {}", .0.join("; "))]
pub struct ConfigError(pub Vec<String>);

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Read the settings through `get` (tests pass a map, not the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut problems = Vec::new();
        let mut required = |name: &str| match get(name).filter(|v| !v.trim().is_empty()) {
            Some(v) => v,
            None => {
                problems.push(format!("{name} must be set"));
                String::new()
            }
        };
        let bucket = required(env::BUCKET);
        let table = required(env::TABLE);
        let builder_function = required(env::BUILDER_FUNCTION);
        let mut seconds = |name: &str, default: u64| match get(name).filter(|v| !v.is_empty()) {
            None => Duration::from_secs(default),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Duration::from_secs(n),
                _ => {
                    problems.push(format!(
                        "{name}={v:?} is not a positive whole number of seconds"
                    ));
                    Duration::ZERO
                }
            },
        };
        let build_wait = seconds(env::BUILD_WAIT, DEFAULT_BUILD_WAIT_SECS);
        let presign_ttl = seconds(env::PRESIGN_TTL, DEFAULT_PRESIGN_TTL_SECS);
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        Ok(Settings {
            bucket,
            table,
            builder_function,
            build_wait,
            presign_ttl,
        })
    }
}

/// The registry on AWS, with SDK clients made once from `sdk`.
pub fn registry(settings: &Settings, sdk: &SdkConfig) -> Arc<Registry> {
    let blobs = S3BlobStore::new(clients::s3(sdk), &settings.bucket, settings.presign_ttl);
    let index = Arc::new(DynamoIndex::new(clients::dynamodb(sdk), &settings.table));
    let builder = LambdaBuilder::new(
        clients::lambda(sdk),
        &settings.builder_function,
        index,
        LEASE_TTL,
    );
    Registry::new(
        Arc::new(blobs),
        Arc::new(builder),
        RegistrySettings {
            build_wait: Some(settings.build_wait),
            source_description: format!(
                "the package set of builder function {}",
                settings.builder_function
            ),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const REQUIRED: [(&str, &str); 3] = [
        ("NIXERY_BUCKET", "blobs"),
        ("NIXERY_TABLE", "index"),
        ("NIXERY_BUILDER_FUNCTION", "builder"),
    ];

    #[test]
    fn defaults_apply() {
        let s = Settings::from_lookup(lookup(&REQUIRED)).expect("valid");
        assert_eq!(s.bucket, "blobs");
        assert_eq!(s.build_wait, Duration::from_secs(25));
        assert_eq!(s.presign_ttl, Duration::from_secs(300));
    }

    #[test]
    fn durations_are_read() {
        let mut vars = REQUIRED.to_vec();
        vars.extend([("NIXERY_BUILD_WAIT", "5"), ("NIXERY_PRESIGN_TTL", "60")]);
        let s = Settings::from_lookup(lookup(&vars)).expect("valid");
        assert_eq!(s.build_wait, Duration::from_secs(5));
        assert_eq!(s.presign_ttl, Duration::from_secs(60));
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Settings::from_lookup(lookup(&[
            ("NIXERY_TABLE", " "),
            ("NIXERY_BUILD_WAIT", "25s"),
        ]))
        .expect_err("invalid")
        .to_string();
        for part in [
            "NIXERY_BUCKET must be set",
            "NIXERY_TABLE must be set",
            "NIXERY_BUILDER_FUNCTION must be set",
            "NIXERY_BUILD_WAIT=\"25s\"",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }
}
