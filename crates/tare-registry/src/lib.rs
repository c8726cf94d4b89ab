//! tare-registry: pull, push and log in, speaking the OCI distribution protocol.
//!
//! Owns the traffic with registries: references resolved to manifests (manifest lists and OCI
//! indexes narrowed to one platform), blobs fetched into the store and verified against their
//! digests (and layers against their diffIDs) before they enter it, blobs pushed with
//! HEAD-skip, cross-repository mounts and chunked uploads, and the auth handshake (anonymous,
//! basic, bearer token) with credentials from tare's login file, docker's config.json and
//! credential helpers. It does not parse references (tare-store's [`Reference`]) or unpack
//! layers (tare-layer), and it never prints: progress goes to a [`Reporter`].
//!
//! Written on `reqwest` (blocking, rustls) rather than `oci-client`; docs/ARCHITECTURE.md says why.
//!
//! # API
//!
//! - [`resolve_or_pull`]`(store, name, platform, reporter) -> Image`: the store's image, or
//!   pulled when missing (the builder's `FROM`); [`pull`]`(store, reference, platform,
//!   reporter)` always asks the registry; [`pull_with`] takes full [`Options`].
//! - [`push`]`(store, image, dest, options, reporter) -> manifest digest`.
//! - [`login`], [`logout`]; [`AuthFiles`] finds credentials.
//! - [`Repository`]: one repository as a place for small manifests and the blobs they name
//!   (the remote build cache).
//! - [`Platform`], [`Reporter`] and its [`Event`]s.
//! - [`manifest`]: parsing manifests and indexes as registries serve them (public for the fuzz
//!   targets in fuzz/).
#![forbid(unsafe_code)]
#![deny(missing_docs)]
#![warn(unreachable_pub)]

mod auth;
mod client;
mod error;
pub mod manifest;
mod platform;
mod progress;
mod pull;
mod push;
mod repository;
mod sources;
mod url;

use std::path::PathBuf;

use tare_store::{Image, Reference, Store};

pub use auth::{registry_name, AuthFiles, Credentials};
pub use error::{Error, Result};
pub use platform::Platform;
pub use progress::{Event, NoReporter, Reporter, Skip};
pub use pull::pull_with;
pub use push::push_index;
pub use push::push_with as push;
pub use repository::{Access, Repository};
pub use url::{get_url, UrlBody};

/// Settings for talking to registries.
#[derive(Clone, Debug)]
pub struct Options {
    /// The platform to pick from an index; `None` is the host's.
    pub platform: Option<Platform>,
    /// Registries (`host[:port]`) that may use plain HTTP or unverified TLS.
    pub insecure_registries: Vec<String>,
    /// docker-style `certs.d`: `<dir>/<host[:port]>/*.crt` are extra trusted CAs.
    pub certs_dir: PathBuf,
    /// Where credentials are looked up.
    pub auth: AuthFiles,
    /// Blobs moved at once.
    pub jobs: usize,
    /// Blobs bigger than this are uploaded in `PATCH` chunks of this size.
    pub chunk_size: u64,
    /// How many times a failed request or transfer is tried again (with backoff).
    pub retries: u32,
}

impl Options {
    /// Defaults, with these environment overrides: `TARE_CERTS_D` (else `/etc/tare/certs.d`),
    /// `TARE_INSECURE_REGISTRIES` (comma-separated), `TARE_PUSH_CHUNK_SIZE` (bytes), and the
    /// credential locations of [`AuthFiles::from_env`].
    pub fn from_env() -> Options {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Options {
            platform: None,
            insecure_registries: var("TARE_INSECURE_REGISTRIES")
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            certs_dir: var("TARE_CERTS_D")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("/etc/tare/certs.d")),
            auth: AuthFiles::from_env(),
            jobs: 3,
            chunk_size: var("TARE_PUSH_CHUNK_SIZE")
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or(32 << 20),
            retries: 4,
        }
    }
}

/// Pulls `reference` into the store (reusing the layers it has) and returns the image; the
/// reference's tag then names it. `platform` picks from a multi-platform index (default: the
/// host). Settings come from [`Options::from_env`].
pub fn pull(
    store: &Store,
    reference: &Reference,
    platform: Option<&Platform>,
    reporter: &dyn Reporter,
) -> Result<Image> {
    let options = Options {
        platform: platform.cloned(),
        ..Options::from_env()
    };
    pull_with(store, reference, &options, reporter)
}

/// The image `name` from the store, pulled first when the store does not have it: what `FROM`
/// and `COPY --from=<image>` need. `name` is anything [`Store::resolve`] takes; only a
/// reference can be pulled. With a `platform`, the store's image counts only if it is of
/// that platform; otherwise the registry's image for that platform is pulled (and then
/// holds the name, as `docker pull --platform` does).
pub fn resolve_or_pull(
    store: &Store,
    name: &str,
    platform: Option<&Platform>,
    reporter: &dyn Reporter,
) -> Result<Image> {
    match store.resolve(name) {
        Ok(image) => match platform {
            Some(p)
                if !p.matches(
                    &image.config.os,
                    &image.config.architecture,
                    image.config.variant.as_deref(),
                ) =>
            {
                let have = Platform {
                    os: image.config.os.clone(),
                    architecture: image.config.architecture.clone(),
                    variant: image.config.variant.clone(),
                };
                let mismatch = || Error::PlatformMismatch {
                    name: name.to_string(),
                    have: have.to_string(),
                    want: p.to_string(),
                };
                // An image ID (`sha256:…` or a prefix of its hex) names nothing in a registry.
                let hex = name.strip_prefix("sha256:").unwrap_or(name);
                if image.id.hex().starts_with(hex) {
                    return Err(mismatch());
                }
                let reference = Reference::parse(name).map_err(|_| mismatch())?;
                pull(store, &reference, platform, reporter).map_err(|e| match e {
                    Error::NoPlatform { .. } => e,
                    other => Error::PlatformUnavailable {
                        name: name.to_string(),
                        have: have.to_string(),
                        want: p.to_string(),
                        source: Box::new(other),
                    },
                })
            }
            _ => Ok(image),
        },
        Err(tare_store::Error::ImageNotFound(_)) => {
            let reference = Reference::parse(name)?;
            pull(store, &reference, platform, reporter)
        }
        Err(e) => Err(e.into()),
    }
}

/// Checks `credentials` against `registry` (a reference domain: `docker.io`, `host:5000`) and
/// saves them in tare's login file.
pub fn login(registry: &str, credentials: Credentials, options: &Options) -> Result<()> {
    let session =
        client::Registry::connect(registry, options, Some(credentials.clone()), Vec::new())?;
    session.verify_login()?;
    options.auth.store(registry, &credentials)
}

/// Forgets the credentials tare's login file holds for `registry`; false if there were none.
pub fn logout(registry: &str, options: &Options) -> Result<bool> {
    options.auth.remove(registry)
}
