//! One repository of a registry used as a store of small manifests and the blobs they name:
//! what tare-build's remote build cache keeps its entries in (`--cache-to type=registry`).
//!
//! The same verification as pull and push: manifests and small blobs are read with a size
//! limit and checked against their digests, layers stream into the store and are committed
//! only when their digest and diffID both match, uploads HEAD first and mount across
//! repositories when tare knows a source.

use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::StatusCode;
use tare_layer::Compression;
use tare_store::{Digest, LayerInfo, Reference, Store};

use crate::client::{read_limited, status_error, Registry};
use crate::error::{Error, Result};
use crate::manifest::{self, Descriptor};
use crate::progress::{run_parallel, Reporter};
use crate::pull::{fetch_layer, get_small_blob, LayerJob};
use crate::push::{push_blob, Blob};
use crate::{sources, Options};

/// What a session may do in the repository (the token's scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read manifests and blobs.
    Pull,
    /// Read, and write manifests and blobs.
    Push,
    /// Push and delete manifests (`tare cache prune`).
    Delete,
}

/// A session with one repository.
pub struct Repository {
    registry: Registry,
    domain: String,
    repo: String,
}

/// Tag listings read at most this many pages.
const MAX_TAG_PAGES: usize = 10_000;

impl Repository {
    /// Connects to the repository of `reference` (its tag or digest is ignored). With push
    /// access, `mount_sources` are the other repositories whose blobs a push may mount.
    pub fn connect(
        reference: &Reference,
        options: &Options,
        access: Access,
        mount_sources: &[String],
    ) -> Result<Repository> {
        let domain = reference.domain().to_string();
        let repo = reference.path().to_string();
        let actions = match access {
            Access::Pull => "pull",
            Access::Push => "pull,push",
            Access::Delete => "pull,push,delete",
        };
        let mut scopes = vec![format!("repository:{repo}:{actions}")];
        for source in mount_sources.iter().filter(|s| **s != repo).take(4) {
            scopes.push(format!("repository:{source}:pull"));
        }
        let creds = options.auth.lookup(&domain)?;
        let registry = Registry::connect(&domain, options, creds, scopes)?;
        Ok(Repository {
            registry,
            domain,
            repo,
        })
    }

    /// `registry/repository`, for messages.
    pub fn name(&self) -> String {
        format!("{}/{}", self.domain, self.repo)
    }

    /// The repositories of this registry known to hold `digest` (besides this one): the
    /// sources a push may mount it from.
    pub fn mount_sources(store: &Store, reference: &Reference, digest: &Digest) -> Vec<String> {
        sources::lookup(store, reference.domain(), digest, reference.path())
    }

    /// The manifest tagged `tag` (or with that digest), `None` when the registry has none;
    /// read with the usual 4 MiB limit and checked against the digest the registry claims.
    pub fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>> {
        let url = self
            .registry
            .url(&format!("v2/{}/manifests/{tag}", self.repo))?;
        let resp = self.registry.send("GET", &url, |c| {
            Ok(c.get(url.clone()).header(ACCEPT, manifest::ACCEPT))
        })?;
        match resp.status() {
            StatusCode::OK => {}
            StatusCode::NOT_FOUND => return Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                return Err(self.registry.unauthorized())
            }
            s => return Err(status_error("GET", &url, s, resp)),
        }
        let claimed = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        let what = format!("the manifest {}:{tag}", self.name());
        let bytes = read_limited(resp, manifest::MAX_MANIFEST, &what, &self.registry.name)?;
        let actual = Digest::of(&bytes);
        let expected = tag.parse::<Digest>().ok().or(claimed);
        if let Some(expected) = expected.filter(|e| *e != actual) {
            return Err(Error::DigestMismatch {
                what,
                registry: self.registry.name.clone(),
                expected,
                actual,
            });
        }
        Ok(Some(bytes))
    }

    /// The digest of the manifest tagged `tag` (one `HEAD`), `None` when there is none.
    pub fn manifest_digest(&self, tag: &str) -> Result<Option<Digest>> {
        let url = self
            .registry
            .url(&format!("v2/{}/manifests/{tag}", self.repo))?;
        let resp = self.registry.send("HEAD", &url, |c| {
            Ok(c.head(url.clone()).header(ACCEPT, manifest::ACCEPT))
        })?;
        match resp.status() {
            StatusCode::OK => Ok(resp
                .headers()
                .get("docker-content-digest")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Digest>().ok())),
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.registry.unauthorized()),
            s => Err(status_error("HEAD", &url, s, resp)),
        }
    }

    /// A small blob (at most `limit` bytes, and at most the `size` its descriptor gives),
    /// verified against its digest.
    pub fn blob(&self, digest: &Digest, size: u64, limit: u64) -> Result<Vec<u8>> {
        if size > limit {
            return Err(Error::TooLarge {
                what: format!("the blob {digest} of {}", self.name()),
                limit,
            });
        }
        let desc = Descriptor {
            media_type: String::new(),
            digest: digest.to_string(),
            size,
            platform: None,
        };
        let bytes = get_small_blob(&self.registry, &self.repo, &desc, limit)?;
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(Error::DigestMismatch {
                what: format!("blob {digest}"),
                registry: self.registry.name.clone(),
                expected: *digest,
                actual,
            });
        }
        Ok(bytes)
    }

    /// Whether the repository holds the blob (one `HEAD`).
    pub fn has_blob(&self, digest: &Digest) -> Result<bool> {
        let url = self
            .registry
            .url(&format!("v2/{}/blobs/{digest}", self.repo))?;
        let resp = self
            .registry
            .send("HEAD", &url, |c| Ok(c.head(url.clone())))?;
        match resp.status() {
            StatusCode::OK => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.registry.unauthorized()),
            s => Err(status_error("HEAD", &url, s, resp)),
        }
    }

    /// Fetches the layer `layer` names (its digest, diffID, compressed size and media type)
    /// into the store, unless the store has it; verified by digest and diffID before it is
    /// committed. Returns the stored layer.
    pub fn fetch_layer(
        &self,
        store: &Store,
        layer: &LayerInfo,
        reporter: &dyn Reporter,
    ) -> Result<LayerInfo> {
        let compression =
            Compression::from_media_type(&layer.media_type).ok_or_else(|| Error::Unsupported {
                what: format!("layer type of {}", layer.digest),
                media_type: layer.media_type.clone(),
            })?;
        let job = LayerJob {
            digest: layer.digest,
            diff_id: layer.diff_id,
            size: layer.compressed_size,
            compression,
        };
        let mut fetched = run_parallel(1, std::slice::from_ref(&job), reporter, |job, p| {
            fetch_layer(store, &self.registry, &self.repo, job, p)
        })?;
        let info = fetched.pop().ok_or_else(|| Error::Invalid {
            what: format!("layer {}", layer.digest),
            registry: self.registry.name.clone(),
            reason: "nothing fetched".into(),
        })?;
        store.record_layer(&info)?;
        sources::record(store, &self.domain, &self.repo, &[info.digest])?;
        Ok(info)
    }

    /// Uploads the store's blobs the repository lacks (`HEAD` first, then a cross-repository
    /// mount when tare knows a source, then an upload), `jobs` at once.
    pub fn push_blobs(
        &self,
        store: &Store,
        digests: &[Digest],
        options: &Options,
        reporter: &dyn Reporter,
    ) -> Result<()> {
        let mut blobs: Vec<Blob> = Vec::new();
        for digest in digests {
            if blobs.iter().any(|b| b.digest == *digest) {
                continue;
            }
            let mount = sources::lookup(store, &self.domain, digest, &self.repo)
                .into_iter()
                .next();
            // A blob the store lacks (a lazy remote cache hit's layer) is only HEADed or mounted.
            let local = store.has_blob(digest);
            blobs.push(Blob {
                digest: *digest,
                size: if local { store.blob_size(digest)? } else { 0 },
                kind: "blob",
                mount,
                local,
            });
        }
        run_parallel(options.jobs, &blobs, reporter, |blob, progress| {
            push_blob(
                store,
                &self.registry,
                &self.repo,
                blob,
                options.chunk_size,
                progress,
            )
        })?;
        sources::record(store, &self.domain, &self.repo, digests)
    }

    /// Remembers that this repository holds `digests` (a manifest of it names them), so a
    /// push to another repository of the registry mounts them from here.
    pub fn note_holds(&self, store: &Store, digests: &[Digest]) -> Result<()> {
        sources::record(store, &self.domain, &self.repo, digests)
    }

    /// Uploads a manifest under `tag` (a tag, or its own digest); returns its digest.
    pub fn put_manifest(&self, tag: &str, media_type: &str, bytes: &[u8]) -> Result<Digest> {
        let url = self
            .registry
            .url(&format!("v2/{}/manifests/{tag}", self.repo))?;
        let body = bytes.to_vec();
        let resp = self.registry.send("PUT", &url, |c| {
            Ok(c.put(url.clone())
                .header(CONTENT_TYPE, media_type)
                .body(body.clone()))
        })?;
        match resp.status() {
            s if s.is_success() => Ok(Digest::of(bytes)),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.registry.unauthorized()),
            s => Err(status_error("PUT", &url, s, resp)),
        }
    }

    /// Every tag of the repository (following the registry's `Link` pages).
    pub fn tags(&self) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct List {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let mut url = self
            .registry
            .url(&format!("v2/{}/tags/list?n=1000", self.repo))?;
        let mut tags = Vec::new();
        for _ in 0..MAX_TAG_PAGES {
            let resp = self
                .registry
                .send("GET", &url, |c| Ok(c.get(url.clone())))?;
            match resp.status() {
                StatusCode::OK => {}
                // distribution answers 404 NAME_UNKNOWN for a repository nothing was pushed to.
                StatusCode::NOT_FOUND => return Ok(tags),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                    return Err(self.registry.unauthorized())
                }
                s => return Err(status_error("GET", &url, s, resp)),
            }
            let next = resp
                .headers()
                .get(reqwest::header::LINK)
                .and_then(|v| v.to_str().ok())
                .and_then(next_link);
            let what = format!("the tag list of {}", self.name());
            let body = read_limited(resp, manifest::MAX_MANIFEST, &what, &self.registry.name)?;
            let list: List = serde_json::from_slice(&body).map_err(|e| Error::Invalid {
                what: what.clone(),
                registry: self.registry.name.clone(),
                reason: e.to_string(),
            })?;
            tags.extend(list.tags.unwrap_or_default());
            match next {
                Some(path) => url = self.registry.url(path.trim_start_matches('/'))?,
                None => return Ok(tags),
            }
        }
        Ok(tags)
    }

    /// Deletes the manifest with this digest (and so every tag naming it). An error names
    /// the registry when it does not allow deletes.
    pub fn delete_manifest(&self, digest: &Digest) -> Result<()> {
        let url = self
            .registry
            .url(&format!("v2/{}/manifests/{digest}", self.repo))?;
        let resp = self
            .registry
            .send("DELETE", &url, |c| Ok(c.delete(url.clone())))?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            // Already gone (another prune was first): what was asked for is true.
            StatusCode::NOT_FOUND => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED => Err(Error::Invalid {
                what: format!("DELETE of a manifest in {}", self.name()),
                registry: self.registry.name.clone(),
                reason:
                    "the registry does not allow deletes (distribution: storage.delete.enabled)"
                        .into(),
            }),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(self.registry.unauthorized()),
            s => Err(status_error("DELETE", &url, s, resp)),
        }
    }
}

/// The path of a `Link: </v2/...>; rel="next"` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (target, params) = part.split_once(';')?;
        if !params.contains("rel=\"next\"") && !params.contains("rel=next") {
            return None;
        }
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        // Only a path on the same registry: a full URL elsewhere is not followed.
        target.starts_with('/').then(|| target.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::next_link;

    #[test]
    fn next_link_takes_only_a_path_on_the_same_registry() {
        assert_eq!(
            next_link("</v2/r/tags/list?last=a&n=2>; rel=\"next\"").as_deref(),
            Some("/v2/r/tags/list?last=a&n=2")
        );
        assert_eq!(next_link("<https://evil/v2/x>; rel=\"next\""), None);
        assert_eq!(next_link("</v2/r/tags/list>; rel=\"prev\""), None);
    }
}
