//! The layer crate's error type.

use std::path::PathBuf;

use tare_store::Digest;

/// Everything that can go wrong reading, writing or applying layers and archives.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Stream {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{archive}: entry {entry:?}: {reason}")]
    BadEntry {
        archive: String,
        entry: String,
        reason: String,
    },
    #[error("{archive}: {reason}")]
    BadArchive { archive: String, reason: String },
    #[error("{what}: diffID mismatch: expected {expected}, the layer hashes to {actual}")]
    DiffIdMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error(
        "/{link} is a hard link to /{target} in a lower layer, which a squashed layer \
         replaces; squash from a lower layer (--from)"
    )]
    LinkIntoBase { link: String, target: String },
    #[error("/{path} is both alive and the content of a replaced hard link")]
    LinkTargetAlive { path: String },
    #[error("compressing the layer")]
    Compress(#[source] std::io::Error),
    #[error("unknown compression {0:?}: use gzip, zstd or none")]
    UnknownCompression(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
