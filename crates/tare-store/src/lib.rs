//! tare-store: the local content-addressed image store.
//!
//! Owns the directory given by `--root`: blobs named by sha256 digest, image records, tags,
//! the layer index (diffID to stored blobs) and the snapshot directories. It does not read
//! tar files or compress anything: that is `tare-layer`, which builds on this crate.
//!
//! # On disk
//!
//! ```text
//! ROOT/lock                     flock: shared while a Store is open, exclusive for prune
//! ROOT/meta.lock                flock around read-modify-write of tags and layer records
//! ROOT/blobs/sha256/<hex>       blobs (configs, manifests, layers), named by their digest
//! ROOT/tmp.lock                 flock while a process sets up its directory in ROOT/tmp
//! ROOT/tmp/own-XXXXXX/          temporary data of one open store (blobs being written, build
//!                               scratch, snapshots being extracted), reclaimed once its
//!                               owner is gone (see [`TempDir`])
//! ROOT/layers/<diffid>.json     the stored blobs (compressions) of each diff, its content size
//! ROOT/images/<id>.json         image records: manifest digest, layers, builder info
//! ROOT/repositories.json        tags: normalised reference -> image ID
//! ROOT/index-tags.json          tags of multi-platform images: reference -> index blob (the
//!                               tag in repositories.json names the host's image of it)
//! ROOT/snapshots/<diffid>/      extracted layers (made by tare-layer), overlayfs format
//! ROOT/cachemounts/<hash>/      RUN --mount=type=cache directories (see [`cache_mounts`])
//! ROOT/cache/, ROOT/index/,     the files of other crates: the build cache (tare-build), layer
//! ROOT/registry/                indexes and squash results (tare-size), pull sources
//!                               (tare-registry); each reached through [`Store::dir`]
//! ROOT/containers/              tare run's container records (tare-sandbox)
//! ```
//!
//! # API
//!
//! - [`Store::open`]; one `Store` per process (it is cheap to clone).
//! - Blobs: [`Store::blob_writer`] (hash while writing, [`BlobWriter::commit`] renames into
//!   place after verifying), [`Store::put_bytes`], [`Store::open_blob`] (verifying reader),
//!   [`Store::read_blob`], [`Store::has_blob`].
//! - Images: [`Store::commit_image`], [`Store::commit_image_raw`], [`Store::resolve`],
//!   [`Store::images`], [`Store::tag`], [`Store::untag`], [`Store::remove_image`].
//! - Layers: [`Store::record_layer`], [`Store::layer`], [`Store::layer_variants`];
//!   [`Store::record_content_size`] and [`Store::recorded_content_size`] keep each diff's
//!   content size (docker's layer size), which `tare_layer::content_size` computes.
//! - Temporary data: [`Store::temp_dir`] (reclaimed even after a SIGKILL).
//! - Other crates' files: [`Store::dir`] gives their directory, [`write_atomic`] and
//!   [`AtomicFile`] replace a file whole.
//! - Maintenance: [`Store::prune`], [`Store::check`].
//! - Types: [`Digest`], [`Reference`], [`config::ImageConfig`], [`LayerInfo`], [`Image`],
//!   [`BuildInfo`] (what the builder records about an image).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod atomic;
mod blob;
mod build_info;
pub mod cache_mounts;
pub mod config;
mod digest;
mod error;
mod gc;
mod image;
mod index;
mod reference;
mod temp;

use std::fs::{self, File};
use std::io::Read;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustix::fs::{flock, FlockOperation};

pub use atomic::{write_atomic, AtomicFile};
pub use blob::{BlobReader, BlobWriter};
pub use build_info::{BuildInfo, SquashOrigin, StepOrigin};
pub use config::ImageConfig;
pub use digest::{Digest, Hasher, HashingReader};
pub use error::{chain as error_chain, Error, Result};
pub use gc::{CheckReport, PruneReport};
pub use image::{
    manifest_json, Image, LayerInfo, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
};
pub use index::{
    index_document, manifest_media_type, platform_name, IndexAnnotations, StoredIndex,
    MEDIA_TYPE_INDEX,
};
pub use reference::Reference;
pub use temp::TempDir;

use error::io;

/// An open store. Holds a shared lock on the store for as long as any clone lives.
#[derive(Clone, Debug)]
pub struct Store {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    lock: File,
    /// This handle's directory for temporary data, made on first use.
    owner: OnceLock<temp::Owner>,
}

/// Directories of the store, all private to the user running tare (mode 0700): a host user
/// who could reach a snapshot could run its setuid-root files or open its device nodes.
const PRIVATE_DIRS: [&str; 7] = [
    "blobs",
    "blobs/sha256",
    "tmp",
    "layers",
    "images",
    "snapshots",
    "containers",
];

/// A directory of the store that another crate keeps its own files in ([`Store::dir`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StoreDir {
    /// `ROOT/cache`: tare-build's step cache.
    Cache,
    /// `ROOT/index`: tare-size's layer indexes and squash results.
    Index,
    /// `ROOT/registry`: tare-registry's record of where pulled blobs came from.
    Registry,
}

impl StoreDir {
    fn name(self) -> &'static str {
        match self {
            StoreDir::Cache => "cache",
            StoreDir::Index => "index",
            StoreDir::Registry => "registry",
        }
    }
}

/// Held while tags or layer records are read, changed and written back.
pub struct MetaGuard {
    _file: File,
}

impl Store {
    /// Opens (creating when needed) the store at `root` and takes a shared lock on it.
    ///
    /// The root and every directory in it are made private (0700; an existing store is
    /// tightened), and temporary data that processes which are gone left behind is removed.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        make_private_root(&root)?;
        for dir in PRIVATE_DIRS {
            make_private_dir(&root.join(dir))?;
        }
        // Directories other crates keep in the store (cache, index, registry) too.
        for entry in fs::read_dir(&root).map_err(io("reading", &root))? {
            let entry = entry.map_err(io("reading", &root))?;
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                make_private_dir(&entry.path())?;
            }
        }
        let lock = lock_file(&root.join("lock"), FlockOperation::LockShared)?;
        let store = Store {
            inner: Arc::new(Inner {
                root,
                lock,
                owner: OnceLock::new(),
            }),
        };
        // Best effort: a leftover that cannot be removed now must not make the store unusable;
        // `prune` reports it.
        let _ = store.reclaim_temp(false);
        Ok(store)
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest.hex())
    }

    /// Whether a blob with this digest is stored (its file exists; the content is verified only
    /// when read).
    pub fn has_blob(&self, digest: &Digest) -> bool {
        self.blob_path(digest).is_file()
    }

    /// Size in bytes of a stored blob.
    pub fn blob_size(&self, digest: &Digest) -> Result<u64> {
        let path = self.blob_path(digest);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::BlobNotFound(*digest)),
            Err(e) => Err(Error::Io {
                op: "reading",
                path,
                source: e,
            }),
        }
    }

    /// A writer for a new blob; see [`BlobWriter`].
    pub fn blob_writer(&self) -> Result<BlobWriter> {
        BlobWriter::new(self)
    }

    /// Stores a small blob held in memory.
    pub fn put_bytes(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of(bytes);
        if self.has_blob(&digest) {
            return Ok(digest);
        }
        let mut w = self.blob_writer()?;
        std::io::Write::write_all(&mut w, bytes)
            .map_err(io("writing blob", self.blob_path(&digest)))?;
        Ok(w.commit(Some(&digest))?.0)
    }

    /// Opens a blob for reading; the reader fails at the end if the content does not match.
    pub fn open_blob(&self, digest: &Digest) -> Result<BlobReader> {
        BlobReader::open(self.blob_path(digest), *digest)
    }

    /// Reads a whole (small) blob and verifies it.
    pub fn read_blob(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut r = self.open_blob(digest)?;
        let mut buf = Vec::new();
        r.read_to_end(&mut buf)
            .map_err(io("reading blob", self.blob_path(digest)))?;
        Ok(buf)
    }

    /// Reads a whole blob that must not be larger than `limit` bytes (a manifest, an index, a
    /// config from an untrusted source) and verifies it.
    pub fn read_blob_limited(&self, digest: &Digest, limit: u64) -> Result<Vec<u8>> {
        let size = self.blob_size(digest)?;
        if size > limit {
            return Err(Error::TooLarge {
                digest: *digest,
                size,
                limit,
            });
        }
        let mut buf = Vec::with_capacity(size as usize);
        self.open_blob(digest)?
            .take(limit + 1)
            .read_to_end(&mut buf)
            .map_err(io("reading blob", self.blob_path(digest)))?;
        if buf.len() as u64 > limit {
            return Err(Error::TooLarge {
                digest: *digest,
                size: buf.len() as u64,
                limit,
            });
        }
        Ok(buf)
    }

    /// Takes the metadata lock (released when the guard drops).
    pub fn meta_lock(&self) -> Result<MetaGuard> {
        let file = lock_file(
            &self.inner.root.join("meta.lock"),
            FlockOperation::LockExclusive,
        )?;
        Ok(MetaGuard { _file: file })
    }

    /// Runs `f` while no other tare process has the store open (waits for them), then goes
    /// back to the shared lock.
    pub(crate) fn exclusively<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        let path = self.inner.root.join("lock");
        flock(&self.inner.lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "locking",
            path: path.clone(),
            source: e.into(),
        })?;
        let result = f();
        flock(&self.inner.lock, FlockOperation::LockShared).map_err(|e| Error::Io {
            op: "locking",
            path,
            source: e.into(),
        })?;
        result
    }

    /// The directory `kind` of the store, created (private, mode 0700) when missing.
    pub fn dir(&self, kind: StoreDir) -> Result<PathBuf> {
        let path = self.inner.root.join(kind.name());
        make_private_dir(&path)?;
        Ok(path)
    }

    /// Directory for the extracted snapshot of a diff (`ROOT/snapshots/<hex>`).
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.inner.root.join("snapshots").join(diff_id.hex())
    }
}

/// Creates the store root if needed and makes it 0700. A root owned by another user, or one
/// other users may write to (such as `/tmp`), is refused rather than changed: they could swap
/// the store's directories for symlinks.
fn make_private_root(root: &Path) -> Result<()> {
    fs::create_dir_all(root).map_err(io("creating", root))?;
    let meta = fs::metadata(root).map_err(io("reading", root))?;
    let euid = rustix::process::geteuid().as_raw();
    if meta.uid() != euid {
        return Err(Error::UnsafeRoot {
            path: root.to_path_buf(),
            reason: format!(
                "it is owned by uid {}, not by uid {euid} running tare",
                meta.uid()
            ),
        });
    }
    if meta.mode() & 0o1002 != 0 {
        return Err(Error::UnsafeRoot {
            path: root.to_path_buf(),
            reason: format!(
                "other users may write to it (mode {:o}); use a directory of its own",
                meta.mode() & 0o7777
            ),
        });
    }
    if meta.mode() & 0o7777 != 0o700 {
        fs::set_permissions(root, fs::Permissions::from_mode(0o700))
            .map_err(io("making private", root))?;
    }
    Ok(())
}

/// Creates a directory (and missing parents) with mode 0700, or takes group and other
/// permissions away from an existing one. Symlinks are not followed.
fn make_private_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => {
            if meta.mode() & 0o077 != 0 {
                fs::set_permissions(path, fs::Permissions::from_mode(meta.mode() & 0o700))
                    .map_err(io("making private", path))?;
            }
            Ok(())
        }
        Ok(_) => Err(Error::UnsafeRoot {
            path: path.to_path_buf(),
            reason: "it should be a directory".into(),
        }),
        Err(_) => fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path)
            .map_err(io("creating", path)),
    }
}

/// Opens (creating when needed) a lock file and takes its flock, waiting for it.
pub(crate) fn lock_file(path: &Path, how: FlockOperation) -> Result<File> {
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io("opening", path))?;
    flock(&file, how).map_err(|e| Error::Io {
        op: "locking",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    Ok(file)
}
