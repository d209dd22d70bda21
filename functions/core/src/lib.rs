//! nixery-core: the domain of an on-demand Nix container registry.
//!
//! Image names, package sources, the Nix calls, the closure graph, layer
//! grouping and packing, the customisation layer, image config and
//! manifests, the storage traits with their local implementations, the
//! build orchestration and the registry HTTP router. No cloud dependency:
//! adapters implement the traits in `storage` and `build`.

pub mod binary_cache;
pub mod build;
pub mod custom;
pub mod digest;
pub mod graph;
pub mod image;
pub mod layers;
pub mod local;
pub mod memo;
pub mod name;
pub mod nix;
pub mod pack;
pub mod registry;
pub mod source;
pub mod storage;
