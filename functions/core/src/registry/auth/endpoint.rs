//! `GET|POST /token`: API key in, short-lived registry token out.
//!
//! GET takes Basic credentials and `scope` (repeated or space-separated, or absent: docker
//! and podman log in with none), `service`, `account`, `client_id`, `offline_token`. POST
//! takes a form with `grant_type=password`, `username`, `password`, `scope`, which
//! containerd tries first. The answer is `{"token","access_token","expires_in","issued_at"}`
//! and never a `refresh_token` (docker would then switch to a refresh flow). The grant is the
//! intersection of what was asked and what the tenant may do (pull, on valid repository
//! names); a partial grant is not an error.

use super::super::error::{ErrorCode, RegistryError};
use super::super::Registry;
use super::{basic, Auth, Claims};
use crate::name::validate_repository;
use axum::extract::{Form, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use std::collections::BTreeSet;
use std::sync::Arc;
use time::format_description::well_known::Rfc3339;

type Params = Vec<(String, String)>;

/// `/token`, answering only when the registry has auth.
pub fn token_routes() -> Router<Arc<Registry>> {
    Router::new().route("/token", get(token_get).post(token_post))
}

async fn token_get(
    State(reg): State<Arc<Registry>>,
    headers: HeaderMap,
    Query(params): Query<Params>,
) -> Response {
    let result = async {
        let auth = enabled(&reg)?;
        let (user, key) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .and_then(|v| basic(v.trim()))
            .ok_or_else(|| {
                RegistryError::new(ErrorCode::Unauthorized, "send your tenant name and API key")
                    .with_header("WWW-Authenticate", "Basic realm=\"nixery\"")
            })?;
        issue(auth, &user, &key, scopes(&params)).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

async fn token_post(State(reg): State<Arc<Registry>>, Form(params): Form<Params>) -> Response {
    let result = async {
        let auth = enabled(&reg)?;
        let field = |name: &str| {
            params
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str())
        };
        if field("grant_type") != Some("password") {
            return Ok(oauth_error("unsupported_grant_type"));
        }
        let (Some(user), Some(key)) = (field("username"), field("password")) else {
            return Ok(oauth_error("invalid_request"));
        };
        issue(auth, user, key, scopes(&params)).await
    };
    result.await.unwrap_or_else(IntoResponse::into_response)
}

fn enabled(reg: &Registry) -> Result<&Auth, RegistryError> {
    reg.auth
        .as_ref()
        .ok_or_else(|| RegistryError::new(ErrorCode::Unsupported, "this registry needs no login"))
}

/// An OAuth2 error for grants this endpoint does not serve.
fn oauth_error(code: &str) -> Response {
    let body = serde_json::json!({ "error": code });
    (axum::http::StatusCode::BAD_REQUEST, axum::Json(body)).into_response()
}

/// The repositories asked for with pull, out of every `scope` parameter.
fn scopes(params: &Params) -> BTreeSet<String> {
    params
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split_whitespace())
        .filter_map(|scope| {
            let (kind, rest) = scope.split_once(':')?;
            let (name, actions) = rest.rsplit_once(':')?;
            let pull = actions.split(',').any(|a| a == "pull" || a == "*");
            (kind == "repository" && pull && validate_repository(name).is_ok())
                .then(|| name.to_string())
        })
        .collect()
}

async fn issue(
    auth: &Auth,
    user: &str,
    key: &str,
    repositories: BTreeSet<String>,
) -> Result<Response, RegistryError> {
    let tenant = auth.tenant_with_key(user, key).await?;
    let now = time::OffsetDateTime::now_utc();
    let ttl = auth.token_ttl().as_secs();
    let claims = Claims::new(
        &tenant.name,
        auth.service(),
        now.unix_timestamp() as u64,
        ttl,
        &repositories,
    );
    let token = auth.keys().sign(&claims).map_err(|e| {
        tracing::error!(error = %e, "signing a token failed");
        RegistryError::new(ErrorCode::Unknown, "could not issue a token")
    })?;
    let repos = repositories.len();
    tracing::info!(tenant = %tenant.name, repositories = repos, "{}", crate::events::TOKEN_ISSUED);
    let body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": ttl,
        "issued_at": now.format(&Rfc3339).unwrap_or_default(),
    });
    Ok(axum::Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_grant_pull_on_valid_names_only() {
        let params: Params = vec![
            (
                "scope".into(),
                "repository:shell/git:pull repository:htop:push,pull".into(),
            ),
            ("scope".into(), "repository:Bad_Name:pull".into()),
            ("scope".into(), "repository:curl:push".into()),
            ("scope".into(), "registry:catalog:*".into()),
            ("service".into(), "x".into()),
        ];
        let got: Vec<String> = scopes(&params).into_iter().collect();
        assert_eq!(got, ["htop", "shell/git"]);
    }
}
