//! Push: upload the blobs of a stored image that the registry lacks (several at once), then
//! its manifest, byte for byte as stored, so the digest the registry reports is tare's.
//!
//! Per blob: `HEAD` (present: skip), else a cross-repository mount from a repository of the
//! same registry known to hold it, else an upload: one `PUT` for small blobs, `PATCH` chunks
//! for big ones, resuming after a failure from the offset the registry reports.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use reqwest::blocking::Body;
use reqwest::header::{CONTENT_LENGTH, CONTENT_TYPE};
use reqwest::StatusCode;
use tare_store::{Digest, Image, Reference, Store, StoredIndex, MEDIA_TYPE_INDEX};
use url::Url;

use crate::client::{backoff, retryable, status_error, Registry};
use crate::error::{Error, Result};
use crate::manifest::{self, Parsed};
use crate::progress::{run_parallel, Event, Progress, Reporter, Skip};
use crate::{sources, Options};

/// Source repositories (for cross-repository mounts) asked for in the token, at most.
const MAX_MOUNT_SOURCES: usize = 4;

/// Pushes a stored image as `dest` and returns the manifest digest. See [`crate::push`].
pub fn push_with(
    store: &Store,
    image: &Image,
    dest: &Reference,
    options: &Options,
    reporter: &dyn Reporter,
) -> Result<Digest> {
    let manifest_bytes = store.read_blob(&image.manifest_digest)?;
    let domain = dest.domain();
    let repo = dest.path();
    let Parsed::Image(manifest) = manifest::parse(&manifest_bytes, None, "the local store")? else {
        return Err(Error::Invalid {
            what: format!("manifest {}", image.manifest_digest),
            registry: "the local store".into(),
            reason: "an index, not an image manifest".into(),
        });
    };
    let mut blobs: Vec<Blob> = Vec::new();
    for (desc, kind) in manifest
        .layers
        .iter()
        .map(|d| (d, "layer"))
        .chain([(&manifest.config, "config")])
    {
        let digest = desc.digest("the local store")?;
        if blobs.iter().any(|b| b.digest == digest) {
            continue;
        }
        let mount = sources::lookup(store, domain, &digest, repo)
            .into_iter()
            .next();
        // A layer a build left in the registry (a lazy remote cache hit) is only found
        // there or mounted (push_blob).
        let local = store.has_blob(&digest);
        blobs.push(Blob {
            digest,
            size: if local {
                store.blob_size(&digest)?
            } else {
                desc.size
            },
            kind,
            mount,
            local,
        });
    }
    let mut scopes = vec![format!("repository:{repo}:pull,push")];
    for b in &blobs {
        if let Some(m) = &b.mount {
            let scope = format!("repository:{m}:pull");
            if !scopes.contains(&scope) && scopes.len() <= MAX_MOUNT_SOURCES {
                scopes.push(scope);
            }
        }
    }
    let creds = options.auth.lookup(domain)?;
    let registry = Registry::connect(domain, options, creds, scopes)?;
    run_parallel(options.jobs, &blobs, reporter, |blob, progress| {
        push_blob(store, &registry, repo, blob, options.chunk_size, progress)
    })?;
    let target = match dest.tag() {
        Some(t) => t.to_string(),
        None => image.manifest_digest.to_string(),
    };
    let url = registry.url(&format!("v2/{repo}/manifests/{target}"))?;
    let resp = registry.send("PUT", &url, |c| {
        Ok(c.put(url.clone())
            .header(CONTENT_TYPE, manifest.media_type.as_str())
            .body(manifest_bytes.clone()))
    })?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
        s => return Err(status_error("PUT", &url, s, resp)),
    }
    if let Some(claimed) = resp
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Digest>().ok())
    {
        if claimed != image.manifest_digest {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {}", dest.familiar()),
                registry: registry.name.clone(),
                expected: image.manifest_digest,
                actual: claimed,
            });
        }
    }
    let digests: Vec<Digest> = blobs.iter().map(|b| b.digest).collect();
    sources::record(store, domain, repo, &digests)?;
    reporter.report(Event::Pushed {
        reference: dest.familiar(),
        digest: image.manifest_digest,
        size: manifest_bytes.len() as u64,
    });
    Ok(image.manifest_digest)
}

/// Pushes a stored multi-platform index as `dest`: each platform's image by digest into the
/// same repository, then the index under `dest`'s tag, byte for byte as stored. Returns the
/// index digest.
pub fn push_index(
    store: &Store,
    index: &StoredIndex,
    dest: &Reference,
    options: &Options,
    reporter: &dyn Reporter,
) -> Result<Digest> {
    // Without a tag, each manifest goes up under its digest.
    let by_digest = Reference::parse(&dest.name())?;
    for image in &index.images {
        push_with(store, image, &by_digest, options, reporter)?;
    }
    let repo = dest.path();
    let creds = options.auth.lookup(dest.domain())?;
    let registry = Registry::connect(
        dest.domain(),
        options,
        creds,
        vec![format!("repository:{repo}:pull,push")],
    )?;
    let target = dest
        .tag()
        .map_or_else(|| index.digest.to_string(), str::to_string);
    let url = registry.url(&format!("v2/{repo}/manifests/{target}"))?;
    let resp = registry.send("PUT", &url, |c| {
        Ok(c.put(url.clone())
            .header(CONTENT_TYPE, MEDIA_TYPE_INDEX)
            .body(index.bytes.clone()))
    })?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
        s => return Err(status_error("PUT", &url, s, resp)),
    }
    reporter.report(Event::Pushed {
        reference: dest.familiar(),
        digest: index.digest,
        size: index.bytes.len() as u64,
    });
    Ok(index.digest)
}

pub(crate) struct Blob {
    pub digest: Digest,
    pub size: u64,
    pub kind: &'static str,
    /// A repository of the same registry known to hold the blob.
    pub mount: Option<String>,
    /// Whether the store holds the blob; one it lacks can only be mounted.
    pub local: bool,
}

pub(crate) fn push_blob(
    store: &Store,
    registry: &Registry,
    repo: &str,
    blob: &Blob,
    chunk_size: u64,
    progress: &Progress,
) -> Result<()> {
    let url = registry.url(&format!("v2/{repo}/blobs/{}", blob.digest))?;
    let resp = registry.send("HEAD", &url, |c| Ok(c.head(url.clone())))?;
    match resp.status() {
        StatusCode::OK => {
            progress.event(Event::BlobSkipped {
                digest: blob.digest,
                size: blob.size,
                reason: Skip::Exists,
            });
            return Ok(());
        }
        StatusCode::NOT_FOUND => {}
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
        s => return Err(status_error("HEAD", &url, s, resp)),
    }
    if !blob.local && blob.mount.is_none() {
        return Err(tare_store::Error::BlobNotFound(blob.digest).into());
    }
    let uploads = registry.url(&format!("v2/{repo}/blobs/uploads/"))?;
    let mut opened = None;
    // A failed mount opens an ordinary upload (202), so one source is tried per blob.
    if let Some(from) = &blob.mount {
        let mut mount = uploads.clone();
        mount
            .query_pairs_mut()
            .append_pair("mount", &blob.digest.to_string())
            .append_pair("from", from);
        let resp = registry.send("POST", &mount, |c| {
            Ok(c.post(mount.clone()).header(CONTENT_LENGTH, 0))
        })?;
        match resp.status() {
            StatusCode::CREATED => {
                progress.event(Event::BlobSkipped {
                    digest: blob.digest,
                    size: blob.size,
                    reason: Skip::Mounted { from: from.clone() },
                });
                return Ok(());
            }
            // The registry could not mount, and the bytes are not here to upload: they are
            // fetched from the repository that holds them (verified by digest), then
            // uploaded into the upload the registry opened.
            StatusCode::ACCEPTED if !blob.local => {
                let location = registry.location(&resp)?;
                fetch_blob(store, registry, from, &blob.digest).map_err(|e| Error::Invalid {
                    what: format!("{} {}", blob.kind, blob.digest),
                    registry: registry.name.clone(),
                    reason: format!(
                        "the local store does not hold it, the registry did not mount it \
                         from {from}, and fetching it from there failed: {}",
                        tare_store::error_chain(&e)
                    ),
                })?;
                let fetched = Blob {
                    digest: blob.digest,
                    size: store.blob_size(&blob.digest)?,
                    kind: blob.kind,
                    mount: None,
                    local: true,
                };
                return upload(
                    store,
                    registry,
                    &uploads,
                    &fetched,
                    Some(location),
                    chunk_size,
                    progress,
                );
            }
            // The registry could not mount, and opened an ordinary upload instead.
            StatusCode::ACCEPTED => {
                opened = Some(registry.location(&resp)?);
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
            s => return Err(status_error("POST", &mount, s, resp)),
        }
    }
    upload(
        store, registry, &uploads, blob, opened, chunk_size, progress,
    )
}

/// Streams the blob `digest` of `repo` into the store, committed only if its bytes hash to
/// it.
fn fetch_blob(store: &Store, registry: &Registry, repo: &str, digest: &Digest) -> Result<()> {
    let url = registry.url(&format!("v2/{repo}/blobs/{digest}"))?;
    let mut resp = registry.send("GET", &url, |c| Ok(c.get(url.clone())))?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Err(Error::NotFound(format!("blob {digest} in {repo}"))),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
        s => return Err(status_error("GET", &url, s, resp)),
    }
    let mut writer = store.blob_writer()?;
    std::io::copy(&mut resp, &mut writer).map_err(|source| Error::Read {
        what: format!("blob {digest}"),
        registry: registry.name.clone(),
        source,
    })?;
    writer.commit(Some(digest))?;
    Ok(())
}

/// Uploads a blob the store holds, into `opened` (an upload the registry already opened) or
/// a new upload; a transient failure opens a new one.
fn upload(
    store: &Store,
    registry: &Registry,
    uploads: &Url,
    blob: &Blob,
    mut opened: Option<Url>,
    chunk_size: u64,
    progress: &Progress,
) -> Result<()> {
    let started = Instant::now();
    let counter = progress.start(blob.digest, blob.size, blob.kind);
    let path = store.blob_path(&blob.digest);
    let mut attempt = 0;
    loop {
        let location = match opened.take() {
            Some(l) => l,
            None => open_upload(registry, uploads)?,
        };
        let result = if blob.size > chunk_size {
            upload_chunked(registry, &path, blob, location, chunk_size, &counter)
        } else {
            upload_whole(registry, &path, blob, location, &counter)
        };
        match result {
            Ok(()) => break,
            Err(e) if attempt < registry.retries() && transient(&e) => {
                attempt += 1;
                progress.event(Event::Retrying {
                    what: format!("{} {}", blob.kind, blob.digest),
                    attempt,
                    error: tare_store::error_chain(&e),
                });
                backoff(attempt);
            }
            Err(e) => return Err(e),
        }
    }
    progress.done(blob.digest, blob.size, started);
    Ok(())
}

fn open_upload(registry: &Registry, uploads: &Url) -> Result<Url> {
    let resp = registry.send("POST", uploads, |c| {
        Ok(c.post(uploads.clone()).header(CONTENT_LENGTH, 0))
    })?;
    match resp.status() {
        StatusCode::ACCEPTED => registry.location(&resp),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(registry.unauthorized()),
        s => Err(status_error("POST", uploads, s, resp)),
    }
}

/// The blob in one `PUT`.
fn upload_whole(
    registry: &Registry,
    path: &std::path::Path,
    blob: &Blob,
    location: Url,
    counter: &Arc<AtomicU64>,
) -> Result<()> {
    let url = with_digest(location, &blob.digest);
    counter.store(0, Ordering::Relaxed);
    let body = Body::sized(section(path, 0, blob.size, counter)?, blob.size);
    let resp = registry
        .client()
        .put(url.clone())
        .header(CONTENT_TYPE, "application/octet-stream")
        .header(CONTENT_LENGTH, blob.size)
        .body(body);
    finish_upload(registry, &url, blob, registry.send_once("PUT", &url, resp)?)
}

/// The blob in `PATCH` chunks, then an empty `PUT`. After a failed chunk, asks the registry
/// how much it has and goes on from there.
fn upload_chunked(
    registry: &Registry,
    path: &std::path::Path,
    blob: &Blob,
    mut location: Url,
    chunk_size: u64,
    counter: &Arc<AtomicU64>,
) -> Result<()> {
    let mut offset = 0u64;
    let mut failures = 0;
    while offset < blob.size {
        let len = chunk_size.min(blob.size - offset);
        counter.store(offset, Ordering::Relaxed);
        let body = Body::sized(section(path, offset, len, counter)?, len);
        let req = registry
            .client()
            .patch(location.clone())
            .header(CONTENT_TYPE, "application/octet-stream")
            .header("Content-Range", format!("{}-{}", offset, offset + len - 1))
            .header(CONTENT_LENGTH, len)
            .body(body);
        let outcome = registry.send_once("PATCH", &location, req);
        match outcome {
            Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                location = registry.location(&resp)?;
                offset += len;
                continue;
            }
            // 416: the registry holds a different amount than we assumed; start over.
            Ok(resp) if !retryable(resp.status()) => {
                return Err(status_error("PATCH", &location, resp.status(), resp))
            }
            Ok(resp) if failures >= registry.retries() => {
                return Err(status_error("PATCH", &location, resp.status(), resp))
            }
            Err(e) if failures >= registry.retries() => return Err(e),
            _ => {}
        }
        failures += 1;
        backoff(failures);
        // Where did the registry get to? (204 with `Range: 0-<last byte>`; distribution also
        // says `0-0` for an empty upload, read here as empty: a wrong guess gets a 416, and
        // the upload starts over.)
        let resp = registry.send("GET", &location, |c| Ok(c.get(location.clone())))?;
        if resp.status() != StatusCode::NO_CONTENT {
            return Err(status_error("GET", &location, resp.status(), resp));
        }
        offset = resp
            .headers()
            .get("range")
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit_once('-'))
            .and_then(|(_, end)| end.parse::<u64>().ok())
            .filter(|end| *end > 0)
            .map(|end| end + 1)
            .unwrap_or(0);
        if resp.headers().contains_key(reqwest::header::LOCATION) {
            location = registry.location(&resp)?;
        }
    }
    let url = with_digest(location, &blob.digest);
    let req = registry.client().put(url.clone()).header(CONTENT_LENGTH, 0);
    finish_upload(registry, &url, blob, registry.send_once("PUT", &url, req)?)
}

fn finish_upload(
    registry: &Registry,
    url: &Url,
    blob: &Blob,
    resp: reqwest::blocking::Response,
) -> Result<()> {
    match resp.status() {
        StatusCode::CREATED | StatusCode::NO_CONTENT | StatusCode::OK => Ok(()),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(registry.unauthorized()),
        StatusCode::BAD_REQUEST => Err(Error::Status {
            method: "PUT",
            url: format!("{} (blob {})", crate::client::strip_query(url), blob.digest),
            status: 400,
            detail: ": the registry rejected the upload (digest or size mismatch)".into(),
        }),
        s => Err(status_error("PUT", url, s, resp)),
    }
}

fn with_digest(mut url: Url, digest: &Digest) -> Url {
    url.query_pairs_mut()
        .append_pair("digest", &digest.to_string());
    url
}

/// `len` bytes of the blob file from `offset`, counting into `counter` as they are read.
fn section(
    path: &std::path::Path,
    offset: u64,
    len: u64,
    counter: &Arc<AtomicU64>,
) -> Result<Counted<io::Take<File>>> {
    let mut file = File::open(path).map_err(crate::error::io("opening blob", path))?;
    file.seek(SeekFrom::Start(offset))
        .map_err(crate::error::io("seeking in blob", path))?;
    Ok(Counted {
        inner: file.take(len),
        counter: counter.clone(),
    })
}

struct Counted<R> {
    inner: R,
    counter: Arc<AtomicU64>,
}

impl<R: Read> Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.counter.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// Failures worth starting the upload again for: the network, or the registry's 5xx.
fn transient(e: &Error) -> bool {
    match e {
        Error::Http { .. } | Error::Read { .. } => true,
        Error::Status { status, .. } => *status >= 500 || *status == 429 || *status == 416,
        _ => false,
    }
}
