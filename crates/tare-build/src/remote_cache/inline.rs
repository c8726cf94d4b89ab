//! `--cache-to type=inline`: the final image's steps ride in the manifest of the image the
//! build makes, as one annotation ([`ANNOTATION`]); `--cache-from type=registry,ref=IMAGE`
//! reads them back from an image another machine pushed.
//!
//! BuildKit keeps its inline cache in the image config (`moby.buildkit.cache.v0`), which
//! changes the image ID; a manifest annotation does not, so an image built from the inline
//! cache on another machine has the first machine's ID. The entries are the registry
//! entries ([`Entry`]), and each entry's layer must be one of the image's own layers (same
//! digest, size and media type, and the config's diffID at that place): an inline record
//! cannot make a builder read a blob of another repository or one the image does not name,
//! and every layer it fetches is verified by digest and diffID as a pull verifies it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use tare_registry::manifest::{self, Parsed};
use tare_registry::Repository;
use tare_store::{error_chain, Digest, Image, LayerInfo, Reference};

use super::entry::Entry;
use super::export::exported_stages;
use super::import::{Env, Remote};
use super::options::{CacheTo, Location, Mode};
use crate::cache::Record;
use crate::error::Error;
use tare_dockerfile::Dockerfile;

/// The manifest annotation that holds an image's inline cache ([`Inline`] as JSON).
pub const ANNOTATION: &str = "dev.tare.cache.inline";
/// The version of the inline record ([`Inline::format`]) this tare writes and reads.
pub const FORMAT: u32 = 1;
/// The largest inline record written or read: registries cap a manifest at 4 MiB, and the
/// manifest also lists the layers.
const MAX_INLINE: usize = 3 << 20;

/// The value of [`ANNOTATION`].
#[derive(Serialize, Deserialize)]
struct Inline {
    /// [`FORMAT`].
    format: u32,
    /// One per step of the final image, each as a registry entry's config.
    entries: Vec<Entry>,
}

/// The entries of the image a `--cache-from type=registry,ref=IMAGE` names, with what they
/// are checked against: the image's layers and their diffIDs.
pub(super) struct InlineEntries {
    /// `registry/repository:tag`, for messages.
    pub image: String,
    entries: BTreeMap<String, Entry>,
    /// The image's layers: digest -> (size, media type, diffID).
    layers: BTreeMap<Digest, (u64, String, Digest)>,
}

impl InlineEntries {
    /// The entry filed under `key`, if the image has one.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.get(key)
    }

    /// Every entry of the image (`--explain-cache` compares them).
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// Why `entry`'s layer may not be used: it must be one of the image's layers.
    pub fn refuse_layer(&self, entry: &Entry) -> Option<String> {
        let layer = entry.layer.as_ref()?;
        match self.layers.get(&layer.digest) {
            None => Some(format!(
                "its layer {} is not a layer of the image {}",
                layer.digest, self.image
            )),
            Some((size, media_type, diff_id))
                if *size != layer.compressed_size
                    || *media_type != layer.media_type
                    || *diff_id != layer.diff_id =>
            {
                Some(format!(
                    "its layer {} is not described as the image {} describes it (size, media \
                     type or diffID)",
                    layer.digest, self.image
                ))
            }
            Some(_) => None,
        }
    }
}

/// Reads the inline cache of the image `reference` names in `repo`: `Ok(None)` when there is
/// no such image or it has no inline cache (a plain cache repository), `Err` with the reason
/// when it has one that cannot be read. An index is resolved to `platform`'s manifest.
pub(super) fn read(
    repo: &Repository,
    reference: &Reference,
    platform: &tare_registry::Platform,
) -> Result<Option<InlineEntries>, String> {
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => return Ok(None),
    };
    let registry = reference.domain();
    let Some(mut bytes) = repo.manifest(&wanted).map_err(|e| error_chain(&e))? else {
        return Ok(None);
    };
    // Only images are read further: a tare cache entry (or any other artifact) is not one.
    let Ok(mut parsed) = manifest::parse(&bytes, None, registry) else {
        return Ok(None);
    };
    if let Parsed::Index(entries) = &parsed {
        let chosen =
            manifest::select(entries, platform, &reference.name()).map_err(|e| error_chain(&e))?;
        let digest = chosen.digest(registry).map_err(|e| error_chain(&e))?;
        bytes = repo
            .manifest(&digest.to_string())
            .map_err(|e| error_chain(&e))?
            .ok_or_else(|| format!("its index names the manifest {digest}, which is missing"))?;
        parsed = manifest::parse(&bytes, None, registry).map_err(|e| error_chain(&e))?;
    }
    let Parsed::Image(image) = parsed else {
        return Err("its index names another index".into());
    };
    #[derive(Deserialize)]
    struct Annotations {
        #[serde(default)]
        annotations: BTreeMap<String, String>,
    }
    let annotations: Annotations = serde_json::from_slice(&bytes)
        .map_err(|e| format!("its manifest's annotations are not valid: {e}"))?;
    let Some(text) = annotations.annotations.get(ANNOTATION) else {
        return Ok(None);
    };
    if text.len() > MAX_INLINE {
        return Err(format!(
            "its inline cache is {} bytes, more than {MAX_INLINE}",
            text.len()
        ));
    }
    let inline: Inline =
        serde_json::from_str(text).map_err(|e| format!("its inline cache is not valid: {e}"))?;
    if inline.format != FORMAT {
        return Err(format!(
            "inline cache format {} (this tare reads {FORMAT})",
            inline.format
        ));
    }
    let config_digest = image.config.digest(registry).map_err(|e| error_chain(&e))?;
    let config = repo
        .blob(&config_digest, image.config.size, manifest::MAX_CONFIG)
        .map_err(|e| error_chain(&e))?;
    let config: tare_store::config::ImageConfig =
        serde_json::from_slice(&config).map_err(|e| format!("its config is not valid: {e}"))?;
    if config.rootfs.diff_ids.len() != image.layers.len() {
        return Err(format!(
            "its config lists {} layers and its manifest {}",
            config.rootfs.diff_ids.len(),
            image.layers.len()
        ));
    }
    let mut layers = BTreeMap::new();
    for (desc, diff_id) in image.layers.iter().zip(&config.rootfs.diff_ids) {
        let digest = desc.digest(registry).map_err(|e| error_chain(&e))?;
        layers.insert(digest, (desc.size, desc.media_type.clone(), *diff_id));
    }
    let entries = inline
        .entries
        .into_iter()
        .map(|e| (e.key.clone(), e))
        .collect();
    Ok(Some(InlineEntries {
        image: format!("{}:{wanted}", repo.name()),
        entries,
        layers,
    }))
}

/// With `--cache-to type=inline`: `image` with its inline cache in its manifest (a new
/// manifest blob; the image ID, its config's digest, does not change). The entries are the
/// records of the final image's steps (mode=min) whose layer (if any) is one of the image's.
/// `stored`: the image is in the store (else only its config and manifest blobs are, for
/// a push). Nothing to write, or a record too large, leaves the image as it is, the latter
/// with a warning.
pub(crate) fn annotate(
    env: &Env<'_>,
    remote: &Remote,
    cache_to: &[CacheTo],
    dockerfile: &Dockerfile,
    target: usize,
    image: Image,
    stored: bool,
) -> Result<Image, Error> {
    if !cache_to.iter().any(|c| c.location == Location::Inline) {
        return Ok(image);
    }
    let store = env.store;
    let stages = exported_stages(dockerfile, Mode::Min, target);
    let in_image: BTreeSet<Digest> = image.layers.iter().map(|l| l.digest).collect();
    let mut seen = BTreeSet::new();
    let mut entries = Vec::new();
    for (stage, record) in remote.records() {
        if !stages.as_ref().is_none_or(|s| s.contains(&stage)) || !seen.insert(record.key.clone()) {
            continue;
        }
        let Some(layer) = the_image_layer(&record, &image.layers, &in_image) else {
            continue;
        };
        let content_size = match &layer {
            Some(l) => Some(remote.content_size(store, l)?),
            None => None,
        };
        let mut record = record;
        record.layer = layer;
        entries.push(Entry::of(&record, content_size));
    }
    let text = serde_json::to_string(&Inline {
        format: FORMAT,
        entries,
    })
    .map_err(|error| Error::Encode {
        what: "inline cache",
        error,
    })?;
    if text.len() > MAX_INLINE {
        env.warn(format!(
            "--cache-to type=inline: the inline cache is {} bytes, more than {MAX_INLINE} \
             (a registry refuses manifests over 4 MiB): not written; use type=registry",
            text.len()
        ));
        return Ok(image);
    }
    let wanted = BTreeMap::from([(ANNOTATION.to_string(), text)]);
    if stored {
        return Ok(store.annotate_manifest(&image, &wanted)?);
    }
    let bytes = store.read_blob(&image.manifest_digest)?;
    // The manifest the engine just wrote: read back to add the annotation.
    let encode = |error| Error::Encode {
        what: "image manifest",
        error,
    };
    let mut manifest: serde_json::Value = serde_json::from_slice(&bytes).map_err(encode)?;
    manifest["annotations"] = serde_json::json!(wanted);
    let bytes = serde_json::to_vec(&manifest).map_err(encode)?;
    Ok(Image {
        manifest_digest: store.put_bytes(&bytes)?,
        ..image
    })
}

/// The record's layer as the image has it: `Some(None)` for a step without a layer,
/// `Some(Some(layer))` for one of the image's layers, `None` for a layer the image does not
/// have (an intermediate step squashed away, say): not written.
fn the_image_layer(
    record: &Record,
    layers: &[LayerInfo],
    in_image: &BTreeSet<Digest>,
) -> Option<Option<LayerInfo>> {
    match &record.layer {
        None => Some(None),
        Some(l) if in_image.contains(&l.digest) => layers
            .iter()
            .find(|i| i.digest == l.digest)
            .cloned()
            .map(Some),
        Some(_) => None,
    }
}
