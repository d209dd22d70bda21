//! Command-line interface. The names and output formats here are relied on
//! by other tooling: keep them stable.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use nixery_core::binary_cache::BinaryCache;
use nixery_core::builder::{BuildSettings, Builder, DEFAULT_PIN_TTL};
use nixery_core::graph::ClosureGraph;
use nixery_core::layers::{
    group_layers, GroupingOptions, LayerGroup, Popularity, DEFAULT_LAYER_BUDGET, MAX_LAYER_BUDGET,
};
use nixery_core::local_stack::LocalStack;
use nixery_core::name::{valid_tag, ImageName};
use nixery_core::nix::NIXPKGS_MIN_NIX;
use nixery_core::pack::{pack_paths, Compression};
use nixery_core::source::PackageSource;
use nixery_core::store_paths::{CacheStore, NixStore, StorePaths};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::admin::{self, TenantArgs, UsageArgs};
use crate::popularity::{popularity, PopularityArgs};
use crate::serve::{serve, ServeArgs};

#[derive(Parser)]
#[command(
    name = "nixery",
    version,
    about = "A container registry that builds images on demand with Nix"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the registry API on one machine.
    Serve(ServeArgs),
    /// Manage tenants: create, list, suspend, resume, rotate-key, delete.
    Tenant(TenantArgs),
    /// Report usage per tenant, day and repository (JSON or CSV).
    Usage(UsageArgs),
    /// Build an image into the storage without a server (warms the cache); prints its manifest digest.
    Build(BuildArgs),
    /// Group a runtime closure graph into layers; prints [{"contents":[...]}, ...].
    Layers(LayersArgs),
    /// Pack directories as one layer exactly as the registry does; prints {"digest","diff_id","size"}.
    Pack(PackArgs),
    /// Count how many closures of a package set hold each store path, for --popularity.
    Popularity(PopularityArgs),
}

#[derive(Args)]
struct BuildArgs {
    /// Image name, e.g. shell/git/htop.
    image: String,
    /// Tag (a git source uses it as its ref; 40 hex characters name a commit).
    #[arg(long, default_value = "latest")]
    tag: String,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
pub struct CommonArgs {
    /// Storage directory: blobs, index and scratch space.
    #[arg(long, env = "NIXERY_STORAGE", default_value = "nixery-data")]
    pub storage: PathBuf,
    /// Local package set (a directory with default.nix taking { system }); highest precedence.
    #[arg(long, env = "NIXERY_PKGS_PATH")]
    pkgs_path: Option<PathBuf>,
    /// Git repository with a nixpkgs-like package set; the image tag is its ref.
    #[arg(long, env = "NIXERY_PKGS_REPO")]
    pkgs_repo: Option<String>,
    /// nixpkgs channel when neither --pkgs-path nor --pkgs-repo is given: a name
    /// (looked up at https://channels.nixos.org/NAME), a channel URL, or a nixpkgs commit.
    #[arg(long, env = "NIXERY_CHANNEL", default_value = "nixos-unstable")]
    channel: String,
    /// Seconds a moving source (a channel, a git branch) stays pinned to the commit it was
    /// resolved to; after that the next pull resolves it again (0: on every pull).
    #[arg(long, env = "NIXERY_PIN_TTL", default_value_t = DEFAULT_PIN_TTL.as_secs())]
    pin_ttl: u64,
    /// Directory holding the Nix programs to run (nix, nix-build, nix-instantiate), e.g. a
    /// newer Nix than the one in PATH; default: PATH. nixpkgs needs Nix >= 2.18.
    #[arg(long, env = "NIXERY_NIX_BIN_DIR")]
    nix_bin_dir: Option<PathBuf>,
    /// Seconds each Nix call may take before it is killed and reported.
    #[arg(long, env = "NIXERY_NIX_TIMEOUT", default_value_t = 600)]
    nix_timeout: u64,
    /// Layers for store paths per image (the customisation layer comes on top).
    #[arg(long, env = "NIXERY_LAYER_BUDGET", default_value_t = DEFAULT_LAYER_BUDGET)]
    layer_budget: usize,
    /// Popularity data to guide layer grouping: `nixery popularity` output, or Nixery's
    /// popularity.json (direct-referrer counts; see the README).
    #[arg(long, env = "NIXERY_POPULARITY")]
    popularity: Option<PathBuf>,
    /// Take store paths from this binary cache (http(s):// or file://) instead of building
    /// them with the local Nix store; Nix then only evaluates package names.
    #[arg(long, env = "NIXERY_BINARY_CACHE")]
    binary_cache: Option<String>,
    /// Public keys (name:base64) the binary cache must be signed with; repeatable.
    #[arg(
        long = "trusted-key",
        env = "NIXERY_TRUSTED_KEYS",
        value_delimiter = ' '
    )]
    trusted_keys: Vec<String>,
}

#[derive(Args)]
struct LayersArgs {
    /// Runtime graph JSON ({"exportReferencesGraph":{"graph":[...]},"graph":[...]}).
    #[arg(long)]
    graph: PathBuf,
    /// Popularity data: `nixery popularity` output or Nixery's popularity.json.
    #[arg(long)]
    popularity: Option<PathBuf>,
    /// Maximum number of layers.
    #[arg(long, default_value_t = DEFAULT_LAYER_BUDGET)]
    budget: usize,
    /// Layers already stored ([{"contents":[...]}]), reused when they fit the closure.
    #[arg(long)]
    known_layers: Option<PathBuf>,
}

#[derive(Args)]
struct PackArgs {
    /// Where to write the compressed layer.
    #[arg(long)]
    output: PathBuf,
    /// Layer compression: gzip (what the registry serves) or zstd (OCI tar+zstd).
    #[arg(long, value_enum, default_value_t = LayerCompression::Gzip)]
    compression: LayerCompression,
    /// Compression level (default: the registry's, gzip 4 or zstd 3).
    #[arg(long)]
    level: Option<i32>,
    /// Absolute paths to pack (directories, files or symlinks).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LayerCompression {
    Gzip,
    Zstd,
}

pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Serve(a) => runtime()?.block_on(serve(a)),
        Command::Tenant(a) => runtime()?.block_on(admin::tenant(a)),
        Command::Usage(a) => runtime()?.block_on(admin::usage(a)),
        Command::Build(a) => runtime()?.block_on(build(a)),
        Command::Layers(a) => layers(a),
        Command::Pack(a) => pack(a),
        Command::Popularity(a) => runtime()?.block_on(popularity(a)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Runtime::new()?)
}

impl CommonArgs {
    fn source(&self) -> Result<PackageSource> {
        if let Some(path) = &self.pkgs_path {
            return PackageSource::local(path)
                .with_context(|| format!("reading package set {}", path.display()));
        }
        if let Some(url) = &self.pkgs_repo {
            return Ok(PackageSource::Git { url: url.clone() });
        }
        Ok(PackageSource::Channel(self.channel.clone()))
    }

    fn store(&self) -> Result<Arc<dyn StorePaths>> {
        let Some(url) = &self.binary_cache else {
            return Ok(Arc::new(NixStore));
        };
        if self.trusted_keys.is_empty() {
            bail!("--binary-cache needs at least one --trusted-key");
        }
        let cache = BinaryCache::new(url, &self.trusted_keys)
            .with_context(|| format!("binary cache {url}"))?;
        Ok(Arc::new(CacheStore::new(cache)))
    }

    pub fn open(&self) -> Result<LocalStack> {
        let popularity = match &self.popularity {
            Some(p) => read_popularity(p)?,
            None => Popularity::default(),
        };
        if self.layer_budget == 0 || self.layer_budget > MAX_LAYER_BUDGET {
            bail!("--layer-budget must be between 1 and {MAX_LAYER_BUDGET} (images may have at most 125 layers)");
        }
        let settings = BuildSettings {
            layer_budget: self.layer_budget,
            popularity,
            pin_ttl: Duration::from_secs(self.pin_ttl),
            ..BuildSettings::default()
        };
        let stack = LocalStack::open(
            &self.storage,
            self.source()?,
            self.store()?,
            settings,
            Duration::from_secs(self.nix_timeout),
            self.nix_bin_dir.clone(),
        )
        .with_context(|| format!("opening storage {}", self.storage.display()))?;
        Ok(stack)
    }
}

/// Refuse to start on a nixpkgs source with a Nix that nixpkgs rejects: every pull would
/// fail in evaluation otherwise. Other package sets are not checked (and Nix not run).
pub async fn check_nix(stack: &LocalStack) -> Result<()> {
    let source = stack.builder.source();
    if !source.is_nixpkgs() {
        return Ok(());
    }
    let found = stack.builder.nix().version().await?;
    if found < NIXPKGS_MIN_NIX {
        bail!(
            "{} needs Nix >= {NIXPKGS_MIN_NIX} (nixpkgs' lib/minver.nix), but the Nix found is \
             {found}. Debian 12's nix-bin is 2.8: install a newer Nix (Debian 13's nix-bin, or \
             the upstream installer) and point --nix-bin-dir (NIXERY_NIX_BIN_DIR) at its \
             programs; see README.md, \"Which Nix\"",
            source.describe()
        );
    }
    tracing::info!(nix = %found, "nix version");
    Ok(())
}

async fn build(a: BuildArgs) -> Result<()> {
    if !valid_tag(&a.tag) {
        bail!("invalid tag {:?}", a.tag);
    }
    let image =
        ImageName::parse(&a.image).with_context(|| format!("invalid image name {:?}", a.image))?;
    let stack = a.common.open()?;
    check_nix(&stack).await?;
    eprintln!(
        "building {image}:{} ({} packages) from {}",
        a.tag,
        image.packages.len(),
        stack.builder.source().describe()
    );
    let entry = stack
        .builder
        .manifest(&image, &a.tag)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", entry.docker.digest);
    Ok(())
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Either popularity format, told apart by shape (`nixery_core::popularity::parse`).
fn read_popularity(path: &Path) -> Result<Popularity> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let (popularity, kind) = nixery_core::popularity::parse(&text)
        .with_context(|| format!("parsing {}", path.display()))?;
    tracing::info!(file = %path.display(), ?kind, entries = popularity.len(), "popularity data");
    Ok(popularity)
}

fn layers(a: LayersArgs) -> Result<()> {
    let text = std::fs::read_to_string(&a.graph)
        .with_context(|| format!("reading {}", a.graph.display()))?;
    let graph = ClosureGraph::from_export_graph_json(&text)
        .with_context(|| format!("parsing {}", a.graph.display()))?;
    let popularity: Popularity = match &a.popularity {
        Some(p) => read_popularity(p)?,
        None => Popularity::default(),
    };
    let known: Vec<LayerGroup> = match &a.known_layers {
        Some(p) => read_json(p)?,
        None => Vec::new(),
    };
    if a.budget == 0 {
        bail!("--budget must be at least 1");
    }
    let groups = group_layers(
        &graph,
        &popularity,
        &known,
        &GroupingOptions { budget: a.budget },
    );
    println!("{}", serde_json::to_string(&groups)?);
    Ok(())
}

fn pack(a: PackArgs) -> Result<()> {
    let file = std::fs::File::create(&a.output)
        .with_context(|| format!("creating {}", a.output.display()))?;
    let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
    let paths: Vec<PathBuf> = a
        .paths
        .iter()
        .map(|p| std::path::absolute(p).with_context(|| format!("resolving {}", p.display())))
        .collect::<Result<_>>()?;
    let compression = match (a.compression, a.level) {
        (LayerCompression::Gzip, level) => Compression::Gzip {
            level: level.map_or(Compression::GZIP_LEVEL, |l| l.clamp(0, 9) as u32),
        },
        (LayerCompression::Zstd, level) => Compression::Zstd {
            level: level.unwrap_or(Compression::ZSTD_LEVEL),
        },
    };
    let d = pack_paths(&paths, &mut w, compression)?;
    w.flush()?;
    println!(
        "{}",
        serde_json::json!({"digest": d.digest.to_string(), "diff_id": d.diff_id.to_string(), "size": d.size})
    );
    Ok(())
}
