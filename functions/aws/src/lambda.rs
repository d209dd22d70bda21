//! The registry's side of building: a `Builder` that invokes the builder
//! Lambda. One build per image across all registry instances: a build lease
//! in the index is taken before invoking, and whoever does not get it waits
//! for the cached manifest. A request waits at most the caller's budget (the
//! router answers 429 after it); the build goes on in the builder.

use async_trait::async_trait;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use nixery_core::builder::{BuildError, Builder, RemoteError};
use nixery_core::name::ImageName;
use nixery_core::registry::error::{ErrorCode, RegistryError};
use nixery_core::storage::{Index, ManifestEntry};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use std::sync::Arc;
use std::time::Duration;

/// What the registry asks the builder Lambda to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildRequest {
    pub image: String,
    pub tag: String,
    /// Index key the builder caches the manifest under (if its source is pinned).
    pub cache_key: String,
    /// The lease the registry took for this build; the builder releases it.
    pub lease_owner: String,
}

/// How often a registry waiting for another's build looks for its result.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// Longest wait for an invocation: Lambda's 15-minute limit and a minute to spare.
const DEFAULT_INVOKE_TIMEOUT: Duration = Duration::from_secs(16 * 60);

/// The builder's answer: the manifest, or an error the registry can map.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum BuildResponse {
    Built {
        manifest: ManifestEntry,
    },
    UnknownPackages {
        missing: Vec<String>,
        /// The package source, as `PackageSource::describe` gives it.
        source: String,
    },
    /// A failure, already described the way clients may see it (details are in the
    /// builder's log).
    Failed {
        unavailable: bool,
        message: String,
    },
}

impl BuildResponse {
    /// The builder's side: a build result as the registry should see it.
    pub fn from_result(result: Result<ManifestEntry, BuildError>) -> Self {
        match result {
            Ok(manifest) => BuildResponse::Built { manifest },
            Err(BuildError::UnknownPackages {
                missing,
                source_desc,
            }) => BuildResponse::UnknownPackages {
                missing,
                source: source_desc,
            },
            Err(e) => {
                let client = RegistryError::from(&e);
                BuildResponse::Failed {
                    unavailable: client.code == ErrorCode::Unavailable,
                    message: client.message,
                }
            }
        }
    }

    /// The registry's side: the answer as a build result.
    pub fn into_result(self) -> Result<ManifestEntry, BuildError> {
        match self {
            BuildResponse::Built { manifest } => Ok(manifest),
            BuildResponse::UnknownPackages { missing, source } => {
                Err(BuildError::UnknownPackages {
                    missing,
                    source_desc: source,
                })
            }
            BuildResponse::Failed {
                unavailable,
                message,
            } => Err(RemoteError::Failed {
                unavailable,
                message,
            }
            .into()),
        }
    }
}

/// The index key of an image request: one deployment has one package
/// source, so packages, architecture and tag identify the image.
pub fn request_key(image: &ImageName, tag: &str) -> String {
    let mut h = Sha256::new();
    h.update(image.arch.nix_system());
    for p in &image.packages {
        h.update([0]);
        h.update(p);
    }
    h.update([1]);
    h.update(tag);
    format!("image-{}", hex::encode(h.finalize()))
}

pub struct LambdaBuilder {
    client: aws_sdk_lambda::Client,
    function: String,
    index: Arc<dyn Index>,
    /// Longer than the builder's own timeout, so a live build keeps its lease.
    lease_ttl: Duration,
    poll: Duration,
    /// A builder that died may never answer (the runtime emulator waits
    /// forever; Lambda answers at the function timeout): give up after this.
    invoke_timeout: Duration,
}

impl LambdaBuilder {
    pub fn new(
        client: aws_sdk_lambda::Client,
        function: impl Into<String>,
        index: Arc<dyn Index>,
        lease_ttl: Duration,
    ) -> Self {
        LambdaBuilder {
            client,
            function: function.into(),
            index,
            lease_ttl,
            poll: LEASE_POLL,
            invoke_timeout: DEFAULT_INVOKE_TIMEOUT,
        }
    }

    pub fn with_invoke_timeout(mut self, timeout: Duration) -> Self {
        self.invoke_timeout = timeout;
        self
    }

    async fn invoke(&self, req: &BuildRequest) -> Result<ManifestEntry, BuildError> {
        let payload = serde_json::to_vec(req).map_err(|_| RemoteError::BadResponse)?;
        let call = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .send();
        let secs = self.invoke_timeout.as_secs();
        let out = tokio::time::timeout(self.invoke_timeout, call)
            .await
            .map_err(|_| RemoteError::Timeout(secs))?
            .map_err(|e| {
                let code = e.as_service_error().and_then(|s| s.code());
                tracing::error!(error = ?e, function = %self.function, "invoking the builder failed");
                match code {
                    Some("TooManyRequestsException") => RemoteError::Throttled,
                    _ => RemoteError::Invoke,
                }
            })?;
        let body = out.payload.map(|b| b.into_inner()).unwrap_or_default();
        if let Some(err) = out.function_error {
            tracing::error!(function_error = %err, payload = %String::from_utf8_lossy(&body), "builder function error");
            return Err(RemoteError::Crashed(err).into());
        }
        let response: BuildResponse = serde_json::from_slice(&body).map_err(|e| {
            tracing::error!(error = %e, payload = %String::from_utf8_lossy(&body), "unreadable builder response");
            RemoteError::BadResponse
        })?;
        response.into_result()
    }

    /// Someone else builds: wait for the manifest to appear in the index.
    /// None: the other build's lease expired (it died) and we now hold it.
    async fn wait_for_other(
        &self,
        key: &str,
        owner: &str,
    ) -> Result<Option<ManifestEntry>, BuildError> {
        loop {
            if let Some(entry) = self.index.get_manifest(key).await? {
                return Ok(Some(entry));
            }
            if self.index.acquire_lease(key, owner, self.lease_ttl).await? {
                return Ok(None);
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

fn unique_owner() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("registry-{}-{nanos}", std::process::id())
}

#[async_trait]
impl Builder for LambdaBuilder {
    async fn manifest(
        &self,
        image: &ImageName,
        tag: &str,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        let key = request_key(image, tag);
        let run = async {
            if let Some(entry) = self.index.get_manifest(&key).await? {
                return Ok(entry);
            }
            let owner = unique_owner();
            if !self
                .index
                .acquire_lease(&key, &owner, self.lease_ttl)
                .await?
            {
                if let Some(entry) = self.wait_for_other(&key, &owner).await? {
                    return Ok(entry);
                }
            }
            let req = BuildRequest {
                image: image.repository.clone(),
                tag: tag.to_string(),
                cache_key: key.clone(),
                lease_owner: owner,
            };
            tracing::info!(image = %image, tag, "invoking builder");
            self.invoke(&req).await
        };
        run.await.map_err(Arc::new)
    }
}
