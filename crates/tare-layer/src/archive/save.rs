//! Writing image archives (`tare save`, `-o type=docker|oci`): docker archives and OCI
//! layout tars, layers compressed on the way out when asked.

use std::collections::BTreeMap;
use std::io::{self, Write};

use tare_store::{manifest_json, Digest, Image, LayerInfo, Reference, Store};

use crate::compression::Compression;
use crate::error::{Error, Result};

/// The archive format `save` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `docker load` format: manifest.json, repositories, blobs.
    Docker,
    /// OCI image layout (oci-layout, index.json, blobs).
    Oci,
}

/// One image to save, with the references to record for it.
pub struct SaveImage {
    /// The image to save (for a multi-platform one, this machine's).
    pub image: Image,
    /// The references the archive names it by (`repositories`, `RepoTags`,
    /// `org.opencontainers.image.ref.name`); empty saves it unnamed.
    pub tags: Vec<Reference>,
    /// The index of a multi-platform image (`image`, this machine's, among its images): the
    /// OCI format saves every image under a new index of the saved manifests, with the
    /// stored index's annotations, which the tags name. The docker format (`docker load`
    /// reads one image per name) saves `image` only.
    pub index: Option<tare_store::StoredIndex>,
    /// Annotations of this item's descriptor in `index.json`, besides its names (buildx's
    /// `manifest-descriptor` and `index-descriptor` of an OCI layout).
    pub descriptor: BTreeMap<String, String>,
}

/// Writes the images as one archive to `out`. Layers not stored with `compression` are
/// compressed first (the result is kept in the store, so the next save is a plain copy).
/// Returns `out` and, for each item, the descriptor its `index.json` entry has without the
/// names: the manifest or index as saved, which buildx's `--metadata-file` reports.
pub fn save<W: Write>(
    store: &Store,
    images: &[SaveImage],
    format: Format,
    compression: Option<Compression>,
    out: W,
) -> Result<(W, Vec<serde_json::Value>)> {
    let mut tar = tar::Builder::new(out);
    tar.mode(tar::HeaderMode::Deterministic);
    let mut written = std::collections::BTreeSet::new();
    let mut docker_manifest = Vec::new();
    let mut repositories: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut index_entries = Vec::new();
    let mut saved = Vec::new();
    for dir in ["blobs/", "blobs/sha256/"] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_mtime(0);
        h.set_size(0);
        tar.append_data(&mut h, dir, io::empty())
            .map_err(|e| Error::Stream {
                what: format!("writing {dir}"),
                source: e,
            })?;
    }
    for item in images {
        let img = &item.image;
        let (manifest, layers) = write_image(store, &mut tar, &mut written, img, compression)?;
        let blob_path = |d: &Digest| format!("blobs/sha256/{}", d.hex());
        let tags: Vec<String> = item.tags.iter().map(|t| t.familiar()).collect();
        docker_manifest.push(serde_json::json!({
            "Config": blob_path(&img.id),
            "RepoTags": if tags.is_empty() { serde_json::Value::Null } else { serde_json::json!(tags) },
            "Layers": layers.iter().map(|l| blob_path(&l.digest)).collect::<Vec<_>>(),
        }));
        let top = layers.last().map(|l| l.diff_id.hex()).unwrap_or_default();
        for t in &item.tags {
            if let Some(tag) = t.tag() {
                repositories
                    .entry(t.familiar_name())
                    .or_default()
                    .insert(tag.to_string(), top.clone());
            }
        }
        let mut desc = if let Some(stored) = item.index.as_ref().filter(|_| format == Format::Oci) {
            // Every platform's image, then the index naming their manifests as saved.
            let mut manifests = Vec::new();
            for p in &stored.images {
                manifests.push(write_image(store, &mut tar, &mut written, p, compression)?.0);
            }
            let entries: Vec<(&Image, &[u8])> = stored
                .images
                .iter()
                .zip(&manifests)
                .map(|(i, m)| (i, m.as_slice()))
                .collect();
            let index = tare_store::index_document(&entries, &stored.annotations())?;
            let digest = store.put_bytes(&index)?;
            if written.insert(digest) {
                append_blob(store, &mut tar, &digest)?;
            }
            serde_json::json!({
                "mediaType": tare_store::MEDIA_TYPE_INDEX,
                "digest": digest.to_string(),
                "size": index.len(),
            })
        } else {
            serde_json::json!({
                "mediaType": tare_store::manifest_media_type(&manifest),
                "digest": Digest::of(&manifest).to_string(),
                "size": manifest.len(),
            })
        };
        if !item.descriptor.is_empty() {
            desc["annotations"] = serde_json::json!(item.descriptor);
        }
        saved.push(desc.clone());
        if item.tags.is_empty() {
            index_entries.push(desc.clone());
        }
        for t in &item.tags {
            let mut annotations = item.descriptor.clone();
            annotations.insert("io.containerd.image.name".into(), t.to_string());
            annotations.insert("org.opencontainers.image.ref.name".into(), t.to_string());
            desc["annotations"] = serde_json::json!(annotations);
            index_entries.push(desc.clone());
        }
    }
    let json = |v: &serde_json::Value| {
        serde_json::to_vec(v).map_err(|e| Error::Stream {
            what: "encoding JSON".into(),
            source: e.into(),
        })
    };
    append_bytes(&mut tar, "oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#)?;
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": index_entries,
    });
    append_bytes(&mut tar, "index.json", &json(&index)?)?;
    if format == Format::Docker {
        append_bytes(
            &mut tar,
            "manifest.json",
            &json(&serde_json::Value::from(docker_manifest))?,
        )?;
        append_bytes(
            &mut tar,
            "repositories",
            &json(&serde_json::to_value(&repositories).unwrap_or_default())?,
        )?;
    }
    let out = tar.into_inner().map_err(|e| Error::Stream {
        what: "writing the archive".into(),
        source: e,
    })?;
    Ok((out, saved))
}

/// Writes one image's blobs (config, manifest, layers; each once per archive), its layers
/// in `compression`; returns the manifest as saved and the layers it names.
fn write_image<W: Write>(
    store: &Store,
    tar: &mut tar::Builder<W>,
    written: &mut std::collections::BTreeSet<Digest>,
    img: &Image,
    compression: Option<Compression>,
) -> Result<(Vec<u8>, Vec<LayerInfo>)> {
    let mut layers = Vec::new();
    for l in &img.layers {
        layers.push(match compression {
            Some(c) => crate::recompress(store, l, c)?,
            None => l.clone(),
        });
    }
    let stored = store.read_blob(&img.manifest_digest)?;
    let manifest = if layers == img.layers {
        stored
    } else {
        let size = store.blob_size(&img.id)?;
        let fresh = manifest_json(&img.id, size, &layers)?;
        // The stored manifest's annotations (`--annotation manifest:`) stay with it.
        let json = |e: serde_json::Error| Error::Stream {
            what: format!("re-encoding manifest {}", img.manifest_digest),
            source: e.into(),
        };
        let old: serde_json::Value = serde_json::from_slice(&stored).map_err(json)?;
        match old.get("annotations") {
            Some(a) => {
                let mut new: serde_json::Value = serde_json::from_slice(&fresh).map_err(json)?;
                new["annotations"] = a.clone();
                serde_json::to_vec(&new).map_err(json)?
            }
            None => fresh,
        }
    };
    let manifest_digest = store.put_bytes(&manifest)?;
    let mut blobs = vec![img.id, manifest_digest];
    blobs.extend(layers.iter().map(|l| l.digest));
    for d in blobs {
        if written.insert(d) {
            append_blob(store, tar, &d)?;
        }
    }
    Ok((manifest, layers))
}

fn append_bytes<W: Write>(tar: &mut tar::Builder<W>, path: &str, bytes: &[u8]) -> Result<()> {
    let mut h = tar::Header::new_ustar();
    h.set_size(bytes.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut h, path, bytes)
        .map_err(|e| Error::Stream {
            what: format!("writing {path}"),
            source: e,
        })
}

fn append_blob<W: Write>(store: &Store, tar: &mut tar::Builder<W>, d: &Digest) -> Result<()> {
    let size = store.blob_size(d)?;
    let reader = store.open_blob(d)?;
    let mut h = tar::Header::new_ustar();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    let path = format!("blobs/sha256/{}", d.hex());
    tar.append_data(&mut h, &path, reader)
        .map_err(|e| Error::Stream {
            what: format!("writing blob {d}"),
            source: e,
        })
}
