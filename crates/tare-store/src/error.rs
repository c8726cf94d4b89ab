//! The store's error type.

use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system call on a store file failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("reading", "creating", "locking", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The store root (or a directory in it) could be changed by someone else than the user
    /// running tare, or is not a directory; tare refuses rather than repairs it.
    #[error("store root {path} is unsafe: {reason}")]
    UnsafeRoot {
        /// The refused directory.
        path: PathBuf,
        /// Why it is refused, as a sentence fragment.
        reason: String,
    },
    /// A string that should be a digest is not `sha256:` and 64 lower-case hex digits.
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),
    /// Content hashed to another digest than the one it was stored or announced under.
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// What was checked (a blob, a layer's diffID, a download).
        what: String,
        /// The digest it should have had.
        expected: Digest,
        /// The digest of the bytes actually read.
        actual: Digest,
    },
    /// A blob read whole (a manifest, index or config) is larger than the caller allows.
    #[error("blob {digest} is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        /// The blob.
        digest: Digest,
        /// Its size in bytes (or the bytes read before giving up).
        size: u64,
        /// The caller's limit in bytes.
        limit: u64,
    },
    /// No blob with this digest is in `ROOT/blobs/sha256`.
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    /// An image reference (`name[:tag][@digest]`) does not parse.
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference {
        /// The text as given.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A name, tag or ID matches no image in the store.
    #[error("no such image: {0}")]
    ImageNotFound(String),
    /// A short image ID is the prefix of more than one image ID.
    #[error("image reference {0:?} is ambiguous: it matches several images")]
    AmbiguousImage(String),
    /// A store record or blob that should be JSON does not parse (or does not fit its type).
    #[error("{what} is not valid JSON")]
    Json {
        /// The record or blob, named for the message.
        what: String,
        /// serde_json's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// No layer record (`ROOT/layers/<diffid>.json`) exists for this diffID.
    #[error("layer with diffID {0} is not in the store")]
    LayerNotFound(Digest),
    /// Records disagree with each other (a config whose diffIDs are not the layers given, an
    /// index naming a manifest no stored image has) or an index would be empty; the text says
    /// which.
    #[error("inconsistent image: {0}")]
    Inconsistent(String),
    /// oci-spec refused to build a manifest or index from the values given.
    #[error("building the {what}")]
    Spec {
        /// The document being built.
        what: &'static str,
        /// oci-spec's error.
        #[source]
        source: oci_spec::OciSpecError,
    },
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Helper: wraps an io::Error with the operation and path it concerned.
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}

/// An error and its causes on one line (`GET URL failed: error sending request: …`), for
/// messages that carry another crate's error as text (warnings, retries, reasons).
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
