//! Blocking HTTP helpers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

use regex::Regex;

use super::HTTP_TIMEOUT;

/// A complete HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    /// A header value as a string ("" when absent).
    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// The body as (lossy) text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON; panics with the body if it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "response (status {}) is not JSON ({e}): {}",
                self.status,
                self.text()
            )
        })
    }

    /// The first registry error code (`errors[0].code`), "" when absent.
    pub fn error_code(&self) -> String {
        serde_json::from_slice::<serde_json::Value>(&self.body)
            .ok()
            .and_then(|v| v["errors"][0]["code"].as_str().map(str::to_string))
            .unwrap_or_default()
    }
}

/// The first registry error code found in a (possibly chunked) response body, "" if none.
pub fn error_code_in(body: &str) -> String {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r#""code"\s*:\s*"([A-Z_]+)""#).expect("regex"))
        .captures(body)
        .map(|m| m[1].to_string())
        .unwrap_or_default()
}

fn client() -> &'static reqwest::blocking::Client {
    static CLIENT: OnceLock<reqwest::blocking::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::blocking::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .expect("HTTP client")
    })
}

/// Send `method url` with extra headers; returns status, headers and the whole body, or the
/// transport error (connection refused or reset, timeout...).
pub fn try_http(method: &str, url: &str, headers: &[(&str, &str)]) -> Result<Resp, String> {
    let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
    let mut req = client().request(method.clone(), url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req
        .send()
        .map_err(|e| format!("{method} {url} failed: {e:?}"))?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp
        .bytes()
        .map_err(|e| format!("reading body of {method} {url}: {e:?}"))?
        .to_vec();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

/// Like [`try_http`], panicking on a transport error.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
    try_http(method, url, headers).unwrap_or_else(|e| panic!("{e}"))
}

/// GET with extra headers.
pub fn http_get(url: &str, headers: &[(&str, &str)]) -> Resp {
    http("GET", url, headers)
}

/// HEAD with extra headers.
pub fn http_head(url: &str, headers: &[(&str, &str)]) -> Resp {
    http("HEAD", url, headers)
}

/// Send a request line with a raw, unnormalised target (e.g. containing `..`) over plain TCP.
/// Returns the status code and the body (everything after the header block).
pub fn raw_get(addr: &str, target: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to server");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("read timeout");
    write!(
        stream,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("write raw request");
    let mut buf = Vec::new();
    let _ = stream.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in raw response to {target}: {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}
