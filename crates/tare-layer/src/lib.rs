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

pub mod apply;
pub mod compression;
pub mod diff;
mod error;
pub mod sink;
pub mod snapshot;

pub use apply::{apply, ApplyMode, ApplyStats};
pub use compression::{decompress, Compression};
pub use error::{Error, Result};
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
