//! Against a real binary cache: Nix builds packages from the offline set in `nix/pkgs`, signs
//! them and copies them with `nix copy --to file://`; the cache is read from disk and over
//! HTTP on loopback. These tests need Nix and fail (not skip) without it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use super::*;
use crate::pack::pack_paths;

type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

const NIX_CONFIG: &str =
    "sandbox = false\nbuild-users-group =\nsubstituters =\nexperimental-features = nix-command";

/// Run a Nix command; its stdout, trimmed.
fn nix(program: &str, args: &[&str]) -> TestResult<String> {
    let output = Command::new(program)
        .args(args)
        .env("NIX_CONFIG", NIX_CONFIG)
        .output()
        .map_err(|e| format!("running {program} (these tests need Nix installed): {e}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{program} {args:?} failed: {stderr}").into());
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_string())
}

/// A signed cache of `git` and `hello` (and their closure), one directory per compression.
struct Fixture {
    dir: tempfile::TempDir,
    roots: Vec<String>,
    public_key: String,
    /// Unique per fixture: the store keeps every signature ever made, and other tests sign
    /// the same paths with their own keys.
    key_name: String,
}

impl Fixture {
    fn new(compressions: &[&str]) -> TestResult<Fixture> {
        let pkgs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nix/pkgs");
        let pkgs = pkgs.to_str().ok_or("non-UTF-8 path")?;
        let mut roots = Vec::new();
        for attr in ["git", "hello"] {
            roots.push(nix("nix-build", &[pkgs, "-A", attr, "--no-out-link"])?);
        }
        let dir = tempfile::tempdir()?;
        let key_name = format!("test{}", path(dir.path())?.replace('/', "-"));
        let (sk, pk) = (dir.path().join("sk"), dir.path().join("pk"));
        let key_args = [
            "--generate-binary-cache-key",
            &key_name,
            path(&sk)?,
            path(&pk)?,
        ];
        nix("nix-store", &key_args)?;
        let roots_ref: Vec<&str> = roots.iter().map(String::as_str).collect();
        let sign = [
            &["store", "sign", "--key-file", path(&sk)?, "--recursive"],
            &roots_ref[..],
        ];
        nix("nix", &sign.concat())?;
        for compression in compressions {
            let to = format!(
                "file://{}/{compression}?compression={compression}",
                path(dir.path())?
            );
            nix("nix", &[&["copy", "--to", &to], &roots_ref[..]].concat())?;
        }
        let public_key = std::fs::read_to_string(&pk)?;
        Ok(Fixture {
            dir,
            roots,
            public_key,
            key_name,
        })
    }

    fn cache_dir(&self, compression: &str) -> PathBuf {
        self.dir.path().join(compression)
    }

    fn file_cache(&self, compression: &str) -> Result<BinaryCache> {
        let url = format!("file://{}", self.cache_dir(compression).display());
        BinaryCache::new(&url, &[&self.public_key])
    }

    /// Every path of the closure, as the local Nix store knows it.
    fn local_closure(&self) -> TestResult<ClosureGraph> {
        let args = [&["path-info", "--json", "-r"], &self.roots_str()[..]].concat();
        let json = nix("nix", &args)?;
        Ok(ClosureGraph::from_path_info_json(
            self.roots.clone(),
            &json,
        )?)
    }

    fn roots_str(&self) -> Vec<&str> {
        self.roots.iter().map(String::as_str).collect()
    }
}

fn path(p: &Path) -> TestResult<&str> {
    Ok(p.to_str().ok_or("non-UTF-8 path")?)
}

/// Serve `dir` on 127.0.0.1 with tower-http's ServeDir, as any static web server would.
async fn serve(dir: PathBuf) -> TestResult<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback_service(tower_http::services::ServeDir::new(dir));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/"))
}

fn error_text<T>(result: Result<T>) -> String {
    result.err().map(|e| e.to_string()).unwrap_or_default()
}

#[tokio::test]
async fn closure_from_narinfos_equals_nix_path_info() -> TestResult {
    let fixture = Fixture::new(&["xz"])?;
    let cache = fixture.file_cache("xz")?;
    let local = fixture.local_closure()?;
    assert_eq!(cache.closure(&fixture.roots).await?, local);
    let info = cache.narinfo(&fixture.roots[0]).await?;
    assert_eq!(info.compression, NarCompression::Xz);
    assert_eq!(info.nar_size, local.paths[&fixture.roots[0]].nar_size);
    Ok(())
}

#[tokio::test]
async fn untrusted_tampered_and_missing_narinfos_are_refused() -> TestResult {
    let fixture = Fixture::new(&["none"])?;
    let git = &fixture.roots[0];
    let other_dir = tempfile::tempdir()?;
    let (sk, pk) = (other_dir.path().join("sk"), other_dir.path().join("pk"));
    let name = &fixture.key_name;
    nix(
        "nix-store",
        &["--generate-binary-cache-key", name, path(&sk)?, path(&pk)?],
    )?;
    let url = format!("file://{}", fixture.cache_dir("none").display());
    let stranger = BinaryCache::new(&url, &[std::fs::read_to_string(&pk)?])?;
    let err = error_text(stranger.narinfo(git).await);
    assert!(
        err.contains(git) && err.contains("no valid signature"),
        "{err}"
    );

    let cache = fixture.file_cache("none")?;
    let hash = &git["/nix/store/".len()..][..32];
    let file = fixture.cache_dir("none").join(format!("{hash}.narinfo"));
    let original = std::fs::read_to_string(&file)?;
    let ours = format!("Sig: {name}:");
    let sig_at = original.find(&ours).ok_or("no Sig line")? + ours.len();
    let mut tampered = original.clone().into_bytes();
    tampered[sig_at + 3] = if tampered[sig_at + 3] == b'A' {
        b'B'
    } else {
        b'A'
    };
    let size_changed = original.replace("NarSize: ", "NarSize: 1");
    for text in [String::from_utf8(tampered)?, size_changed] {
        std::fs::write(&file, text)?;
        let err = error_text(cache.narinfo(git).await);
        assert!(
            err.contains(git) && err.contains("no valid signature"),
            "{err}"
        );
    }
    std::fs::write(&file, original)?;
    cache.narinfo(git).await?;

    let absent = format!("/nix/store/{}-absent-1.0", "0".repeat(32));
    let err = error_text(cache.narinfo(&absent).await);
    assert!(
        err.contains(&absent) && err.contains("not in the binary cache"),
        "{err}"
    );
    Ok(())
}

/// A layer packed from NARs is byte for byte the layer `pack_paths` makes from the store.
async fn same_layer_as_the_store(cache: &BinaryCache, paths: &[String]) -> TestResult {
    let locals: Vec<PathBuf> = paths.iter().map(PathBuf::from).collect();
    let mut want = Vec::new();
    let want_digests = pack_paths(&locals, &mut want, Compression::default())?;
    let out = tempfile::NamedTempFile::new()?;
    let got_digests = cache
        .pack_layer(paths, out.reopen()?, Compression::default())
        .await?;
    assert_eq!(got_digests, want_digests);
    assert!(std::fs::read(out.path())? == want, "layer bytes differ");
    Ok(())
}

#[tokio::test]
async fn layers_from_nars_match_pack_paths_over_file_and_http() -> TestResult {
    let fixture = Fixture::new(&["xz", "zstd", "none"])?;
    let all: Vec<String> = fixture.local_closure()?.paths.into_keys().collect();
    let mut reversed = all.clone();
    reversed.reverse();
    same_layer_as_the_store(&fixture.file_cache("xz")?, &reversed).await?;
    for compression in ["zstd", "none"] {
        let url = serve(fixture.cache_dir(compression)).await?;
        let cache = BinaryCache::new(&url, &[&fixture.public_key])?;
        same_layer_as_the_store(&cache, &all).await?;
        same_layer_as_the_store(&cache, &fixture.roots[1..]).await?;
    }
    Ok(())
}

#[tokio::test]
async fn tree_from_nar_equals_the_store_listing() -> TestResult {
    let fixture = Fixture::new(&["xz"])?;
    let url = serve(fixture.cache_dir("xz")).await?;
    let cache = BinaryCache::new(&url, &[&fixture.public_key])?;
    for path in fixture.local_closure()?.paths.keys() {
        assert_eq!(
            cache.tree(path).await?,
            Tree::read(Path::new(path))?,
            "{path}"
        );
    }
    Ok(())
}

/// Listings taken while packing are the store's, for exactly the paths asked for, and the
/// layer is the same as without them.
#[tokio::test]
async fn listings_taken_while_packing_equal_the_store_listing() -> TestResult {
    let fixture = Fixture::new(&["xz"])?;
    let cache = fixture.file_cache("xz")?;
    let all: Vec<String> = fixture.local_closure()?.paths.into_keys().collect();
    let list: BTreeSet<String> = fixture.roots.iter().cloned().collect();
    let out = tempfile::NamedTempFile::new()?;
    let (digests, trees) = cache
        .pack_layer_listing(&all, out.reopen()?, Compression::default(), list)
        .await?;
    let plain = cache
        .pack_layer(&all, tempfile::tempfile()?, Compression::default())
        .await?;
    assert_eq!(digests, plain);
    let listed: Vec<&String> = trees.iter().map(|(p, _)| p).collect();
    let mut roots: Vec<&String> = fixture.roots.iter().collect();
    roots.sort();
    assert_eq!(listed, roots);
    for (path, tree) in &trees {
        assert_eq!(tree, &Tree::read(Path::new(path))?, "{path}");
    }
    Ok(())
}

/// The fixture's cache of `compression` with hello's NAR file changed by `corrupt`; the cache
/// and hello's store path.
async fn cache_with_corrupt_hello(
    fixture: &Fixture,
    compression: &str,
    corrupt: impl FnOnce(&mut Vec<u8>) -> TestResult,
) -> TestResult<(BinaryCache, String)> {
    let hello = fixture.roots[1].clone();
    let cache = fixture.file_cache(compression)?;
    let info = cache.narinfo(&hello).await?;
    let nar = fixture.cache_dir(compression).join(&info.url);
    let mut bytes = std::fs::read(&nar)?;
    corrupt(&mut bytes)?;
    std::fs::write(&nar, bytes)?;
    Ok((cache, hello))
}

#[tokio::test]
async fn corrupt_nar_is_refused_naming_the_path() -> TestResult {
    let fixture = Fixture::new(&["none"])?;
    let (cache, hello) = cache_with_corrupt_hello(&fixture, "none", |bytes| {
        let at = bytes
            .windows(8)
            .position(|w| w == b"(offline")
            .ok_or("no file text to corrupt in the NAR")?;
        bytes[at + 1] = b'O';
        Ok(())
    })
    .await?;
    let err = error_text(cache.tree(&hello).await);
    assert!(
        err.contains(&hello) && err.contains("hash mismatch"),
        "{err}"
    );
    let sink = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let out = SharedVec(sink);
    let err = error_text(
        cache
            .pack_layer(std::slice::from_ref(&hello), out, Compression::default())
            .await,
    );
    assert!(
        err.contains(&hello) && err.contains("hash mismatch"),
        "{err}"
    );
    Ok(())
}

/// The xz check is not verified (the NAR's SHA-256 is): a flipped byte inside the compressed
/// data is still refused, as a hash mismatch or as an xz data error, naming the path.
#[tokio::test]
async fn corrupt_xz_nar_is_refused_naming_the_path() -> TestResult {
    let fixture = Fixture::new(&["xz"])?;
    let (cache, hello) = cache_with_corrupt_hello(&fixture, "xz", |bytes| {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        Ok(())
    })
    .await?;
    let err = error_text(cache.tree(&hello).await);
    assert!(err.contains(&hello), "{err}");
    assert!(
        err.contains("hash mismatch") || err.contains("lzma data error"),
        "{err}"
    );
    Ok(())
}

/// A `Write + 'static` that tests can look into.
struct SharedVec(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedVec {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let mut inner = self
            .0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?;
        inner.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn bad_urls_and_empty_keys_are_rejected() {
    let none: [&str; 0] = [];
    assert!(matches!(
        BinaryCache::new("file:///x", &none),
        Err(BinaryCacheError::NoKeys)
    ));
    assert!(matches!(
        BinaryCache::new("s3://bucket", &["k:AAAA"]),
        Err(BinaryCacheError::Url(_))
    ));
}
