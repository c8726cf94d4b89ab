//! The registry crate's error type.

use std::path::PathBuf;

use tare_store::Digest;

/// Everything that can go wrong talking to a registry.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The registry has no such manifest or blob (HTTP 404); the text names it.
    #[error("not found: {0}")]
    NotFound(String),
    /// The registry refused the credentials (or their absence) for a repository (HTTP 401 or 403).
    #[error(
        "unauthorized: {registry} refused access to {what}; log in with `tare login {registry}`"
    )]
    Unauthorized {
        /// The registry (`host[:port]`).
        registry: String,
        /// The repository asked for (or `the registry` when none was).
        what: String,
    },
    /// `tare login` could not authenticate.
    #[error("login to {registry} failed: {reason}")]
    LoginFailed {
        /// The registry (`host[:port]`).
        registry: String,
        /// Why, as the registry or the handshake said.
        reason: String,
    },
    /// Bytes the registry sent do not hash to the digest they were asked for by (or a layer to its
    /// diffID).
    #[error("digest mismatch for {what} from {registry}: expected {expected}, got {actual}")]
    DigestMismatch {
        /// The manifest, config or layer, named for the message.
        what: String,
        /// The registry that sent it.
        registry: String,
        /// The digest asked for.
        expected: Digest,
        /// The digest of the bytes received.
        actual: Digest,
    },
    /// A blob's length differs from the size in its descriptor.
    #[error("size mismatch for {digest} from {registry}: the manifest says {expected} bytes, the registry sent {actual}")]
    SizeMismatch {
        /// The blob.
        digest: Digest,
        /// The registry that sent it.
        registry: String,
        /// The size the manifest announced, in bytes.
        expected: u64,
        /// The bytes the registry sent (or began to send past the limit).
        actual: u64,
    },
    /// The registry cannot be reached (DNS, refused connection, TLS handshake).
    #[error("cannot reach registry {registry}")]
    Connect {
        /// The registry (`host[:port]`).
        registry: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry's TLS certificate does not chain to a trusted CA.
    #[error("the TLS certificate of {registry} is not trusted: add its CA as {ca}, or pass --insecure-registry {registry}")]
    Untrusted {
        /// The registry (`host[:port]`).
        registry: String,
        /// Where a CA certificate for it would be read (`certs.d/<host>/ca.crt`).
        ca: PathBuf,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// A request failed on the way (a timeout, a connection reset mid-request).
    #[error("{method} {url} failed")]
    Http {
        /// The HTTP method.
        method: &'static str,
        /// The URL asked.
        url: String,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// The registry answered with an unexpected HTTP status.
    #[error("{method} {url}: the registry answered {status}{detail}")]
    Status {
        /// The HTTP method.
        method: &'static str,
        /// The URL asked.
        url: String,
        /// The HTTP status code.
        status: u16,
        /// The registry's error message (made printable), with a leading `: `, or empty.
        detail: String,
    },
    /// A plain URL (`ADD https://...`) answered with a status other than success.
    #[error("GET {url}: the server answered {status}")]
    UrlStatus {
        /// The URL asked.
        url: String,
        /// The HTTP status code.
        status: u16,
    },
    /// Reading a response body failed partway.
    #[error("reading {what} from {registry}")]
    Read {
        /// What was being read (a blob, a manifest).
        what: String,
        /// The registry.
        registry: String,
        /// The stream's error.
        #[source]
        source: std::io::Error,
    },
    /// Something the registry sent (or a URL it named) does not make sense: a manifest that does
    /// not parse, a bad token reply, a bad `Location`.
    #[error("invalid {what} from {registry}: {reason}")]
    Invalid {
        /// What was invalid.
        what: String,
        /// The registry that sent it.
        registry: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A response tare reads whole (a manifest, config or token) is over its limit.
    #[error("{what} is larger than {limit} bytes")]
    TooLarge {
        /// What was being read.
        what: String,
        /// The limit in bytes.
        limit: u64,
    },
    /// A registry or token server sent tare to plain HTTP on a host that is neither loopback nor an
    /// `--insecure-registry`.
    #[error("refusing plain HTTP to {url} ({what} of {registry}): {host} is neither a loopback host nor an --insecure-registry")]
    PlainHttp {
        /// What the URL was for (a token realm, a redirect, an upload location).
        what: String,
        /// The registry that named the URL.
        registry: String,
        /// The refused URL.
        url: String,
        /// Its host.
        host: String,
    },
    /// A manifest list or index has no entry for the wanted platform.
    #[error("{reference} has no image for platform {platform} (it has: {available})")]
    NoPlatform {
        /// The reference pulled.
        reference: String,
        /// The platform wanted (`linux/arm64`).
        platform: String,
        /// The platforms the index has, comma separated.
        available: String,
    },
    /// The store's image of a name is for another platform, and its reference cannot be pulled
    /// again (a local tag, an ID).
    #[error("{name} in the store is {have}, not {want}, and names no image that could be pulled")]
    PlatformMismatch {
        /// The name as given.
        name: String,
        /// The stored image's platform.
        have: String,
        /// The platform wanted.
        want: String,
    },
    /// The store's image of a name is for another platform, and pulling the wanted one failed.
    #[error("{name} in the store is {have}, not {want}; pulling {want} failed")]
    PlatformUnavailable {
        /// The name as given.
        name: String,
        /// The stored image's platform.
        have: String,
        /// The platform wanted.
        want: String,
        /// Why the pull failed.
        #[source]
        source: Box<Error>,
    },
    /// A `--platform` value is not `os/arch[/variant]`.
    #[error("invalid platform {0:?}: expected os/arch[/variant], like linux/arm64")]
    InvalidPlatform(String),
    /// A manifest tare does not handle: schema 1, an unknown manifest type, a config that is not a
    /// container image's.
    #[error("unsupported {what}: {media_type}")]
    Unsupported {
        /// What had the type.
        what: String,
        /// The media type (or schema version) as sent.
        media_type: String,
    },
    /// A CA certificate file from `certs.d` cannot be read or parsed.
    #[error("cannot use certificate {path}")]
    Certificate {
        /// The certificate file.
        path: PathBuf,
        /// reqwest's error.
        #[source]
        source: reqwest::Error,
    },
    /// reqwest could not build the HTTP client.
    #[error("setting up the HTTP client")]
    Client(#[source] reqwest::Error),
    /// A docker credential helper (`docker-credential-<name>`) failed or answered nonsense.
    #[error("credential helper {helper}: {reason}")]
    CredentialHelper {
        /// The helper's name.
        helper: String,
        /// What went wrong.
        reason: String,
    },
    /// A file system call failed (the login file, docker's config.json, a certificate directory).
    #[error("{op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// A credentials file does not parse as JSON, or cannot be written as JSON.
    #[error("{what} is not valid JSON")]
    Json {
        /// The file, named for the message.
        what: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// The store failed (writing a blob, reading an image to push).
    #[error(transparent)]
    Store(#[from] tare_store::Error),
    /// Verifying or ingesting a layer failed in tare-layer.
    #[error(transparent)]
    Layer(#[from] tare_layer::Error),
}

/// The registry crate's result type.
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
