//! Squash: the layers from N on become one layer on top of the unchanged layers below.
//!
//! Two passes over the squashed layers' tars, no extraction to disk:
//!
//! 1. headers only: replay the layers over a map `path -> the entry that provides it` (or
//!    "deleted"), with whiteouts and opaque directories applied the way a runtime applies
//!    them. What is left are the entries that survive, the deletions of paths the base layers
//!    hold, and the directories that must hide the base's content (deleted, then recreated);
//! 2. content: the layers are streamed again and only the surviving entries are copied into
//!    one tar (headers, PAX records such as xattrs, and content unchanged), after the
//!    whiteouts and opaque markers.
//!
//! Dead files are never written, so the result is as small as the final filesystem allows,
//! and applying it on the base gives exactly the filesystem of the original image. The same
//! layers squashed the same way give the same bytes, and the result is remembered in
//! `ROOT/index/squash-<key>.json`, so squashing again (or `build --squash` on a cached build)
//! reuses the stored layer.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::fs;
use std::io::{self, Read};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use tare_layer::whiteout::{Marker, OPAQUE_MARKER, WHITEOUT_PREFIX};
use tare_layer::{Compression, LayerSink};
use tare_store::config::History;
use tare_store::{Digest, Image, LayerInfo, Reference, Store, StoreDir};

use crate::error::{Error, Result};
use crate::index::{clean, layer_indexes, split_name, EntryKind};

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
pub fn squash_layers(
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
    let plan = plan(store, squashed, &base, &|_| true)?;
    let mut sink = LayerSink::new(store, compression)?;
    write(store, squashed, &plan, &mut sink)?;
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
pub fn squash_filtered(
    store: &Store,
    layers: &[LayerInfo],
    keep: &dyn Fn(&str) -> bool,
    compression: Compression,
) -> Result<LayerInfo> {
    let plan = plan(store, layers, &BTreeSet::new(), keep)?;
    let mut sink = LayerSink::new(store, compression)?;
    write(store, layers, &plan, &mut sink)?;
    let info = sink.finish()?;
    store.record_layer(&info)?;
    Ok(info)
}

fn cache_key(layers: &[LayerInfo], from: usize, compression: Compression) -> Digest {
    let mut text = format!("tare-squash v1 {compression} from {from}\n");
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

fn below(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

fn remove_below(set: &mut BTreeSet<String>, path: &str) {
    let (lo, hi) = below(path);
    let keys: Vec<String> = set.range(lo..hi).cloned().collect();
    for k in keys {
        set.remove(&k);
    }
}

fn has_below(set: &BTreeSet<String>, path: &str) -> bool {
    let (lo, hi) = below(path);
    set.range(lo..hi).next().is_some()
}

/// An entry of a squashed layer: (layer offset in the squashed range, entry number).
type EntryId = (usize, usize);

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Slot {
    Entry(EntryId),
    Deleted,
    /// A directory that was deleted and then received new content: written as a plain
    /// directory, made opaque.
    Recreated,
}

/// A hard link's path, its target, and the entry that provided the target when the link was
/// made (`None`: the base).
type LinkSource = (String, String, Option<EntryId>);

/// What pass 2 writes.
#[derive(Default)]
struct Plan {
    /// Whiteouts of base paths (raw relative paths of the hidden files).
    whiteouts: Vec<String>,
    /// Directories whose base content must be hidden.
    opaque: Vec<String>,
    /// Directories to write with default metadata (recreated after a deletion, with no
    /// directory entry of their own).
    synthetic_dirs: Vec<String>,
    survivors: HashSet<EntryId>,
    /// Dead entries whose content a surviving hard link still needs: written under these
    /// names instead (the first with the content, the others linked to it).
    materialize: HashMap<EntryId, Vec<String>>,
    /// Surviving hard links replaced by `materialize`.
    dropped_links: HashSet<EntryId>,
}

/// One tar entry as pass 1 sees it.
struct Header {
    path: String,
    kind: EntryKind,
    link: Option<String>,
}

/// Iterates the real entries of a layer (pseudo-entries skipped), numbering them the same
/// way in both passes.
fn for_each_entry(
    store: &Store,
    layer: &LayerInfo,
    mut f: impl FnMut(usize, &mut tar::Entry<'_, Box<dyn Read + '_>>) -> Result<()>,
) -> Result<()> {
    let stream = |e| Error::Stream {
        digest: layer.digest,
        source: e,
    };
    // Verified: the blob is read to its end and its digest checked before squash trusts it.
    let mut reader = tare_layer::open_layer(store, layer)?;
    let bounded: Box<dyn Read + '_> = Box::new(tare_layer::BoundedTar::new(&mut reader));
    let mut archive = tar::Archive::new(bounded);
    let mut n = 0;
    for entry in archive.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        if matches!(
            entry.header().entry_type(),
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            continue;
        }
        f(n, &mut entry)?;
        n += 1;
    }
    drop(archive);
    reader.finish()?;
    Ok(())
}

fn read_header<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<Option<Header>> {
    let raw = entry.path()?;
    let Some(path) = clean(&raw) else {
        return Ok(None);
    };
    let Some((parent, name)) = split_name(&path) else {
        return Ok(None);
    };
    let (path, kind) = match Marker::of_str(name) {
        Marker::Opaque => (parent.to_string(), EntryKind::Opaque),
        Marker::Whiteout(hidden) => (crate::index::join(parent, hidden), EntryKind::Whiteout),
        Marker::Invalid => return Ok(None),
        Marker::Entry => {
            return entry_header(entry, path.clone()).map(Some);
        }
    };
    Ok(Some(Header {
        path,
        kind,
        link: None,
    }))
}

/// The header of an ordinary entry (not a whiteout or opaque marker).
fn entry_header<R: Read>(entry: &tar::Entry<'_, R>, path: String) -> io::Result<Header> {
    let (kind, link) = match entry.header().entry_type() {
        tar::EntryType::Directory => (EntryKind::Dir, None),
        tar::EntryType::Link => (
            EntryKind::Hardlink,
            entry.link_name()?.and_then(|l| clean(&l)),
        ),
        tar::EntryType::Symlink => (EntryKind::Symlink, None),
        tar::EntryType::Regular | tar::EntryType::Continuous => (EntryKind::File, None),
        _ => (EntryKind::Other, None),
    };
    Ok(Header { path, kind, link })
}

/// Pass 1: which entries survive, which base paths are deleted, which dirs become opaque.
fn plan(
    store: &Store,
    layers: &[LayerInfo],
    base: &BTreeSet<String>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Plan> {
    let mut state: BTreeMap<String, Slot> = BTreeMap::new();
    let mut opaque: BTreeSet<String> = BTreeSet::new();
    // For every hard link: its path, its target, and what provided the target when the link
    // was made (None: the base).
    let mut link_source: HashMap<EntryId, LinkSource> = HashMap::new();

    for (li, layer) in layers.iter().enumerate() {
        let mut headers: Vec<(usize, Header)> = Vec::new();
        for_each_entry(store, layer, |n, entry| {
            if let Some(h) = read_header(entry).map_err(|e| Error::Stream {
                digest: layer.digest,
                source: e,
            })? {
                headers.push((n, h));
            }
            Ok(())
        })?;
        // Whiteouts and opaque markers only hide what lies below this layer.
        for (_, h) in &headers {
            match h.kind {
                EntryKind::Whiteout => {
                    remove_state_below(&mut state, &h.path);
                    remove_below(&mut opaque, &h.path);
                    opaque.remove(&h.path);
                    state.insert(h.path.clone(), Slot::Deleted);
                }
                EntryKind::Opaque => {
                    remove_state_below(&mut state, &h.path);
                    remove_below(&mut opaque, &h.path);
                    opaque.insert(h.path.clone());
                }
                _ => {}
            }
        }
        for (n, h) in headers {
            if matches!(h.kind, EntryKind::Whiteout | EntryKind::Opaque) {
                continue;
            }
            let id = (li, n);
            // Parents deleted earlier in the range come back as empty directories.
            let mut ancestor = h.path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                if state.get(parent) == Some(&Slot::Deleted) {
                    state.insert(parent.to_string(), Slot::Recreated);
                    opaque.insert(parent.to_string());
                }
                ancestor = parent;
            }
            if h.kind != EntryKind::Dir {
                remove_state_below(&mut state, &h.path);
                remove_below(&mut opaque, &h.path);
                opaque.remove(&h.path);
            }
            let previous = state.insert(h.path.clone(), Slot::Entry(id));
            if h.kind == EntryKind::Dir && previous == Some(Slot::Deleted) {
                opaque.insert(h.path.clone());
            }
            if h.kind == EntryKind::Hardlink {
                if let Some(target) = h.link {
                    let source = match state.get(&target) {
                        Some(Slot::Entry(t)) => Some(*t),
                        _ => None,
                    };
                    link_source.insert(id, (h.path.clone(), target, source));
                }
            }
        }
    }

    let mut plan = Plan::default();
    for (path, slot) in state.iter().filter(|(path, _)| keep(path)) {
        match slot {
            Slot::Entry(id) => {
                plan.survivors.insert(*id);
            }
            Slot::Deleted => {
                if base.contains(path) {
                    plan.whiteouts.push(path.clone());
                }
            }
            Slot::Recreated => plan.synthetic_dirs.push(path.clone()),
        }
    }
    plan.opaque = opaque.into_iter().filter(|d| has_below(base, d)).collect();

    // Hard links whose target a later layer replaced or deleted still hold the old content:
    // the dead target entry is written under the link's name instead.
    let mut links: Vec<(&EntryId, &LinkSource)> = link_source.iter().collect();
    links.sort();
    for (id, (link_path, target, source)) in links {
        if !plan.survivors.contains(id) {
            continue;
        }
        let link_path = link_path.clone();
        let target_now = state.get(target).copied();
        match source {
            Some(src) if target_now != Some(Slot::Entry(*src)) => {
                plan.materialize.entry(*src).or_default().push(link_path);
                plan.dropped_links.insert(*id);
            }
            None if target_now.is_some() => {
                return Err(Error::Unsupported(format!(
                    "/{link_path} is a hard link to /{target} in a lower layer, which a \
                     squashed layer replaces; squash from a lower layer (--from)"
                )));
            }
            _ => {}
        }
    }
    Ok(plan)
}

fn remove_state_below(state: &mut BTreeMap<String, Slot>, path: &str) {
    let (lo, hi) = below(path);
    let keys: Vec<String> = state.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in keys {
        state.remove(&k);
    }
}

/// Pass 2: writes the plan's layer.
fn write(store: &Store, layers: &[LayerInfo], plan: &Plan, sink: &mut LayerSink) -> Result<()> {
    let mut out = tar::Builder::new(sink);
    let w = Error::Write;
    for path in &plan.synthetic_dirs {
        let mut h = blank_header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        out.append_data(&mut h, path, io::empty()).map_err(w)?;
    }
    for dir in &plan.opaque {
        out.append_data(
            &mut marker(),
            crate::index::join(dir, OPAQUE_MARKER),
            io::empty(),
        )
        .map_err(w)?;
    }
    for path in &plan.whiteouts {
        let (parent, name) = split_name(path).unwrap_or(("", path));
        let name = format!("{WHITEOUT_PREFIX}{name}");
        out.append_data(
            &mut marker(),
            crate::index::join(parent, &name),
            io::empty(),
        )
        .map_err(w)?;
    }
    for (li, layer) in layers.iter().enumerate() {
        for_each_entry(store, layer, |n, entry| {
            let id = (li, n);
            let names = plan.materialize.get(&id);
            let alive = plan.survivors.contains(&id) && !plan.dropped_links.contains(&id);
            if !alive && names.is_none() {
                return Ok(());
            }
            let raw = entry.path_bytes().into_owned();
            let Some(path) = tare_layer::path::clean_path(Path::new(OsStr::from_bytes(&raw)))
                .ok()
                .flatten()
            else {
                return Ok(());
            };
            let stream = |e| Error::Stream {
                digest: layer.digest,
                source: e,
            };
            let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions().map_err(stream)? {
                Some(exts) => exts
                    .filter_map(|e| e.ok())
                    .filter_map(|e| Some((e.key().ok()?.to_string(), e.value_bytes().to_vec())))
                    .filter(|(k, _)| {
                        !matches!(k.as_str(), "path" | "linkpath" | "size")
                            && !k.starts_with("GNU.sparse")
                    })
                    .collect(),
                None => Vec::new(),
            };
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            let link = entry.link_name_bytes().map(|l| l.into_owned());
            let put = |out: &mut tar::Builder<&mut LayerSink>,
                       header: &mut tar::Header,
                       path: &Path,
                       content: &mut dyn Read|
             -> Result<()> {
                if !pax.is_empty() {
                    out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                        .map_err(w)?;
                }
                match (kind, &link) {
                    (tar::EntryType::Link | tar::EntryType::Symlink, Some(target)) => out
                        .append_link(header, path, Path::new(OsStr::from_bytes(target)))
                        .map_err(w),
                    _ => out.append_data(header, path, content).map_err(w),
                }
            };
            match names {
                Some(names) => {
                    let first = Path::new(&names[0]);
                    put(&mut out, &mut header, first, entry)?;
                    for other in &names[1..] {
                        let mut h = header.clone();
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        out.append_link(&mut h, other, first).map_err(w)?;
                    }
                    if plan.survivors.contains(&id) {
                        return Err(Error::Unsupported(format!(
                            "/{} is both alive and the content of a replaced hard link",
                            path.display()
                        )));
                    }
                    Ok(())
                }
                None => put(&mut out, &mut header, &path, entry),
            }
        })?;
    }
    out.finish().map_err(w)?;
    Ok(())
}

/// The header of a whiteout or opaque marker: an empty regular file.
fn marker() -> tar::Header {
    let mut h = blank_header();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0);
    h
}

/// A header owned by root, size 0, time 0 (every numeric field set: readers reject blanks).
fn blank_header() -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(0);
    h
}
