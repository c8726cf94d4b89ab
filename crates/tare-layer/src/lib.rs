//! tare-layer: layer tars in and out of the store.
//!
//! Owns everything that reads or writes tar streams: compression ([`Compression`]), writing a
//! layer into the store in one pass ([`LayerSink`]), turning directory trees into diffs
//! ([`diff`]), applying layers to a directory safely ([`apply()`]), extracting layers as
//! overlayfs snapshots ([`snapshot()`]), and the image archive formats (docker archive, OCI
//! layout). It does not decide *what* goes into a layer (that is tare-build) nor run anything
//! (tare-sandbox).
//!
//! # API
//!
//! - [`LayerSink::new`]`(store, compression)`: `Write` an uncompressed tar in (for example via
//!   `tar::Builder::new(sink)`), then [`LayerSink::finish`] gives a [`LayerInfo`]
//!   (digest, diff_id, size, compressed_size, media_type).
//! - [`apply()`]`(reader, dir, ApplyMode)`: unpack a layer tar under `dir` without ever writing
//!   outside it; [`ApplyMode::Overlay`] turns whiteouts into overlayfs whiteouts,
//!   [`ApplyMode::Flatten`] deletes what they hide.
//! - [`snapshot()`]`(store, diff_id)`: the layer extracted once into `ROOT/snapshots/<hex>/`
//!   in overlayfs format, usable as an overlay lowerdir.
//! - [`open_layer`]: a verified, decompressed reader over a stored layer; [`read_layer`] reads
//!   its tar and verifies the whole blob before returning anything.
//! - [`tar_archive`]: every tar tare reads goes through it; header records are bounded.
//! - [`content_size()`]`(store, layer)`: the layer's size as docker shows it (file content,
//!   not tar bytes); recorded by [`LayerSink`] and [`ingest_layer`], computed once for layers
//!   stored otherwise. [`image_content_size`] and [`layers_content_size`] add them up.
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod apply;
pub mod archive;
mod bounded;
mod compression;
mod content_size;
pub mod copy_snapshot;
mod copy_stamps;
pub mod diff;
mod error;
pub mod export;
pub mod ingest;
pub mod layout;
pub mod pargzip;
pub mod path;
pub mod replay;
mod sink;
mod snapshot;
pub mod whiteout;

pub use apply::{apply, ApplyMode, ApplyStats};
pub use bounded::{tar_archive, BoundedTar};
pub use compression::{decompress, decompress_as, Compression, Compressor, Decoder};
pub use content_size::{
    content_size, image_content_size, layers_content_size, ContentSize, ContentSizeReader,
};
pub use error::{Error, Result};
pub use export::export;
pub use ingest::{ingest_layer, ingest_layer_as};
pub use sink::LayerSink;
pub use snapshot::snapshot;
pub use tare_store::LayerInfo;

use std::io::{self, BufReader, Read};

use tare_store::{BlobReader, Store};

/// Opens a stored layer as its uncompressed tar stream, verified against the layer's digest.
/// Tar readers stop at the end-of-archive blocks, before the blob's end where the digest is
/// checked: use [`read_layer`], or call [`LayerReader::finish`] before trusting what was read.
pub fn open_layer(store: &Store, layer: &LayerInfo) -> Result<LayerReader> {
    let blob = BufReader::with_capacity(256 << 10, store.open_blob(&layer.digest)?);
    let kind = Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);
    let what = format!("layer {}", layer.digest);
    let decoded = Decoder::new(kind, blob).map_err(|e| Error::Stream {
        what: what.clone(),
        source: e,
    })?;
    Ok(LayerReader { decoded, what })
}

/// Reads a stored layer's tar (header records bounded, see [`tar_archive`]), then drains and
/// verifies the rest of the blob: `f`'s result is only returned from a blob that matches its
/// digest. On a mismatch the error names the digest, even when `f` failed first (a tampered
/// blob often breaks the tar or the compression before its end).
pub fn read_layer<T>(
    store: &Store,
    layer: &LayerInfo,
    f: impl FnOnce(&mut tar::Archive<BoundedTar<&mut LayerReader>>) -> Result<T>,
) -> Result<T> {
    let mut reader = open_layer(store, layer)?;
    let result = f(&mut tar_archive(&mut reader));
    reader.finish()?;
    result
}

/// The uncompressed stream of a stored layer. Reaching the end of the uncompressed data reads
/// the blob to its end, which verifies its digest: the last read fails on a mismatch.
pub struct LayerReader {
    decoded: Decoder<BufReader<BlobReader>>,
    what: String,
}

impl LayerReader {
    /// Reads what is left, to the end of the blob, and fails unless the blob matches its
    /// digest.
    pub fn finish(mut self) -> Result<()> {
        io::copy(&mut self, &mut io::sink()).map_err(|e| Error::Stream {
            what: format!("reading {}", self.what),
            source: e,
        })?;
        Ok(())
    }

    /// Reads the compressed blob to its end (which checks the digest).
    fn drain_blob(&mut self) -> io::Result<()> {
        io::copy(self.decoded.get_mut(), &mut io::sink()).map(|_| ())
    }
}

impl Read for LayerReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self.decoded.read(buf) {
            Ok(0) if !buf.is_empty() => self.drain_blob().map(|()| 0),
            Ok(n) => Ok(n),
            // A decoding error: a digest mismatch is the better explanation when there is one.
            Err(e) => Err(self.drain_blob().err().unwrap_or(e)),
        }
    }
}

/// The layer stored with `compression`: the given one when it already is, a variant made
/// earlier, or a new variant compressed now (and recorded, so later calls find it).
pub fn recompress(store: &Store, layer: &LayerInfo, compression: Compression) -> Result<LayerInfo> {
    if layer.media_type == compression.media_type() {
        return Ok(layer.clone());
    }
    if let Some(v) = store
        .layer_variants(&layer.diff_id)?
        .into_iter()
        .find(|v| v.media_type == compression.media_type())
    {
        return Ok(v);
    }
    let mut reader = open_layer(store, layer)?;
    let mut sink = LayerSink::new(store, compression)?;
    std::io::copy(&mut reader, &mut sink).map_err(|e| Error::Stream {
        what: format!("recompressing layer {}", layer.digest),
        source: e,
    })?;
    let out = sink.finish()?;
    if out.diff_id != layer.diff_id {
        return Err(Error::DiffIdMismatch {
            what: format!("layer {}", layer.digest),
            expected: layer.diff_id,
            actual: out.diff_id,
        });
    }
    store.record_layer(&out)?;
    Ok(out)
}

/// True when this process runs in a user namespace other than the host's (rootless tare, or
/// a container with user namespaces): its uid map is not the identity of all IDs. Device
/// nodes and `trusted.*` xattrs are refused there even to its root.
pub fn in_user_namespace() -> bool {
    static IN: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *IN.get_or_init(|| {
        std::fs::read_to_string("/proc/self/uid_map").is_ok_and(|map| {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        })
    })
}
