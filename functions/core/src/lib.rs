//! nixery-core: the domain of an on-demand Nix container registry.
//!
//! Image names, package sources, the Nix calls, the closure graph, layer
//! grouping and packing, the customisation layer, image config and
//! manifests, the build orchestration and the registry HTTP router. No cloud
//! dependency: the world is reached through four traits, which adapters
//! implement:
//!
//! - [`storage::BlobStore`]: content-addressed blobs (local files here, S3 elsewhere);
//! - [`storage::Index`]: layer and manifest cache entries and build leases (redb here);
//! - [`builder::Builder`]: turns an image request into its manifest;
//! - [`store_paths::StorePaths`]: where the files of store paths come from (the local Nix
//!   store or a binary cache).

pub mod accounts;
pub mod binary_cache;
pub mod builder;
pub mod customisation;
pub mod digest;
pub mod events;
pub mod graph;
pub mod image;
pub mod layers;
pub mod local_stack;
pub mod memo;
pub mod name;
pub mod nix;
pub mod pack;
pub mod popularity;
pub mod registry;
pub mod source;
pub mod storage;
pub mod store_paths;
