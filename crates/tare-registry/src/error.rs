//! The registry crate's error type.

use std::path::PathBuf;

use tare_store::Digest;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("not found: {0}")]
    NotFound(String),
    #[error(
        "unauthorized: {registry} refused access to {what}; log in with `tare login {registry}`"
    )]
    Unauthorized { registry: String, what: String },
    #[error("login to {registry} failed: {reason}")]
    LoginFailed { registry: String, reason: String },
    #[error("digest mismatch for {what} from {registry}: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        registry: String,
        expected: Digest,
        actual: Digest,
    },
    #[error("size mismatch for {digest} from {registry}: the manifest says {expected} bytes, the registry sent {actual}")]
    SizeMismatch {
        digest: Digest,
        registry: String,
        expected: u64,
        actual: u64,
    },
    #[error("cannot reach registry {registry}")]
    Connect {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the TLS certificate of {registry} is not trusted: add its CA as {ca}, or pass --insecure-registry {registry}")]
    Untrusted {
        registry: String,
        ca: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url} failed")]
    Http {
        method: &'static str,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}: the registry answered {status}{detail}")]
    Status {
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
    },
    #[error("GET {url}: the server answered {status}")]
    UrlStatus { url: String, status: u16 },
    #[error("reading {what} from {registry}")]
    Read {
        what: String,
        registry: String,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid {what} from {registry}: {reason}")]
    Invalid {
        what: String,
        registry: String,
        reason: String,
    },
    #[error("{what} is larger than {limit} bytes")]
    TooLarge { what: String, limit: u64 },
    #[error("refusing plain HTTP to {url} ({what} of {registry}): {host} is neither a loopback host nor an --insecure-registry")]
    PlainHttp {
        what: String,
        registry: String,
        url: String,
        host: String,
    },
    #[error("{reference} has no image for platform {platform} (it has: {available})")]
    NoPlatform {
        reference: String,
        platform: String,
        available: String,
    },
    #[error("{name} in the store is {have}, not {want}, and names no image that could be pulled")]
    PlatformMismatch {
        name: String,
        have: String,
        want: String,
    },
    #[error("{name} in the store is {have}, not {want}; pulling {want} failed")]
    PlatformUnavailable {
        name: String,
        have: String,
        want: String,
        #[source]
        source: Box<Error>,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant], like linux/arm64")]
    InvalidPlatform(String),
    #[error("unsupported {what}: {media_type}")]
    Unsupported { what: String, media_type: String },
    #[error("cannot use certificate {path}")]
    Certificate {
        path: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error("setting up the HTTP client")]
    Client(#[source] reqwest::Error),
    #[error("credential helper {helper}: {reason}")]
    CredentialHelper { helper: String, reason: String },
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{what} is not valid JSON")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    #[error(transparent)]
    Layer(#[from] tare_layer::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Text a registry sent, made safe for a terminal: control characters (escape sequences
/// included) shown escaped, and at most 300 characters kept.
pub(crate) fn printable(text: &str) -> String {
    const MAX: usize = 300;
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Wraps an io::Error with the operation and path it concerned.
pub(crate) fn io(
    op: &'static str,
    path: impl Into<PathBuf>,
) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { op, path, source }
}
