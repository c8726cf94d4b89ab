//! Pull: resolve a reference to one image manifest, fetch the config and the layers the store
//! lacks (several at once), verify each against its digest (and each layer's content against
//! its diffID) before it enters the store, then record the image and its tag.

use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use reqwest::StatusCode;
use tare_layer::Compression;
use tare_store::{Digest, Hasher, Image, LayerInfo, Reference, Store};

use crate::client::{backoff, read_limited, status_error, Registry};
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor, ImageManifest, Parsed};
use crate::progress::{run_parallel, Event, Progress, Reporter, Skip};
use crate::{sources, Options};

/// Pulls `reference` into the store and returns the image. See [`crate::pull`].
pub fn pull_with(
    store: &Store,
    reference: &Reference,
    options: &Options,
    reporter: &dyn Reporter,
) -> Result<Image> {
    let repo = reference.path();
    let creds = options.auth.lookup(reference.domain())?;
    let registry = Registry::connect(
        reference.domain(),
        options,
        creds,
        vec![format!("repository:{repo}:pull")],
    )?;
    let wanted = match (reference.digest(), reference.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_string(),
        (None, None) => "latest".to_string(),
    };
    let (mut bytes, mut content_type, mut digest) =
        get_manifest(&registry, reference, &wanted, reference.digest())?;
    let mut parsed = manifest::parse(&bytes, content_type.as_deref(), &registry.name)?;
    let mut platform_text = None;
    if let Parsed::Index(entries) = &parsed {
        let platform = options
            .platform
            .clone()
            .unwrap_or_else(crate::Platform::host);
        let entry = manifest::select(entries, &platform, &reference.familiar())?;
        let entry_digest = entry.digest(&registry.name)?;
        (bytes, content_type, digest) = get_manifest(
            &registry,
            reference,
            &entry_digest.to_string(),
            Some(&entry_digest),
        )?;
        parsed = manifest::parse(&bytes, content_type.as_deref(), &registry.name)?;
        platform_text = Some(platform.to_string());
    }
    let Parsed::Image(image) = parsed else {
        return Err(Error::Invalid {
            what: format!("manifest {digest}"),
            registry: registry.name.clone(),
            reason: "an index that points at another index".into(),
        });
    };
    reporter.report(Event::Resolved {
        reference: reference.familiar(),
        digest,
        platform: platform_text,
    });
    let config_bytes = get_config(store, &registry, repo, &image)?;
    let config: tare_store::ImageConfig =
        serde_json::from_slice(&config_bytes).map_err(|e| Error::Invalid {
            what: format!("image config {}", image.config.digest),
            registry: registry.name.clone(),
            reason: e.to_string(),
        })?;
    if config.rootfs.diff_ids.len() != image.layers.len() {
        return Err(Error::Invalid {
            what: format!("manifest {digest}"),
            registry: registry.name.clone(),
            reason: format!(
                "{} layers, but its config lists {} diffIDs",
                image.layers.len(),
                config.rootfs.diff_ids.len()
            ),
        });
    }
    let mut jobs = Vec::new();
    for (desc, diff_id) in image.layers.iter().zip(&config.rootfs.diff_ids) {
        let digest = desc.digest(&registry.name)?;
        let compression =
            Compression::from_media_type(&desc.media_type).ok_or_else(|| Error::Unsupported {
                what: format!("layer type of {digest}"),
                media_type: desc.media_type.clone(),
            })?;
        jobs.push(LayerJob {
            digest,
            diff_id: *diff_id,
            size: desc.size,
            compression,
        });
    }
    // The same blob twice in one image (empty layers) is fetched once.
    let mut unique: Vec<LayerJob> = Vec::new();
    for j in &jobs {
        if !unique.iter().any(|u| u.digest == j.digest) {
            unique.push(j.clone());
        }
    }
    let fetched = run_parallel(options.jobs, &unique, reporter, |job, progress| {
        fetch_layer(store, &registry, repo, job, progress)
    })?;
    let layers: Vec<LayerInfo> = jobs
        .iter()
        .filter_map(|j| fetched.iter().find(|l| l.digest == j.digest).cloned())
        .collect();
    let tags: Vec<Reference> = match reference.tag() {
        Some(t) => vec![reference.with_tag(t)?],
        None => Vec::new(),
    };
    let stored = store.commit_image_raw(&config_bytes, Some(&bytes), &layers, &tags, None)?;
    let mut blobs: Vec<Digest> = layers.iter().map(|l| l.digest).collect();
    blobs.push(stored.id);
    sources::record(store, &registry.name, repo, &blobs)?;
    Ok(stored)
}

#[derive(Clone)]
pub(crate) struct LayerJob {
    pub digest: Digest,
    pub diff_id: Digest,
    pub size: u64,
    pub compression: Compression,
}

/// Fetches a manifest by tag or digest and checks it against `expected` (when pinned) or the
/// registry's `Docker-Content-Digest`.
fn get_manifest(
    registry: &Registry,
    reference: &Reference,
    wanted: &str,
    expected: Option<&Digest>,
) -> Result<(Vec<u8>, Option<String>, Digest)> {
    let url = registry.url(&format!("v2/{}/manifests/{wanted}", reference.path()))?;
    let resp = registry.send("GET", &url, |c| {
        Ok(c.get(url.clone())
            .header(reqwest::header::ACCEPT, manifest::ACCEPT))
    })?;
    match resp.status() {
        StatusCode::OK => {}
        StatusCode::NOT_FOUND => return Err(Error::NotFound(reference.familiar())),
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
        s => return Err(status_error("GET", &url, s, resp)),
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let claimed = header("docker-content-digest");
    let what = format!("the manifest of {}", reference.familiar());
    let bytes = read_limited(resp, manifest::MAX_MANIFEST, &what, &registry.name)?;
    let actual = Digest::of(&bytes);
    let expected = match expected {
        Some(d) => Some(*d),
        // Only sha256 digests can be checked; the registry may use another algorithm.
        None => claimed.and_then(|c| c.parse::<Digest>().ok()),
    };
    if let Some(expected) = expected {
        if expected != actual {
            return Err(Error::DigestMismatch {
                what: format!("manifest of {}", reference.familiar()),
                registry: registry.name.clone(),
                expected,
                actual,
            });
        }
    }
    Ok((bytes, content_type, actual))
}

/// The config blob: from the store when present, else fetched and verified.
fn get_config(
    store: &Store,
    registry: &Registry,
    repo: &str,
    image: &ImageManifest,
) -> Result<Vec<u8>> {
    let digest = image.config.digest(&registry.name)?;
    if store.has_blob(&digest) {
        return Ok(store.read_blob(&digest)?);
    }
    let bytes = get_small_blob(registry, repo, &image.config, manifest::MAX_CONFIG)?;
    let actual = Digest::of(&bytes);
    if actual != digest {
        return Err(Error::DigestMismatch {
            what: format!("config blob {digest}"),
            registry: registry.name.clone(),
            expected: digest,
            actual,
        });
    }
    Ok(bytes)
}

/// A small blob in memory; a dropped connection is tried again (bounded), like the layers.
pub(crate) fn get_small_blob(
    registry: &Registry,
    repo: &str,
    desc: &Descriptor,
    limit: u64,
) -> Result<Vec<u8>> {
    let url = registry.url(&format!("v2/{repo}/blobs/{}", desc.digest))?;
    let mut attempt = 0;
    loop {
        let resp = registry.send("GET", &url, |c| Ok(c.get(url.clone())))?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound(format!("blob {} in {repo}", desc.digest)))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
            s => return Err(status_error("GET", &url, s, resp)),
        }
        let what = format!("the blob {}", desc.digest);
        match read_limited(resp, limit.min(desc.size), &what, &registry.name) {
            Err(Error::Read { .. }) if attempt < registry.retries() => {
                attempt += 1;
                backoff(attempt);
            }
            other => return other,
        }
    }
}

/// One layer: reused from the store when its blob is there, else streamed to a temporary blob
/// while hashing both the blob and its decompressed content, resuming with `Range` after a
/// dropped connection, and committed only when the digest and diffID both match.
pub(crate) fn fetch_layer(
    store: &Store,
    registry: &Registry,
    repo: &str,
    job: &LayerJob,
    progress: &Progress,
) -> Result<LayerInfo> {
    let media_type = job.compression.media_type().to_string();
    if let Some(known) = store
        .layer_variants(&job.diff_id)?
        .into_iter()
        .find(|v| v.digest == job.digest)
    {
        progress.event(Event::BlobSkipped {
            digest: job.digest,
            size: job.size,
            reason: Skip::Stored,
        });
        return Ok(known);
    }
    let started = Instant::now();
    let counter = progress.start(job.digest, job.size, "layer");
    let url = registry.url(&format!("v2/{repo}/blobs/{}", job.digest))?;
    let mut blob = store.blob_writer()?;
    // Hashed here too (not only by the blob writer), so a mismatch is known before anything
    // is committed.
    let mut received = Hasher::new();
    let mut diff = DiffHasher::new(job.compression).map_err(|source| Error::Read {
        what: format!("layer {}", job.digest),
        registry: registry.name.clone(),
        source,
    })?;
    let mut attempt = 0;
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let offset = blob.len();
        let resp = registry.send("GET", &url, |c| {
            let req = c.get(url.clone());
            Ok(if offset > 0 {
                req.header(reqwest::header::RANGE, format!("bytes={offset}-"))
            } else {
                req
            })
        })?;
        match resp.status() {
            StatusCode::PARTIAL_CONTENT if offset > 0 => {}
            StatusCode::OK => {
                if offset > 0 {
                    // The registry ignored the range: start over.
                    blob = store.blob_writer()?;
                    received = Hasher::new();
                    diff = DiffHasher::new(job.compression).map_err(|source| Error::Read {
                        what: format!("layer {}", job.digest),
                        registry: registry.name.clone(),
                        source,
                    })?;
                    counter.store(0, Ordering::Relaxed);
                }
            }
            StatusCode::NOT_FOUND => {
                return Err(Error::NotFound(format!("blob {} in {repo}", job.digest)))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => return Err(registry.unauthorized()),
            s => return Err(status_error("GET", &url, s, resp)),
        }
        let sinks = Sinks {
            blob: &mut blob,
            received: &mut received,
            diff: &mut diff,
        };
        match copy_body(resp, sinks, &mut buf, &counter, job.size) {
            Ok(()) => break,
            Err(CopyError::TooLong) => {
                return Err(Error::SizeMismatch {
                    digest: job.digest,
                    registry: registry.name.clone(),
                    expected: job.size,
                    actual: blob.len(),
                })
            }
            Err(CopyError::Local(source)) => {
                return Err(Error::Read {
                    what: format!("layer {}", job.digest),
                    registry: registry.name.clone(),
                    source,
                })
            }
            Err(CopyError::Network(e)) if attempt < registry.retries() => {
                attempt += 1;
                progress.event(Event::Retrying {
                    what: format!("layer {}", job.digest),
                    attempt,
                    error: e.to_string(),
                });
                backoff(attempt);
            }
            Err(CopyError::Network(source)) => {
                return Err(Error::Read {
                    what: format!("layer {}", job.digest),
                    registry: registry.name.clone(),
                    source,
                })
            }
        }
    }
    if blob.len() != job.size {
        return Err(Error::SizeMismatch {
            digest: job.digest,
            registry: registry.name.clone(),
            expected: job.size,
            actual: blob.len(),
        });
    }
    let actual = received.finish();
    if actual != job.digest {
        return Err(Error::DigestMismatch {
            what: format!("layer {}", job.digest),
            registry: registry.name.clone(),
            expected: job.digest,
            actual,
        });
    }
    let (diff_id, size) = diff.finish().map_err(|source| Error::Read {
        what: format!("the content of layer {}", job.digest),
        registry: registry.name.clone(),
        source,
    })?;
    if diff_id != job.diff_id {
        return Err(Error::DigestMismatch {
            what: format!("uncompressed content (diffID) of layer {}", job.digest),
            registry: registry.name.clone(),
            expected: job.diff_id,
            actual: diff_id,
        });
    }
    let compressed_size = blob.len();
    blob.commit(Some(&job.digest))?;
    progress.done(job.digest, compressed_size, started);
    Ok(LayerInfo {
        digest: job.digest,
        diff_id,
        size,
        compressed_size,
        media_type,
    })
}

enum CopyError {
    Network(io::Error),
    Local(io::Error),
    TooLong,
}

/// Where the bytes of a layer go as they arrive.
struct Sinks<'a> {
    blob: &'a mut tare_store::BlobWriter,
    received: &'a mut Hasher,
    diff: &'a mut DiffHasher,
}

fn copy_body(
    mut resp: reqwest::blocking::Response,
    sinks: Sinks<'_>,
    buf: &mut [u8],
    counter: &AtomicU64,
    expected: u64,
) -> std::result::Result<(), CopyError> {
    let Sinks {
        blob,
        received,
        diff,
    } = sinks;
    loop {
        let n = match resp.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(CopyError::Network(e)),
        };
        if blob.len() + n as u64 > expected {
            return Err(CopyError::TooLong);
        }
        blob.write_all(&buf[..n]).map_err(CopyError::Local)?;
        received.update(&buf[..n]);
        // A decoding error is a verdict on the content, given once all of it is hashed.
        diff.write_all(&buf[..n]);
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Decompresses a layer as it streams past and hashes the result: its diffID and size. A
/// decoding error is kept and reported by [`DiffHasher::finish`].
///
/// Write-side, unlike tare-layer's [`tare_layer::Decoder`]: the body is pushed here chunk by
/// chunk from the network loop, which also writes it to the blob and hashes it, so the
/// download is read once. A read-side decoder would need the body to be pulled through it,
/// and a decoding error would then stop the download before the digest can be checked.
struct DiffHasher {
    decoder: Decoder,
    error: Option<io::Error>,
}

enum Decoder {
    None(Counting),
    Gzip(Box<flate2::write::MultiGzDecoder<Counting>>),
    Zstd(Box<zstd::stream::write::Decoder<'static, Counting>>),
}

/// A sink that hashes what it is given.
#[derive(Default)]
struct Counting(Hasher);

impl Write for Counting {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl DiffHasher {
    fn new(c: Compression) -> io::Result<DiffHasher> {
        let decoder = match c {
            Compression::None => Decoder::None(Counting::default()),
            Compression::Gzip => Decoder::Gzip(Box::new(flate2::write::MultiGzDecoder::new(
                Counting::default(),
            ))),
            Compression::Zstd => Decoder::Zstd(Box::new(zstd::stream::write::Decoder::new(
                Counting::default(),
            )?)),
        };
        Ok(DiffHasher {
            decoder,
            error: None,
        })
    }

    fn write_all(&mut self, buf: &[u8]) {
        if self.error.is_some() {
            return;
        }
        let result = match &mut self.decoder {
            Decoder::None(w) => w.write_all(buf),
            Decoder::Gzip(w) => w.write_all(buf),
            Decoder::Zstd(w) => w.write_all(buf),
        };
        self.error = result.err();
    }

    /// The diffID and uncompressed size.
    fn finish(self) -> io::Result<(Digest, u64)> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let sink = match self.decoder {
            Decoder::None(w) => w,
            Decoder::Gzip(w) => w.finish()?,
            Decoder::Zstd(mut w) => {
                w.flush()?;
                w.into_inner()
            }
        };
        let len = sink.0.len();
        Ok((sink.0.finish(), len))
    }
}
