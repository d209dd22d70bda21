//! Image config and manifests. Every image is served in two media types,
//! Docker schema 2 (the default) and OCI, over the same config and layers.

use crate::digest::Digest;
use crate::name::{Arch, LayerCodec};
use oci_spec::image::{
    Arch as OciArch, ConfigBuilder, Descriptor, ImageConfigurationBuilder, ImageManifestBuilder,
    MediaType, Os, RootFsBuilder,
};

pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

/// Where the CA bundle is linked in every image.
pub const CA_BUNDLE: &str = "/etc/ssl/certs/ca-bundle.crt";
/// Fixed creation time: images are functions of their contents only.
const CREATED: &str = "1970-01-01T00:00:01Z";

#[derive(Debug, thiserror::Error)]
#[error("building image metadata: {0}")]
pub struct ImageError(String);

fn err(e: impl std::fmt::Display) -> ImageError {
    ImageError(e.to_string())
}

/// A packed layer as the manifest and config see it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LayerDesc {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
}

/// The JSON documents of one image.
#[derive(Debug, Clone)]
pub struct ImageDocs {
    pub config: Vec<u8>,
    pub docker_manifest: Vec<u8>,
    pub oci_manifest: Vec<u8>,
}

/// Build config and manifests of a gzip image; `layers` are in stack order (base first).
pub fn image_docs(arch: Arch, layers: &[LayerDesc], shell: bool) -> Result<ImageDocs, ImageError> {
    image_docs_with_codec(arch, layers, shell, LayerCodec::Gzip)
}

/// Build config and manifests of an image whose layers use `codec`. Docker schema 2 has no
/// zstd layer type, so a zstd image has only its OCI manifest: `docker_manifest` holds the
/// same bytes, and every client gets it whatever it asks for.
pub fn image_docs_with_codec(
    arch: Arch,
    layers: &[LayerDesc],
    shell: bool,
    codec: LayerCodec,
) -> Result<ImageDocs, ImageError> {
    let config = config_json(arch, layers, shell)?;
    let config_digest = Digest::of(&config);
    let size = config.len() as u64;
    let docker = manifest_json(
        DOCKER_MANIFEST,
        Descriptor::new(
            MediaType::Other(DOCKER_CONFIG.into()),
            size,
            oci_digest(&config_digest)?,
        ),
        layers,
        || MediaType::Other(DOCKER_LAYER.into()),
    )?;
    let oci_layer = match codec {
        LayerCodec::Gzip => MediaType::ImageLayerGzip,
        LayerCodec::Zstd => MediaType::ImageLayerZstd,
    };
    let oci = manifest_json(
        OCI_MANIFEST,
        Descriptor::new(MediaType::ImageConfig, size, oci_digest(&config_digest)?),
        layers,
        || oci_layer.clone(),
    )?;
    let docker_manifest = match codec {
        LayerCodec::Gzip => docker,
        LayerCodec::Zstd => oci.clone(),
    };
    Ok(ImageDocs {
        config,
        docker_manifest,
        oci_manifest: oci,
    })
}

fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest, ImageError> {
    d.to_string().parse().map_err(err)
}

fn config_json(arch: Arch, layers: &[LayerDesc], shell: bool) -> Result<Vec<u8>, ImageError> {
    let env = vec![
        "PATH=/bin:/usr/bin:/sbin:/usr/sbin".to_string(),
        format!("SSL_CERT_FILE={CA_BUNDLE}"),
        format!("NIX_SSL_CERT_FILE={CA_BUNDLE}"),
    ];
    let mut runtime = ConfigBuilder::default().env(env);
    if shell {
        runtime = runtime.cmd(vec!["bash".to_string()]);
    }
    let rootfs = RootFsBuilder::default()
        .typ("layers")
        .diff_ids(
            layers
                .iter()
                .map(|l| l.diff_id.to_string())
                .collect::<Vec<_>>(),
        )
        .build()
        .map_err(err)?;
    let oci_arch = match arch {
        Arch::Amd64 => OciArch::Amd64,
        Arch::Arm64 => OciArch::ARM64,
    };
    let config = ImageConfigurationBuilder::default()
        .created(CREATED)
        .architecture(oci_arch)
        .os(Os::Linux)
        .config(runtime.build().map_err(err)?)
        .rootfs(rootfs)
        .build()
        .map_err(err)?;
    serde_json::to_vec(&config).map_err(err)
}

fn manifest_json(
    media_type: &str,
    config: Descriptor,
    layers: &[LayerDesc],
    layer_type: impl Fn() -> MediaType,
) -> Result<Vec<u8>, ImageError> {
    let layers = layers
        .iter()
        .map(|l| {
            Ok(Descriptor::new(
                layer_type(),
                l.size,
                oci_digest(&l.digest)?,
            ))
        })
        .collect::<Result<Vec<_>, ImageError>>()?;
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::Other(media_type.into()))
        .config(config)
        .layers(layers)
        .build()
        .map_err(err)?;
    serde_json::to_vec(&manifest).map_err(err)
}

/// The media type of a stored manifest, or None if the bytes are not one of ours.
pub fn manifest_media_type(bytes: &[u8]) -> Option<&'static str> {
    #[derive(serde::Deserialize)]
    struct Probe {
        #[serde(rename = "mediaType")]
        media_type: Option<String>,
    }
    let probe: Probe = serde_json::from_slice(bytes).ok()?;
    match probe.media_type.as_deref() {
        Some(DOCKER_MANIFEST) => Some(DOCKER_MANIFEST),
        Some(OCI_MANIFEST) => Some(OCI_MANIFEST),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn layer(n: u8) -> LayerDesc {
        LayerDesc {
            digest: Digest::of(&[n]),
            diff_id: Digest::of(&[n, n]),
            size: 100 + n as u64,
        }
    }

    #[test]
    fn config_lists_diff_ids_env_and_cmd() {
        let docs = image_docs(Arch::Amd64, &[layer(1), layer(2)], true).expect("docs");
        let c: Value = serde_json::from_slice(&docs.config).expect("json");
        assert_eq!(c["architecture"], "amd64");
        assert_eq!(c["os"], "linux");
        assert_eq!(c["rootfs"]["type"], "layers");
        assert_eq!(c["rootfs"]["diff_ids"][1], Digest::of(&[2, 2]).to_string());
        assert_eq!(c["config"]["Cmd"][0], "bash");
        let env = c["config"]["Env"].to_string();
        assert!(
            env.contains("PATH=/bin") && env.contains("SSL_CERT_FILE=/etc/ssl/certs/ca-bundle.crt")
        );
        let no_shell = image_docs(Arch::Arm64, &[layer(1)], false).expect("docs");
        let c: Value = serde_json::from_slice(&no_shell.config).expect("json");
        assert_eq!(c["config"]["Cmd"], Value::Null);
        assert_eq!(c["architecture"], "arm64");
    }

    #[test]
    fn manifests_share_config_and_layers() {
        let docs = image_docs(Arch::Amd64, &[layer(1), layer(2)], false).expect("docs");
        let d: Value = serde_json::from_slice(&docs.docker_manifest).expect("json");
        let o: Value = serde_json::from_slice(&docs.oci_manifest).expect("json");
        assert_eq!(d["schemaVersion"], 2);
        assert_eq!(d["mediaType"], DOCKER_MANIFEST);
        assert_eq!(o["mediaType"], OCI_MANIFEST);
        assert_eq!(d["config"]["digest"], Digest::of(&docs.config).to_string());
        assert_eq!(d["config"]["digest"], o["config"]["digest"]);
        assert_eq!(d["config"]["size"], docs.config.len());
        assert_eq!(d["layers"][0]["mediaType"], DOCKER_LAYER);
        assert_eq!(
            o["layers"][0]["mediaType"],
            "application/vnd.oci.image.layer.v1.tar+gzip"
        );
        assert_eq!(o["layers"][1]["digest"], Digest::of(&[2]).to_string());
        assert_eq!(o["layers"][1]["size"], 102);
        assert_eq!(
            manifest_media_type(&docs.docker_manifest),
            Some(DOCKER_MANIFEST)
        );
        assert_eq!(manifest_media_type(&docs.oci_manifest), Some(OCI_MANIFEST));
        assert_eq!(manifest_media_type(&docs.config), None);
    }

    #[test]
    fn zstd_images_have_only_an_oci_manifest_with_zstd_layers() {
        let layers = [layer(1), layer(2)];
        let docs =
            image_docs_with_codec(Arch::Amd64, &layers, false, LayerCodec::Zstd).expect("docs");
        assert_eq!(docs.docker_manifest, docs.oci_manifest);
        let o: Value = serde_json::from_slice(&docs.oci_manifest).expect("json");
        assert_eq!(o["mediaType"], OCI_MANIFEST);
        assert_eq!(
            o["config"]["mediaType"],
            "application/vnd.oci.image.config.v1+json"
        );
        for l in 0..2 {
            assert_eq!(
                o["layers"][l]["mediaType"],
                "application/vnd.oci.image.layer.v1.tar+zstd"
            );
        }
        let gzip = image_docs(Arch::Amd64, &layers, false).expect("docs");
        assert_eq!(docs.config, gzip.config, "same diff_ids, same config");
    }

    #[test]
    fn deterministic() {
        let a = image_docs(Arch::Amd64, &[layer(1)], true).expect("docs");
        let b = image_docs(Arch::Amd64, &[layer(1)], true).expect("docs");
        assert_eq!(a.docker_manifest, b.docker_manifest);
        assert_eq!(a.config, b.config);
    }
}
