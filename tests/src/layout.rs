//! OCI image layouts built at test time (real gzip'd tar layers, configs, manifests and
//! indexes), for skopeo to copy into the registry.

use std::path::Path;

use flate2::Compression;
use flate2::write::GzEncoder;

use crate::sha256;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";

/// A blob written into a layout.
#[derive(Debug, Clone)]
pub struct Blob {
    pub digest: String,
    pub size: usize,
    pub bytes: Vec<u8>,
}

/// What was written for one image.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Blob,
    pub config: Blob,
    pub layers: Vec<Blob>,
}

fn put_blob(layout: &Path, bytes: Vec<u8>) -> Blob {
    let digest = sha256(&bytes);
    let dir = layout.join("blobs/sha256");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(&digest["sha256:".len()..]), &bytes).unwrap();
    Blob {
        digest,
        size: bytes.len(),
        bytes,
    }
}

/// A tar archive with one file of `size` pseudo-random bytes derived from `seed`.
fn layer_tar(seed: u64, size: usize) -> Vec<u8> {
    let mut content = Vec::with_capacity(size);
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    while content.len() < size {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        content.extend_from_slice(&x.to_le_bytes());
    }
    content.truncate(size);
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(size as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("data/file-{seed}.bin"),
            content.as_slice(),
        )
        .unwrap();
    builder.into_inner().unwrap()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut enc = GzEncoder::new(Vec::new(), Compression::fast());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Writes the blobs of one image (its layers, config and manifest) into `layout`.
pub fn write_image(layout: &Path, arch: &str, layer_sizes: &[usize], seed: u64) -> Image {
    let mut layers = Vec::new();
    let mut diff_ids = Vec::new();
    for (i, size) in layer_sizes.iter().enumerate() {
        let tar = layer_tar(seed * 1000 + i as u64, *size);
        diff_ids.push(sha256(&tar));
        layers.push(put_blob(layout, gzip(&tar)));
    }
    let config = serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "created": "2026-01-02T03:04:05Z",
        "config": { "Env": ["PATH=/usr/bin"], "Cmd": ["/bin/true"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
        "history": layer_sizes.iter().map(|_| serde_json::json!({"created_by": "test layer"})).collect::<Vec<_>>(),
    });
    let config = put_blob(layout, serde_json::to_vec(&config).unwrap());
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": CONFIG, "digest": config.digest, "size": config.size },
        "layers": layers.iter().map(|l| serde_json::json!({
            "mediaType": LAYER_GZIP, "digest": l.digest, "size": l.size
        })).collect::<Vec<_>>(),
        "annotations": { "org.opencontainers.image.title": format!("test image {arch}") },
    });
    let manifest = put_blob(layout, serde_json::to_vec_pretty(&manifest).unwrap());
    Image {
        manifest,
        config,
        layers,
    }
}

/// Writes `oci-layout` and an `index.json` naming one manifest or index under `tag`.
pub fn write_index_json(layout: &Path, media_type: &str, top: &Blob, tag: &str) {
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": media_type,
            "digest": top.digest,
            "size": top.size,
            "annotations": { "org.opencontainers.image.ref.name": tag },
        }],
    });
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
}

/// A single-platform image layout with several layers; answers the image.
pub fn single_image(layout: &Path, tag: &str, layer_sizes: &[usize]) -> Image {
    let image = write_image(layout, "amd64", layer_sizes, 1);
    write_index_json(layout, OCI_MANIFEST, &image.manifest, tag);
    image
}

/// A multi-arch layout: an image index over one image per architecture.
pub fn multi_arch(layout: &Path, tag: &str, archs: &[&str]) -> (Blob, Vec<Image>) {
    let images: Vec<Image> = archs
        .iter()
        .enumerate()
        .map(|(i, arch)| write_image(layout, arch, &[4096, 20_000], 10 + i as u64))
        .collect();
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": images.iter().zip(archs).map(|(img, arch)| serde_json::json!({
            "mediaType": OCI_MANIFEST,
            "digest": img.manifest.digest,
            "size": img.manifest.size,
            "platform": { "architecture": arch, "os": "linux" },
        })).collect::<Vec<_>>(),
    });
    let index = put_blob(layout, serde_json::to_vec(&index).unwrap());
    write_index_json(layout, OCI_INDEX, &index, tag);
    (index, images)
}
