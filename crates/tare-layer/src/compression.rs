//! Layer compression: gzip (Docker's default), zstd, or none; and reading any of them back.
//!
//! Both compressors use every core for big layers and give the same bytes for the same input:
//! gzip through [`crate::pargzip`] (fixed 1 MiB blocks, each primed with the previous block's
//! last 32 KiB, so the output does not depend on the thread count), zstd in its multithreaded
//! mode (whose output does not depend on the worker count either).

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::str::FromStr;

use tare_store::{MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD};

use crate::error::{Error, Result};
use crate::pargzip::ParGzip;

/// gzip level: Docker's and pigz's default.
pub(crate) const GZIP_LEVEL: u32 = 6;
/// zstd level: the zstd CLI's default.
pub(crate) const ZSTD_LEVEL: i32 = 3;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Compression {
    /// No compression: the blob is the tar itself (`application/vnd.oci.image.layer.v1.tar`).
    None,
    /// gzip, the default: what every registry and runtime reads.
    #[default]
    Gzip,
    /// zstd: smaller and faster to decompress, but older runtimes cannot read it.
    Zstd,
}

impl Compression {
    /// The OCI media type of a layer with this compression.
    pub fn media_type(self) -> &'static str {
        match self {
            Compression::None => MEDIA_TYPE_LAYER_TAR,
            Compression::Gzip => MEDIA_TYPE_LAYER_GZIP,
            Compression::Zstd => MEDIA_TYPE_LAYER_ZSTD,
        }
    }

    /// The compression a layer media type (OCI or Docker) names, if it is a layer type.
    pub fn from_media_type(media_type: &str) -> Option<Compression> {
        match media_type {
            MEDIA_TYPE_LAYER_TAR
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar" => Some(Compression::None),
            MEDIA_TYPE_LAYER_GZIP
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip" => {
                Some(Compression::Gzip)
            }
            MEDIA_TYPE_LAYER_ZSTD | "application/vnd.docker.image.rootfs.diff.tar.zstd" => {
                Some(Compression::Zstd)
            }
            _ => None,
        }
    }

    /// Recognises a compressed stream by its first bytes.
    pub fn detect(head: &[u8]) -> Compression {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// Wraps `w` in this compressor. Call [`Compressor::finish`] to get `w` back.
    pub fn compressor<W: Write + Send + 'static>(self, w: W) -> Result<Compressor<W>> {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Ok(match self {
            Compression::None => Compressor::None(w),
            Compression::Gzip => Compressor::Gzip(Box::new(
                ParGzip::new(w, GZIP_LEVEL, threads).map_err(Error::Compress)?,
            )),
            Compression::Zstd => {
                let mut enc =
                    zstd::stream::write::Encoder::new(w, ZSTD_LEVEL).map_err(Error::Compress)?;
                // Always multithreaded (at least one worker): the single-threaded mode gives
                // different bytes, and the output must not depend on the machine.
                enc.multithread(threads.max(1) as u32)
                    .map_err(Error::Compress)?;
                Compressor::Zstd(enc)
            }
        })
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = Error;
    fn from_str(s: &str) -> Result<Compression> {
        match s {
            "none" | "uncompressed" => Ok(Compression::None),
            "gzip" | "gz" => Ok(Compression::Gzip),
            "zstd" | "zst" => Ok(Compression::Zstd),
            other => Err(Error::UnknownCompression(other.to_string())),
        }
    }
}

/// A writer that compresses into an inner writer.
pub enum Compressor<W: Write + Send + 'static> {
    /// No compression: bytes go straight through.
    None(W),
    /// Parallel deterministic gzip ([`ParGzip`]).
    Gzip(Box<ParGzip<W>>),
    /// zstd at tare's level.
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write + Send + 'static> Compressor<W> {
    /// Flushes the compressed stream's end and returns the inner writer.
    pub fn finish(self) -> Result<W> {
        match self {
            Compressor::None(mut w) => {
                w.flush().map_err(Error::Compress)?;
                Ok(w)
            }
            Compressor::Gzip(enc) => enc.finish().map_err(Error::Compress),
            Compressor::Zstd(enc) => enc.finish().map_err(Error::Compress),
        }
    }
}

impl<W: Write + Send + 'static> Write for Compressor<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Compressor::None(w) => w.write(buf),
            Compressor::Gzip(w) => w.write(buf),
            Compressor::Zstd(w) => w.write(buf),
        }
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.write_all(buf),
            Compressor::Gzip(w) => w.write_all(buf),
            Compressor::Zstd(w) => w.write_all(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Compressor::None(w) => w.flush(),
            Compressor::Gzip(w) => w.flush(),
            Compressor::Zstd(w) => w.flush(),
        }
    }
}

/// Reads a stream that may be gzip, zstd or plain, detected from its first bytes.
pub fn decompress<'a, R: Read + 'a>(r: R) -> io::Result<(Compression, Box<dyn Read + 'a>)> {
    let mut r = BufReader::with_capacity(256 << 10, r);
    let head = r.fill_buf()?;
    let kind = Compression::detect(head);
    Ok((kind, decompress_as(kind, r)?))
}

/// Reads a stream compressed with a known compression.
pub fn decompress_as<'a, R: BufRead + 'a>(
    kind: Compression,
    r: R,
) -> io::Result<Box<dyn Read + 'a>> {
    Ok(Box::new(Decoder::new(kind, r)?))
}

/// The one decoder set-up for layer streams: the uncompressed stream of `R`, with the
/// compressed stream below still reachable ([`Decoder::get_mut`], [`Decoder::into_inner`])
/// for readers that must read it to its end, such as the store's verifying blob reader.
pub enum Decoder<R: BufRead> {
    /// An uncompressed tar.
    Plain(R),
    /// gzip, with every member read (as `gzip -d` does).
    Gzip(Box<flate2::bufread::MultiGzDecoder<R>>),
    /// zstd.
    Zstd(zstd::stream::read::Decoder<'static, R>),
}

impl<R: BufRead> Decoder<R> {
    /// Decodes `r` as `kind`.
    pub fn new(kind: Compression, r: R) -> io::Result<Decoder<R>> {
        Ok(match kind {
            Compression::None => Decoder::Plain(r),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::bufread::MultiGzDecoder::new(r))),
            Compression::Zstd => Decoder::Zstd(zstd::stream::read::Decoder::with_buffer(r)?),
        })
    }

    /// The compressed stream below.
    pub fn get_mut(&mut self) -> &mut R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.get_mut(),
            Decoder::Zstd(r) => r.get_mut(),
        }
    }

    /// The compressed stream below, with what the decoder has not consumed yet.
    pub fn into_inner(self) -> R {
        match self {
            Decoder::Plain(r) => r,
            Decoder::Gzip(r) => r.into_inner(),
            Decoder::Zstd(r) => r.finish(),
        }
    }
}

impl<R: BufRead> Read for Decoder<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoder::Plain(r) => r.read(buf),
            Decoder::Gzip(r) => r.read(buf),
            Decoder::Zstd(r) => r.read(buf),
        }
    }
}
