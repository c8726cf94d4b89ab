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
//! ROOT/tmp/                     blobs being written; renamed into blobs/ once verified
//! ROOT/layers/<diffid>.json     the stored blobs (compressions) of each diff, its content size
//! ROOT/images/<id>.json         image records: manifest digest, layers, builder info
//! ROOT/repositories.json        tags: normalised reference -> image ID
//! ROOT/snapshots/<diffid>/      extracted layers (made by tare-layer), overlayfs format
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
//! - Maintenance: [`Store::prune`], [`Store::check`].
//! - Types: [`Digest`], [`Reference`], [`config::ImageConfig`], [`LayerInfo`], [`Image`].

mod blob;
pub mod config;
mod digest;
mod error;
mod gc;
mod image;
mod reference;

use std::fs::{self, File};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustix::fs::{flock, FlockOperation};

pub use blob::{BlobReader, BlobWriter};
pub use config::ImageConfig;
pub use digest::{Digest, Hasher, HashingReader, HashingWriter};
pub use error::{Error, Result};
pub use gc::{CheckReport, PruneReport};
pub use image::{
    manifest_json, oci_digest, Image, LayerInfo, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
};
pub use reference::Reference;

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
}

/// Held while tags or layer records are read, changed and written back.
pub struct MetaGuard {
    _file: File,
}

impl Store {
    /// Opens (creating when needed) the store at `root` and takes a shared lock on it.
    pub fn open(root: impl AsRef<Path>) -> Result<Store> {
        let root = root.as_ref().to_path_buf();
        for dir in ["blobs/sha256", "tmp", "layers", "images", "snapshots"] {
            let path = root.join(dir);
            fs::create_dir_all(&path).map_err(io("creating", &path))?;
        }
        let lock_path = root.join("lock");
        let lock = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io("opening", &lock_path))?;
        flock(&lock, FlockOperation::LockShared).map_err(|e| Error::Io {
            op: "locking",
            path: lock_path,
            source: e.into(),
        })?;
        Ok(Store {
            inner: Arc::new(Inner { root, lock }),
        })
    }

    /// The store directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// Where the blob with this digest lives (whether or not it exists).
    pub fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.inner.root.join("blobs/sha256").join(digest.hex())
    }

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

    /// Takes the metadata lock (released when the guard drops).
    pub fn meta_lock(&self) -> Result<MetaGuard> {
        let path = self.inner.root.join("meta.lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io("opening", &path))?;
        flock(&file, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "locking",
            path,
            source: e.into(),
        })?;
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

    /// Directory for the extracted snapshot of a diff (`ROOT/snapshots/<hex>`).
    pub fn snapshot_path(&self, diff_id: &Digest) -> PathBuf {
        self.inner.root.join("snapshots").join(diff_id.hex())
    }
}
