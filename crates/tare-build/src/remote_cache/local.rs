//! The build cache as an OCI image layout on disk: `--cache-to type=local,dest=DIR` and
//! `--cache-from type=local,src=DIR` (issue 15).
//!
//! The entries are those of the registry cache, byte for byte: one small OCI manifest per
//! step key, its config blob the [`Entry`](super::Entry), its one layer the step's layer
//! blob. Blobs live in `DIR/blobs/sha256/<hex>`; `DIR/index.json` lists each entry's manifest
//! with the annotation `org.opencontainers.image.ref.name` = `tare-cache-<key>` (the tag a
//! registry would use), so the directory is a valid OCI layout that `skopeo`, `oras` or
//! `tare load` can read.
//!
//! Writers never lose each other's entries: every blob (layers, configs, manifests) is written
//! to a temporary name and renamed into place (a blob's name is its digest, so two writers of
//! one blob write the same bytes), and `index.json`, the one shared file, is rewritten only
//! under an exclusive `flock` of `DIR/index.json.lock`, read again inside the lock, and
//! replaced by a rename, so a reader never sees half of it.
//!
//! A `src` directory is hostile data: every file is opened below DIR without following any
//! symlink (`openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`), must be a regular file (opened
//! without blocking, so a fifo cannot hang the build), is read with a size limit and checked
//! against the digest in its name; a layer is also checked against the entry's diffID before
//! it is recorded in the store.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, FileType, FlockOperation, Mode, OFlags, ResolveFlags};
use serde_json::{json, Value};
use tare_store::{error_chain, Digest, LayerInfo, Store};

use super::transfer::copy_reported;
use super::{Prepared, CHILD_PREFIX, TAG_PREFIX};
use crate::error::Error;

/// The largest `index.json` read from a `src` directory (about 100 000 entries).
pub const MAX_INDEX: u64 = 64 << 20;
/// The largest entry manifest read.
pub const MAX_MANIFEST: u64 = 64 << 10;
const REF_NAME: &str = "org.opencontainers.image.ref.name";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// A `--cache-from type=local,src=DIR` directory, its index read once per build.
pub(crate) struct Layout {
    dir: PathBuf,
    /// Each entry's tag and its manifest's digest and size.
    entries: BTreeMap<String, (Digest, u64)>,
}

fn blob_rel(digest: &Digest) -> PathBuf {
    Path::new("blobs/sha256").join(digest.hex())
}

/// Reads at most `limit` bytes of `rel` below `dir` (no symlink anywhere, a regular file).
fn read_beneath(dir: &Path, rel: &Path, limit: u64) -> Result<Vec<u8>, String> {
    let what = || dir.join(rel).display().to_string();
    let file = crate::fsops::open_beneath(dir, rel).map_err(|e| format!("{}: {e}", what()))?;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("{}: {e}", what()))?;
    if bytes.len() as u64 > limit {
        return Err(format!("{} is larger than {limit} bytes", what()));
    }
    Ok(bytes)
}

impl Layout {
    /// Reads `DIR/index.json`; the tags that are not cache entries are left out.
    pub fn open(dir: &Path) -> Result<Layout, String> {
        let text = read_beneath(dir, Path::new("index.json"), MAX_INDEX)?;
        let index: Value = serde_json::from_slice(&text)
            .map_err(|e| format!("{}: {e}", dir.join("index.json").display()))?;
        let mut entries = BTreeMap::new();
        for d in index["manifests"].as_array().into_iter().flatten() {
            let Some(tag) = d["annotations"][REF_NAME].as_str() else {
                continue;
            };
            if !tag.starts_with(TAG_PREFIX) && !tag.starts_with(CHILD_PREFIX) {
                continue;
            }
            let (Some(digest), Some(size)) = (
                d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok()),
                d["size"].as_u64(),
            ) else {
                continue;
            };
            entries.insert(tag.to_string(), (digest, size));
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
            entries,
        })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The tags of the entries (and of their second tags, by parent).
    pub fn tags(&self) -> Vec<String> {
        self.entries.keys().cloned().collect()
    }

    /// The manifest of the entry tagged `tag`, checked against its digest.
    pub fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, String> {
        let Some((digest, size)) = self.entries.get(tag) else {
            return Ok(None);
        };
        if *size > MAX_MANIFEST {
            return Err(format!(
                "its manifest is {size} bytes, more than {MAX_MANIFEST}"
            ));
        }
        self.blob(digest, *size, MAX_MANIFEST).map(Some)
    }

    /// A small blob, checked against its size and digest.
    pub fn blob(&self, digest: &Digest, size: u64, limit: u64) -> Result<Vec<u8>, String> {
        let bytes = read_beneath(&self.dir, &blob_rel(digest), limit.min(size))?;
        if bytes.len() as u64 != size {
            return Err(format!(
                "blob {digest} is {} bytes, not {size}",
                bytes.len()
            ));
        }
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(format!("blob {digest} hashes to {actual}"));
        }
        Ok(bytes)
    }

    /// Copies a layer blob into the store: committed only when its bytes hash to its digest,
    /// then recorded only when its diffID is the entry's. The copy is reported to `reporter`.
    pub fn fetch_layer(
        &self,
        store: &Store,
        layer: &LayerInfo,
        reporter: &dyn tare_registry::Reporter,
    ) -> Result<LayerInfo, String> {
        if let Some(known) = store
            .layer_variants(&layer.diff_id)
            .map_err(|e| error_chain(&e))?
            .into_iter()
            .find(|v| v.digest == layer.digest)
        {
            return Ok(known);
        }
        let rel = blob_rel(&layer.digest);
        let name = self.dir.join(&rel).display().to_string();
        let file =
            crate::fsops::open_beneath(&self.dir, &rel).map_err(|e| format!("{name}: {e}"))?;
        let len = file.metadata().map_err(|e| format!("{name}: {e}"))?.len();
        if len != layer.compressed_size {
            return Err(format!(
                "{name} is {len} bytes, the entry says {}",
                layer.compressed_size
            ));
        }
        let info = copy_reported(
            reporter,
            layer.digest,
            layer.compressed_size,
            "layer",
            file.take(layer.compressed_size),
            |r| tare_layer::ingest::ingest_layer(store, r, Some(&layer.digest), &name),
        )
        .map_err(|e| error_chain(&e))?;
        if info.diff_id != layer.diff_id {
            // Nothing names the blob: the next prune removes it.
            return Err(format!(
                "layer {} has the diffID {}, the entry says {}",
                layer.digest, info.diff_id, layer.diff_id
            ));
        }
        store.record_layer(&info).map_err(|e| error_chain(&e))?;
        Ok(info)
    }
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Opens (making it if needed) the directory `name` in `parent`, never through a symlink.
fn subdir(parent: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    match rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755)) {
        Ok(()) => {}
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(rfs::openat2(
        parent,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?)
}

/// A temporary name in a directory that no other writer uses.
fn temp_name(what: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        ".tmp-{}-{}-{what}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Writes `bytes` (from `source`) as `name` in `dir`: a new temporary file, then a rename,
/// which replaces whatever had that name (a symlink is replaced, never followed).
fn put_file(dir: &OwnedFd, name: &str, source: &mut dyn Read) -> io::Result<()> {
    let tmp = temp_name(name);
    let fd = rfs::openat(
        dir,
        tmp.as_str(),
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )?;
    let mut file = File::from(fd);
    let written = io::copy(source, &mut file)
        .and_then(|_| file.flush())
        .and_then(|()| file.sync_data());
    if let Err(e) = written.and_then(|()| Ok(rfs::renameat(dir, tmp.as_str(), dir, name)?)) {
        let _ = rfs::unlinkat(dir, tmp.as_str(), rfs::AtFlags::empty());
        return Err(e);
    }
    Ok(())
}

/// Whether `name` in `dir` is a regular file of `size` bytes (not a symlink).
fn has_file(dir: &OwnedFd, name: &str, size: u64) -> bool {
    rfs::statat(dir, name, rfs::AtFlags::SYMLINK_NOFOLLOW).is_ok_and(|st| {
        FileType::from_raw_mode(st.st_mode) == FileType::RegularFile && st.st_size as u64 == size
    })
}

/// The layout directory `dir` (made if missing) and its `blobs/sha256`, opened without
/// following a symlink below `dir`.
fn open_layout(dir: &Path) -> Result<(OwnedFd, OwnedFd), Error> {
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let root = rfs::open(
        dir,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_err(dir)(e.into()))?;
    let sha = subdir(&root, "blobs")
        .and_then(|b| subdir(&b, "sha256"))
        .map_err(io_err(&dir.join("blobs/sha256")))?;
    Ok((root, sha))
}

/// Takes the `flock` `op` of the file `name` in the layout (made if missing); held until the
/// returned descriptor is dropped.
fn lock(root: &OwnedFd, dir: &Path, name: &str, op: FlockOperation) -> Result<OwnedFd, Error> {
    let path = dir.join(name);
    let fd = rfs::openat(
        root,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o644),
    )
    .map_err(|e| io_err(&path)(e.into()))?;
    rfs::flock(&fd, op).map_err(|e| io_err(&path)(e.into()))?;
    Ok(fd)
}

/// Held shared by every export from its first blob to its index, exclusive by a prune: a
/// prune never deletes a blob an export is about to list.
const PRUNE_LOCK: &str = "prune.lock";

/// `DIR/index.json` under the exclusive index lock: read inside the lock (an empty index when
/// there is none), its manifests list taken out to edit, and written back by a rename before
/// the lock is let go.
struct LockedIndex {
    /// Held until the index is written or dropped.
    lock: OwnedFd,
    path: PathBuf,
    /// The index without its `manifests`.
    index: Value,
    manifests: Vec<Value>,
}

impl LockedIndex {
    fn open(root: &OwnedFd, dir: &Path) -> Result<LockedIndex, Error> {
        let lock = lock(root, dir, "index.json.lock", FlockOperation::LockExclusive)?;
        let path = dir.join("index.json");
        let mut index = match crate::fsops::open_beneath(dir, Path::new("index.json")) {
            Ok(file) => {
                let mut text = Vec::new();
                file.take(MAX_INDEX + 1)
                    .read_to_end(&mut text)
                    .map_err(io_err(&path))?;
                serde_json::from_slice::<Value>(&text).map_err(|e| Error::NotAnIndex {
                    path: path.clone(),
                    reason: e.to_string(),
                })?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let manifests = match index.get_mut("manifests").map(Value::take) {
            Some(Value::Array(manifests)) => manifests,
            _ => {
                return Err(Error::NotAnIndex {
                    path,
                    reason: "no manifests list".into(),
                })
            }
        };
        Ok(LockedIndex {
            lock,
            path,
            index,
            manifests,
        })
    }

    /// Replaces `index.json` with the edited index. Returns the lock, held until dropped.
    fn write(mut self, root: &OwnedFd) -> Result<OwnedFd, Error> {
        self.index["manifests"] = Value::Array(std::mem::take(&mut self.manifests));
        let text = serde_json::to_vec(&self.index).map_err(|error| Error::Encode {
            what: "the cache index",
            error,
        })?;
        put_file(root, "index.json", &mut text.as_slice()).map_err(io_err(&self.path))?;
        Ok(self.lock)
    }
}

/// Adds `entries` to the layout at `dir` (made if missing): the blobs first, then, under the
/// lock, `index.json`, so an entry is listed only once everything it names is there. The
/// blobs copied are reported to `reporter`; returns how many bytes they are.
pub(crate) fn export(
    store: &Store,
    dir: &Path,
    entries: &[Prepared],
    reporter: &dyn tare_registry::Reporter,
) -> Result<u64, Error> {
    let (root, sha) = open_layout(dir)?;
    let blobs_path = dir.join("blobs/sha256");
    let _no_prune = lock(&root, dir, PRUNE_LOCK, FlockOperation::LockShared)?;
    let mut moved = 0;
    for entry in entries {
        for (i, digest) in entry.blobs.iter().enumerate() {
            let size = store.blob_size(digest)?;
            if !has_file(&sha, &digest.hex(), size) {
                // An entry's blobs are its layer (if any), then its config.
                let kind = if i + 1 == entry.blobs.len() {
                    "config"
                } else {
                    "layer"
                };
                copy_reported(
                    reporter,
                    *digest,
                    size,
                    kind,
                    store.open_blob(digest)?,
                    |r| put_file(&sha, &digest.hex(), r),
                )
                .map_err(io_err(&blobs_path.join(digest.hex())))?;
                moved += size;
            }
        }
        let digest = Digest::of(&entry.manifest);
        if !has_file(&sha, &digest.hex(), entry.manifest.len() as u64) {
            put_file(&sha, &digest.hex(), &mut entry.manifest.as_slice())
                .map_err(io_err(&blobs_path.join(digest.hex())))?;
        }
    }
    let layout = br#"{"imageLayoutVersion":"1.0.0"}"#;
    if !has_file(&root, "oci-layout", layout.len() as u64) {
        put_file(&root, "oci-layout", &mut &layout[..]).map_err(io_err(&dir.join("oci-layout")))?;
    }
    let mut index = LockedIndex::open(&root, dir)?;
    for entry in entries {
        for tag in [&entry.child, &entry.tag] {
            // The newest entry for a key replaces the older one, as a tag push does.
            index
                .manifests
                .retain(|d| d["annotations"][REF_NAME].as_str() != Some(tag.as_str()));
            index.manifests.push(json!({
                "mediaType": super::OCI_MANIFEST,
                "digest": Digest::of(&entry.manifest).to_string(),
                "size": entry.manifest.len(),
                "annotations": {REF_NAME: tag},
            }));
        }
    }
    index.write(&root)?;
    Ok(moved)
}

/// The blobs the manifest `bytes` names (config, layers, or an index's manifests).
fn named_blobs(bytes: &[u8]) -> Option<Vec<Digest>> {
    let m: Value = serde_json::from_slice(bytes).ok()?;
    let mut named = Vec::new();
    let descriptors = std::iter::once(&m["config"])
        .chain(m["layers"].as_array().into_iter().flatten())
        .chain(m["manifests"].as_array().into_iter().flatten());
    for d in descriptors {
        if let Some(digest) = d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok()) {
            named.push(digest);
        }
    }
    Some(named)
}

/// Removes the entries whose manifests are `gone` from the layout at `dir` (`tare cache
/// prune --dir`): every tag naming them leaves `index.json` (the key's and the one by
/// parent), then their blobs that nothing left in the index names are deleted. Runs under
/// both locks exclusively, so no export is between its blobs and its index meanwhile.
/// Returns how many blobs were deleted. When a manifest left in the index cannot be read,
/// no blob is deleted (it may name any of them).
pub(crate) fn remove(dir: &Path, gone: &BTreeSet<Digest>) -> Result<usize, Error> {
    let (root, sha) = open_layout(dir)?;
    let _exports = lock(&root, dir, PRUNE_LOCK, FlockOperation::LockExclusive)?;
    let mut index = LockedIndex::open(&root, dir)?;
    let digest_of = |d: &Value| d["digest"].as_str().and_then(|s| s.parse::<Digest>().ok());
    index
        .manifests
        .retain(|d| !digest_of(d).is_some_and(|g| gone.contains(&g)));
    let kept: Vec<(Digest, u64)> = index
        .manifests
        .iter()
        .filter_map(|d| Some((digest_of(d)?, d["size"].as_u64()?)))
        .collect();
    // The blobs are deleted while the index lock is still held.
    let _index_lock = index.write(&root)?;
    let layout = Layout {
        dir: dir.to_path_buf(),
        entries: BTreeMap::new(),
    };
    let mut named = BTreeSet::new();
    for (digest, size) in kept {
        named.insert(digest);
        match layout
            .blob(&digest, size, MAX_INDEX)
            .ok()
            .and_then(|b| named_blobs(&b))
        {
            Some(blobs) => named.extend(blobs),
            None => return Ok(0),
        }
    }
    let mut deleted = 0;
    for manifest in gone {
        let mut blobs = vec![*manifest];
        let bytes = read_beneath(dir, &blob_rel(manifest), MAX_MANIFEST).unwrap_or_default();
        blobs.extend(named_blobs(&bytes).unwrap_or_default());
        for blob in blobs {
            // `named` also holds what was already deleted, so each counts once.
            if named.insert(blob)
                && rfs::unlinkat(&sha, blob.hex().as_str(), rfs::AtFlags::empty()).is_ok()
            {
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}
