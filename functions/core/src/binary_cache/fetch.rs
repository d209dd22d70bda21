//! How files are fetched from a binary cache: over HTTP(S) or from a `file://` directory.
//! A trait so the AWS builder can plug in, say, an S3 client without the core knowing.

use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use async_trait::async_trait;
use futures::TryStreamExt;
use tokio::io::AsyncRead;
use tokio_util::io::StreamReader;

/// A file's bytes, streamed.
pub type ByteStream = Pin<Box<dyn AsyncRead + Send>>;

#[async_trait]
pub trait CacheTransport: Send + Sync {
    /// Open `path`, relative to the cache root (`<hash>.narinfo`, `nar/<hash>.nar.xz`). An
    /// absent file is an error of kind [`io::ErrorKind::NotFound`]; other errors name the file.
    async fn get(&self, path: &str) -> io::Result<ByteStream>;
}

/// Cache paths come from narinfo `URL` lines, which signatures do not cover, and end up in
/// URLs as well as file paths: only plain segments of `[A-Za-z0-9._-]`, none of them `.` or
/// `..`, so nothing can leave the cache root or smuggle `%`, `?`, `#` or `\\` into a URL.
pub fn check_relative(path: &str) -> io::Result<&str> {
    let plain = |seg: &str| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && seg
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    };
    let ok = path.split('/').all(plain);
    match ok {
        true => Ok(path),
        false => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("cache file {path:?} is not a plain relative path"),
        )),
    }
}

/// A cache served over HTTP(S), such as `nix copy --to file://` output behind a web server.
pub struct HttpTransport {
    client: reqwest::Client,
    /// Ends with '/', so joining is plain concatenation.
    base: String,
}

impl HttpTransport {
    /// Timeouts bound a stalled cache (no whole-request timeout: a big NAR may take long).
    pub fn new(base_url: &str) -> io::Result<Self> {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .map_err(io::Error::other)?;
        let base = format!("{}/", base_url.trim_end_matches('/'));
        Ok(HttpTransport { client, base })
    }
}

#[async_trait]
impl CacheTransport for HttpTransport {
    async fn get(&self, path: &str) -> io::Result<ByteStream> {
        let url = format!("{}{}", self.base, check_relative(path)?);
        let named = |e: reqwest::Error| io::Error::other(format!("GET {url}: {e}"));
        let response = self.client.get(&url).send().await.map_err(named)?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            let msg = format!("GET {url}: 404 Not Found");
            return Err(io::Error::new(io::ErrorKind::NotFound, msg));
        }
        if !status.is_success() {
            return Err(io::Error::other(format!("GET {url}: {status}")));
        }
        let body = response.bytes_stream().map_err(move |e| {
            let msg = format!("reading {url}: {e}");
            io::Error::other(msg)
        });
        Ok(Box::pin(StreamReader::new(body)))
    }
}

/// A cache in a local directory (`file:///path`), as `nix copy --to file://` writes it.
pub struct FileTransport {
    root: PathBuf,
}

impl FileTransport {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FileTransport { root: root.into() }
    }
}

#[async_trait]
impl CacheTransport for FileTransport {
    async fn get(&self, path: &str) -> io::Result<ByteStream> {
        let full = self.root.join(check_relative(path)?);
        match tokio::fs::File::open(&full).await {
            Ok(file) => Ok(Box::pin(file)),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", full.display()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_relative_paths() {
        assert!(check_relative("nar/x.nar.xz").is_ok());
        for bad in [
            "",
            "/etc/passwd",
            "../x",
            "nar/../../x",
            "./x",
            "nar/%2e%2e/x",
            "nar\\..\\x",
            "nar/x?y",
            "nar/x#y",
            "nar//x",
            "nar/x y",
        ] {
            assert!(check_relative(bad).is_err(), "{bad}");
        }
    }
}
