//! The registry HTTP API of `nixery serve`: manifests, blobs, ranges, media types, errors.

use nixery_e2e::harness::{
    http_get, http_head, manifest_layers, sha256_digest, Resp, Server, DOCKER_MANIFEST,
    OCI_MANIFEST,
};

/// The descriptor (digest, size) of the biggest layer of a manifest.
fn biggest_layer(manifest: &Resp) -> (String, u64) {
    let v = manifest.json();
    v["layers"]
        .as_array()
        .expect("layers array")
        .iter()
        .map(|l| {
            (
                l["digest"].as_str().expect("layer digest").to_string(),
                l["size"].as_u64().expect("layer size"),
            )
        })
        .max_by_key(|(_, size)| *size)
        .expect("manifest has at least one layer")
}

#[test]
fn v2_base_answers_200() {
    let server = Server::start_temp();
    let resp = http_get(&server.url("/v2/"), &[]);
    assert_eq!(resp.status, 200, "GET /v2/: {}", resp.text());
}

#[test]
fn landing_page_is_html() {
    let server = Server::start_temp();
    let resp = http_get(&server.url("/"), &[]);
    assert_eq!(resp.status, 200, "GET /: {}", resp.text());
    assert!(
        resp.header("content-type").starts_with("text/html"),
        "landing page Content-Type is {:?}",
        resp.header("content-type")
    );
    assert!(!resp.body.is_empty(), "landing page is empty");
}

#[test]
fn manifest_by_tag_and_by_digest() {
    let server = Server::start_temp();
    let by_tag = server.manifest("hello", "latest");
    let digest = by_tag.header("docker-content-digest");
    assert_eq!(
        sha256_digest(&by_tag.body),
        digest,
        "Docker-Content-Digest is not the sha256 of the manifest body"
    );
    assert_eq!(
        by_tag.header("content-length"),
        by_tag.body.len().to_string(),
        "Content-Length of the manifest"
    );
    let media_type = by_tag.json()["mediaType"]
        .as_str()
        .expect("manifest has a mediaType")
        .to_string();
    assert_eq!(media_type, DOCKER_MANIFEST, "default manifest media type");
    assert_eq!(by_tag.header("content-type"), media_type, "Content-Type");

    let by_digest = server.manifest("hello", &digest);
    assert_eq!(
        sha256_digest(&by_digest.body),
        digest,
        "manifest fetched by digest has another digest"
    );
    assert_eq!(by_digest.header("docker-content-digest"), digest);
    assert_eq!(
        by_digest.body, by_tag.body,
        "by-digest body differs from by-tag body"
    );
}

#[test]
fn head_manifest_matches_get() {
    let server = Server::start_temp();
    let get = server.manifest("hello", "latest");
    let url = server.url("/v2/hello/manifests/latest");
    let head = http_head(&url, &[("Accept", DOCKER_MANIFEST)]);
    assert_eq!(head.status, 200, "HEAD manifest");
    assert!(head.body.is_empty(), "HEAD manifest returned a body");
    assert_eq!(
        head.header("docker-content-digest"),
        get.header("docker-content-digest"),
        "HEAD and GET digests differ"
    );
    assert_eq!(
        head.header("content-length"),
        get.body.len().to_string(),
        "HEAD Content-Length is not the manifest size"
    );
    assert_eq!(head.header("content-type"), DOCKER_MANIFEST);
}

#[test]
fn head_blob_reports_size_and_digest() {
    let server = Server::start_temp();
    let manifest = server.manifest("hello", "latest");
    let config = manifest.json()["config"]["digest"]
        .as_str()
        .expect("config digest")
        .to_string();
    let mut blobs: Vec<(String, u64)> = vec![(
        config,
        manifest.json()["config"]["size"]
            .as_u64()
            .expect("config size"),
    )];
    blobs.push(biggest_layer(&manifest));
    for (digest, size) in blobs {
        let url = server.url(&format!("/v2/hello/blobs/{digest}"));
        let head = http_head(&url, &[]);
        assert_eq!(head.status, 200, "HEAD blob {digest}");
        assert!(head.body.is_empty(), "HEAD blob returned a body");
        assert_eq!(
            head.header("content-length"),
            size.to_string(),
            "HEAD blob size"
        );
        assert_eq!(
            head.header("docker-content-digest"),
            digest,
            "HEAD blob digest"
        );

        // The first GET reads the file, the second is answered from memory.
        for _ in 0..2 {
            let get = http_get(&url, &[]);
            assert_eq!(get.status, 200, "GET blob {digest}");
            assert_eq!(get.body.len() as u64, size, "GET blob length");
            assert_eq!(get.header("content-length"), size.to_string());
            assert_eq!(sha256_digest(&get.body), digest, "GET blob content digest");
        }
    }
}

#[test]
fn blob_range_request_returns_206_and_the_bytes() {
    let server = Server::start_temp();
    let manifest = server.manifest("hello", "latest");
    let (digest, size) = biggest_layer(&manifest);
    assert!(size >= 100, "biggest layer is only {size} bytes");
    let url = server.url(&format!("/v2/hello/blobs/{digest}"));
    let full = http_get(&url, &[]);
    assert_eq!(full.status, 200);

    let part = http_get(&url, &[("Range", "bytes=10-99")]);
    assert_eq!(part.status, 206, "Range GET status");
    assert_eq!(part.body, full.body[10..100], "Range GET bytes");
    assert_eq!(
        part.header("content-range"),
        format!("bytes 10-99/{size}"),
        "Content-Range"
    );
}

#[test]
fn oci_only_accept_gets_oci_manifest() {
    let server = Server::start_temp();
    let url = server.url("/v2/hello/manifests/latest");
    let oci = http_get(&url, &[("Accept", OCI_MANIFEST)]);
    assert_eq!(oci.status, 200, "GET OCI manifest: {}", oci.text());
    assert_eq!(oci.header("content-type"), OCI_MANIFEST, "Content-Type");
    let v = oci.json();
    assert_eq!(
        v["mediaType"].as_str(),
        Some(OCI_MANIFEST),
        "body mediaType"
    );
    assert_eq!(
        v["config"]["mediaType"].as_str(),
        Some("application/vnd.oci.image.config.v1+json"),
        "OCI config media type"
    );
    for layer in v["layers"].as_array().expect("layers") {
        let mt = layer["mediaType"].as_str().unwrap_or_default();
        assert!(
            mt.starts_with("application/vnd.oci.image.layer.v1.tar"),
            "OCI manifest has a layer of media type {mt:?}"
        );
    }
    assert_eq!(
        sha256_digest(&oci.body),
        oci.header("docker-content-digest")
    );

    // Same layers as the Docker manifest; only the media types differ.
    let docker = http_get(&url, &[]);
    assert_eq!(docker.status, 200);
    assert_eq!(
        docker.header("content-type"),
        DOCKER_MANIFEST,
        "no Accept: Docker"
    );
    assert_eq!(manifest_layers(&docker.body), manifest_layers(&oci.body));
}

#[test]
fn tags_list() {
    let server = Server::start_temp();
    server.manifest("hello", "latest");
    let resp = http_get(&server.url("/v2/hello/tags/list"), &[]);
    assert_eq!(resp.status, 200, "GET tags/list: {}", resp.text());
    let v = resp.json();
    assert_eq!(v["name"].as_str(), Some("hello"), "tags/list name: {v}");
    assert!(v["tags"].is_array(), "tags/list has no tags array: {v}");
}
