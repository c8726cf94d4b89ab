//! The size toolkit's error type.

use std::path::PathBuf;

use tare_store::Digest;

/// Everything that can go wrong analysing, squashing or linting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    #[error(transparent)]
    Layer(#[from] tare_layer::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading layer {digest}")]
    Stream {
        digest: Digest,
        #[source]
        source: std::io::Error,
    },
    #[error("writing the squashed layer")]
    Write(#[source] std::io::Error),
    #[error("invalid size {text:?}: {reason}")]
    InvalidSize { text: String, reason: &'static str },
    #[error("cannot squash from layer {from}: the image has {layers} layers")]
    BadSquashRange { from: usize, layers: usize },
    #[error("cannot squash: {0}")]
    Unsupported(String),
    #[error(transparent)]
    Dockerfile(#[from] tare_dockerfile::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
