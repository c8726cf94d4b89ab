//! Flattening an image's layers into one rootfs tar, whiteouts honoured, without extracting.
//!
//! Two passes over the layers: the first (top layer down) reads only headers and decides which
//! layer's version of each path survives; the second (bottom up) copies the surviving entries.
//! A one-layer image needs only the second pass. Each pass reads every blob to its end and
//! verifies its digest ([`crate::read_layer`]); with two passes, a tampered blob fails the
//! first one, before anything is written.

use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use tare_store::{LayerInfo, Store};

use crate::error::{Error, Result};
use crate::path::clean_path;
use crate::whiteout::Marker;

/// Writes the merged filesystem of `layers` (bottom first) as a tar to `out`.
pub fn export<W: Write>(store: &Store, layers: &[LayerInfo], out: W) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    export_into(store, layers, Path::new(""), &mut tar)?;
    tar.into_inner().map_err(|e| Error::Stream {
        what: "writing the exported tar".into(),
        source: e,
    })
}

/// Appends the merged filesystem of `layers` to `tar`, every path (and hard link target)
/// under `prefix` (empty: at the top), for one tar of several filesystems, as BuildKit's
/// tar exporter writes each platform of a multi-platform build under its own directory.
/// The caller writes the prefix's own directory entry.
pub fn export_into<W: Write>(
    store: &Store,
    layers: &[LayerInfo],
    prefix: &Path,
    tar: &mut tar::Builder<W>,
) -> Result<()> {
    let keep = if layers.len() > 1 {
        Some(survivors(store, layers)?)
    } else {
        None
    };
    for (i, layer) in layers.iter().enumerate() {
        let name = format!("layer {}", layer.digest);
        crate::read_layer(store, layer, |archive| {
            for entry in archive.entries().map_err(|e| stream(&name, e))? {
                let mut entry = entry.map_err(|e| stream(&name, e))?;
                let raw = entry.path().map_err(|e| stream(&name, e))?.into_owned();
                let Some(path) = clean_path(&raw).map_err(|r| bad(&name, &raw, r))? else {
                    continue;
                };
                if is_whiteout(&path) {
                    continue;
                }
                if let Some(keep) = &keep {
                    if !keep.contains(&(i, path.clone())) {
                        continue;
                    }
                }
                copy_entry(tar, &mut entry, prefix, &path, &name)?;
            }
            Ok(())
        })?;
    }
    Ok(())
}

fn copy_entry<W: Write, R: Read>(
    tar: &mut tar::Builder<W>,
    entry: &mut tar::Entry<'_, R>,
    prefix: &Path,
    path: &Path,
    name: &str,
) -> Result<()> {
    let mut xattrs = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(|e| stream(name, e))? {
        for ext in exts {
            let ext = ext.map_err(|e| stream(name, e))?;
            if let Ok(key) = ext.key() {
                if key.starts_with("SCHILY.xattr.") {
                    xattrs.push((key.to_string(), ext.value_bytes().to_vec()));
                }
            }
        }
    }
    if !xattrs.is_empty() {
        tar.append_pax_extensions(xattrs.iter().map(|(k, v)| (k.as_str(), v.as_slice())))
            .map_err(|e| Error::Stream {
                what: "writing the exported tar".into(),
                source: e,
            })?;
    }
    let mut header = entry.header().clone();
    let kind = header.entry_type();
    let path = &prefix.join(path);
    let w = |e| Error::Stream {
        what: format!("writing {}", path.display()),
        source: e,
    };
    if kind == tar::EntryType::Symlink || kind == tar::EntryType::Link {
        let target = entry
            .link_name()
            .map_err(|e| stream(name, e))?
            .unwrap_or_default()
            .into_owned();
        let target = if kind == tar::EntryType::Link {
            prefix.join(
                clean_path(&target)
                    .map_err(|r| bad(name, path, r))?
                    .unwrap_or_default(),
            )
        } else {
            target
        };
        header.set_size(0);
        tar.append_link(&mut header, path, target).map_err(w)
    } else if kind == tar::EntryType::Directory {
        // Directories end in `/`, as docker and GNU tar write them.
        let mut p = path.as_os_str().to_os_string();
        p.push("/");
        tar.append_data(&mut header, Path::new(&p), entry)
            .map_err(w)
    } else {
        tar.append_data(&mut header, path, entry).map_err(w)
    }
}

/// (layer index, path) of every entry visible in the merged filesystem.
fn survivors(store: &Store, layers: &[LayerInfo]) -> Result<HashSet<(usize, PathBuf)>> {
    let mut keep = HashSet::new();
    let mut claimed: HashSet<PathBuf> = HashSet::new();
    // Paths whose lower-layer descendants are hidden (whiteouts, opaque dirs, non-directories).
    let mut hide_below: HashSet<PathBuf> = HashSet::new();
    // Paths hidden themselves (whiteouts).
    let mut hidden: HashSet<PathBuf> = HashSet::new();
    for (i, layer) in layers.iter().enumerate().rev() {
        let name = format!("layer {}", layer.digest);
        let mut new_hide_below = Vec::new();
        let mut new_hidden = Vec::new();
        crate::read_layer(store, layer, |archive| {
            for entry in archive.entries().map_err(|e| stream(&name, e))? {
                let entry = entry.map_err(|e| stream(&name, e))?;
                let raw = entry.path().map_err(|e| stream(&name, e))?.into_owned();
                let Some(path) = clean_path(&raw).map_err(|r| bad(&name, &raw, r))? else {
                    continue;
                };
                let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
                match Marker::of(path.file_name().unwrap_or_default()) {
                    Marker::Entry => {}
                    Marker::Opaque => {
                        new_hide_below.push(parent);
                        continue;
                    }
                    Marker::Whiteout(target) => {
                        let p = parent.join(target);
                        new_hidden.push(p.clone());
                        new_hide_below.push(p);
                        continue;
                    }
                    Marker::Invalid => continue,
                }
                let visible = !claimed.contains(&path)
                    && !hidden.contains(&path)
                    && !path.ancestors().skip(1).any(|a| hide_below.contains(a));
                if visible {
                    if entry.header().entry_type() != tar::EntryType::Directory {
                        new_hide_below.push(path.clone());
                    }
                    claimed.insert(path.clone());
                    keep.insert((i, path));
                }
            }
            Ok(())
        })?;
        // A whiteout hides lower layers only: apply this layer's markers after reading it.
        hide_below.extend(new_hide_below);
        hidden.extend(new_hidden);
    }
    Ok(keep)
}

/// A whiteout or opaque marker (valid or not): never part of the merged filesystem.
fn is_whiteout(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|f| Marker::of(f) != Marker::Entry)
}

fn stream(name: &str, e: io::Error) -> Error {
    Error::Stream {
        what: format!("reading {name}"),
        source: e,
    }
}

fn bad(name: &str, path: &Path, reason: impl std::fmt::Display) -> Error {
    Error::BadEntry {
        archive: name.to_string(),
        entry: path.display().to_string(),
        reason: reason.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Compression, LayerSink};

    fn layer(store: &Store, entries: &[(&str, &[u8])]) -> LayerInfo {
        let mut b = tar::Builder::new(LayerSink::new(store, Compression::None).unwrap());
        for (path, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(data.len() as u64);
            b.append_data(&mut h, path, *data).unwrap();
        }
        let layer = b.into_inner().unwrap().finish().unwrap();
        store.record_layer(&layer).unwrap();
        layer
    }

    fn names(tar: &[u8]) -> Vec<String> {
        let mut a = tar::Archive::new(tar);
        a.entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect()
    }

    #[test]
    fn whiteouts_hide_lower_paths_and_a_nameless_whiteout_hides_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let lower = layer(&store, &[("d/f", b"f"), ("d/gone", b"g"), ("e/x", b"x")]);
        // `.wh.` names no path: it must not hide its parent directory `d`.
        let upper = layer(
            &store,
            &[
                ("d/.wh.gone", b""),
                ("d/.wh.", b""),
                ("e/.wh..wh..opq", b""),
            ],
        );
        let out = export(&store, &[lower, upper], Vec::new()).unwrap();
        assert_eq!(names(&out), ["d/f"]);
    }
}
