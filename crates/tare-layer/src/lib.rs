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
//! - [`open_layer`]: a verified, decompressed reader over a stored layer.
//! - [`content_size()`]`(store, layer)`: the layer's size as docker shows it (file content,
//!   not tar bytes); recorded by [`LayerSink`] and [`ingest_layer`], computed once for layers
//!   stored otherwise. [`image_content_size`] and [`layers_content_size`] add them up.

pub mod apply;
pub mod archive;
pub mod compression;
pub mod content_size;
pub mod diff;
mod error;
pub mod export;
pub mod ingest;
pub mod pargzip;
pub mod sink;
pub mod snapshot;

pub use apply::{apply, ApplyMode, ApplyStats};
pub use compression::{decompress, Compression};
pub use content_size::{content_size, image_content_size, layers_content_size, ContentSize};
pub use error::{Error, Result};
pub use export::export;
pub use ingest::{ingest_layer, ingest_layer_as};
pub use sink::LayerSink;
pub use snapshot::snapshot;
pub use tare_store::LayerInfo;

use std::io::{BufReader, Read};

use tare_store::Store;

/// Opens a stored layer as its uncompressed tar stream. The blob's digest is verified as it is
/// read (the stream fails at its end on a mismatch).
pub fn open_layer(store: &Store, layer: &LayerInfo) -> Result<Box<dyn Read + Send>> {
    let blob = store.open_blob(&layer.digest)?;
    let kind = Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);
    let r = BufReader::with_capacity(256 << 10, blob);
    Ok(match kind {
        Compression::None => Box::new(r),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(r)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(r).map_err(
            |e| Error::Stream {
                what: format!("layer {}", layer.digest),
                source: e,
            },
        )?),
    })
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
