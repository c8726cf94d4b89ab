//! Multi-platform images: an OCI image index naming one stored image per platform.
//!
//! `tare build --platform linux/amd64,linux/arm64 -t NAME` stores one image per platform and
//! an index blob listing their manifests with their platforms. `ROOT/index-tags.json` maps
//! the tag to the index; the same tag in `repositories.json` names the image of this
//! machine's platform (or the first), so every command that takes one image (run, inspect,
//! history, export) works unchanged and picks the host's platform, while push and
//! `save --format oci` look the index up and send all of it. Re-pointing or removing the tag
//! drops its index entry; the index blob is kept by gc while a tag names it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::atomic::write_atomic;
use crate::image::read_json;
use crate::{Digest, Error, Image, Reference, Result, Store};

/// OCI media type of an image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI media type of an image manifest (what tare writes for the images it makes).
pub(crate) const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// Annotations of an index (`index`) and of its descriptors of the manifests (`descriptors`,
/// in entry order; missing ones are empty).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IndexAnnotations {
    /// The index's own annotations.
    pub index: BTreeMap<String, String>,
    /// The annotations of each manifest descriptor, in entry order.
    pub descriptors: Vec<BTreeMap<String, String>>,
}

/// A stored index: its blob and the stored image of each entry, in index order.
#[derive(Clone, Debug)]
pub struct StoredIndex {
    /// Digest of the index blob.
    pub digest: Digest,
    /// The index blob as stored (and pushed), byte for byte.
    pub bytes: Vec<u8>,
    /// The stored image of each entry, in index order.
    pub images: Vec<Image>,
}

impl StoredIndex {
    /// The annotations the index carries, to write them again into a re-encoded one.
    pub fn annotations(&self) -> IndexAnnotations {
        let index: IndexJson = serde_json::from_slice(&self.bytes).unwrap_or_default();
        IndexAnnotations {
            index: index.annotations,
            descriptors: index.manifests.into_iter().map(|m| m.annotations).collect(),
        }
    }
}

#[derive(Default, Serialize, Deserialize)]
struct IndexJson {
    manifests: Vec<DescriptorJson>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Serialize, Deserialize)]
struct DescriptorJson {
    digest: Digest,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

impl Store {
    /// Stores an index of `images` (one per platform, each already committed) and points
    /// every tag at it, and at `images[host]` for the commands that take one image.
    pub fn commit_index(
        &self,
        images: &[Image],
        host: usize,
        tags: &[Reference],
        annotations: &IndexAnnotations,
    ) -> Result<StoredIndex> {
        let default = images
            .get(host)
            .ok_or_else(|| Error::Inconsistent("an index needs at least one image".into()))?;
        let mut manifests = Vec::new();
        for image in images {
            manifests.push(self.read_blob(&image.manifest_digest)?);
        }
        let entries: Vec<(&Image, &[u8])> = images
            .iter()
            .zip(&manifests)
            .map(|(i, m)| (i, m.as_slice()))
            .collect();
        let bytes = index_document(&entries, annotations)?;
        let digest = self.put_bytes(&bytes)?;
        for tag in tags {
            // `tag` drops an index the name had; the new one is recorded after it.
            self.tag(&default.id, tag)?;
            let _guard = self.meta_lock()?;
            let mut index_tags = self.read_index_tags()?;
            index_tags.insert(tag_key(tag)?, digest);
            self.write_index_tags(&index_tags)?;
        }
        Ok(StoredIndex {
            digest,
            bytes,
            images: images.to_vec(),
        })
    }

    /// The index `reference` names, if it names one (`None` for a single image).
    pub fn index_of(&self, reference: &Reference) -> Result<Option<StoredIndex>> {
        let Some(digest) = self.read_index_tags()?.get(&tag_key(reference)?).copied() else {
            return Ok(None);
        };
        let bytes = self.read_blob(&digest)?;
        let index: IndexJson = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: format!("image index {digest}"),
            source,
        })?;
        let all = self.images()?;
        let mut images = Vec::new();
        for m in index.manifests {
            let image = all
                .iter()
                .find(|i| i.manifest_digest == m.digest)
                .cloned()
                .ok_or_else(|| {
                    Error::Inconsistent(format!(
                        "index {digest} of {} names manifest {}, which no stored image has",
                        reference.familiar(),
                        m.digest
                    ))
                })?;
            images.push(image);
        }
        Ok(Some(StoredIndex {
            digest,
            bytes,
            images,
        }))
    }

    /// Every tag that names an index, with the index's digest.
    pub fn index_tags(&self) -> Result<BTreeMap<String, Digest>> {
        self.read_index_tags()
    }

    /// Every index a tag names, with that tag, in tag order.
    pub fn indexes(&self) -> Result<Vec<(Reference, StoredIndex)>> {
        let mut out = Vec::new();
        for tag in self.read_index_tags()?.keys() {
            let reference = Reference::parse(tag)?;
            if let Some(index) = self.index_of(&reference)? {
                out.push((reference, index));
            }
        }
        Ok(out)
    }

    /// The tags of the indexes that hold each image, by image ID. An image an index holds is
    /// in use even without a tag of its own (not dangling, not pruned).
    pub fn index_holders(&self) -> Result<BTreeMap<Digest, Vec<Reference>>> {
        let mut out: BTreeMap<Digest, Vec<Reference>> = BTreeMap::new();
        for (tag, index) in self.indexes()? {
            for image in &index.images {
                out.entry(image.id).or_default().push(tag.clone());
            }
        }
        Ok(out)
    }

    /// Drops the index entries whose index names `manifest` (called with the meta lock
    /// held, when the image of that manifest goes): an index never names a missing image.
    pub(crate) fn drop_indexes_naming_locked(&self, manifest: &Digest) -> Result<()> {
        let mut index_tags = self.read_index_tags()?;
        let before = index_tags.len();
        index_tags.retain(|_, digest| {
            let names = self
                .read_blob(digest)
                .ok()
                .and_then(|b| serde_json::from_slice::<IndexJson>(&b).ok())
                .is_some_and(|i| i.manifests.iter().any(|m| m.digest == *manifest));
            !names
        });
        if index_tags.len() != before {
            self.write_index_tags(&index_tags)?;
        }
        Ok(())
    }

    /// Problems of the index entries, for `check`: a missing or unreadable index blob, an
    /// index naming a manifest no stored image has, a tag whose image is not in its index.
    pub(crate) fn check_indexes(&self, problems: &mut Vec<String>) -> Result<()> {
        let tags = self.read_tags()?;
        for (tag, digest) in self.read_index_tags()? {
            if !self.has_blob(&digest) {
                problems.push(format!("index tag {tag}: index blob {digest} is missing"));
                continue;
            }
            let index = match Reference::parse(&tag).and_then(|r| self.index_of(&r)) {
                Ok(Some(index)) => index,
                Ok(None) => continue,
                Err(e) => {
                    problems.push(format!("index tag {tag}: {e}"));
                    continue;
                }
            };
            match tags.get(&tag) {
                Some(id) if index.images.iter().any(|i| i.id == *id) => {}
                Some(id) => problems.push(format!(
                    "index tag {tag}: the tag names image {id}, which index {digest} does not hold"
                )),
                None => problems.push(format!(
                    "index tag {tag}: names index {digest} but no image"
                )),
            }
        }
        Ok(())
    }

    /// Drops the index entry of a tag (called with the meta lock held).
    pub(crate) fn drop_index_tag_locked(&self, key: &str) -> Result<()> {
        let mut index_tags = self.read_index_tags()?;
        if index_tags.remove(key).is_some() {
            self.write_index_tags(&index_tags)?;
        }
        Ok(())
    }

    fn read_index_tags(&self) -> Result<BTreeMap<String, Digest>> {
        Ok(read_json(&self.root().join("index-tags.json"))?.unwrap_or_default())
    }

    fn write_index_tags(&self, tags: &BTreeMap<String, Digest>) -> Result<()> {
        let json = serde_json::to_vec_pretty(tags).map_err(|source| Error::Json {
            what: "index tags".into(),
            source,
        })?;
        write_atomic(&self.root().join("index-tags.json"), &json)
    }
}

/// The bytes of an OCI image index naming each image by the manifest given with it (its
/// digest and size are those bytes'), with the platform of the image's config, and the
/// annotations given (`--annotation index:` and `manifest-descriptor:`).
pub fn index_document(
    entries: &[(&Image, &[u8])],
    annotations: &IndexAnnotations,
) -> Result<Vec<u8>> {
    let manifests: Vec<serde_json::Value> = entries
        .iter()
        .enumerate()
        .map(|(n, (image, manifest))| {
            let mut platform = serde_json::json!({
                "architecture": image.config.architecture,
                "os": image.config.os,
            });
            if let Some(v) = image.config.variant.as_deref().filter(|v| !v.is_empty()) {
                platform["variant"] = v.into();
            }
            let mut descriptor = serde_json::json!({
                "mediaType": manifest_media_type(manifest),
                "digest": Digest::of(manifest).to_string(),
                "size": manifest.len(),
                "platform": platform,
            });
            if let Some(a) = annotations.descriptors.get(n).filter(|a| !a.is_empty()) {
                descriptor["annotations"] = serde_json::json!(a);
            }
            descriptor
        })
        .collect();
    let mut index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_INDEX,
        "manifests": manifests,
    });
    if !annotations.index.is_empty() {
        index["annotations"] = serde_json::json!(annotations.index);
    }
    serde_json::to_vec(&index).map_err(|source| Error::Json {
        what: "image index".into(),
        source,
    })
}

/// The `mediaType` a manifest declares (OCI's when it declares none).
pub fn manifest_media_type(manifest: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(manifest)
        .ok()
        .and_then(|m| m["mediaType"].as_str().map(str::to_string))
        .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string())
}

/// An image's platform as `os/arch[/variant]`, from its config.
pub fn platform_name(image: &Image) -> String {
    let c = &image.config;
    match c.variant.as_deref().filter(|v| !v.is_empty()) {
        Some(v) => format!("{}/{}/{v}", c.os, c.architecture),
        None => format!("{}/{}", c.os, c.architecture),
    }
}

/// The normalised `name:tag` a tag is kept under (`latest` when none is given).
fn tag_key(reference: &Reference) -> Result<String> {
    Ok(Reference::parse(&format!(
        "{}:{}",
        reference.name(),
        reference.tag().unwrap_or("latest")
    ))?
    .to_string())
}
