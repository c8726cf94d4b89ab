//! The size toolkit's error type.

use std::path::PathBuf;

use tare_store::Digest;

/// Everything that can go wrong analysing, squashing or linting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed (a missing blob or record, a digest mismatch).
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    /// Reading or writing a layer failed in tare-layer.
    #[error(transparent)]
    Layer(#[from] tare_layer::Error),
    /// A file system call failed.
    #[error("{op} {path}")]
    Io {
        /// What was being done ("reading", "writing", ...).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// Reading a layer's (or config's) stream failed, or its bytes do not parse.
    #[error("reading layer {digest}")]
    Stream {
        /// The blob being read.
        digest: Digest,
        /// The stream's error.
        #[source]
        source: std::io::Error,
    },
    /// Writing a squashed layer or a report failed.
    #[error("writing the squashed layer")]
    Write(#[source] std::io::Error),
    /// A size given to a budget flag (`1.5GB`, `10MiB`) does not parse.
    #[error("invalid size {text:?}: {reason}")]
    InvalidSize {
        /// The text as given.
        text: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `--squash-from` names a layer the image does not have.
    #[error("cannot squash from layer {from}: the image has {layers} layers")]
    BadSquashRange {
        /// The layer index asked for (0 = the bottom layer).
        from: usize,
        /// How many layers the image has.
        layers: usize,
    },
    /// A squash or analysis that cannot be done (the text says why).
    #[error("cannot squash: {0}")]
    Unsupported(String),
    /// The Dockerfile given to lint does not parse.
    #[error(transparent)]
    Dockerfile(#[from] tare_dockerfile::Error),
}

/// The size toolkit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
