//! Bringing an existing layer tar (plain, gzip or zstd) into the store in one pass: the blob is
//! hashed and written as it is read, the decompressed stream is hashed for the diffID, and
//! every tar entry is checked (no `..` paths, no hard links leaving the root, no truncation).
//! The diff's content size is counted on the way and recorded in the store.

use std::io::{self, BufRead, BufReader, Read, Write};

use tare_store::{Digest, HashingReader, LayerInfo, Store};

use crate::compression::{Compression, Decoder};
use crate::content_size::ContentSizeReader;
use crate::error::{Error, Result};
use crate::path::clean_path;
use crate::sink::LayerSink;

/// Copies everything read into a writer (the blob), so one read feeds two consumers.
struct Tee<R, W> {
    inner: R,
    out: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// Stores the layer read from `reader` as it is (keeping its compression) and checks it.
///
/// `expected` is the blob digest an archive promised; `name` names the source in errors.
pub fn ingest_layer<R: Read>(
    store: &Store,
    reader: R,
    expected: Option<&Digest>,
    name: &str,
) -> Result<LayerInfo> {
    let blob = store.blob_writer()?;
    let mut tee = BufReader::with_capacity(
        256 << 10,
        Tee {
            inner: reader,
            out: blob,
        },
    );
    let head = tee.fill_buf().map_err(|e| stream(name, e))?;
    let kind = Compression::detect(head);
    let (mut tee, diff_and_size, content_size) = match kind {
        Compression::None => {
            let mut counted = ContentSizeReader::new(tee);
            check_tar(&mut counted, name)?;
            let (tee, content) = counted.finish();
            (tee, None, content)
        }
        Compression::Gzip | Compression::Zstd => {
            let dec = Decoder::new(kind, tee).map_err(|e| stream(name, e))?;
            let mut hashed = HashingReader::new(ContentSizeReader::new(dec));
            check_tar(&mut hashed, name)?;
            let (counted, diff, size) = hashed.finish();
            let (dec, content) = counted.finish();
            (dec.into_inner(), Some((diff, size)), content)
        }
    };
    // Whatever follows the compressed stream or the tar's end marker is part of the blob too.
    io::copy(&mut tee, &mut io::sink()).map_err(|e| stream(name, e))?;
    let blob = tee.into_inner().out;
    let (digest, compressed_size) = blob.commit(expected)?;
    let (diff_id, size) = diff_and_size.unwrap_or((digest, compressed_size));
    store.record_content_size(&diff_id, content_size)?;
    Ok(LayerInfo {
        digest,
        diff_id,
        size,
        compressed_size,
        media_type: kind.media_type().to_string(),
    })
}

/// Reads a whole tar stream, checking each entry, then drains what follows the end marker.
fn check_tar<R: Read>(reader: &mut R, name: &str) -> Result<()> {
    check_entries(&mut *reader, name)?;
    io::copy(reader, &mut io::sink()).map_err(|e| stream(name, e))?;
    Ok(())
}

fn check_entries<R: Read>(reader: R, name: &str) -> Result<()> {
    let mut archive = crate::bounded::tar_archive(reader);
    for entry in archive.entries().map_err(|e| stream(name, e))? {
        let entry = entry.map_err(|e| stream(name, e))?;
        let path = entry.path().map_err(|e| stream(name, e))?.into_owned();
        clean_path(&path).map_err(|r| bad(name, &path, r))?;
        if entry.header().entry_type() == tar::EntryType::Link {
            let target = entry
                .link_name()
                .map_err(|e| stream(name, e))?
                .unwrap_or_default()
                .into_owned();
            match clean_path(&target) {
                Ok(Some(_)) => {}
                Ok(None) => return Err(bad(name, &path, "hard link to the root directory")),
                Err(r) => {
                    return Err(bad(
                        name,
                        &path,
                        format!("hard link target {}: {r}", target.display()),
                    ))
                }
            }
        }
    }
    Ok(())
}

fn stream(name: &str, e: io::Error) -> Error {
    Error::Stream {
        what: format!("reading {name}"),
        source: e,
    }
}

fn bad(name: &str, path: &std::path::Path, reason: impl std::fmt::Display) -> Error {
    Error::BadEntry {
        archive: name.to_string(),
        entry: path.display().to_string(),
        reason: reason.to_string(),
    }
}

/// Stores the layer read from `reader` recompressed with `compression` (the input may be plain,
/// gzip or zstd), checking it on the way.
pub fn ingest_layer_as<R: Read>(
    store: &Store,
    reader: R,
    compression: Compression,
    name: &str,
) -> Result<LayerInfo> {
    let (_, decoded) = crate::compression::decompress(reader).map_err(|e| stream(name, e))?;
    let sink = LayerSink::new(store, compression)?;
    let mut tee = Tee {
        inner: decoded,
        out: sink,
    };
    check_tar(&mut tee, name)?;
    tee.out.finish()
}
