//! `GET|HEAD /v2/<name>/manifests/<tag|digest>`: by digest from the blob
//! store, by tag from the builder (cache or build).

use super::auth::Identity;
use super::blobs::parse_digest;
use super::error::{ErrorCode, RegistryError, RETRY_AFTER_SECS};
use super::metering::{self, TenantGate};
use super::Registry;
use crate::accounts::Tenant;
use crate::builder::{BuildGate, OpenGate};
use crate::image::{manifest_media_type, DOCKER_MANIFEST, OCI_MANIFEST};
use crate::name::{valid_tag, ImageName};
use crate::storage::ManifestEntry;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Method};
use axum::response::Response;
use std::sync::Arc;

/// Manifests longer than this are not ours (the distribution spec asks registries to take
/// at least 4 MiB); anything longer, such as a layer asked for by its digest, is not read.
pub const MAX_MANIFEST_BYTES: u64 = 4 << 20;

pub(super) async fn get(
    reg: &Registry,
    name: &str,
    reference: &str,
    method: &Method,
    headers: &HeaderMap,
    identity: Option<&Identity>,
) -> Result<Response, RegistryError> {
    let head = method == Method::HEAD;
    let tenant = match (&reg.auth, identity) {
        (Some(auth), Some(id)) => Some(metering::admit(auth, id).await?),
        _ => None,
    };
    let digest = if reference.contains(':') {
        parse_digest(reference)?
    } else {
        let entry = build(reg, name, reference, gate(reg, tenant.as_ref(), name)).await?;
        if wants_oci_only(headers) {
            entry.oci.digest
        } else {
            entry.docker.digest
        }
    };
    let unknown = || {
        RegistryError::new(
            ErrorCode::ManifestUnknown,
            format!("manifest {digest} is not in this registry"),
        )
    };
    let (bytes, media_type) = match reg.manifests.get(&digest) {
        Some(hit) => hit,
        None => {
            let bytes = reg.blobs.get_bytes(&digest, MAX_MANIFEST_BYTES).await?;
            let bytes = bytes.ok_or_else(unknown)?;
            let media_type = manifest_media_type(&bytes).ok_or_else(unknown)?;
            // Content-addressed, so never stale.
            reg.manifests.put(&digest, &(bytes.clone(), media_type));
            (bytes, media_type)
        }
    };
    let len = bytes.len();
    let body = if head {
        Body::empty()
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(media_type));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(&digest.to_string()) {
        h.insert("Docker-Content-Digest", v);
    }
    if let (Some(auth), Some(tenant)) = (&reg.auth, &tenant) {
        let rate = match head {
            true => metering::peek(auth, tenant).await?,
            false => metering::count_pull(auth, tenant, name, &digest).await?,
        };
        for (name, value) in rate {
            if let Ok(v) = HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
    }
    Ok(resp)
}

/// What a build of `name` must pass first: the tenant's daily build limit.
fn gate(reg: &Registry, tenant: Option<&Tenant>, name: &str) -> Arc<dyn BuildGate> {
    match (&reg.auth, tenant) {
        (Some(auth), Some(tenant)) => Arc::new(TenantGate {
            accounts: auth.accounts.clone(),
            tenant: tenant.clone(),
            repository: name.to_string(),
        }),
        _ => Arc::new(OpenGate),
    }
}

/// Docker schema 2 unless the client accepts OCI manifests and not Docker ones.
fn wants_oci_only(headers: &HeaderMap) -> bool {
    let accept: Vec<&str> = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.split(';').next().unwrap_or("").trim())
        .collect();
    accept.contains(&OCI_MANIFEST) && !accept.contains(&DOCKER_MANIFEST)
}

async fn build(
    reg: &Registry,
    name: &str,
    tag: &str,
    gate: Arc<dyn BuildGate>,
) -> Result<ManifestEntry, RegistryError> {
    if !valid_tag(tag) {
        return Err(RegistryError::new(
            ErrorCode::TagInvalid,
            format!("{:?} is neither a valid tag nor a digest", truncate(tag)),
        ));
    }
    let image = ImageName::parse(name)
        .map_err(|e| RegistryError::new(ErrorCode::NameInvalid, e.to_string()))?;
    let fut = reg.builder.manifest_gated(&image, tag, gate);
    let result = match reg.settings.build_wait {
        Some(budget) => match tokio::time::timeout(budget, fut).await {
            Ok(r) => r,
            Err(_) => {
                return Err(RegistryError::retry_later(
                    format!("image {name} is still being built; retry shortly"),
                    RETRY_AFTER_SECS,
                ))
            }
        },
        None => fut.await,
    };
    result.map_err(|e| {
        let err = RegistryError::from(e.as_ref());
        reg.record_error(&format!("{name}:{tag}"), &err.message);
        err
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
