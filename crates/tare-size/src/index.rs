//! Per-layer file indexes: what each diff adds, replaces and deletes, without the content.
//!
//! An index lists one row per tar entry of a diff (path, kind, size, mode, owner, link target
//! and an xxh3 hash of the content). Building it means reading the whole diff once; the result
//! is cached in `ROOT/index/<diffid hex>.json`, so every later analysis of any image sharing
//! the layer only parses a small JSON file. See the crate overview for why this beats walking
//! snapshots.

use std::fs::{self, File};
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tare_layer::decompress_as;
use tare_layer::whiteout::Marker;
use tare_layer::Compression;
use tare_store::{Digest, LayerInfo, Store, StoreDir};
use xxhash_rust::xxh3::Xxh3;

use crate::error::{io, Error, Result};

/// Bumped whenever the index format or its meaning changes; older files are rebuilt.
const INDEX_VERSION: u32 = 1;

/// What a tar entry is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link to `link`.
    Symlink,
    /// A tar hard link to `link`: no content of its own.
    Hardlink,
    /// An OCI whiteout: `path` is the path it deletes.
    Whiteout,
    /// An opaque-directory marker: `path` is the directory whose lower content it hides.
    Opaque,
    /// Devices, fifos.
    Other,
}

/// One entry of a diff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    /// Clean relative path (`usr/bin/env`), no leading `/` or `./`.
    #[serde(rename = "p")]
    pub path: String,
    /// What the entry is.
    #[serde(rename = "k")]
    pub kind: EntryKind,
    /// Content bytes (0 for everything but regular files).
    #[serde(rename = "s", default)]
    pub size: u64,
    /// Permission bits (with setuid, setgid and sticky) from the tar header.
    #[serde(rename = "m", default)]
    pub mode: u32,
    /// Owner's user ID from the tar header.
    #[serde(rename = "u", default)]
    pub uid: u64,
    /// Owner's group ID from the tar header.
    #[serde(rename = "g", default)]
    pub gid: u64,
    /// xxh3-64 of the content of regular files.
    #[serde(rename = "h", default, skip_serializing_if = "Option::is_none")]
    pub hash: Option<u64>,
    /// Symlink or hard link target.
    #[serde(rename = "l", default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
}

/// The entries of one diff, in tar order.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LayerIndex {
    /// The index format's version; an index of another version is rebuilt.
    pub version: u32,
    /// The entries, in tar order.
    pub entries: Vec<IndexEntry>,
}

/// Where the cached index of a diff lives.
fn index_path(store: &Store, diff_id: &Digest) -> Result<PathBuf> {
    Ok(store
        .dir(StoreDir::Index)?
        .join(format!("{}.json", diff_id.hex())))
}

/// The index of one stored layer: from the cache, or built from the blob and cached.
pub fn layer_index(store: &Store, layer: &LayerInfo) -> Result<LayerIndex> {
    let path = index_path(store, &layer.diff_id)?;
    if let Ok(bytes) = fs::read(&path) {
        if let Ok(index) = serde_json::from_slice::<LayerIndex>(&bytes) {
            if index.version == INDEX_VERSION {
                return Ok(index);
            }
        }
    }
    let index = build_index(store, layer)?;
    // A store we cannot write to (another user's, read-only) still gets its analysis; the
    // index is only a cache.
    let _ = write_cache(&path, &index);
    Ok(index)
}

/// Caches an index built elsewhere, for example by `tare load` or `tare pull` from the
/// uncompressed stream they already read (`index_tar` on a tee of it), so that even the first
/// analysis of a compressed layer needs no decompression.
pub fn save_index(store: &Store, diff_id: &Digest, index: &LayerIndex) -> Result<()> {
    write_cache(&index_path(store, diff_id)?, index)
}

/// The indexes of many layers, built in parallel (one thread per core) where not cached.
pub fn layer_indexes(store: &Store, layers: &[LayerInfo]) -> Result<Vec<LayerIndex>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(layers.len().max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut slots: Vec<Option<Result<LayerIndex>>> = (0..layers.len()).map(|_| None).collect();
    let results = std::sync::Mutex::new(&mut slots);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(layer) = layers.get(i) else { break };
                let r = layer_index(store, layer);
                if let Ok(mut guard) = results.lock() {
                    guard[i] = Some(r);
                }
            });
        }
    });
    slots
        .into_iter()
        .zip(layers)
        .map(|(slot, layer)| {
            slot.unwrap_or_else(|| {
                Err(Error::Unsupported(format!(
                    "indexing layer {} did not finish",
                    layer.digest
                )))
            })
        })
        .collect()
}

/// Reads a stored layer blob (decompressing it) and indexes it.
///
/// The blob is read straight from its file, without the store's digest verification: the
/// index is a read-only view, `tare check` is what verifies blobs, and hashing a gigabyte
/// with sha256 would cost more than the whole analysis.
pub fn build_index(store: &Store, layer: &LayerInfo) -> Result<LayerIndex> {
    let path = store.blob_path(&layer.digest);
    let file = File::open(&path).map_err(io("opening layer blob", &path))?;
    let kind = Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);
    let reader = decompress_as(kind, BufReader::with_capacity(256 << 10, file)).map_err(|e| {
        Error::Stream {
            digest: layer.digest,
            source: e,
        }
    })?;
    index_tar(reader).map_err(|source| Error::Stream {
        digest: layer.digest,
        source,
    })
}

/// Indexes an uncompressed layer tar stream.
pub fn index_tar<R: Read>(reader: R) -> io::Result<LayerIndex> {
    let mut archive = tare_layer::tar_archive(reader);
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 256 << 10];
    for entry in archive.entries()? {
        let mut entry = entry?;
        let header_kind = entry.header().entry_type();
        let raw = entry.path()?.into_owned();
        let Some(path) = clean(&raw) else { continue };
        let Some((parent, name)) = split_name(&path) else {
            continue;
        };
        let mode = entry.header().mode().unwrap_or(0) & 0o7777;
        let uid = entry.header().uid().unwrap_or(0);
        let gid = entry.header().gid().unwrap_or(0);
        let marker = match Marker::of_str(name) {
            Marker::Entry => None,
            Marker::Opaque => Some((parent.to_string(), EntryKind::Opaque)),
            Marker::Whiteout(hidden) => Some((join(parent, hidden), EntryKind::Whiteout)),
            Marker::Invalid => continue,
        };
        if let Some((path, kind)) = marker {
            entries.push(IndexEntry {
                path,
                kind,
                size: 0,
                mode,
                uid,
                gid,
                hash: None,
                link: None,
            });
            continue;
        }
        let (kind, size, hash, link) = match header_kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let mut hasher = Xxh3::new();
                let mut size = 0u64;
                loop {
                    let n = entry.read(&mut buf)?;
                    if n == 0 {
                        break;
                    }
                    hasher.update(&buf[..n]);
                    size += n as u64;
                }
                (EntryKind::File, size, Some(hasher.digest()), None)
            }
            tar::EntryType::Directory => (EntryKind::Dir, 0, None, None),
            tar::EntryType::Symlink => (
                EntryKind::Symlink,
                0,
                None,
                entry.link_name()?.map(|l| l.to_string_lossy().into_owned()),
            ),
            tar::EntryType::Link => (
                EntryKind::Hardlink,
                0,
                None,
                entry
                    .link_name()?
                    .and_then(|l| clean(&l))
                    .map(|l| l.to_string()),
            ),
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => continue,
            _ => (EntryKind::Other, 0, None, None),
        };
        entries.push(IndexEntry {
            path: path.to_string(),
            kind,
            size,
            mode,
            uid,
            gid,
            hash,
            link,
        });
    }
    Ok(LayerIndex {
        version: INDEX_VERSION,
        entries,
    })
}

/// A tar path made relative and clean (`./usr/bin/` -> `usr/bin`); `None` for the root and
/// for paths that climb out with `..`.
pub(crate) fn clean(raw: &Path) -> Option<String> {
    let cleaned = tare_layer::path::clean_path(raw).ok()??;
    Some(cleaned.to_string_lossy().into_owned())
}

/// `a/b/c` -> (`a/b`, `c`); `c` -> (``, `c`).
pub(crate) fn split_name(path: &str) -> Option<(&str, &str)> {
    match path.rsplit_once('/') {
        Some((parent, name)) if !name.is_empty() => Some((parent, name)),
        Some(_) => None,
        None => Some(("", path)),
    }
}

pub(crate) fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

fn write_cache(path: &Path, index: &LayerIndex) -> Result<()> {
    let bytes = serde_json::to_vec(index).map_err(|e| Error::Io {
        op: "serialising the index for",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(tare_store::write_atomic(path, &bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, content) in entries {
            let mut h = tar::Header::new_ustar();
            match content {
                Some(c) => {
                    h.set_entry_type(tar::EntryType::Regular);
                    h.set_size(c.len() as u64);
                    h.set_mode(0o644);
                    b.append_data(&mut h, path, *c).unwrap();
                }
                None => {
                    h.set_entry_type(tar::EntryType::Directory);
                    h.set_size(0);
                    h.set_mode(0o755);
                    b.append_data(&mut h, path, &[][..]).unwrap();
                }
            }
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn index_names_whiteouts_and_opaque_dirs_by_what_they_hide() {
        let tar = tar_of(&[
            ("./", None),
            ("./etc/", None),
            ("./etc/.wh.passwd", Some(b"")),
            ("./var/.wh..wh..opq", Some(b"")),
            ("./big", Some(b"0123456789")),
        ]);
        let index = index_tar(&tar[..]).unwrap();
        let rows: Vec<(&str, EntryKind, u64)> = index
            .entries
            .iter()
            .map(|e| (e.path.as_str(), e.kind, e.size))
            .collect();
        assert_eq!(
            rows,
            vec![
                ("etc", EntryKind::Dir, 0),
                ("etc/passwd", EntryKind::Whiteout, 0),
                ("var", EntryKind::Opaque, 0),
                ("big", EntryKind::File, 10),
            ]
        );
        assert!(index.entries[3].hash.is_some());
    }
}
