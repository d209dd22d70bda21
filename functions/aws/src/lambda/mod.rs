//! The registry's side of building: a `Builder` that invokes the builder Lambda.
//!
//! A request's alias (source identity, arch, packages, and the tag for git sources) is looked
//! up first: a fresh one answers with one GetItem. Otherwise one build runs per alias across
//! all registry instances: a lease on the alias is taken before invoking, and whoever does
//! not get it waits for the alias to appear. Taking the lease and invoking run in a task of
//! their own, so the caller's wait budget (the router answers 429 after it) never cuts them
//! in half; the build goes on in the builder. A lease is given back when the invocation
//! fails; only a timed-out builder (which may still be running) keeps it until it expires.

mod lease;
mod protocol;

pub use protocol::{BuildRequest, BuildResponse};

use async_trait::async_trait;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;
use lease::LeaseGuard;
use nixery_core::builder::{
    alias_key, BuildError, BuildGate, Builder, InFlight, OpenGate, RemoteError,
};
use nixery_core::name::ImageName;
use nixery_core::source::PackageSource;
use nixery_core::storage::{now_ms, AliasEntry, Index, ManifestEntry};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a registry waiting for another's build looks for its result.
const LEASE_POLL: Duration = Duration::from_millis(500);
/// The lease a registry holds until the builder renews it: short, so that a registry
/// instance frozen or killed before its invocation went out blocks nobody for long.
const START_LEASE: Duration = Duration::from_secs(60);

/// How the registry reaches and waits for the builder.
#[derive(Debug, Clone)]
pub struct LambdaBuilderSettings {
    pub function: String,
    /// The builder's package source, as configured: aliases are keyed by its identity.
    pub source: PackageSource,
    /// How long a moving source's alias is served before the builder resolves it again.
    pub pin_ttl: Duration,
    /// The builder holds its lease this long: longer than it may run, so a live build keeps
    /// it and a dead one frees it soon after.
    pub lease_ttl: Duration,
    /// A builder that died may never answer (the runtime emulator waits forever; Lambda
    /// answers at the function timeout): give up on an invocation after this.
    pub invoke_timeout: Duration,
}

pub struct LambdaBuilder {
    invoker: Arc<Invoker>,
    inflight: InFlight<ManifestEntry, BuildError>,
}

struct Invoker {
    client: aws_sdk_lambda::Client,
    index: Arc<dyn Index>,
    settings: LambdaBuilderSettings,
}

impl LambdaBuilder {
    pub fn new(
        client: aws_sdk_lambda::Client,
        index: Arc<dyn Index>,
        settings: LambdaBuilderSettings,
    ) -> Self {
        let invoker = Arc::new(Invoker {
            client,
            index,
            settings,
        });
        LambdaBuilder {
            invoker,
            inflight: InFlight::default(),
        }
    }
}

#[async_trait]
impl Builder for LambdaBuilder {
    async fn manifest(
        &self,
        image: &ImageName,
        tag: &str,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        self.manifest_gated(image, tag, Arc::new(OpenGate)).await
    }

    /// The gate is asked before each invocation: on AWS a build is a builder invocation.
    async fn manifest_gated(
        &self,
        image: &ImageName,
        tag: &str,
        gate: Arc<dyn BuildGate>,
    ) -> Result<ManifestEntry, Arc<BuildError>> {
        let key = alias_key(&self.invoker.settings.source.identity(tag), image);
        if let Some(alias) = self
            .invoker
            .fresh_alias(&key, tag)
            .await
            .map_err(Arc::new)?
        {
            return Ok(alias.manifest);
        }
        let (invoker, image, tag) = (self.invoker.clone(), image.clone(), tag.to_string());
        let task_key = key.clone();
        self.inflight
            .run(&key, move || async move {
                invoker.build(task_key, image, tag, gate).await
            })
            .await
    }
}

impl Invoker {
    async fn fresh_alias(&self, key: &str, tag: &str) -> Result<Option<AliasEntry>, BuildError> {
        let Some(alias) = self.index.get_alias(key).await? else {
            return Ok(None);
        };
        let fixed = self.settings.source.fixed_pin(tag).is_some();
        let ttl = self.settings.pin_ttl.as_millis() as u64;
        let fresh = fixed || now_ms() < alias.resolved_ms.saturating_add(ttl);
        Ok(fresh.then_some(alias))
    }

    /// Wait for another registry's build of this alias, or take the lease and invoke.
    async fn build(
        &self,
        key: String,
        image: ImageName,
        tag: String,
        gate: Arc<dyn BuildGate>,
    ) -> Result<ManifestEntry, BuildError> {
        let owner = format!("registry-{}-{}", std::process::id(), now_ms());
        let lease = self.settings.lease_ttl.min(START_LEASE);
        let deadline = Instant::now() + self.settings.lease_ttl;
        while !self.index.acquire_lease(&key, &owner, lease).await? {
            if let Some(alias) = self.fresh_alias(&key, &tag).await? {
                return Ok(alias.manifest);
            }
            if Instant::now() > deadline {
                return Err(BuildError::LeaseTimeout(self.settings.lease_ttl.as_secs()));
            }
            tokio::time::sleep(LEASE_POLL).await;
        }
        let guard = LeaseGuard::new(self.index.clone(), &key, &owner);
        if let Err(e) = gate.admit().await {
            guard.release().await;
            return Err(e);
        }
        let request = BuildRequest {
            image: image.repository.clone(),
            tag,
            alias_key: key,
            lease_owner: owner,
            lease_ttl_secs: self.settings.lease_ttl.as_secs(),
        };
        tracing::info!(image = %image, tag = %request.tag, "invoking the builder");
        let result = self.invoke(&request).await;
        match &result {
            // The builder released the lease, or may still be running and hold it.
            Ok(_) | Err(BuildError::Remote(RemoteError::Timeout(_))) => guard.disarm(),
            Err(_) => guard.release().await,
        }
        result
    }

    async fn invoke(&self, req: &BuildRequest) -> Result<ManifestEntry, BuildError> {
        let payload = serde_json::to_vec(req).map_err(|_| RemoteError::BadResponse)?;
        let function = &self.settings.function;
        let call = self
            .client
            .invoke()
            .function_name(function)
            .invocation_type(InvocationType::RequestResponse)
            .payload(Blob::new(payload))
            .send();
        let timeout = self.settings.invoke_timeout;
        let out = tokio::time::timeout(timeout, call)
            .await
            .map_err(|_| RemoteError::Timeout(timeout.as_secs()))?
            .map_err(|e| {
                let code = e.as_service_error().and_then(|s| s.code());
                tracing::error!(error = ?e, function, "invoking the builder failed");
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
}
