//! Multi-platform images: an OCI image index naming one stored image per platform.
//!
//! `tare build --platform linux/amd64,linux/arm64 -t NAME` stores one image per platform and
//! an index blob listing their manifests with their platforms. `ROOT/index-tags.json` maps
//! the tag to the index; the same tag in `repositories.json` names the image of this
//! machine's platform (or the first), so every command that takes one image (run, inspect,
//! history, export) works unchanged and picks the host's platform, while push and
//! `save --format oci` look the index up and send all of it. Re-pointing or removing the tag
//! drops its index entry; the index blob is kept by gc while a tag names it.
//!
//! An index no tag names (`tare load` of an unnamed multi-platform archive, as buildx's
//! `-o type=oci` and skopeo write them) is listed in `ROOT/unnamed-indexes.json` and found by
//! its digest, which is its image ID (as docker's containerd store names it): `run`, `inspect`,
//! `images`, `save` and `rmi` take it. It is dangling: `image prune` removes it.

use std::collections::{BTreeMap, BTreeSet};

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
    /// The image of this machine's platform (linux and this architecture), else the first.
    pub fn host_image(&self) -> Option<&Image> {
        let arch = crate::config::host_architecture();
        self.images
            .iter()
            .find(|i| i.config.os == "linux" && i.config.architecture == arch)
            .or_else(|| self.images.first())
    }

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
        self.commit_index_bytes(images, host, tags, bytes)
    }

    /// [`Store::commit_index`] of an index given as is (`tare load` keeps an archive's
    /// index byte for byte, so its digest stays the one other tools print), which must list
    /// exactly the manifests of `images`, in order.
    pub fn commit_index_bytes(
        &self,
        images: &[Image],
        host: usize,
        tags: &[Reference],
        bytes: Vec<u8>,
    ) -> Result<StoredIndex> {
        let default = images
            .get(host)
            .ok_or_else(|| Error::Inconsistent("an index needs at least one image".into()))?;
        let listed: IndexJson = serde_json::from_slice(&bytes).map_err(|source| Error::Json {
            what: "image index".into(),
            source,
        })?;
        let same = listed.manifests.len() == images.len()
            && listed
                .manifests
                .iter()
                .zip(images)
                .all(|(m, i)| m.digest == i.manifest_digest);
        if !same {
            return Err(Error::Inconsistent(format!(
                "image index {} does not list the manifests of the images given",
                Digest::of(&bytes)
            )));
        }
        let digest = self.put_bytes(&bytes)?;
        for tag in tags {
            // `tag` drops an index the name had; the new one is recorded after it.
            self.tag(&default.id, tag)?;
            let _guard = self.meta_lock()?;
            let mut index_tags = self.read_index_tags()?;
            index_tags.insert(tag_key(tag)?, digest);
            self.write_index_tags(&index_tags)?;
        }
        if tags.is_empty() {
            let _guard = self.meta_lock()?;
            let mut unnamed = self.read_unnamed()?;
            if unnamed.insert(digest) {
                self.write_unnamed(&unnamed)?;
            }
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
        self.stored_index(digest, &reference.familiar()).map(Some)
    }

    /// A stored index and its images; `what` names it in errors.
    fn stored_index(&self, digest: Digest, what: &str) -> Result<StoredIndex> {
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
                        "index {digest} of {what} names manifest {}, which no stored image has",
                        m.digest
                    ))
                })?;
            images.push(image);
        }
        Ok(StoredIndex {
            digest,
            bytes,
            images,
        })
    }

    /// Every index no tag names, by digest.
    pub fn unnamed_indexes(&self) -> Result<Vec<StoredIndex>> {
        self.read_unnamed()?
            .into_iter()
            .map(|d| self.stored_index(d, "no name"))
            .collect()
    }

    /// The unnamed index `what` names: its full digest (`sha256:HEX`) or a unique prefix of
    /// its hex digits (at least 4), as image IDs are given. `None` when none matches.
    pub fn unnamed_index(&self, what: &str) -> Result<Option<StoredIndex>> {
        let unnamed = self.read_unnamed()?;
        let found: Vec<Digest> = match what.parse::<Digest>() {
            Ok(d) => unnamed.into_iter().filter(|u| *u == d).collect(),
            Err(_) if crate::image::is_id_prefix(what) => unnamed
                .into_iter()
                .filter(|u| u.hex().starts_with(what))
                .collect(),
            Err(_) => Vec::new(),
        };
        match found.as_slice() {
            [] => Ok(None),
            [one] => self.stored_index(*one, "no name").map(Some),
            _ => Err(Error::AmbiguousImage(what.to_string())),
        }
    }

    /// The index `what` names, if any: an unnamed index by ID, or a tag's index.
    pub fn find_index(&self, what: &str) -> Result<Option<StoredIndex>> {
        if let Some(index) = self.unnamed_index(what)? {
            return Ok(Some(index));
        }
        match Reference::parse(what) {
            Ok(r) if r.digest().is_none() && what.parse::<Digest>().is_err() => self.index_of(&r),
            _ => Ok(None),
        }
    }

    /// Forgets an unnamed index (its images stay); `false` if it was not one.
    pub fn remove_unnamed_index(&self, digest: &Digest) -> Result<bool> {
        let _guard = self.meta_lock()?;
        let mut unnamed = self.read_unnamed()?;
        let removed = unnamed.remove(digest);
        if removed {
            self.write_unnamed(&unnamed)?;
        }
        Ok(removed)
    }

    /// The digests of the unnamed indexes (kept by gc with their blobs).
    pub(crate) fn unnamed_index_digests(&self) -> Result<BTreeSet<Digest>> {
        self.read_unnamed()
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

    /// The names of the indexes that hold each image, by image ID: a tag's familiar form, or
    /// the short ID of an unnamed index. An image an index holds is in use even without a
    /// tag of its own (not dangling; `image prune` removes an unnamed index first).
    pub fn index_holders(&self) -> Result<BTreeMap<Digest, Vec<String>>> {
        let mut out: BTreeMap<Digest, Vec<String>> = BTreeMap::new();
        let tagged = self
            .indexes()?
            .into_iter()
            .map(|(tag, index)| (tag.familiar(), index));
        let unnamed = self
            .unnamed_indexes()?
            .into_iter()
            .map(|index| (index.digest.short(), index));
        for (name, index) in tagged.chain(unnamed) {
            for image in &index.images {
                out.entry(image.id).or_default().push(name.clone());
            }
        }
        Ok(out)
    }

    /// Drops the index entries whose index names `manifest` (called with the meta lock
    /// held, when the image of that manifest goes): an index never names a missing image.
    pub(crate) fn drop_indexes_naming_locked(&self, manifest: &Digest) -> Result<()> {
        let names = |digest: &Digest| {
            self.read_blob(digest)
                .ok()
                .and_then(|b| serde_json::from_slice::<IndexJson>(&b).ok())
                .is_some_and(|i| i.manifests.iter().any(|m| m.digest == *manifest))
        };
        let mut index_tags = self.read_index_tags()?;
        let before = index_tags.len();
        index_tags.retain(|_, digest| !names(digest));
        if index_tags.len() != before {
            self.write_index_tags(&index_tags)?;
        }
        let mut unnamed = self.read_unnamed()?;
        let before = unnamed.len();
        unnamed.retain(|digest| !names(digest));
        if unnamed.len() != before {
            self.write_unnamed(&unnamed)?;
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
        for digest in self.read_unnamed()? {
            if !self.has_blob(&digest) {
                problems.push(format!("unnamed index {digest}: its blob is missing"));
            } else if let Err(e) = self.stored_index(digest, "no name") {
                problems.push(format!("unnamed index {digest}: {e}"));
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

    fn read_unnamed(&self) -> Result<BTreeSet<Digest>> {
        Ok(read_json(&self.root().join("unnamed-indexes.json"))?.unwrap_or_default())
    }

    fn write_unnamed(&self, unnamed: &BTreeSet<Digest>) -> Result<()> {
        let json = serde_json::to_vec_pretty(unnamed).map_err(|source| Error::Json {
            what: "unnamed indexes".into(),
            source,
        })?;
        write_atomic(&self.root().join("unnamed-indexes.json"), &json)
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
