//! Image archives: docker archives (`docker save`), OCI image layouts and OCI archives
//! (skopeo, buildah, `docker save` of docker 25+) in; docker archives and OCI layout tars out.
//!
//! Loading streams the outer tar once: blob entries go straight into the store (verified
//! against the digest in their name), layer blobs are checked and their diffIDs computed in the
//! same pass; small JSON files are kept in memory. Images are committed after the stream ends.

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest};
use serde::{Deserialize, Serialize};
use tare_store::{Digest, Image, LayerInfo, Reference, Store};

use crate::compression::Compression;
use crate::error::{Error, Result};
use crate::ingest::ingest_layer;

mod save;
pub use save::{save, Format, SaveImage};

/// Largest file of an archive read into memory (manifest.json, a config); larger unnamed
/// files are stored as blobs, streamed.
const MAX_META: u64 = 16 << 20;
/// Largest OCI index or manifest read (the limit docker and containerd apply to manifests).
const MAX_MANIFEST: u64 = 4 << 20;
/// Most images one index of an archive may list (BuildKit's largest have a few dozen).
const MAX_PLATFORMS: usize = 256;
/// Most bytes of unnamed files an archive may make the loader hold in memory at once.
const MAX_KEPT: u64 = 64 << 20;

/// One item of an archive's `index.json` (or `manifest.json`) as loaded.
#[derive(Debug)]
pub struct LoadedImage {
    /// The image; of a multi-platform one, this machine's platform's (or the first).
    pub image: Image,
    /// The stored index of a multi-platform image (its digest is the unnamed one's ID).
    pub index: Option<tare_store::StoredIndex>,
    /// Platforms of an unnamed index left out because the archive lacks some of their blobs
    /// (`linux/arm64: manifest sha256:...`), as docker's containerd store skips them.
    pub skipped: Vec<String>,
}

impl LoadedImage {
    fn single(image: Image) -> LoadedImage {
        LoadedImage {
            image,
            index: None,
            skipped: Vec::new(),
        }
    }
}

/// Loads every image in an archive read from `reader`. `name` names the source in errors.
///
/// On failure, the blobs this load added are removed again (unless an image uses them).
pub fn load<R: Read>(store: &Store, reader: R, name: &str) -> Result<Vec<LoadedImage>> {
    let mut added = Vec::new();
    let result = load_inner(store, reader, name, &mut added);
    if result.is_err() {
        store.discard_blobs(&added)?;
    }
    result
}

fn load_inner<R: Read>(
    store: &Store,
    reader: R,
    name: &str,
    added: &mut Vec<Digest>,
) -> Result<Vec<LoadedImage>> {
    let (_, decoded) = crate::compression::decompress(reader).map_err(|e| stream(name, e))?;
    let mut archive = crate::bounded::tar_archive(decoded);
    let mut kept = 0u64;
    let mut files: HashMap<PathBuf, Vec<u8>> = HashMap::new();
    let mut blobs: HashMap<PathBuf, Digest> = HashMap::new();
    let mut layers: HashMap<Digest, LayerInfo> = HashMap::new();
    let mut links: HashMap<PathBuf, PathBuf> = HashMap::new();
    for entry in archive.entries().map_err(|e| stream(name, e))? {
        let mut entry = entry.map_err(|e| stream(name, e))?;
        let raw = entry.path().map_err(|e| stream(name, e))?.into_owned();
        let path = normal(&raw).ok_or_else(|| bad(name, &raw, "path leaves the archive"))?;
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(|e| stream(name, e))?
                    .unwrap_or_default()
                    .into_owned();
                let resolved = if entry.header().entry_type() == tar::EntryType::Symlink {
                    path.parent().unwrap_or(Path::new("")).join(&target)
                } else {
                    target
                };
                let resolved =
                    normal(&resolved).ok_or_else(|| bad(name, &raw, "link leaves the archive"))?;
                links.insert(path, resolved);
                continue;
            }
            _ => continue,
        }
        let size = entry.size();
        let what = format!("{name}: {}", path.display());
        let named = blob_digest(&path);
        let mut buffered = BufReader::with_capacity(256 << 10, &mut entry);
        let head = buffered.fill_buf().map_err(|e| stream(&what, e))?.to_vec();
        if let Some(d) = named.filter(|d| !store.has_blob(d)) {
            added.push(d);
        }
        if looks_like_layer(&head) || path.ends_with("layer.tar") {
            let info = ingest_layer(store, buffered, named.as_ref(), &what)?;
            if named.is_none() {
                added.push(info.digest);
            }
            blobs.insert(path, info.digest);
            layers.insert(info.digest, info);
        } else if named.is_none() && size <= MAX_META && kept + size <= MAX_KEPT {
            kept += size;
            let mut bytes = Vec::with_capacity(size as usize);
            buffered
                .take(MAX_META)
                .read_to_end(&mut bytes)
                .map_err(|e| stream(&what, e))?;
            files.insert(path, bytes);
        } else {
            // Blobs (verified against the digest in their name) and large unnamed files go to
            // the store, streamed; they are read back with a size limit when needed.
            let mut w = store.blob_writer()?;
            io::copy(&mut buffered, &mut w).map_err(|e| stream(&what, e))?;
            let (d, _) = w.commit(named.as_ref())?;
            if named.is_none() {
                added.push(d);
            }
            blobs.insert(path, d);
        }
    }
    let ctx = Loaded {
        store,
        name,
        files,
        blobs,
        layers,
        links,
    };
    if ctx.files.contains_key(Path::new("manifest.json")) {
        ctx.load_docker()
    } else if ctx.files.contains_key(Path::new("index.json")) {
        ctx.load_oci()
    } else {
        Err(Error::BadArchive {
            archive: name.to_string(),
            reason: "neither a docker archive (manifest.json) nor an OCI layout (index.json)"
                .into(),
        })
    }
}

struct Loaded<'a> {
    store: &'a Store,
    name: &'a str,
    files: HashMap<PathBuf, Vec<u8>>,
    blobs: HashMap<PathBuf, Digest>,
    layers: HashMap<Digest, LayerInfo>,
    links: HashMap<PathBuf, PathBuf>,
}

#[derive(Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
struct DockerManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

impl Loaded<'_> {
    fn resolve(&self, p: &str) -> Result<PathBuf> {
        let mut path = normal(Path::new(p))
            .ok_or_else(|| bad(self.name, Path::new(p), "path leaves the archive"))?;
        for _ in 0..16 {
            match self.links.get(&path) {
                Some(t) => path = t.clone(),
                None => return Ok(path),
            }
        }
        Err(bad(self.name, Path::new(p), "too many links"))
    }

    fn bytes_at(&self, p: &str) -> Result<Vec<u8>> {
        let path = self.resolve(p)?;
        if let Some(b) = self.files.get(&path) {
            return Ok(b.clone());
        }
        match self.blobs.get(&path) {
            Some(d) => Ok(self.store.read_blob_limited(d, MAX_META)?),
            None => Err(self.missing(p)),
        }
    }

    fn missing(&self, p: &str) -> Error {
        Error::BadArchive {
            archive: self.name.to_string(),
            reason: format!("{p} is referenced but not in the archive"),
        }
    }

    /// The stored layer for a blob, computing the diffID with a verifying read if the blob
    /// was not recognised as a layer while streaming.
    fn layer(&self, digest: &Digest, what: &str) -> Result<LayerInfo> {
        if let Some(l) = self.layers.get(digest) {
            return Ok(l.clone());
        }
        let reader = self.store.open_blob(digest)?;
        ingest_layer(self.store, reader, Some(digest), what)
    }

    fn commit(
        &self,
        config: &[u8],
        manifest: Option<&[u8]>,
        layers: Vec<LayerInfo>,
        tags: &[Reference],
    ) -> Result<Image> {
        let cfg: tare_store::ImageConfig =
            serde_json::from_slice(config).map_err(|e| Error::BadArchive {
                archive: self.name.to_string(),
                reason: format!("image config: {e}"),
            })?;
        for (i, (layer, want)) in layers.iter().zip(cfg.rootfs.diff_ids.iter()).enumerate() {
            if layer.diff_id != *want {
                return Err(Error::DiffIdMismatch {
                    what: format!("{}: layer {i} ({})", self.name, layer.digest),
                    expected: *want,
                    actual: layer.diff_id,
                });
            }
        }
        Ok(self
            .store
            .commit_image_raw(config, manifest, &layers, tags, None)?)
    }

    fn load_docker(&self) -> Result<Vec<LoadedImage>> {
        let list: Vec<DockerManifest> =
            serde_json::from_slice(&self.files[Path::new("manifest.json")]).map_err(|e| {
                Error::BadArchive {
                    archive: self.name.to_string(),
                    reason: format!("manifest.json: {e}"),
                }
            })?;
        let mut images = Vec::new();
        for m in list {
            let config = self.bytes_at(&m.config)?;
            let mut layers = Vec::new();
            for l in &m.layers {
                let path = self.resolve(l)?;
                let d = self.blobs.get(&path).ok_or_else(|| self.missing(l))?;
                layers.push(self.layer(d, &format!("{}: {l}", self.name))?);
            }
            let tags = parse_tags(m.repo_tags.unwrap_or_default().iter().map(String::as_str))?;
            let image = self.commit(&config, None, layers, &tags)?;
            images.push(LoadedImage::single(image));
        }
        Ok(images)
    }

    fn load_oci(&self) -> Result<Vec<LoadedImage>> {
        let index_json = &self.files[Path::new("index.json")];
        if index_json.len() as u64 > MAX_MANIFEST {
            return Err(Error::BadArchive {
                archive: self.name.to_string(),
                reason: format!(
                    "index.json is {} bytes, more than the {MAX_MANIFEST} bytes allowed",
                    index_json.len()
                ),
            });
        }
        let index: ImageIndex =
            serde_json::from_slice(index_json).map_err(|e| Error::BadArchive {
                archive: self.name.to_string(),
                reason: format!("index.json: {e}"),
            })?;
        let mut images = Vec::new();
        for desc in index.manifests() {
            let tags = match ref_name(desc) {
                Some(r) => parse_tags(std::iter::once(r.as_str()))?,
                None => Vec::new(),
            };
            if !is_index(desc) {
                images.push(LoadedImage::single(self.load_manifest(desc, &tags)?));
                continue;
            }
            let (digest, bytes, sub) = self.read_index(desc)?;
            images.push(self.load_index(&digest, bytes, &sub, &tags)?);
        }
        Ok(images)
    }

    /// The index a descriptor of `index.json` names, read from the archive.
    fn read_index(
        &self,
        desc: &oci_spec::image::Descriptor,
    ) -> Result<(Digest, Vec<u8>, ImageIndex)> {
        let digest: Digest = desc.digest().to_string().parse()?;
        if !self.store.has_blob(&digest) {
            return Err(self.missing(&format!("index {digest}")));
        }
        let bytes = self.store.read_blob_limited(&digest, MAX_MANIFEST)?;
        let sub = serde_json::from_slice(&bytes).map_err(|e| Error::BadArchive {
            archive: self.name.to_string(),
            reason: format!("index {digest}: {e}"),
        })?;
        Ok((digest, bytes, sub))
    }

    fn nested(&self, index: &Digest, entry: &oci_spec::image::Descriptor) -> Error {
        Error::BadArchive {
            archive: self.name.to_string(),
            reason: format!(
                "index {index} lists another index ({}): nested indexes are not loaded",
                entry.digest()
            ),
        }
    }

    /// A multi-platform image: every platform's image (attestation manifests, of platform
    /// `unknown`, left out), then a stored index of them that `tags` name, its annotations
    /// kept. Every entry is checked before any image is stored. A named index whose
    /// platforms' blobs are not all in the archive is refused; an unnamed one (`tags` empty,
    /// found by its digest afterwards) keeps the platforms whose blobs are all there, as
    /// docker's containerd store does (`WithSkipMissing`), and fails only if none is. The
    /// index is stored as `bytes` when it is an OCI index that keeps every entry (its digest,
    /// docker's ID for it, stays), else re-encoded with the entries kept.
    fn load_index(
        &self,
        digest: &Digest,
        bytes: Vec<u8>,
        index: &ImageIndex,
        tags: &[Reference],
    ) -> Result<LoadedImage> {
        let entries: Vec<&oci_spec::image::Descriptor> = index
            .manifests()
            .iter()
            .filter(|d| {
                d.platform()
                    .as_ref()
                    .is_none_or(|p| p.os().to_string() != "unknown")
            })
            .collect();
        let bad = |reason: String| Error::BadArchive {
            archive: self.name.to_string(),
            reason,
        };
        if entries.len() > MAX_PLATFORMS {
            return Err(bad(format!(
                "index {digest} lists {} images, more than the {MAX_PLATFORMS} tare loads",
                entries.len()
            )));
        }
        if entries.is_empty() {
            return Err(bad(format!("index {digest} lists no image")));
        }
        let mut parsed = Vec::new();
        let mut kept = Vec::new();
        let mut skipped = Vec::new();
        for entry in &entries {
            if is_index(entry) {
                return Err(self.nested(digest, entry));
            }
            match self.read_manifest(entry, Some(digest))? {
                Ok(manifest) => {
                    parsed.push(manifest);
                    kept.push(*entry);
                }
                Err(missing) if tags.is_empty() => {
                    let platform = entry.platform().as_ref().map_or("unknown".into(), |p| {
                        format!("{}/{}", p.os(), p.architecture())
                    });
                    skipped.push(format!("{platform}: {missing}"));
                }
                Err(missing) => return Err(self.missing(&missing)),
            }
        }
        if parsed.is_empty() {
            return Err(bad(format!(
                "index {digest}: no platform has all its blobs in the archive ({})",
                skipped.join("; ")
            )));
        }
        let mut images = Vec::new();
        for manifest in &parsed {
            images.push(self.commit_manifest(manifest, &[])?);
        }
        let arch = tare_store::config::host_architecture();
        let host = images
            .iter()
            .position(|i| i.config.os == "linux" && i.config.architecture == arch)
            .unwrap_or(0);
        let annotations = tare_store::IndexAnnotations {
            index: index
                .annotations()
                .clone()
                .unwrap_or_default()
                .into_iter()
                .collect(),
            descriptors: kept
                .iter()
                .map(|d| {
                    d.annotations()
                        .clone()
                        .unwrap_or_default()
                        .into_iter()
                        .collect()
                })
                .collect(),
        };
        // A docker manifest list is re-encoded as an OCI index (what push and save send).
        let oci = index
            .media_type()
            .as_ref()
            .is_none_or(|m| m.to_string() == tare_store::MEDIA_TYPE_INDEX);
        let stored = if oci && kept.len() == index.manifests().len() {
            self.store.commit_index_bytes(&images, host, tags, bytes)?
        } else {
            self.store.commit_index(&images, host, tags, &annotations)?
        };
        Ok(LoadedImage {
            image: self.store.image_by_id(&images[host].id)?,
            index: Some(stored),
            skipped,
        })
    }

    /// One image manifest of the archive and what it names, stored with `tags`.
    fn load_manifest(
        &self,
        desc: &oci_spec::image::Descriptor,
        tags: &[Reference],
    ) -> Result<Image> {
        match self.read_manifest(desc, None)? {
            Ok(parsed) => self.commit_manifest(&parsed, tags),
            Err(missing) => Err(self.missing(&missing)),
        }
    }

    /// An image manifest of the archive (listed by index `by`, if given), parsed, once its
    /// config and layers are known to be there; the inner `Err` names the first blob that
    /// is not in the archive.
    fn read_manifest(
        &self,
        desc: &oci_spec::image::Descriptor,
        by: Option<&Digest>,
    ) -> Result<std::result::Result<ParsedManifest, String>> {
        let digest: Digest = desc.digest().to_string().parse()?;
        if !self.store.has_blob(&digest) {
            return Ok(Err(match by {
                Some(index) => format!("manifest {digest} (listed by index {index})"),
                None => format!("manifest {digest}"),
            }));
        }
        let bytes = self.store.read_blob_limited(&digest, MAX_MANIFEST)?;
        let bad = |reason: String| Error::BadArchive {
            archive: self.name.to_string(),
            reason: format!("manifest {digest}: {reason}"),
        };
        // An index where a manifest should be (its descriptor says otherwise): named as such,
        // not parsed as a manifest missing its config.
        let probe: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| bad(e.to_string()))?;
        if probe.get("manifests").is_some() {
            return Err(bad(format!(
                "is an image index, but its descriptor ({}) names an image manifest; \
                 nested indexes are not loaded",
                desc.media_type()
            )));
        }
        let manifest: ImageManifest =
            serde_json::from_value(probe).map_err(|e| bad(e.to_string()))?;
        let config: Digest = manifest.config().digest().to_string().parse()?;
        if !self.store.has_blob(&config) {
            return Ok(Err(format!("config {config} (of manifest {digest})")));
        }
        let mut layers = Vec::new();
        for l in manifest.layers() {
            let d: Digest = l.digest().to_string().parse()?;
            if !self.store.has_blob(&d) {
                return Ok(Err(format!("layer {d} (of manifest {digest})")));
            }
            layers.push((d, Compression::from_media_type(l.media_type().as_ref())));
        }
        Ok(Ok(ParsedManifest {
            bytes,
            config,
            layers,
        }))
    }

    fn commit_manifest(&self, parsed: &ParsedManifest, tags: &[Reference]) -> Result<Image> {
        let config = self.store.read_blob_limited(&parsed.config, MAX_META)?;
        let mut layers = Vec::new();
        for (d, compression) in &parsed.layers {
            let mut info = self.layer(d, &format!("{}: layer {d}", self.name))?;
            if let Some(c) = compression {
                info.media_type = c.media_type().to_string();
            }
            layers.push(info);
        }
        self.commit(&config, Some(&parsed.bytes), layers, tags)
    }
}

/// An image manifest read from an archive: its bytes, its config and layers (with the
/// compression their media type declares).
struct ParsedManifest {
    bytes: Vec<u8>,
    config: Digest,
    layers: Vec<(Digest, Option<Compression>)>,
}

/// Whether a descriptor names an index (OCI's or docker's manifest list).
fn is_index(d: &oci_spec::image::Descriptor) -> bool {
    let mt = d.media_type().to_string();
    mt.contains("index") || mt.contains("manifest.list")
}

fn ref_name(d: &oci_spec::image::Descriptor) -> Option<String> {
    let ann = d.annotations().as_ref()?;
    // containerd and docker write the full name here and only the tag in ref.name.
    if let Some(full) = ann.get("io.containerd.image.name") {
        return Some(full.clone());
    }
    let r = ann.get("org.opencontainers.image.ref.name")?;
    Reference::parse(r).is_ok().then(|| r.clone())
}

fn parse_tags<'a>(tags: impl Iterator<Item = &'a str>) -> Result<Vec<Reference>> {
    tags.map(|t| Reference::parse(t).map_err(Error::from))
        .collect()
}

/// `blobs/sha256/<hex>` names its digest.
fn blob_digest(path: &Path) -> Option<Digest> {
    let mut c = path.components();
    match (c.next(), c.next(), c.next(), c.next()) {
        (
            Some(Component::Normal(a)),
            Some(Component::Normal(b)),
            Some(Component::Normal(h)),
            None,
        ) if a == "blobs" && b == "sha256" => Digest::from_hex(h.to_str()?).ok(),
        _ => None,
    }
}

fn looks_like_layer(head: &[u8]) -> bool {
    match Compression::detect(head) {
        Compression::Gzip | Compression::Zstd => true,
        Compression::None => {
            head.len() >= 512
                && (&head[257..262] == b"ustar" || head[..512].iter().all(|b| *b == 0))
        }
    }
}

/// A member name or link target, clean and relative (the archive's root is `""`); `None` when
/// it climbs above the root.
fn normal(p: &Path) -> Option<PathBuf> {
    crate::path::clean_path(p)
        .ok()
        .map(Option::unwrap_or_default)
}

fn stream(name: &str, e: io::Error) -> Error {
    Error::Stream {
        what: format!("reading {name}"),
        source: e,
    }
}

fn bad(name: &str, path: &Path, reason: &str) -> Error {
    Error::BadEntry {
        archive: name.to_string(),
        entry: path.display().to_string(),
        reason: reason.to_string(),
    }
}
