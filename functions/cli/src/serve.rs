//! `nixery serve`: the registry on one machine, open to all or, with `--auth`, to tenants
//! with an API key, metered per pull.

use crate::admin_socket;
use crate::cli::{check_nix, CommonArgs};
use anyhow::{bail, Context, Result};
use clap::Args;
use nixery_core::accounts::redb::RedbAccounts;
use nixery_core::registry::auth::{Auth, AuthSettings, SigningKeys, MIN_TOKEN_TTL_SECS};
use nixery_core::registry::{router, Registry, RegistrySettings};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "NIXERY_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Answer 429 with Retry-After if a build takes longer than this many seconds (the build goes on). Default: wait.
    #[arg(long, env = "NIXERY_BUILD_WAIT")]
    build_wait: Option<u64>,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct AuthArgs {
    /// Serve only tenants with an API key (`nixery tenant create`), and meter their pulls.
    #[arg(long, env = "NIXERY_AUTH")]
    auth: bool,
    /// The absolute URL clients use for this registry (the token realm is URL/token).
    /// Default: http:// and the address listened on.
    #[arg(long, env = "NIXERY_PUBLIC_URL")]
    public_url: Option<String>,
    /// File with the token signing secrets (whitespace-separated; the first signs). Default:
    /// token-signing-key in the storage directory, created with a random secret if missing.
    #[arg(long, env = "NIXERY_SIGNING_KEY_FILE")]
    signing_key_file: Option<PathBuf>,
    /// Seconds a registry token stays valid (at least 60: docker assumes a minute).
    #[arg(long, env = "NIXERY_TOKEN_TTL", default_value_t = 300)]
    token_ttl: u64,
}

pub async fn serve(a: ServeArgs) -> Result<()> {
    let stack = a.common.open()?;
    check_nix(&stack).await?;
    let listener = tokio::net::TcpListener::bind(&a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let addr = listener.local_addr()?;
    let settings = RegistrySettings {
        build_wait: a.build_wait.map(Duration::from_secs),
        source_description: stack.builder.source().describe(),
    };
    let auth = match a.auth.auth {
        true => Some(auth(&a.auth, &a.common.storage, &format!("http://{addr}"))?),
        false => None,
    };
    let authenticated = auth.is_some();
    let registry = Registry::with_auth(stack.blobs.clone(), stack.builder.clone(), settings, auth);
    println!("nixery listening on {addr}");
    std::io::stdout().flush()?;
    let source = stack.builder.source().describe();
    let storage = a.common.storage.display();
    tracing::info!(%addr, %source, %storage, auth = authenticated, "serving");
    axum::serve(listener, router(registry))
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

/// Token auth on `accounts.redb` in the storage directory, which this process holds; the
/// admin CLI reaches it through the admin socket meanwhile.
fn auth(a: &AuthArgs, storage: &Path, default_url: &str) -> Result<Auth> {
    if a.token_ttl < MIN_TOKEN_TTL_SECS {
        bail!("--token-ttl must be at least {MIN_TOKEN_TTL_SECS} seconds: docker caches tokens for a minute whatever they say");
    }
    let key_file = a
        .signing_key_file
        .clone()
        .unwrap_or_else(|| storage.join("token-signing-key"));
    let keys = SigningKeys::parse(&read_or_create_key(&key_file)?)
        .with_context(|| format!("signing key file {}", key_file.display()))?;
    let path = storage.join("accounts.redb");
    let accounts =
        Arc::new(RedbAccounts::open(&path).with_context(|| format!("opening {}", path.display()))?);
    admin_socket::serve(storage, accounts.clone()).context("opening the admin socket")?;
    let settings = AuthSettings {
        public_url: a
            .public_url
            .clone()
            .unwrap_or_else(|| default_url.to_string()),
        token_ttl: Duration::from_secs(a.token_ttl),
        keys,
    };
    Ok(Auth::new(settings, accounts)?)
}

/// The key file's text; a missing file is created, readable by its owner only.
fn read_or_create_key(path: &Path) -> Result<String> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let secret = SigningKeys::generate_secret();
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .with_context(|| format!("creating {}", path.display()))?;
            writeln!(file, "{secret}")?;
            tracing::info!(path = %path.display(), "created a token signing key");
            Ok(secret)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

async fn shutdown() {
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutting down");
}
