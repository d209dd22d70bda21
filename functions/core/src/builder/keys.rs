//! Index keys: what a layer or an image is built from, never what it is called.

use crate::layers::LayerGroup;
use crate::name::ImageName;
use sha2::{Digest as _, Sha256};

/// Version of the layer format: part of every layer key, so that a change
/// in packing (tar layout, compressor) never reuses old blobs.
pub const LAYER_FORMAT: &str = "nixery-layer-v2-gzip4-1MiB-chunks-zlibrs";

/// The key of a store-path layer: its contents and the packing format.
pub fn layer_key(group: &LayerGroup) -> String {
    let mut h = Sha256::new();
    h.update(LAYER_FORMAT);
    for p in &group.contents {
        h.update([0]);
        h.update(p);
    }
    format!("layer-{}", hex::encode(h.finalize()))
}

/// The key of an image: the package set (a pin, or the source when it has none), the
/// packing format, the architecture and the packages.
pub fn manifest_key(source_id: &str, image: &ImageName) -> String {
    let mut h = Sha256::new();
    h.update(LAYER_FORMAT);
    h.update([0]);
    h.update(source_id);
    h.update([0]);
    h.update(image.arch.nix_system());
    for p in &image.packages {
        h.update([0]);
        h.update(p);
    }
    format!("manifest-{}", hex::encode(h.finalize()))
}
