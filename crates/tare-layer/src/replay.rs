//! Replaying a stack of layers as a runtime stacks them, without extracting anything: which
//! entry provides each path of the merged filesystem, and that filesystem written as one tar.
//!
//! Both users of a merged view go through here: `tare export` / `-o type=tar` (every layer,
//! nothing below) and squash (the layers from N on, over the paths of the layers below).
//!
//! Two passes over the layers' tars:
//!
//! 1. [`plan`], headers only: the layers are replayed bottom up over a map `path -> the entry
//!    that provides it` (or "deleted"), whiteouts and opaque directories applied the way a
//!    runtime applies them: they hide what lies below their own layer only. What is left are
//!    the surviving entries, the deletions of paths the base holds, and the directories that
//!    must hide the base's content (deleted, then recreated).
//! 2. [`write()`], content: the layers are streamed again and only the surviving entries are
//!    copied (headers, PAX records such as xattrs, and content unchanged), after the whiteouts
//!    and opaque markers.
//!
//! A hard link whose target a later layer replaced or deleted keeps the old content (overlayfs
//! copies the target up and breaks the link): the dead target entry is written under the
//! link's name instead, so the result never links to a path that holds other bytes.
//!
//! Each pass reads every blob to its end and verifies its digest ([`crate::open_layer`]), so a
//! tampered blob fails the first pass, before anything is written.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::ffi::OsStr;
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use tare_store::{LayerInfo, Store};

use crate::error::{Error, Result};
use crate::path::clean_path;
use crate::whiteout::{Marker, OPAQUE_MARKER, WHITEOUT_PREFIX};

/// An entry of the replayed layers: (index in the layers given, entry number in its tar).
type EntryId = (usize, usize);

/// What a path holds after the replay.
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

/// What [`write()`] writes: the result of [`plan`].
#[derive(Default, Debug)]
pub struct Plan {
    /// Whiteouts of base paths (clean relative paths of the hidden files).
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
    /// Every entry but whiteouts and opaque markers survives: one layer on its own.
    everything: bool,
}

impl Plan {
    /// The plan of a single layer with nothing below it, which needs no first pass: its
    /// entries in order, whiteouts and opaque markers dropped (they hide nothing).
    pub fn one_layer() -> Plan {
        Plan {
            everything: true,
            ..Plan::default()
        }
    }
}

/// What kind of entry a header is, as the replay sees it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Dir,
    Hardlink,
    Whiteout,
    Opaque,
    Other,
}

/// One tar entry as pass 1 sees it: `path` is the path it provides, or for a whiteout the
/// path it deletes, for an opaque marker the directory it empties.
struct Header {
    path: String,
    kind: Kind,
    link: Option<String>,
}

/// Pass 1: which entries of `layers` (bottom first) survive over `base` (the clean relative
/// paths visible below them; empty for a whole image), which base paths are deleted and
/// which directories become opaque. Only paths `keep` accepts are kept.
pub fn plan(
    store: &Store,
    layers: &[LayerInfo],
    base: &BTreeSet<String>,
    keep: &dyn Fn(&str) -> bool,
) -> Result<Plan> {
    let mut state: BTreeMap<String, Slot> = BTreeMap::new();
    let mut opaque: BTreeSet<String> = BTreeSet::new();
    let mut link_source: HashMap<EntryId, LinkSource> = HashMap::new();

    for (li, layer) in layers.iter().enumerate() {
        let mut headers: Vec<(usize, Header)> = Vec::new();
        for_each_entry(store, layer, |n, entry| {
            if let Some(h) = read_header(entry).map_err(|e| stream(layer, e))? {
                headers.push((n, h));
            }
            Ok(())
        })?;
        // Whiteouts and opaque markers only hide what lies below this layer.
        for (_, h) in &headers {
            match h.kind {
                Kind::Whiteout => {
                    remove_below(&mut state, &h.path);
                    remove_below(&mut opaque, &h.path);
                    opaque.remove(&h.path);
                    state.insert(h.path.clone(), Slot::Deleted);
                }
                Kind::Opaque => {
                    remove_below(&mut state, &h.path);
                    remove_below(&mut opaque, &h.path);
                    opaque.insert(h.path.clone());
                }
                _ => {}
            }
        }
        for (n, h) in headers {
            if matches!(h.kind, Kind::Whiteout | Kind::Opaque) {
                continue;
            }
            let id = (li, n);
            // Parents deleted earlier come back as empty directories.
            let mut ancestor = h.path.as_str();
            while let Some((parent, _)) = ancestor.rsplit_once('/') {
                if state.get(parent) == Some(&Slot::Deleted) {
                    state.insert(parent.to_string(), Slot::Recreated);
                    opaque.insert(parent.to_string());
                }
                ancestor = parent;
            }
            if h.kind != Kind::Dir {
                remove_below(&mut state, &h.path);
                remove_below(&mut opaque, &h.path);
                opaque.remove(&h.path);
            }
            let previous = state.insert(h.path.clone(), Slot::Entry(id));
            if h.kind == Kind::Dir && previous == Some(Slot::Deleted) {
                opaque.insert(h.path.clone());
            }
            if h.kind == Kind::Hardlink {
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
    for (id, (link, target, source)) in links {
        if !plan.survivors.contains(id) {
            continue;
        }
        let target_now = state.get(target).copied();
        match source {
            Some(src) if target_now != Some(Slot::Entry(*src)) => {
                plan.materialize.entry(*src).or_default().push(link.clone());
                plan.dropped_links.insert(*id);
            }
            None if target_now.is_some() => {
                return Err(Error::LinkIntoBase {
                    link: link.clone(),
                    target: target.clone(),
                });
            }
            _ => {}
        }
    }
    Ok(plan)
}

/// Pass 2: writes `plan`'s entries of `layers` (the same layers [`plan`] read) to `out`,
/// every path and hard link target under `prefix` (empty: at the top). Directories end in
/// `/`, as docker, GNU tar and tare's own layers write them.
pub fn write<W: Write>(
    store: &Store,
    layers: &[LayerInfo],
    plan: &Plan,
    prefix: &Path,
    out: &mut tar::Builder<W>,
) -> Result<()> {
    let under = |path: &str| prefix.join(path);
    for path in &plan.synthetic_dirs {
        let mut h = blank_header();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        append(out, &mut h, &dir_name(&under(path)), &mut io::empty())?;
    }
    for dir in &plan.opaque {
        append(
            out,
            &mut marker(),
            &under(dir).join(OPAQUE_MARKER),
            &mut io::empty(),
        )?;
    }
    for path in &plan.whiteouts {
        let (parent, name) = path.rsplit_once('/').unwrap_or(("", path));
        let name = format!("{WHITEOUT_PREFIX}{name}");
        append(
            out,
            &mut marker(),
            &under(parent).join(name),
            &mut io::empty(),
        )?;
    }
    for (li, layer) in layers.iter().enumerate() {
        for_each_entry(store, layer, |n, entry| {
            let id = (li, n);
            let names = plan.materialize.get(&id);
            let alive = plan.everything
                || plan.survivors.contains(&id) && !plan.dropped_links.contains(&id);
            if !alive && names.is_none() {
                return Ok(());
            }
            let raw = entry.path_bytes().into_owned();
            let raw = Path::new(OsStr::from_bytes(&raw));
            let Some(path) = clean_path(raw).map_err(|r| bad(layer, raw, r))? else {
                return Ok(());
            };
            if plan.everything
                && path
                    .file_name()
                    .is_some_and(|f| Marker::of(f) != Marker::Entry)
            {
                return Ok(());
            }
            let pax = pax_records(entry).map_err(|e| stream(layer, e))?;
            let mut header = entry.header().clone();
            let kind = header.entry_type();
            let link = match kind {
                tar::EntryType::Link => {
                    let target = entry.link_name().map_err(|e| stream(layer, e))?;
                    let target = target.unwrap_or_default();
                    let clean = clean_path(&target).map_err(|r| bad(layer, &target, r))?;
                    Some(prefix.join(clean.unwrap_or_default()))
                }
                tar::EntryType::Symlink => entry
                    .link_name_bytes()
                    .map(|l| PathBuf::from(OsStr::from_bytes(&l))),
                _ => None,
            };
            let put = |out: &mut tar::Builder<W>,
                       header: &mut tar::Header,
                       path: &Path,
                       content: &mut dyn Read|
             -> Result<()> {
                if !pax.is_empty() {
                    out.append_pax_extensions(pax.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
                        .map_err(|e| written(path, e))?;
                }
                match (kind, &link) {
                    (tar::EntryType::Link | tar::EntryType::Symlink, Some(target)) => {
                        header.set_size(0);
                        out.append_link(header, path, target)
                            .map_err(|e| written(path, e))
                    }
                    (tar::EntryType::Directory, _) => append(out, header, &dir_name(path), content),
                    _ => append(out, header, path, content),
                }
            };
            match names {
                Some(names) => {
                    if plan.survivors.contains(&id) {
                        return Err(Error::LinkTargetAlive {
                            path: path.display().to_string(),
                        });
                    }
                    let first = under(&names[0]);
                    put(out, &mut header, &first, entry)?;
                    for other in &names[1..] {
                        let mut h = header.clone();
                        h.set_entry_type(tar::EntryType::Link);
                        h.set_size(0);
                        let other = under(other);
                        out.append_link(&mut h, &other, &first)
                            .map_err(|e| written(&other, e))?;
                    }
                    Ok(())
                }
                None => put(out, &mut header, &prefix.join(&path), entry),
            }
        })?;
    }
    Ok(())
}

/// Iterates the real entries of a layer (pseudo-entries skipped), numbering them the same
/// way in both passes. The blob is read to its end and its digest checked.
fn for_each_entry(
    store: &Store,
    layer: &LayerInfo,
    mut f: impl FnMut(
        usize,
        &mut tar::Entry<'_, crate::BoundedTar<&mut crate::LayerReader>>,
    ) -> Result<()>,
) -> Result<()> {
    crate::read_layer(store, layer, |archive| {
        let mut n = 0;
        for entry in archive.entries().map_err(|e| stream(layer, e))? {
            let mut entry = entry.map_err(|e| stream(layer, e))?;
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
        Ok(())
    })
}

fn read_header<R: Read>(entry: &tar::Entry<'_, R>) -> io::Result<Option<Header>> {
    let raw = entry.path()?;
    let Some(path) = clean(&raw) else {
        return Ok(None);
    };
    let (parent, name) = path.rsplit_once('/').unwrap_or(("", &path));
    let (hidden, kind) = match Marker::of_str(name) {
        Marker::Opaque => (parent.to_string(), Kind::Opaque),
        Marker::Whiteout(hidden) => (join(parent, hidden), Kind::Whiteout),
        Marker::Invalid => return Ok(None),
        Marker::Entry => {
            let (kind, link) = match entry.header().entry_type() {
                tar::EntryType::Directory => (Kind::Dir, None),
                tar::EntryType::Link => {
                    (Kind::Hardlink, entry.link_name()?.and_then(|l| clean(&l)))
                }
                _ => (Kind::Other, None),
            };
            return Ok(Some(Header { path, kind, link }));
        }
    };
    Ok(Some(Header {
        path: hidden,
        kind,
        link: None,
    }))
}

/// The PAX records an entry carries, except those the tar writer sets itself.
fn pax_records<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let Some(exts) = entry.pax_extensions()? else {
        return Ok(Vec::new());
    };
    Ok(exts
        .filter_map(|e| e.ok())
        .filter_map(|e| Some((e.key().ok()?.to_string(), e.value_bytes().to_vec())))
        .filter(|(k, _)| {
            !matches!(k.as_str(), "path" | "linkpath" | "size") && !k.starts_with("GNU.sparse")
        })
        .collect())
}

fn append<W: Write>(
    out: &mut tar::Builder<W>,
    header: &mut tar::Header,
    path: &Path,
    content: &mut dyn Read,
) -> Result<()> {
    out.append_data(header, path, content)
        .map_err(|e| written(path, e))
}

/// `path` with a trailing `/`.
fn dir_name(path: &Path) -> PathBuf {
    let mut p = path.as_os_str().to_os_string();
    p.push("/");
    PathBuf::from(p)
}

/// A clean relative path as a string (`None`: the root, or a path that leaves it).
fn clean(raw: &Path) -> Option<String> {
    let cleaned = clean_path(raw).ok()??;
    Some(cleaned.to_string_lossy().into_owned())
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// `path`'s descendants in a sorted map or set: the keys from `path/` up to `path0`
/// (`0` sorts right after `/`).
fn descendants(path: &str) -> (String, String) {
    (format!("{path}/"), format!("{path}0"))
}

/// Removes `path`'s descendants from a sorted map or set.
fn remove_below<V>(set: &mut impl RangeRemove<V>, path: &str) {
    set.remove_range(descendants(path));
}

fn has_below(set: &BTreeSet<String>, path: &str) -> bool {
    let (lo, hi) = descendants(path);
    set.range(lo..hi).next().is_some()
}

/// Removing a key range from a `BTreeMap` or a `BTreeSet` of paths.
trait RangeRemove<V> {
    fn remove_range(&mut self, range: (String, String));
}

impl<V> RangeRemove<V> for BTreeMap<String, V> {
    fn remove_range(&mut self, (lo, hi): (String, String)) {
        let keys: Vec<String> = self.range(lo..hi).map(|(k, _)| k.clone()).collect();
        for k in keys {
            self.remove(&k);
        }
    }
}

impl RangeRemove<()> for BTreeSet<String> {
    fn remove_range(&mut self, (lo, hi): (String, String)) {
        let keys: Vec<String> = self.range(lo..hi).cloned().collect();
        for k in keys {
            self.remove(&k);
        }
    }
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

fn stream(layer: &LayerInfo, e: io::Error) -> Error {
    Error::Stream {
        what: format!("reading layer {}", layer.digest),
        source: e,
    }
}

fn written(path: &Path, e: io::Error) -> Error {
    Error::Stream {
        what: format!("writing {}", path.display()),
        source: e,
    }
}

fn bad(layer: &LayerInfo, path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadEntry {
        archive: format!("layer {}", layer.digest),
        entry: path.display().to_string(),
        reason: reason.to_string(),
    }
}
