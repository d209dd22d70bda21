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

/// The key of a built image: the pinned package set, the packing format, the architecture
/// and the packages.
pub fn manifest_key(pin_id: &str, image: &ImageName) -> String {
    image_key("manifest", pin_id, image)
}

/// The key of an image request: the source as configured (and the tag where it selects a
/// git ref), the packing format, the architecture and the packages. It points at the
/// manifest the request last resolved to.
pub fn alias_key(source_identity: &str, image: &ImageName) -> String {
    image_key("alias", source_identity, image)
}

fn image_key(kind: &str, source: &str, image: &ImageName) -> String {
    let mut h = Sha256::new();
    h.update(LAYER_FORMAT);
    h.update([0]);
    h.update(source);
    h.update([0]);
    h.update(image.arch.nix_system());
    for p in &image.packages {
        h.update([0]);
        h.update(p);
    }
    format!("{kind}-{}", hex::encode(h.finalize()))
}
