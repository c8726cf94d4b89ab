//! Writing blobs (hashed while streaming, renamed into place once verified) and reading them
//! back (verified while streaming).

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::PathBuf;

use crate::digest::{Digest, Hasher};
use crate::error::{io, Error, Result};
use crate::Store;

/// Receives the bytes of one blob. Nothing is visible in the store until [`BlobWriter::commit`];
/// dropping the writer without committing deletes the temporary file.
pub struct BlobWriter {
    store: Store,
    file: BufWriter<tempfile::NamedTempFile>,
    hasher: Hasher,
}

impl BlobWriter {
    pub(crate) fn new(store: &Store) -> Result<BlobWriter> {
        let tmp = store.temp_file("blob-")?;
        Ok(BlobWriter {
            store: store.clone(),
            file: BufWriter::with_capacity(256 << 10, tmp),
            hasher: Hasher::new(),
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.hasher.len()
    }

    /// Whether nothing has been written yet.
    pub fn is_empty(&self) -> bool {
        self.hasher.is_empty()
    }

    /// Verifies the digest (when `expected` is given) and moves the blob into place.
    ///
    /// Returns the digest and size. A blob that is already present is left untouched.
    pub fn commit(self, expected: Option<&Digest>) -> Result<(Digest, u64)> {
        let size = self.hasher.len();
        let digest = self.hasher.finish();
        if let Some(expected) = expected {
            if *expected != digest {
                return Err(Error::DigestMismatch {
                    what: format!("blob {expected}"),
                    expected: *expected,
                    actual: digest,
                });
            }
        }
        let tmp = self.file.into_inner().map_err(|e| Error::Io {
            op: "writing blob",
            path: PathBuf::from("tmp"),
            source: e.into_error(),
        })?;
        let target = self.store.blob_path(&digest);
        if target.exists() {
            return Ok((digest, size));
        }
        // The data must be on disk before the name is: a crash must never leave a blob whose
        // content does not match its name.
        tmp.as_file()
            .sync_data()
            .map_err(io("syncing", tmp.path()))?;
        tmp.persist(&target).map_err(|e| Error::Io {
            op: "renaming a blob into",
            path: target.clone(),
            source: e.error,
        })?;
        Ok((digest, size))
    }
}

impl Write for BlobWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.file.write_all(buf)?;
        self.hasher.update(buf);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Reads a blob and checks its digest at the end: the last `read` returns an
/// `InvalidData` error instead of end-of-file when the content does not match.
pub struct BlobReader {
    file: File,
    hasher: Option<Hasher>,
    expected: Digest,
    path: PathBuf,
}

impl BlobReader {
    pub(crate) fn open(path: PathBuf, expected: Digest) -> Result<BlobReader> {
        let file = File::open(&path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::BlobNotFound(expected)
            } else {
                Error::Io {
                    op: "opening blob",
                    path: path.clone(),
                    source: e,
                }
            }
        })?;
        Ok(BlobReader {
            file,
            hasher: Some(Hasher::new()),
            expected,
            path,
        })
    }

    /// Size of the blob file in bytes.
    pub fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    /// The digest the content must have; reading fails at the end if it does not.
    pub fn digest(&self) -> &Digest {
        &self.expected
    }
}

impl Read for BlobReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.file.read(buf)?;
        match &mut self.hasher {
            Some(h) if n > 0 => h.update(&buf[..n]),
            Some(_) if !buf.is_empty() => {
                let actual = self.hasher.take().map(Hasher::finish);
                if actual != Some(self.expected) {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "blob {} is corrupt: its content hashes to {} ({})",
                            self.expected,
                            actual.map(|d| d.to_string()).unwrap_or_default(),
                            self.path.display()
                        ),
                    ));
                }
            }
            _ => {}
        }
        Ok(n)
    }
}
