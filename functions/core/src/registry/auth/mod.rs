//! Who may pull: the distribution token-auth flow, as the clients actually behave.
//!
//! Every unauthenticated `/v2` request gets a 401 with `WWW-Authenticate: Bearer realm=...,
//! service=...` (and `scope=repository:<name>:pull` on repository routes: containerd sends a
//! manifest HEAD first and never calls `/v2/`). Clients fetch a token from `/token` with the
//! tenant's name and API key, and retry with it. Basic credentials sent straight to `/v2` are
//! accepted too, as ECR does. An expired or bad token is answered with
//! `error="invalid_token"`, so clients fetch a new one; a token without the repository's
//! scope with `error="insufficient_scope"`; a suspended tenant with 403 `DENIED`. The realm
//! is absolute and comes from configuration, never from the Host header.

mod endpoint;
pub mod token;

pub use endpoint::token_routes;
pub use token::{Claims, KeyError, SigningKeys, MIN_TOKEN_TTL_SECS};

use super::error::{ErrorCode, RegistryError};
use crate::accounts::{Accounts, Day, Meter, Tenant, TenantStatus};
use crate::memo::Memo;
use axum::http::{header, HeaderMap};
use base64::Engine;
use std::sync::Arc;
use std::time::Duration;

/// Tenants known to have used up a daily limit, so a retried 429 costs no write.
const EXHAUSTED_MEMO: usize = 4096;

#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// The absolute base URL clients use (`https://registry.example.org`); the token realm
    /// is `<public_url>/token` and the service name its host.
    pub public_url: String,
    pub token_ttl: Duration,
    pub keys: SigningKeys,
}

#[derive(Debug, thiserror::Error)]
#[error("the public URL {0:?} must be absolute: http(s)://host[:port][/path]")]
pub struct PublicUrlError(String);

pub struct Auth {
    settings: AuthSettings,
    service: String,
    pub(super) accounts: Arc<dyn Accounts>,
    /// (tenant, day, meter) -> the limit found exhausted.
    exhausted: Memo<(String, Day, Meter), u64>,
}

/// Who a request comes from, and what it may pull.
pub struct Identity {
    pub tenant: String,
    /// None: Basic credentials, every repository; Some: what the token grants.
    token: Option<Claims>,
}

impl Identity {
    fn may_pull(&self, repository: &str) -> bool {
        self.token.as_ref().is_none_or(|c| c.may_pull(repository))
    }
}

impl Auth {
    pub fn new(
        settings: AuthSettings,
        accounts: Arc<dyn Accounts>,
    ) -> Result<Auth, PublicUrlError> {
        let url = settings.public_url.trim_end_matches('/').to_string();
        let authority = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("http://"))
            .map(|rest| rest.split('/').next().unwrap_or_default())
            .filter(|host| !host.is_empty() && !host.contains(['"', ' ', '\\']))
            .ok_or_else(|| PublicUrlError(settings.public_url.clone()))?
            .to_string();
        Ok(Auth {
            settings: AuthSettings {
                public_url: url,
                ..settings
            },
            service: authority,
            accounts,
            exhausted: Memo::new(EXHAUSTED_MEMO),
        })
    }

    /// The 401 that sends a client to the token endpoint.
    pub fn challenge(&self, repository: Option<&str>, error: Option<&str>) -> RegistryError {
        let mut value = format!(
            "Bearer realm=\"{}/token\",service=\"{}\"",
            self.settings.public_url, self.service
        );
        if let Some(repo) = repository {
            value.push_str(&format!(",scope=\"repository:{repo}:pull\""));
        }
        if let Some(error) = error {
            value.push_str(&format!(",error=\"{error}\""));
        }
        let message = match error {
            Some("insufficient_scope") => "the token does not grant pulling this repository",
            Some(_) => "the token is invalid or expired; fetch a new one",
            None => "authentication required: log in with your tenant name and API key",
        };
        RegistryError::new(ErrorCode::Unauthorized, message).with_header("WWW-Authenticate", value)
    }

    /// Check a `/v2` request's credentials, for `repository` when the route has one.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        repository: Option<&str>,
    ) -> Result<Identity, RegistryError> {
        let identity = match credentials(headers) {
            Credentials::Bearer(token) => {
                let claims = self
                    .settings
                    .keys
                    .verify(&token, &self.service)
                    .map_err(|e| {
                        tracing::info!(error = %e, "{}", crate::events::TOKEN_REJECTED);
                        self.challenge(repository, Some("invalid_token"))
                    })?;
                Identity {
                    tenant: claims.sub.clone(),
                    token: Some(claims),
                }
            }
            Credentials::Basic(user, key) => {
                let tenant = self.tenant_with_key(&user, &key).await?;
                Identity {
                    tenant: tenant.name,
                    token: None,
                }
            }
            Credentials::None => return Err(self.challenge(repository, None)),
        };
        match repository {
            Some(repo) if !identity.may_pull(repo) => {
                Err(self.challenge(Some(repo), Some("insufficient_scope")))
            }
            _ => Ok(identity),
        }
    }

    /// The tenant `name`, if `key` is its key and it is active.
    pub async fn tenant_with_key(&self, name: &str, key: &str) -> Result<Tenant, RegistryError> {
        let tenant = self.accounts.get_tenant(name).await?;
        match tenant {
            Some(t) if t.accepts(key) => active(t),
            _ => Err(RegistryError::new(
                ErrorCode::Unauthorized,
                "unknown tenant or wrong API key",
            )
            .with_header(
                "WWW-Authenticate",
                format!("Basic realm=\"{}/token\"", self.settings.public_url),
            )),
        }
    }

    /// The active tenant a request comes from (it may have been suspended or deleted since
    /// its token was issued).
    pub async fn current_tenant(&self, identity: &Identity) -> Result<Tenant, RegistryError> {
        match self.accounts.get_tenant(&identity.tenant).await? {
            Some(t) => active(t),
            None => Err(RegistryError::new(
                ErrorCode::Denied,
                "this tenant no longer exists",
            )),
        }
    }

    pub(super) fn service(&self) -> &str {
        &self.service
    }

    pub(super) fn token_ttl(&self) -> Duration {
        self.settings.token_ttl
    }

    pub(super) fn keys(&self) -> &SigningKeys {
        &self.settings.keys
    }

    /// Whether `tenant` was already found over `limit` for `meter` today.
    pub(super) fn known_exhausted(
        &self,
        tenant: &str,
        day: &Day,
        meter: Meter,
        limit: u64,
    ) -> bool {
        let key = (tenant.to_string(), day.clone(), meter);
        self.exhausted.get(&key) == Some(limit)
    }

    pub(super) fn remember_exhausted(&self, tenant: &str, day: &Day, meter: Meter, limit: u64) {
        self.exhausted
            .put(&(tenant.to_string(), day.clone(), meter), &limit);
    }
}

fn active(tenant: Tenant) -> Result<Tenant, RegistryError> {
    match tenant.status {
        TenantStatus::Active => Ok(tenant),
        TenantStatus::Suspended => Err(RegistryError::new(
            ErrorCode::Denied,
            format!("tenant {} is suspended", tenant.name),
        )),
    }
}

enum Credentials {
    Bearer(String),
    Basic(String, String),
    None,
}

/// The `Authorization` header's credentials; anything unreadable counts as none.
fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credentials::None;
    };
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    match scheme.to_ascii_lowercase().as_str() {
        "bearer" => Credentials::Bearer(rest.trim().to_string()),
        "basic" => basic(rest.trim()).map_or(Credentials::None, |(u, p)| Credentials::Basic(u, p)),
        _ => Credentials::None,
    }
}

/// `user:password` from a Basic credential.
pub(super) fn basic(encoded: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}
