//! `GET /v2/<name>/tags/list`, with the spec's pagination (`n`, `last`). Every package list
//! can be built at any tag, so the list is nominal: `latest`.

use super::error::{ErrorCode, RegistryError};
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};

const TAGS: [&str; 1] = ["latest"];

pub(super) fn list(name: &str, query: Option<&str>) -> Result<Response, RegistryError> {
    let (mut n, mut last) = (None, None);
    for (key, value) in query
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
    {
        match key {
            "n" => n = Some(value.parse::<usize>().map_err(|_| bad_n(value))?),
            "last" => last = Some(value),
            _ => {}
        }
    }
    let after: Vec<&str> = TAGS
        .iter()
        .copied()
        .filter(|t| last.is_none_or(|l| *t > l))
        .collect();
    let shown = &after[..n.unwrap_or(after.len()).min(after.len())];
    let body = serde_json::json!({"name": name, "tags": shown});
    let mut resp = axum::Json(body).into_response();
    if let (Some(n), Some(end)) = (n, shown.last()) {
        if after.len() > shown.len() {
            let next = format!("</v2/{name}/tags/list?n={n}&last={end}>; rel=\"next\"");
            if let Ok(v) = HeaderValue::from_str(&next) {
                resp.headers_mut().insert(header::LINK, v);
            }
        }
    }
    Ok(resp)
}

fn bad_n(value: &str) -> RegistryError {
    let shown: String = value.chars().take(40).collect();
    RegistryError::new(
        ErrorCode::PaginationNumberInvalid,
        format!("n={shown:?} is not a number of results"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn tags(query: &str) -> (u16, serde_json::Value) {
        let resp = match list("git", Some(query)) {
            Ok(r) => r,
            Err(e) => e.into_response(),
        };
        let status = resp.status().as_u16();
        let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, serde_json::from_slice(&body).expect("json"))
    }

    #[tokio::test]
    async fn pagination_and_bad_numbers() {
        assert_eq!(tags("").await.1["tags"], serde_json::json!(["latest"]));
        assert_eq!(tags("n=0").await.1["tags"], serde_json::json!([]));
        assert_eq!(tags("n=5").await.1["tags"], serde_json::json!(["latest"]));
        assert_eq!(tags("last=latest").await.1["tags"], serde_json::json!([]));
        assert_eq!(
            tags("last=a").await.1["tags"],
            serde_json::json!(["latest"])
        );
        let (status, body) = tags("n=abc").await;
        assert_eq!(status, 400);
        assert_eq!(body["errors"][0]["code"], "PAGINATION_NUMBER_INVALID");
        assert_eq!(tags("n=-1").await.0, 400);
    }
}
