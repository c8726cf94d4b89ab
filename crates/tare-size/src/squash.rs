//! Squash: the layers from N on become one layer on top of the unchanged layers below.
//!
//! The squashed layers are replayed over the paths of the layers below them
//! ([`tare_layer::replay`]: two passes over their tars, no extraction to disk): the entries
//! that survive are copied into one tar (headers, PAX records such as xattrs, and content
//! unchanged), after the whiteouts of base paths and the opaque markers of directories that
//! were deleted and recreated.
//!
//! Dead files are never written, so the result is as small as the final filesystem allows,
//! and applying it on the base gives exactly the filesystem of the original image. The same
//! layers squashed the same way give the same bytes, and the result is remembered in
//! `ROOT/index/squash-<key>.json`, so squashing again (or `build --squash` on a cached build)
//! reuses the stored layer.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;

use tare_layer::{replay, Compression, LayerSink};
use tare_store::config::History;
use tare_store::{Digest, Image, LayerInfo, Reference, Store, StoreDir};

use crate::error::{Error, Result};
use crate::index::layer_indexes;

/// Where the squashed part starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SquashFrom {
    /// Above the base image the builder recorded (`build_info.base_layers`); all layers when
    /// that is unknown.
    Base,
    /// Every layer: one layer for the whole image.
    All,
    /// From this layer index on (0 = the bottom layer).
    Layer(usize),
}

/// A squashed image.
#[derive(Clone, Debug)]
pub struct Squashed {
    /// The new image, committed and tagged.
    pub image: Image,
    /// Index of the first squashed layer of the original image.
    pub from: usize,
    /// How many layers became one.
    pub squashed: usize,
    /// The new layer.
    pub layer: LayerInfo,
    /// Whether the layer came from an earlier identical squash.
    pub cached: bool,
}

/// Squashes `image` and commits the result as a new image tagged `tags`.
///
/// The config is kept (CMD, ENV, USER, ...) with `rootfs.diff_ids` updated; history entries
/// of squashed layers are kept but marked `empty_layer`, and one entry for the new layer is
/// appended, dated `created` (RFC 3339: the caller's SOURCE_DATE_EPOCH, or now). The
/// builder's `build_info` is carried over.
pub fn squash(
    store: &Store,
    image: &Image,
    from: SquashFrom,
    compression: Compression,
    tags: &[Reference],
    created: String,
) -> Result<Squashed> {
    let n = image.layers.len();
    let from = match from {
        SquashFrom::All => 0,
        SquashFrom::Layer(i) => i,
        SquashFrom::Base => crate::steps::base_layers(image)
            .filter(|&b| b < n)
            .unwrap_or(0),
    };
    if from >= n {
        return Err(Error::BadSquashRange { from, layers: n });
    }
    let (layer, cached) = squash_layers(store, &image.layers, from, compression)?;
    let committed = commit_one_layer(
        store,
        image,
        from,
        layer.clone(),
        History {
            created: Some(created),
            created_by: Some(format!(
                "tare squash: layers {from} to {} merged into one",
                n - 1
            )),
            comment: Some(format!("squashed {} layers", n - from)),
            ..History::default()
        },
        tags,
    )?;
    Ok(Squashed {
        image: committed,
        from,
        squashed: n - from,
        layer,
        cached,
    })
}

/// Commits `image` with its layers from `from` on replaced by `layer`: the config kept with
/// `rootfs.diff_ids` updated, the history entries of the replaced layers marked
/// `empty_layer`, `entry` (its `created`, `created_by` and `comment`) appended for the new
/// layer; `build_info` carried over.
pub(crate) fn commit_one_layer(
    store: &Store,
    image: &Image,
    from: usize,
    layer: LayerInfo,
    entry: History,
    tags: &[Reference],
) -> Result<Image> {
    let mut config = image.config.clone();
    let mut layers: Vec<LayerInfo> = image.layers[..from].to_vec();
    layers.push(layer);
    config.rootfs.diff_ids = layers.iter().map(|l| l.diff_id).collect();
    let mut seen = 0;
    for h in &mut config.history {
        if h.empty_layer {
            continue;
        }
        if seen >= from {
            h.empty_layer = true;
        }
        seen += 1;
    }
    config.history.push(entry);
    let build_info = image
        .build_info
        .clone()
        .unwrap_or_default()
        .squashed(&image.id, from);
    Ok(store.commit_image(&config, &layers, tags, Some(build_info))?)
}

/// Squashes `layers[from..]` into one stored layer that applies on top of `layers[..from]`.
/// Returns the layer and whether an identical earlier squash provided it.
pub(crate) fn squash_layers(
    store: &Store,
    layers: &[LayerInfo],
    from: usize,
    compression: Compression,
) -> Result<(LayerInfo, bool)> {
    if from >= layers.len() {
        return Err(Error::BadSquashRange {
            from,
            layers: layers.len(),
        });
    }
    let key = cache_key(layers, from, compression);
    let cache_path = store
        .dir(StoreDir::Index)?
        .join(format!("squash-{}.json", key.hex()));
    if let Ok(bytes) = fs::read(&cache_path) {
        if let Ok(info) = serde_json::from_slice::<LayerInfo>(&bytes) {
            if store.has_blob(&info.digest) {
                store.record_layer(&info)?;
                return Ok((info, true));
            }
        }
    }

    let base = base_paths(store, &layers[..from])?;
    let squashed = &layers[from..];
    let plan = replay::plan(store, squashed, &base, &|_| true)?;
    let mut sink = LayerSink::new(store, compression)?;
    write_layer(store, squashed, &plan, &mut sink)?;
    let info = sink.finish()?;
    store.record_layer(&info)?;
    // Only a cache: a squash whose record cannot be written is still a squash.
    if let Ok(bytes) = serde_json::to_vec(&info) {
        let _ = tare_store::write_atomic(&cache_path, &bytes);
    }
    Ok((info, false))
}

/// All of `layers` as one layer holding only the paths `keep` accepts (clean relative paths,
/// as in the indexes): `tare slim`'s writer. The caller keeps the parents and link targets
/// of what it keeps.
pub(crate) fn squash_filtered(
    store: &Store,
    layers: &[LayerInfo],
    keep: &dyn Fn(&str) -> bool,
    compression: Compression,
) -> Result<LayerInfo> {
    let plan = replay::plan(store, layers, &BTreeSet::new(), keep)?;
    let mut sink = LayerSink::new(store, compression)?;
    write_layer(store, layers, &plan, &mut sink)?;
    let info = sink.finish()?;
    store.record_layer(&info)?;
    Ok(info)
}

fn cache_key(layers: &[LayerInfo], from: usize, compression: Compression) -> Digest {
    let mut text = format!("tare-squash v2 {compression} from {from}\n");
    for l in layers {
        text.push_str(&l.diff_id.to_string());
        text.push('\n');
    }
    Digest::of(text.as_bytes())
}

/// The paths visible after the base layers, from their indexes.
fn base_paths(store: &Store, base: &[LayerInfo]) -> Result<BTreeSet<String>> {
    let indexes = layer_indexes(store, base)?;
    Ok(crate::imagediff::flatten(&indexes).into_keys().collect())
}

/// Writes `plan`'s entries of `layers` as one stored layer tar.
fn write_layer(
    store: &Store,
    layers: &[LayerInfo],
    plan: &replay::Plan,
    sink: &mut LayerSink,
) -> Result<()> {
    let mut out = tar::Builder::new(sink);
    replay::write(store, layers, plan, Path::new(""), &mut out)?;
    out.finish().map_err(Error::Write)?;
    Ok(())
}
