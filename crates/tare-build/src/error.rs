//! The one error type of tare-build.

use std::path::{Path, PathBuf};

use crate::dockerignore::PatternError;

/// Everything a build can fail with. Messages name the path, step or image involved.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("reading {path}")]
    DockerIgnore {
        path: PathBuf,
        #[source]
        source: PatternError,
    },
    #[error("source {path:?} leaves the build context")]
    LeavesContext { path: String },
    #[error("too many levels of symbolic links resolving {path:?}")]
    SymlinkLoop { path: String },
    #[error("{path:?} not found in {tree}")]
    SourceNotFound { path: String, tree: String },
    #[error("bad wildcard {pattern:?}")]
    Wildcard {
        pattern: String,
        #[source]
        source: PatternError,
    },
    #[error("cannot copy directory {src:?} onto file {dest:?}")]
    DirOntoFile { src: String, dest: String },
    #[error("{path:?}: {reason}")]
    Archive { path: String, reason: String },
    #[error("fetching {url}: {reason}")]
    Fetch { url: String, reason: String },
    #[error("git source {url}: {reason}")]
    Git { url: String, reason: String },
    #[error("checksum of {url} is {actual}, expected {expected}")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("{file}:{line}: {instruction}")]
    Step {
        file: String,
        line: usize,
        instruction: String,
        #[source]
        source: Box<Error>,
    },
    #[error("{file}:{line}: RUN {command} failed with exit code {code}")]
    RunFailed {
        file: String,
        line: usize,
        command: String,
        code: i32,
    },
    /// A lazy `--cache-from` hit's layer could not be fetched when it was needed (the build
    /// starts again without that entry, see `crate::remote_cache`).
    #[error("the layer {digest} of the cache entry {tag} in {repository} could not be fetched: {reason}")]
    RemoteLayer {
        digest: tare_store::Digest,
        tag: String,
        repository: String,
        reason: String,
    },
    #[error("the build was interrupted")]
    Interrupted,
    #[error("base image {name:?} is neither in the store nor pullable")]
    BaseImage {
        name: String,
        #[source]
        source: Box<tare_registry::Error>,
    },
    #[error(transparent)]
    Dockerfile(#[from] tare_dockerfile::Error),
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    #[error(transparent)]
    Layer(#[from] tare_layer::Error),
    #[error(transparent)]
    Diff(#[from] tare_layer::diff::DiffError),
    #[error(transparent)]
    Sandbox(#[from] tare_sandbox::Error),
    #[error(transparent)]
    Registry(#[from] tare_registry::Error),
}

/// Builds an `Error::Io` for `path`, for `map_err`.
pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_path_buf(),
        source,
    }
}
