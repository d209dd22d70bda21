//! What the registry Lambda and the builder Lambda say to each other, as JSON payloads of a
//! synchronous Invoke.

use nixery_core::builder::{BuildError, RemoteError};
use nixery_core::registry::error::{ErrorCode, RegistryError};
use nixery_core::storage::ManifestEntry;
use serde::{Deserialize, Serialize};

/// What the registry asks the builder Lambda to do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BuildRequest {
    pub image: String,
    pub tag: String,
    /// The request's alias key: the builder points it at the image.
    pub alias_key: String,
    /// The lease on `alias_key` the registry took; the builder renews it for
    /// `lease_ttl_secs` while it builds and releases it when done.
    pub lease_owner: String,
    pub lease_ttl_secs: u64,
}

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
