//! Image records, layers and tags: what turns a pile of blobs into named images.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder, MediaType, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::atomic::write_atomic;
use crate::build_info::BuildInfo;
use crate::config::ImageConfig;
use crate::digest::Digest;
use crate::error::{io, Error, Result};
use crate::reference::Reference;
use crate::Store;

/// OCI media type of an uncompressed layer.
pub const MEDIA_TYPE_LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";
/// OCI media type of a gzip layer.
pub const MEDIA_TYPE_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
/// OCI media type of a zstd layer.
pub const MEDIA_TYPE_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// One layer of an image: the compressed blob and what it holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerInfo {
    /// Digest of the blob as stored (compressed, or equal to `diff_id` when uncompressed).
    pub digest: Digest,
    /// Digest of the uncompressed tar (the diff).
    pub diff_id: Digest,
    /// Uncompressed size in bytes: the length of the diff's tar, headers and padding included
    /// (not docker's layer size, which counts file content only: the store records that per
    /// diff, see `Store::recorded_content_size`).
    pub size: u64,
    /// Size of the stored blob in bytes.
    pub compressed_size: u64,
    /// OCI media type of the blob (`...tar`, `...tar+gzip`, `...tar+zstd`).
    pub media_type: String,
}

/// An image in the store.
#[derive(Clone, Debug)]
pub struct Image {
    /// The image ID: digest of the config blob.
    pub id: Digest,
    /// Digest of the image's manifest blob, the digest a registry knows it by.
    pub manifest_digest: Digest,
    /// The image config, parsed from the blob named by `id`.
    pub config: ImageConfig,
    /// Layers bottom first, matching `config.rootfs.diff_ids`.
    pub layers: Vec<LayerInfo>,
    /// Tags pointing at this image, sorted.
    pub repo_tags: Vec<Reference>,
    /// What the builder recorded (Dockerfile lines of the history, base layer count, ...);
    /// `None` for images tare did not build.
    pub build_info: Option<BuildInfo>,
}

impl Image {
    /// Uncompressed size of all layer tars (headers and padding included). What docker shows
    /// as an image's size is the content size instead: see `tare_layer::image_content_size`.
    pub fn size(&self) -> u64 {
        self.layers.iter().map(|l| l.size).sum()
    }
}

/// What `images/<id>.json` holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct ImageRecord {
    pub id: Digest,
    pub manifest_digest: Digest,
    pub layers: Vec<LayerInfo>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::build_info::lenient"
    )]
    pub build_info: Option<BuildInfo>,
}

/// What `layers/<diffid>.json` holds: the stored blobs of one diff.
#[derive(Serialize, Deserialize, Default)]
pub(crate) struct LayerRecord {
    pub variants: Vec<LayerInfo>,
    /// Content size of the diff as docker counts it (see `tare_layer::content_size`); absent in
    /// records written before tare kept it, and for layers stored by code that does not count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content_size: Option<u64>,
}

impl Store {
    /// Stores an image whose config is given as a value (serialised compactly).
    ///
    /// See [`Store::commit_image_raw`].
    pub fn commit_image(
        &self,
        config: &ImageConfig,
        layers: &[LayerInfo],
        tags: &[Reference],
        build_info: Option<BuildInfo>,
    ) -> Result<Image> {
        let bytes = serde_json::to_vec(config).map_err(|source| Error::Json {
            what: "image config".into(),
            source,
        })?;
        self.commit_image_raw(&bytes, None, layers, tags, build_info)
    }

    /// Stores an image from its exact config bytes (so the ID of a loaded image is kept).
    ///
    /// Order makes it safe against crashes and concurrent tare processes: config and manifest
    /// blobs first, then the layer index, then the image record (renamed into place), then tags.
    /// `manifest` keeps an existing manifest's bytes (from an OCI layout); when `None`, an OCI
    /// manifest is written.
    pub fn commit_image_raw(
        &self,
        config_bytes: &[u8],
        manifest: Option<&[u8]>,
        layers: &[LayerInfo],
        tags: &[Reference],
        build_info: Option<BuildInfo>,
    ) -> Result<Image> {
        let config: ImageConfig =
            serde_json::from_slice(config_bytes).map_err(|source| Error::Json {
                what: "image config".into(),
                source,
            })?;
        let diff_ids: Vec<Digest> = layers.iter().map(|l| l.diff_id).collect();
        if config.rootfs.diff_ids != diff_ids {
            return Err(Error::Inconsistent(format!(
                "the config lists {} diffIDs that do not match the {} layers given",
                config.rootfs.diff_ids.len(),
                layers.len()
            )));
        }
        for layer in layers {
            if !self.has_blob(&layer.digest) {
                return Err(Error::BlobNotFound(layer.digest));
            }
        }
        let id = self.put_bytes(config_bytes)?;
        let manifest_digest = match manifest {
            Some(bytes) => self.put_bytes(bytes)?,
            None => self.put_bytes(&manifest_json(&id, config_bytes.len() as u64, layers)?)?,
        };
        for layer in layers {
            self.record_layer(layer)?;
        }
        // One manifest per image: an index naming the one this record had names a manifest
        // no image has from now on, so its entries go (the tags keep their images).
        let record_path = self
            .root()
            .join("images")
            .join(format!("{}.json", id.hex()));
        if let Some(old) = read_json::<ImageRecord>(&record_path)? {
            if old.manifest_digest != manifest_digest {
                let _guard = self.meta_lock()?;
                self.drop_indexes_naming_locked(&old.manifest_digest)?;
            }
        }
        let record = ImageRecord {
            id,
            manifest_digest,
            layers: layers.to_vec(),
            build_info,
        };
        let json = serde_json::to_vec_pretty(&record).map_err(|source| Error::Json {
            what: "image record".into(),
            source,
        })?;
        write_atomic(
            &self
                .root()
                .join("images")
                .join(format!("{}.json", id.hex())),
            &json,
        )?;
        for tag in tags {
            self.tag(&id, tag)?;
        }
        self.image_by_id(&id)
    }

    /// Adds `annotations` to an image's manifest (`--annotation manifest:`): a new manifest
    /// blob, which the image record names from now on (its ID, the config's digest, and its
    /// tags are unchanged). Returns the image as stored.
    pub fn annotate_manifest(
        &self,
        image: &Image,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Image> {
        let bytes = self.annotated_manifest(image, annotations)?;
        let config = self.read_blob(&image.id)?;
        self.commit_image_raw(
            &config,
            Some(&bytes),
            &image.layers,
            &[],
            image.build_info.clone(),
        )
    }

    /// The bytes of `image`'s manifest with `annotations` added (replacing those of the same
    /// keys). Nothing is stored.
    pub fn annotated_manifest(
        &self,
        image: &Image,
        annotations: &BTreeMap<String, String>,
    ) -> Result<Vec<u8>> {
        let bytes = self.read_blob(&image.manifest_digest)?;
        let json = |source| Error::Json {
            what: format!("manifest {}", image.manifest_digest),
            source,
        };
        let mut manifest: Value = serde_json::from_slice(&bytes).map_err(json)?;
        let mut all: BTreeMap<String, String> =
            serde_json::from_value(manifest["annotations"].take()).unwrap_or_default();
        all.extend(annotations.iter().map(|(k, v)| (k.clone(), v.clone())));
        manifest["annotations"] = serde_json::json!(all);
        serde_json::to_vec(&manifest).map_err(json)
    }

    /// Remembers a stored layer blob under its diffID, so other images and the snapshotter can
    /// find it. Called by `commit_image`; the builder may call it for cached layers.
    pub fn record_layer(&self, layer: &LayerInfo) -> Result<()> {
        let _guard = self.meta_lock()?;
        let path = self.layer_record_path(&layer.diff_id);
        let mut record = read_json::<LayerRecord>(&path)?.unwrap_or_default();
        if !record.variants.iter().any(|v| v.digest == layer.digest) {
            record.variants.push(layer.clone());
            write_layer_record(&path, &record)?;
        }
        Ok(())
    }

    /// Records the content size of a diff (what docker shows as the layer's size). Whoever
    /// reads the diff's tar stream computes it; `tare_layer::content_size` reads it back.
    pub fn record_content_size(&self, diff_id: &Digest, size: u64) -> Result<()> {
        let _guard = self.meta_lock()?;
        let path = self.layer_record_path(diff_id);
        let mut record = read_json::<LayerRecord>(&path)?.unwrap_or_default();
        if record.content_size != Some(size) {
            record.content_size = Some(size);
            write_layer_record(&path, &record)?;
        }
        Ok(())
    }

    /// The content size recorded for a diff, if any.
    pub fn recorded_content_size(&self, diff_id: &Digest) -> Result<Option<u64>> {
        Ok(
            read_json::<LayerRecord>(&self.layer_record_path(diff_id))?
                .and_then(|r| r.content_size),
        )
    }

    /// The stored blobs of one diff (any compression). Empty when the diff is unknown.
    pub fn layer_variants(&self, diff_id: &Digest) -> Result<Vec<LayerInfo>> {
        Ok(read_json::<LayerRecord>(&self.layer_record_path(diff_id))?
            .map(|r| r.variants)
            .unwrap_or_default()
            .into_iter()
            .filter(|v| self.has_blob(&v.digest))
            .collect())
    }

    /// One stored blob of a diff; prefers the uncompressed one (cheapest to read).
    pub fn layer(&self, diff_id: &Digest) -> Result<LayerInfo> {
        let mut variants = self.layer_variants(diff_id)?;
        variants.sort_by_key(|v| v.media_type != MEDIA_TYPE_LAYER_TAR);
        variants
            .into_iter()
            .next()
            .ok_or(Error::LayerNotFound(*diff_id))
    }

    fn layer_record_path(&self, diff_id: &Digest) -> std::path::PathBuf {
        self.root()
            .join("layers")
            .join(format!("{}.json", diff_id.hex()))
    }

    /// Points `reference` (its tag) at image `id`, replacing what it pointed at before.
    pub fn tag(&self, id: &Digest, reference: &Reference) -> Result<()> {
        if reference.tag().is_none() {
            return Err(Error::InvalidReference {
                reference: reference.to_string(),
                reason: "a tag is needed to name an image".into(),
            });
        }
        let _guard = self.meta_lock()?;
        let mut tags = self.read_tags()?;
        let key = Reference::parse(&format!(
            "{}:{}",
            reference.name(),
            reference.tag().unwrap_or("latest")
        ))?;
        tags.insert(key.to_string(), *id);
        self.write_tags(&tags)?;
        // The name now names one image: an index it named before is no longer its.
        self.drop_index_tag_locked(&key.to_string())
    }

    /// Removes a tag; returns the image it pointed at.
    pub fn untag(&self, reference: &Reference) -> Result<Digest> {
        let _guard = self.meta_lock()?;
        let mut tags = self.read_tags()?;
        let key = reference.to_string();
        let id = tags
            .remove(&key)
            .ok_or_else(|| Error::ImageNotFound(reference.familiar()))?;
        self.write_tags(&tags)?;
        self.drop_index_tag_locked(&key)?;
        Ok(id)
    }

    /// Deletes an image record and every tag pointing at it. Its blobs stay until `prune`.
    pub fn remove_image(&self, id: &Digest) -> Result<()> {
        let _guard = self.meta_lock()?;
        if let Ok(image) = self.image_by_id(id) {
            self.drop_indexes_naming_locked(&image.manifest_digest)?;
        }
        let mut tags = self.read_tags()?;
        let gone: Vec<String> = tags
            .iter()
            .filter(|(_, v)| *v == id)
            .map(|(k, _)| k.clone())
            .collect();
        tags.retain(|_, v| v != id);
        self.write_tags(&tags)?;
        for key in &gone {
            self.drop_index_tag_locked(key)?;
        }
        let path = self
            .root()
            .join("images")
            .join(format!("{}.json", id.hex()));
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::ImageNotFound(id.to_string()))
            }
            Err(e) => Err(Error::Io {
                op: "removing",
                path,
                source: e,
            }),
        }
    }

    /// All tags: normalised reference text to image ID.
    pub fn tags(&self) -> Result<BTreeMap<String, Digest>> {
        self.read_tags()
    }

    pub(crate) fn read_tags(&self) -> Result<BTreeMap<String, Digest>> {
        Ok(read_json(&self.root().join("repositories.json"))?.unwrap_or_default())
    }

    fn write_tags(&self, tags: &BTreeMap<String, Digest>) -> Result<()> {
        let json = serde_json::to_vec_pretty(tags).map_err(|source| Error::Json {
            what: "tags".into(),
            source,
        })?;
        write_atomic(&self.root().join("repositories.json"), &json)
    }

    /// IDs of every image record.
    pub fn image_ids(&self) -> Result<Vec<Digest>> {
        let dir = self.root().join("images");
        let mut ids = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let entry = entry.map_err(io("reading", &dir))?;
            let name = entry.file_name();
            let Some(hex) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if let Ok(d) = Digest::from_hex(hex) {
                ids.push(d);
            }
        }
        ids.sort();
        Ok(ids)
    }

    /// Every image, newest first.
    pub fn images(&self) -> Result<Vec<Image>> {
        // The tags are read once for all images: per image, a store of N tagged images
        // would parse the N tags N times.
        let mut tags_of: std::collections::HashMap<Digest, Vec<Reference>> =
            std::collections::HashMap::new();
        for (name, id) in self.read_tags()? {
            if let Ok(r) = Reference::parse(&name) {
                tags_of.entry(id).or_default().push(r);
            }
        }
        let mut images = Vec::new();
        for id in self.image_ids()? {
            let tags = tags_of.remove(&id).unwrap_or_default();
            match self.image_with_tags(&id, tags) {
                Ok(img) => images.push(img),
                // Removed by another process between listing and reading.
                Err(Error::ImageNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        images.sort_by(|a, b| {
            b.config
                .created
                .cmp(&a.config.created)
                .then(a.id.cmp(&b.id))
        });
        Ok(images)
    }

    /// Reads one image by its full ID.
    pub fn image_by_id(&self, id: &Digest) -> Result<Image> {
        let tags: Vec<Reference> = self
            .read_tags()?
            .into_iter()
            .filter(|(_, v)| v == id)
            .filter_map(|(k, _)| Reference::parse(&k).ok())
            .collect();
        self.image_with_tags(id, tags)
    }

    /// Reads one image record and its config; `repo_tags` are the tags naming it.
    fn image_with_tags(&self, id: &Digest, mut repo_tags: Vec<Reference>) -> Result<Image> {
        let path = self
            .root()
            .join("images")
            .join(format!("{}.json", id.hex()));
        let record: ImageRecord =
            read_json(&path)?.ok_or_else(|| Error::ImageNotFound(id.to_string()))?;
        let config_bytes = self.read_blob(&record.id)?;
        let config: ImageConfig =
            serde_json::from_slice(&config_bytes).map_err(|source| Error::Json {
                what: format!("config blob {id}"),
                source,
            })?;
        repo_tags.sort();
        Ok(Image {
            id: record.id,
            manifest_digest: record.manifest_digest,
            config,
            layers: record.layers,
            repo_tags,
            build_info: record.build_info,
        })
    }

    /// Finds an image by reference (`busybox`, `busybox:1`, `name@sha256:<manifest>`), by full
    /// ID (`sha256:...`) or by a unique ID prefix (`3f2a...`, at least 4 hex digits).
    pub fn resolve(&self, what: &str) -> Result<Image> {
        if let Some(index) = self.unnamed_index(what)? {
            // An unnamed multi-platform image's ID: this machine's platform's image.
            return match index.host_image() {
                Some(image) => self.image_by_id(&image.id),
                None => Err(Error::ImageNotFound(what.to_string())),
            };
        }
        if let Ok(id) = what.parse::<Digest>() {
            return self.image_by_id(&id);
        }
        if is_id_prefix(what) {
            let matches: Vec<Digest> = self
                .image_ids()?
                .into_iter()
                .filter(|d| d.hex().starts_with(what))
                .collect();
            match matches.len() {
                1 => return self.image_by_id(&matches[0]),
                0 => {}
                _ => return Err(Error::AmbiguousImage(what.to_string())),
            }
        }
        let reference = Reference::parse(what)?;
        if let Some(digest) = reference.digest() {
            for id in self.image_ids()? {
                let img = self.image_by_id(&id)?;
                if img.manifest_digest == *digest || img.id == *digest {
                    return Ok(img);
                }
            }
            // An index's digest (what a multi-platform build prints): the image its tag names.
            let tags = self.read_tags()?;
            for (tag, index) in self.index_tags()? {
                if index == *digest {
                    if let Some(id) = tags.get(&tag) {
                        return self.image_by_id(id);
                    }
                }
            }
            return Err(Error::ImageNotFound(what.to_string()));
        }
        let tags = self.read_tags()?;
        match tags.get(&reference.to_string()) {
            Some(id) => self.image_by_id(id),
            None => Err(Error::ImageNotFound(reference.familiar())),
        }
    }

    /// Every blob an image needs: config, manifest and layers.
    pub(crate) fn referenced_blobs(&self) -> Result<BTreeSet<Digest>> {
        // Indexes a tag names (their images are image records, kept below).
        let mut set: BTreeSet<Digest> = self.index_tags()?.into_values().collect();
        set.extend(self.unnamed_index_digests()?);
        for id in self.image_ids()? {
            let path = self
                .root()
                .join("images")
                .join(format!("{}.json", id.hex()));
            if let Some(rec) = read_json::<ImageRecord>(&path)? {
                set.insert(rec.id);
                set.insert(rec.manifest_digest);
                for l in rec.layers {
                    set.insert(l.digest);
                }
            }
        }
        Ok(set)
    }
}

/// Whether `what` can be a prefix of an image ID: 4 to 64 lower-case hex digits.
pub(crate) fn is_id_prefix(what: &str) -> bool {
    what.len() >= 4
        && what.len() <= 64
        && what
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

/// The OCI manifest for a config and layers.
pub fn manifest_json(config: &Digest, config_size: u64, layers: &[LayerInfo]) -> Result<Vec<u8>> {
    let spec = |source| Error::Spec {
        what: "image manifest",
        source,
    };
    let config_desc = DescriptorBuilder::default()
        .media_type(MediaType::ImageConfig)
        .digest(oci_digest(config)?)
        .size(config_size)
        .build()
        .map_err(spec)?;
    let mut layer_descs = Vec::new();
    for l in layers {
        layer_descs.push(
            DescriptorBuilder::default()
                .media_type(MediaType::from(l.media_type.as_str()))
                .digest(oci_digest(&l.digest)?)
                .size(l.compressed_size)
                .build()
                .map_err(spec)?,
        );
    }
    let manifest = ImageManifestBuilder::default()
        .schema_version(SCHEMA_VERSION)
        .media_type(MediaType::ImageManifest)
        .config(config_desc)
        .layers(layer_descs)
        .build()
        .map_err(spec)?;
    serde_json::to_vec(&manifest).map_err(|source| Error::Json {
        what: "image manifest".into(),
        source,
    })
}

/// Converts to oci-spec's digest type.
pub(crate) fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest> {
    d.to_string().parse().map_err(|source| Error::Spec {
        what: "digest",
        source,
    })
}

/// Reads a JSON file; `None` when it does not exist.
pub(crate) fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json {
                what: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "reading",
            path: path.to_path_buf(),
            source: e,
        }),
    }
}

fn write_layer_record(path: &Path, record: &LayerRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(|source| Error::Json {
        what: "layer record".into(),
        source,
    })?;
    write_atomic(path, &json)
}
