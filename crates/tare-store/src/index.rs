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

use crate::image::{read_json, write_atomic};
use crate::{Digest, Error, Image, Reference, Result, Store};

/// OCI media type of an image index.
pub const MEDIA_TYPE_INDEX: &str = "application/vnd.oci.image.index.v1+json";
/// OCI media type of an image manifest (what tare writes for the images it makes).
pub const MEDIA_TYPE_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// A stored index: its blob and the stored image of each entry, in index order.
#[derive(Clone, Debug)]
pub struct StoredIndex {
    pub digest: Digest,
    pub bytes: Vec<u8>,
    pub images: Vec<Image>,
}

#[derive(Serialize, Deserialize)]
struct IndexJson {
    manifests: Vec<DescriptorJson>,
}

#[derive(Serialize, Deserialize)]
struct DescriptorJson {
    digest: Digest,
}

impl Store {
    /// Stores an index of `images` (one per platform, each already committed) and points
    /// every tag at it, and at `images[host]` for the commands that take one image.
    pub fn commit_index(
        &self,
        images: &[Image],
        host: usize,
        tags: &[Reference],
    ) -> Result<StoredIndex> {
        let default = images
            .get(host)
            .ok_or_else(|| Error::Inconsistent("an index needs at least one image".into()))?;
        let mut manifests = Vec::new();
        for image in images {
            let manifest = self.read_blob(&image.manifest_digest)?;
            let media_type = serde_json::from_slice::<serde_json::Value>(&manifest)
                .ok()
                .and_then(|m| m["mediaType"].as_str().map(str::to_string))
                .unwrap_or_else(|| MEDIA_TYPE_MANIFEST.to_string());
            let mut platform = serde_json::json!({
                "architecture": image.config.architecture,
                "os": image.config.os,
            });
            if let Some(v) = image.config.variant.as_deref().filter(|v| !v.is_empty()) {
                platform["variant"] = v.into();
            }
            manifests.push(serde_json::json!({
                "mediaType": media_type,
                "digest": image.manifest_digest.to_string(),
                "size": manifest.len(),
                "platform": platform,
            }));
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MEDIA_TYPE_INDEX,
            "manifests": manifests,
        });
        let bytes = serde_json::to_vec(&index).map_err(|source| Error::Json {
            what: "image index".into(),
            source,
        })?;
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

/// The normalised `name:tag` a tag is kept under (`latest` when none is given).
fn tag_key(reference: &Reference) -> Result<String> {
    Ok(Reference::parse(&format!(
        "{}:{}",
        reference.name(),
        reference.tag().unwrap_or("latest")
    ))?
    .to_string())
}
