//! The store's error type.

use std::path::PathBuf;

use crate::Digest;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("store root {path} is unsafe: {reason}")]
    UnsafeRoot { path: PathBuf, reason: String },
    #[error("invalid digest {0:?}: expected sha256:<64 lowercase hex digits>")]
    InvalidDigest(String),
    #[error("digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest} is too large: {size} bytes, the limit is {limit}")]
    TooLarge {
        digest: Digest,
        size: u64,
        limit: u64,
    },
    #[error("blob {0} is not in the store")]
    BlobNotFound(Digest),
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("no such image: {0}")]
    ImageNotFound(String),
    #[error("image reference {0:?} is ambiguous: it matches several images")]
    AmbiguousImage(String),
    #[error("{what} is not valid JSON")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("layer with diffID {0} is not in the store")]
    LayerNotFound(Digest),
    #[error("inconsistent image: {0}")]
    Inconsistent(String),
    #[error("building the {what}")]
    Spec {
        what: &'static str,
        #[source]
        source: oci_spec::OciSpecError,
    },
}

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
