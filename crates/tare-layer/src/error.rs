//! The layer crate's error type.

use std::path::PathBuf;

use tare_store::Digest;

/// Everything that can go wrong reading, writing or applying layers and archives.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (a missing blob, a digest that does not match, an unsafe root).
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    /// A file system call on a file or directory failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("reading", "creating", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The saved "before" stamps of a copy-based snapshot are not what tare writes (a
    /// symlink, a special file, too large, a malformed record).
    #[error("{path}: {reason}")]
    BadStamps {
        /// The stamps file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a tar or archive stream failed (a truncated or corrupt stream, a
    /// decompression error, a failed write to the output).
    #[error("{what}: {source}")]
    Stream {
        /// What was being read or written, naming the layer or archive.
        what: String,
        /// The error of the stream.
        #[source]
        source: std::io::Error,
    },
    /// One entry of a layer or archive is refused (a path that climbs out of the root, a link
    /// to a place it may not point, a header that does not make sense).
    #[error("{archive}: entry {entry:?}: {reason}")]
    BadEntry {
        /// The layer or archive, as named for the user.
        archive: String,
        /// The entry's path as the tar names it.
        entry: String,
        /// Why it is refused.
        reason: String,
    },
    /// An image archive (docker archive, OCI layout) is malformed as a whole: a missing or
    /// unparsable manifest.json or index.json, a blob it names that is not in it.
    #[error("{archive}: {reason}")]
    BadArchive {
        /// The archive, as named for the user.
        archive: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A layer's uncompressed content does not hash to the diffID its config announced.
    #[error("{what}: diffID mismatch: expected {expected}, the layer hashes to {actual}")]
    DiffIdMismatch {
        /// The layer, as named for the user.
        what: String,
        /// The diffID from the image config.
        expected: Digest,
        /// The sha256 of the uncompressed tar actually read.
        actual: Digest,
    },
    /// A hard link in the squashed layers points to a file of the layers below the squash
    /// that a squashed layer replaces: the squashed layer cannot give the link that content.
    #[error(
        "/{link} is a hard link to /{target} in a lower layer, which a squashed layer \
         replaces; squash from a lower layer (--from)"
    )]
    LinkIntoBase {
        /// The hard link's path, relative to the image root.
        link: String,
        /// The path it links to, relative to the image root.
        target: String,
    },
    /// An entry whose content is written under the names of the hard links to it (its own
    /// name is dead) is also planned to survive: the replay plan contradicts itself.
    #[error("/{path} is both alive and the content of a replaced hard link")]
    LinkTargetAlive {
        /// The path, relative to the image root.
        path: String,
    },
    /// Setting up the gzip or zstd compressor failed.
    #[error("compressing the layer")]
    Compress(#[source] std::io::Error),
    /// A compression name that is not `gzip`, `zstd` or `none` (or their aliases).
    #[error("unknown compression {0:?}: use gzip, zstd or none")]
    UnknownCompression(String),
}

/// The layer crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
