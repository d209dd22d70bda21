//! The registry Lambda's wiring: settings from the environment, and the
//! core's `Registry` on S3 blobs, the DynamoDB index and the builder Lambda.
//! `main` serves `nixery_core::registry::router` of it with `lambda_http`;
//! the same router is what `nixery serve` serves locally.

use aws_config::SdkConfig;
use nixery_aws::accounts::DynamoAccounts;
use nixery_aws::clients::Clients;
use nixery_aws::dynamo::DynamoIndex;
use nixery_aws::env::{self, ConfigError, EnvReader};
use nixery_aws::lambda::{LambdaBuilder, LambdaBuilderSettings};
use nixery_aws::s3::S3BlobStore;
use nixery_aws::secrets::{signing_keys, SecretError};
use nixery_core::builder::DEFAULT_PIN_TTL;
use nixery_core::registry::auth::{Auth, AuthSettings, PublicUrlError, MIN_TOKEN_TTL_SECS};
use nixery_core::registry::{Registry, RegistrySettings};
use nixery_core::source::PackageSource;
use std::sync::Arc;
use std::time::Duration;

/// Seconds a manifest request waits for a build before answering 429: under
/// the function's 29 s timeout, which is under API Gateway's 30 s.
pub const DEFAULT_BUILD_WAIT_SECS: u64 = 25;
/// Seconds a presigned blob URL stays valid.
pub const DEFAULT_PRESIGN_TTL_SECS: u64 = 300;
/// Seconds a registry token stays valid.
pub const DEFAULT_TOKEN_TTL_SECS: u64 = 300;
/// Build leases outlive the builder Lambda's 15-minute timeout, so a live
/// build keeps its lease and a dead one frees it soon after.
pub const LEASE_TTL: Duration = Duration::from_secs(16 * 60);
/// A builder that died may never answer (the runtime emulator waits forever; Lambda answers
/// at the function timeout): give up on an invocation after this.
pub const INVOKE_TIMEOUT: Duration = Duration::from_secs(16 * 60);

/// Everything the function reads from its environment (see `infra/contract.json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub bucket: String,
    pub table: String,
    pub builder_function: String,
    /// The builder's package source: manifests are cached per source identity.
    pub source: PackageSource,
    pub pin_ttl: Duration,
    pub build_wait: Duration,
    pub presign_ttl: Duration,
    /// Token auth and metering, when on.
    pub auth: Option<AuthConfig>,
    /// Not from the environment: the defaults fit Lambda; tests shorten them.
    pub lease_ttl: Duration,
    pub invoke_timeout: Duration,
}

/// Where the registry finds what token auth needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub public_url: String,
    pub accounts_table: String,
    pub signing_key_parameter: String,
    pub token_ttl: Duration,
}

/// Why the registry could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("the token signing key: {0}")]
    Secret(#[from] SecretError),
    #[error(transparent)]
    PublicUrl(#[from] PublicUrlError),
}

impl Settings {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::read(EnvReader::process())
    }

    /// Read the settings through `env` (tests pass fixed pairs, not the process environment).
    pub fn read(mut env: EnvReader) -> Result<Self, ConfigError> {
        let settings = Settings {
            bucket: env.required(env::BUCKET),
            table: env.required(env::TABLE),
            builder_function: env.required(env::BUILDER_FUNCTION),
            source: match env.optional(env::PKGS_REPO) {
                Some(url) => PackageSource::Git { url },
                None => PackageSource::Channel(
                    env.optional(env::CHANNEL)
                        .unwrap_or_else(|| env::DEFAULT_CHANNEL.into()),
                ),
            },
            pin_ttl: env.seconds(env::PIN_TTL, DEFAULT_PIN_TTL.as_secs(), 0),
            build_wait: env.seconds(env::BUILD_WAIT, DEFAULT_BUILD_WAIT_SECS, 1),
            presign_ttl: env.seconds(env::PRESIGN_TTL, DEFAULT_PRESIGN_TTL_SECS, 1),
            auth: match env.flag(env::AUTH, false) {
                false => None,
                true => Some(AuthConfig {
                    public_url: env.required(env::PUBLIC_URL),
                    accounts_table: env.required(env::ACCOUNTS_TABLE),
                    signing_key_parameter: env.required(env::SIGNING_KEY_PARAMETER),
                    token_ttl: env.seconds(
                        env::TOKEN_TTL,
                        DEFAULT_TOKEN_TTL_SECS,
                        MIN_TOKEN_TTL_SECS,
                    ),
                }),
            },
            lease_ttl: LEASE_TTL,
            invoke_timeout: INVOKE_TIMEOUT,
        };
        env.finish()?;
        Ok(settings)
    }
}

/// The registry on AWS, with SDK clients made once from `sdk`.
pub async fn registry(settings: &Settings, sdk: &SdkConfig) -> Result<Arc<Registry>, StartError> {
    registry_with_clients(settings, &Clients::from_sdk(sdk)).await
}

/// The registry on the given clients (tests put proxies in front of some services).
pub async fn registry_with_clients(
    settings: &Settings,
    clients: &Clients,
) -> Result<Arc<Registry>, StartError> {
    let blobs = S3BlobStore::new(clients.s3.clone(), &settings.bucket)
        .with_presign_ttl(settings.presign_ttl);
    let index = Arc::new(DynamoIndex::new(clients.dynamodb.clone(), &settings.table));
    let builder = LambdaBuilder::new(
        clients.lambda.clone(),
        index,
        LambdaBuilderSettings {
            function: settings.builder_function.clone(),
            source: settings.source.clone(),
            pin_ttl: settings.pin_ttl,
            lease_ttl: settings.lease_ttl,
            invoke_timeout: settings.invoke_timeout,
        },
    );
    let registry_settings = RegistrySettings {
        build_wait: Some(settings.build_wait),
        source_description: settings.source.describe(),
    };
    let auth = match &settings.auth {
        Some(config) => Some(auth(config, clients).await?),
        None => None,
    };
    Ok(Registry::with_auth(
        Arc::new(blobs),
        Arc::new(builder),
        registry_settings,
        auth,
    ))
}

async fn auth(config: &AuthConfig, clients: &Clients) -> Result<Auth, StartError> {
    let keys = signing_keys(&clients.ssm, &config.signing_key_parameter).await?;
    let accounts = DynamoAccounts::new(clients.dynamodb.clone(), &config.accounts_table);
    let settings = AuthSettings {
        public_url: config.public_url.clone(),
        token_ttl: config.token_ttl,
        keys,
    };
    Ok(Auth::new(settings, Arc::new(accounts))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nixery_aws::env::EnvReader;

    const REQUIRED: [(&str, &str); 3] = [
        ("NIXERY_BUCKET", "blobs"),
        ("NIXERY_TABLE", "index"),
        ("NIXERY_BUILDER_FUNCTION", "builder"),
    ];

    #[test]
    fn defaults_apply() {
        let s = Settings::read(EnvReader::from_pairs(&REQUIRED)).expect("valid");
        assert_eq!(s.bucket, "blobs");
        assert_eq!(s.build_wait, Duration::from_secs(25));
        assert_eq!(s.presign_ttl, Duration::from_secs(300));
    }

    #[test]
    fn durations_are_read() {
        let mut vars = REQUIRED.to_vec();
        vars.extend([("NIXERY_BUILD_WAIT", "5"), ("NIXERY_PRESIGN_TTL", "60")]);
        let s = Settings::read(EnvReader::from_pairs(&vars)).expect("valid");
        assert_eq!(s.build_wait, Duration::from_secs(5));
        assert_eq!(s.presign_ttl, Duration::from_secs(60));
    }

    #[test]
    fn every_problem_is_reported() {
        let err = Settings::read(EnvReader::from_pairs(&[
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

    #[test]
    fn auth_is_off_unless_asked_for() {
        let s = Settings::read(EnvReader::from_pairs(&REQUIRED)).expect("valid");
        assert_eq!(s.auth, None);
    }

    #[test]
    fn auth_reads_its_settings() {
        let mut vars = REQUIRED.to_vec();
        vars.extend([
            ("NIXERY_AUTH", "true"),
            ("NIXERY_PUBLIC_URL", "https://registry.example.org"),
            ("NIXERY_ACCOUNTS_TABLE", "accounts"),
            ("NIXERY_SIGNING_KEY_PARAMETER", "/nixery/key"),
            ("NIXERY_TOKEN_TTL", "600"),
        ]);
        let s = Settings::read(EnvReader::from_pairs(&vars)).expect("valid");
        assert_eq!(
            s.auth,
            Some(AuthConfig {
                public_url: "https://registry.example.org".into(),
                accounts_table: "accounts".into(),
                signing_key_parameter: "/nixery/key".into(),
                token_ttl: Duration::from_secs(600),
            })
        );
    }

    #[test]
    fn auth_without_its_settings_names_each_one() {
        let mut vars = REQUIRED.to_vec();
        vars.extend([("NIXERY_AUTH", "true"), ("NIXERY_TOKEN_TTL", "30")]);
        let err = Settings::read(EnvReader::from_pairs(&vars))
            .expect_err("incomplete")
            .to_string();
        for part in [
            "NIXERY_PUBLIC_URL must be set",
            "NIXERY_ACCOUNTS_TABLE must be set",
            "NIXERY_SIGNING_KEY_PARAMETER must be set",
            "NIXERY_TOKEN_TTL",
        ] {
            assert!(err.contains(part), "{err}");
        }
    }
}
