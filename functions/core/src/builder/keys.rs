//! Index keys: what a layer or an image is built from, never what it is called.

use crate::layers::LayerGroup;
use crate::name::{ImageName, LayerCodec};
use crate::pack::Compression;
use sha2::{Digest as _, Sha256};

/// Version of the layer format: part of every layer key, so that a change
/// in packing (tar layout, compressor) never reuses old blobs.
pub const LAYER_FORMAT: &str = "nixery-layer-v2-gzip4-1MiB-chunks-zlibrs";
/// The same tar stream in zstd, one frame per 1 MiB chunk (`zstd/` images).
pub const ZSTD_LAYER_FORMAT: &str = "nixery-layer-v2-zstd3-1MiB-frames";

/// The layer format of a codec; gzip's is unchanged from before zstd existed, so that
/// stored gzip layers and manifests keep their keys.
pub fn layer_format(codec: LayerCodec) -> &'static str {
    match codec {
        LayerCodec::Gzip => LAYER_FORMAT,
        LayerCodec::Zstd => ZSTD_LAYER_FORMAT,
    }
}

/// How layers of a codec are packed; the levels are part of the formats above.
pub fn compression(codec: LayerCodec) -> Compression {
    match codec {
        LayerCodec::Gzip => Compression::default(),
        LayerCodec::Zstd => Compression::Zstd {
            level: Compression::ZSTD_LEVEL,
        },
    }
}

/// The key of a store-path layer: its contents and the packing format.
pub fn layer_key(group: &LayerGroup, codec: LayerCodec) -> String {
    let mut h = Sha256::new();
    h.update(layer_format(codec));
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
    h.update(layer_format(image.codec));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_codec_is_part_of_layer_and_image_keys() {
        let group = LayerGroup {
            contents: vec!["/nix/store/a".into()],
        };
        let gzip = layer_key(&group, LayerCodec::Gzip);
        assert_ne!(gzip, layer_key(&group, LayerCodec::Zstd));
        let plain = ImageName::parse("shell/git").expect("name");
        let zstd = ImageName::parse("zstd/shell/git").expect("name");
        assert_ne!(manifest_key("pin", &plain), manifest_key("pin", &zstd));
        assert_ne!(alias_key("src", &plain), alias_key("src", &zstd));
        assert_eq!(compression(LayerCodec::Gzip), Compression::default());
    }

    /// Gzip keys are what they were before zstd images: stored layers stay reusable.
    #[test]
    fn gzip_keys_are_unchanged() {
        let group = LayerGroup {
            contents: vec!["/nix/store/a".into()],
        };
        let mut h = Sha256::new();
        h.update(LAYER_FORMAT);
        h.update([0]);
        h.update("/nix/store/a");
        let old = format!("layer-{}", hex::encode(h.finalize()));
        assert_eq!(layer_key(&group, LayerCodec::Gzip), old);
    }
}
