//! [`LayerSink`]: an uncompressed layer tar goes in, a stored, compressed layer blob comes out.

use std::io::{self, Write};

use tare_store::{BlobWriter, Hasher, LayerInfo, Store};

use crate::compression::{Compression, Compressor};
use crate::content_size::ContentSize;
use crate::error::Result;

/// Receives an uncompressed tar stream (e.g. through `tar::Builder::new(sink)`), and in one
/// pass computes its diffID, size and content size, compresses it, and writes the blob into
/// the store, hashed as it goes. [`LayerSink::finish`] commits the blob and records the
/// content size (see [`crate::content_size`]).
///
/// Dropping a sink without finishing leaves nothing in the store.
pub struct LayerSink {
    compression: Compression,
    /// The diffID hasher; `None` for uncompressed layers, whose blob digest is the diffID.
    diff: Option<Hasher>,
    size: u64,
    content: ContentSize,
    store: Store,
    out: Compressor<BlobWriter>,
}

impl LayerSink {
    /// Starts a layer blob in `store`, compressed as `compression`.
    pub fn new(store: &Store, compression: Compression) -> Result<LayerSink> {
        let blob = store.blob_writer()?;
        Ok(LayerSink {
            compression,
            diff: (compression != Compression::None).then(Hasher::new),
            size: 0,
            content: ContentSize::new(),
            store: store.clone(),
            out: compression.compressor(blob)?,
        })
    }

    /// Uncompressed bytes received so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Content size (docker's layer size) of the tar received so far.
    pub fn content_size(&self) -> u64 {
        self.content.total()
    }

    /// Ends the stream, commits the blob, records the content size and describes the layer.
    pub fn finish(self) -> Result<LayerInfo> {
        let blob = self.out.finish()?;
        let (digest, compressed_size) = blob.commit(None)?;
        let diff_id = match self.diff {
            Some(h) => h.finish(),
            None => digest,
        };
        self.store
            .record_content_size(&diff_id, self.content.total())?;
        Ok(LayerInfo {
            digest,
            diff_id,
            size: self.size,
            compressed_size,
            media_type: self.compression.media_type().to_string(),
        })
    }
}

impl Write for LayerSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        if let Some(h) = &mut self.diff {
            h.update(&buf[..n]);
        }
        self.content.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf)?;
        if let Some(h) = &mut self.diff {
            h.update(buf);
        }
        self.content.update(buf);
        self.size += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn data() -> Vec<u8> {
        // Compressible but not trivial, and bigger than several gzip blocks.
        (0..3_000_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect()
    }

    #[test]
    fn every_compression_gives_the_same_diff_id_and_deterministic_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let input = data();
        let mut diff_ids = Vec::new();
        for c in [Compression::None, Compression::Gzip, Compression::Zstd] {
            let write = || {
                let mut sink = LayerSink::new(&store, c).unwrap();
                for chunk in input.chunks(70_001) {
                    sink.write_all(chunk).unwrap();
                }
                sink.finish().unwrap()
            };
            let a = write();
            let b = write();
            assert_eq!(a, b, "{c}: same input, same layer");
            assert_eq!(a.size, input.len() as u64);
            assert_eq!(a.media_type, c.media_type());
            let mut out = Vec::new();
            crate::open_layer(&store, &a)
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert!(out == input, "{c}: round trip");
            diff_ids.push(a.diff_id);
        }
        assert!(diff_ids.iter().all(|d| *d == diff_ids[0]));
    }
}
