//! The build cache in a registry: `--cache-to type=registry,ref=R[,mode=min|max]` and
//! `--cache-from type=registry,ref=R` (issue 15); the same entries in an OCI layout
//! directory with `type=local,dest=DIR` / `src=DIR` ([`local`]).
//!
//! One entry per step key, each its own small OCI manifest tagged `tare-cache-<key>` in the
//! cache repository, so a builder finds a step's entry with one `GET` and writers never
//! rewrite a shared index: four machines exporting to one ref at once each add their own
//! tags, and two that export the same key write the same bytes. The manifest's config blob
//! is the [`Entry`] (media type [`ENTRY_MEDIA_TYPE`]): the key, the parent key, the encoded
//! inputs (for `--explain-cache`), the layer's descriptor and when the step first ran; its
//! one layer (none for a step without a layer) is the step's layer blob, so the registry
//! keeps the blob alive and an export of a blob the repository holds costs one `HEAD`.
//!
//! Entries are data, never code: an entry is used only when its key is the step's key, its
//! parent is the state the step runs on, and its inputs hash to that key; its layer is
//! verified by digest and diffID before it enters the store. See "The build cache in a
//! registry" in docs/ARCHITECTURE.md for what a writer of the cache ref can and cannot do.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tare_registry::{Access, NoReporter, Repository};
use tare_store::{error_chain, Digest, LayerInfo, Reference};

use crate::cache::Record;
use crate::context::Build;
use crate::error::Error;
use crate::key::{digest_of, CACHE_FORMAT};
use crate::report::Event;

mod local;

/// The version of the entry format ([`Entry::format`]); entries of another are ignored.
pub const ENTRY_FORMAT: u32 = 1;
/// The media type of an entry's config blob.
pub const ENTRY_MEDIA_TYPE: &str = "application/vnd.tare.cache.entry.v1+json";
/// Each entry's tag: this prefix and the step's key (64 hex digits).
pub const TAG_PREFIX: &str = "tare-cache-";
/// The largest entry config read (a COPY of many files has a long input list).
pub const MAX_ENTRY: u64 = 8 << 20;
pub(crate) const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const ANNOTATION_KEY: &str = "dev.tare.cache.key";
const ANNOTATION_PARENT: &str = "dev.tare.cache.parent";
const ANNOTATION_CREATED: &str = "org.opencontainers.image.created";

/// Which steps an export writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// The steps of the final image: the target stage and the stages it is built FROM.
    #[default]
    Min,
    /// Every step the build ran or found, intermediate stages included.
    Max,
}

/// Where a cache lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A repository of a registry (the tag of the reference is not used).
    Registry(Reference),
    /// An OCI image layout directory (`type=local,dest=DIR` / `src=DIR`).
    Local(std::path::PathBuf),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Registry(r) => write!(f, "{}", r.name()),
            Location::Local(dir) => write!(f, "{}", dir.display()),
        }
    }
}

/// A `--cache-to` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheTo {
    pub location: Location,
    pub mode: Mode,
}

/// A `--cache-from` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheFrom {
    pub location: Location,
}

/// `key=value,...` as buildx writes cache options; a bare value is `ref=` (buildx's short
/// form `--cache-from user/app:cache`).
fn fields(flag: &str, text: &str) -> Result<BTreeMap<String, String>, Error> {
    let mut map = BTreeMap::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = match part.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_string()),
            None if !text.contains('=') => ("ref".to_string(), part.trim().to_string()),
            None => {
                return Err(Error::Invalid(format!(
                    "{flag} {text:?}: {part:?} is not key=value"
                )))
            }
        };
        if map.insert(k.clone(), v).is_some() {
            return Err(Error::Invalid(format!("{flag} {text:?}: {k} given twice")));
        }
    }
    if !map.contains_key("type") && map.contains_key("ref") {
        map.insert("type".into(), "registry".into());
    }
    Ok(map)
}

/// The location `map` names; `dir_key` is the option that names a `type=local` directory
/// (`dest` for `--cache-to`, `src` for `--cache-from`, as buildx spells them).
fn location(
    flag: &str,
    text: &str,
    map: &mut BTreeMap<String, String>,
    dir_key: &str,
) -> Result<Location, Error> {
    let kind = map.remove("type").unwrap_or_default();
    match kind.as_str() {
        "registry" => {
            let r = map.remove("ref").ok_or_else(|| {
                Error::Invalid(format!(
                    "{flag} {text:?}: type=registry needs ref=REPOSITORY"
                ))
            })?;
            let reference = Reference::parse(&r)
                .map_err(|e| Error::Invalid(format!("{flag} {text:?}: ref {r:?}: {e}")))?;
            Ok(Location::Registry(reference))
        }
        "local" => {
            let dir = map.remove(dir_key).filter(|d| !d.is_empty()).ok_or_else(|| {
                Error::Invalid(format!(
                    "{flag} {text:?}: type=local needs {dir_key}=DIRECTORY"
                ))
            })?;
            Ok(Location::Local(dir.into()))
        }
        "inline" | "gha" | "s3" | "azblob" => Err(Error::Invalid(format!(
            "{flag} {text:?}: type={kind} is not supported by tare (type=registry and type=local are)"
        ))),
        other => Err(Error::Invalid(format!(
            "{flag} {text:?}: unknown cache type {other:?} (type=registry or type=local)"
        ))),
    }
}

fn no_more(flag: &str, text: &str, map: BTreeMap<String, String>) -> Result<(), Error> {
    match map.keys().next() {
        None => Ok(()),
        Some(k) => Err(Error::Invalid(format!(
            "{flag} {text:?}: unknown option {k:?}"
        ))),
    }
}

impl CacheTo {
    /// Parses `type=registry,ref=R[,mode=min|max]`.
    pub fn parse(text: &str) -> Result<CacheTo, Error> {
        let flag = "--cache-to";
        let mut map = fields(flag, text)?;
        let location = location(flag, text, &mut map, "dest")?;
        let mode = match map.remove("mode").as_deref() {
            None | Some("min") => Mode::Min,
            Some("max") => Mode::Max,
            Some(other) => {
                return Err(Error::Invalid(format!(
                    "{flag} {text:?}: mode must be min or max, not {other:?}"
                )))
            }
        };
        // buildx's exporter options that mean nothing for tare's format.
        for ignored in ["image-manifest", "oci-mediatypes", "ignore-error", "tag"] {
            map.remove(ignored);
        }
        no_more(flag, text, map)?;
        Ok(CacheTo { location, mode })
    }
}

impl CacheFrom {
    /// Parses `type=registry,ref=R` (or just `R`).
    pub fn parse(text: &str) -> Result<CacheFrom, Error> {
        let flag = "--cache-from";
        let mut map = fields(flag, text)?;
        let location = location(flag, text, &mut map, "src")?;
        // buildx's local importer picks a manifest by tag or digest; tare reads every entry.
        map.remove("tag");
        map.remove("digest");
        no_more(flag, text, map)?;
        Ok(CacheFrom { location })
    }
}

/// The tag of a key's entry.
pub fn tag_of(key: &str) -> String {
    format!("{TAG_PREFIX}{key}")
}

/// One cache entry: the config blob of the entry's manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Entry {
    /// [`ENTRY_FORMAT`].
    pub format: u32,
    /// The local cache's [`CACHE_FORMAT`] (the keys' version).
    pub cache_format: u32,
    pub key: String,
    /// The key of the state the step ran on.
    pub parent: String,
    /// The step's encoded `StepKey`, which hashes to `key`.
    pub inputs: Value,
    /// The layer blob (as it is in the registry), `None` for a step without a layer.
    pub layer: Option<LayerInfo>,
    /// File bytes of the layer, as docker counts a layer's size.
    #[serde(default)]
    pub content_size: Option<u64>,
    /// RFC 3339 time the step first ran (the image's history keeps it).
    pub created: String,
}

impl Entry {
    fn of(record: &Record, content_size: Option<u64>) -> Entry {
        Entry {
            format: ENTRY_FORMAT,
            cache_format: CACHE_FORMAT,
            key: record.key.clone(),
            parent: record.parent.clone(),
            inputs: record.inputs.clone(),
            layer: record.layer.clone(),
            content_size,
            created: record.created.clone(),
        }
    }

    /// Why this entry may not answer the step with `key` on the state `parent`, if it may not.
    fn refuse(&self, key: &str, parent: &str) -> Option<String> {
        if self.format != ENTRY_FORMAT {
            return Some(format!(
                "entry format {} (this tare reads {ENTRY_FORMAT})",
                self.format
            ));
        }
        if self.cache_format != CACHE_FORMAT {
            return Some(format!(
                "cache format {} (this tare keys steps with {CACHE_FORMAT})",
                self.cache_format
            ));
        }
        if self.key != key {
            return Some(format!(
                "it is filed under {key} but claims key {}",
                self.key
            ));
        }
        if self.parent != parent {
            return Some(format!(
                "it claims the parent {}, but the step runs on {parent}",
                self.parent
            ));
        }
        if digest_of(&self.inputs) != key {
            return Some("its inputs do not hash to its key".into());
        }
        if chrono::DateTime::parse_from_rfc3339(&self.created).is_err() {
            return Some(format!("its time {:?} is not RFC 3339", self.created));
        }
        if let Some(layer) = &self.layer {
            match tare_layer::Compression::from_media_type(&layer.media_type) {
                None => return Some(format!("unknown layer type {:?}", layer.media_type)),
                Some(tare_layer::Compression::None)
                    if layer.digest != layer.diff_id || layer.size != layer.compressed_size =>
                {
                    return Some("an uncompressed layer whose digest is not its diffID".into())
                }
                Some(_) => {}
            }
        }
        None
    }

    fn record(&self) -> Record {
        Record {
            format: CACHE_FORMAT,
            key: self.key.clone(),
            parent: self.parent.clone(),
            inputs: self.inputs.clone(),
            layer: self.layer.clone(),
            created: self.created.clone(),
            used: 0,
        }
    }
}

/// The fields of an entry's manifest that are read.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EntryManifest {
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default)]
    annotations: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor {
    media_type: String,
    digest: Digest,
    size: u64,
}

/// The manifest of an entry whose config blob is `config` (`size` bytes).
fn manifest_of(entry: &Entry, config: &Digest, size: usize) -> Result<Vec<u8>, Error> {
    let layers: Vec<Value> = entry
        .layer
        .iter()
        .map(|l| json!({"mediaType": l.media_type, "digest": l.digest.to_string(), "size": l.compressed_size}))
        .collect();
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": ENTRY_MEDIA_TYPE, "digest": config.to_string(), "size": size},
        "layers": layers,
        "annotations": {
            ANNOTATION_KEY: entry.key,
            ANNOTATION_PARENT: entry.parent,
            ANNOTATION_CREATED: entry.created,
        },
    });
    serde_json::to_vec(&manifest).map_err(|e| Error::Invalid(format!("cache entry manifest: {e}")))
}

/// A `--cache-from` source during one build: connected on first use; after a failure to
/// connect, not asked again.
struct Source {
    location: Location,
    session: OnceLock<Option<Session>>,
}

/// A connected `--cache-from` source.
enum Session {
    Registry(Box<Repository>),
    Local(local::Layout),
}

impl Session {
    fn connect(build: &Build<'_>, location: &Location) -> Result<Session, String> {
        match location {
            Location::Registry(reference) => {
                Repository::connect(reference, &registry_options(build), Access::Pull, &[])
                    .map(|r| Session::Registry(Box::new(r)))
                    .map_err(|e| error_chain(&e))
            }
            Location::Local(dir) => local::Layout::open(dir).map(Session::Local),
        }
    }

    /// The manifest tagged `tag`, `None` when there is none.
    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Session::Registry(repo) => repo.manifest(tag).map_err(|e| error_chain(&e)),
            Session::Local(layout) => layout.manifest(tag),
        }
    }

    /// A small blob of `size` bytes (at most `limit`), verified.
    fn blob(&self, digest: &Digest, size: u64, limit: u64) -> Result<Vec<u8>, String> {
        match self {
            Session::Registry(repo) => repo.blob(digest, size, limit).map_err(|e| error_chain(&e)),
            Session::Local(layout) => layout.blob(digest, size, limit),
        }
    }

    /// Fetches a layer into the store, verified by digest and diffID.
    fn fetch_layer(
        &self,
        store: &tare_store::Store,
        layer: &LayerInfo,
    ) -> Result<LayerInfo, String> {
        match self {
            Session::Registry(repo) => repo
                .fetch_layer(store, layer, &NoReporter)
                .map_err(|e| error_chain(&e)),
            Session::Local(layout) => layout.fetch_layer(store, layer),
        }
    }
}

/// A layer a remote hit named and did not fetch (a lazy hit): where it is, its size as docker
/// counts it, and the record the local cache keeps once it is fetched.
#[derive(Clone)]
struct Lazy {
    source: usize,
    record: Record,
    layer: LayerInfo,
    content_size: u64,
}

/// A layer of a build's result that stayed in the registry (see
/// [`BuildOptions::push_only`](crate::BuildOptions::push_only)): a push finds it in the
/// cache repository or mounts it from there.
#[derive(Debug, Clone)]
pub struct RemoteLayer {
    pub layer: LayerInfo,
    /// The cache repository that holds it.
    pub repository: String,
}

/// The remote side of one build's cache: where steps are looked up, the layers of lazy hits,
/// and the records of the steps this build ran or found, for the export.
pub(crate) struct Remote {
    sources: Vec<Source>,
    /// Each layer step's record with its stage's index, in the order they finished.
    used: Mutex<Vec<(usize, Record)>>,
    /// Lazy hits' layers by diffID.
    lazy: Mutex<BTreeMap<Digest, Lazy>>,
    /// Keys whose entry's layer could not be fetched: not taken from a remote again.
    refused: Mutex<BTreeSet<String>>,
}

impl Remote {
    pub fn new(from: &[CacheFrom]) -> Remote {
        Remote {
            sources: from
                .iter()
                .map(|f| Source {
                    location: f.location.clone(),
                    session: OnceLock::new(),
                })
                .collect(),
            used: Mutex::new(Vec::new()),
            lazy: Mutex::new(BTreeMap::new()),
            refused: Mutex::new(BTreeSet::new()),
        }
    }

    /// Forgets the records noted by a build attempt that failed (a new one notes its own).
    pub fn restart(&self) {
        if let Ok(mut used) = self.used.lock() {
            used.clear();
        }
    }

    /// How many entries this build refused after their layer could not be fetched.
    pub fn refused(&self) -> usize {
        self.refused.lock().map_or(0, |r| r.len())
    }

    fn lazy_of(&self, layer: &LayerInfo) -> Option<Lazy> {
        let lazy = self.lazy.lock().ok()?;
        lazy.get(&layer.diff_id)
            .filter(|l| l.layer.digest == layer.digest)
            .cloned()
    }

    /// Whether any of `layers` is a lazy hit's layer the store does not have yet.
    pub fn any_lazy(&self, store: &tare_store::Store, layers: &[LayerInfo]) -> bool {
        layers
            .iter()
            .any(|l| !store.has_blob(&l.digest) && self.lazy_of(l).is_some())
    }

    /// A layer's size as docker counts it: what the entry said for a lazy hit's layer (not
    /// here to count), else from the store.
    pub fn content_size(&self, store: &tare_store::Store, layer: &LayerInfo) -> Result<u64, Error> {
        if !store.has_blob(&layer.digest) {
            if let Some(lazy) = self.lazy_of(layer) {
                return Ok(lazy.content_size);
            }
        }
        Ok(tare_layer::content_size(store, layer)?)
    }

    /// The sizes of `layers` added up, as [`Self::content_size`] counts each.
    pub fn layers_content_size(
        &self,
        store: &tare_store::Store,
        layers: &[LayerInfo],
    ) -> Result<u64, Error> {
        layers.iter().try_fold(0u64, |total, l| {
            Ok(total.saturating_add(self.content_size(store, l)?))
        })
    }

    /// The cache repository a lazy hit's layer (not in the store) is in, `None` for a layer
    /// the store has or that no hit named.
    pub fn remote_repository(
        &self,
        store: &tare_store::Store,
        layer: &LayerInfo,
    ) -> Option<Reference> {
        if store.has_blob(&layer.digest) {
            return None;
        }
        let lazy = self.lazy_of(layer)?;
        match &self.sources.get(lazy.source)?.location {
            Location::Registry(r) => Some(r.clone()),
            Location::Local(_) => None,
        }
    }

    /// Makes sure the store has `layer`: a lazy hit's layer is fetched now (verified by digest
    /// and diffID, as a pull) and its record enters the local cache. Returns the stored
    /// layer. A layer that cannot be fetched is an [`Error::RemoteLayer`], and its entry is
    /// not used again by this build (see `crate::engine::build`).
    pub fn materialize(&self, build: &Build<'_>, layer: &LayerInfo) -> Result<LayerInfo, Error> {
        let store = build.store;
        if store.has_blob(&layer.digest) {
            return Ok(layer.clone());
        }
        let Some(lazy) = self.lazy_of(layer) else {
            return Err(tare_store::Error::BlobNotFound(layer.digest).into());
        };
        let source = &self.sources[lazy.source];
        let fetched = match source.session.get().and_then(Option::as_ref) {
            Some(session) => session.fetch_layer(store, &lazy.layer),
            None => Err("the cache is not connected".to_string()),
        };
        let info = match fetched {
            Ok(info) => info,
            Err(reason) => {
                if let Ok(mut refused) = self.refused.lock() {
                    refused.insert(lazy.record.key.clone());
                }
                return Err(Error::RemoteLayer {
                    digest: layer.digest,
                    tag: tag_of(&lazy.record.key),
                    repository: source.location.to_string(),
                    reason,
                });
            }
        };
        store.record_content_size(&info.diff_id, lazy.content_size)?;
        let mut record = lazy.record.clone();
        record.layer = Some(info.clone());
        build.cache.put(&record)?;
        Ok(info)
    }

    /// Remembers a step's record for the export.
    pub fn note(&self, stage: usize, record: &Record) {
        if let Ok(mut used) = self.used.lock() {
            used.push((stage, record.clone()));
        }
    }

    /// The record of `key` from the first `--cache-from` source that has a usable entry, its
    /// layer fetched into the store (verified) and the record kept in the local cache. A
    /// source that fails, or an entry that is refused, is a warning and a miss.
    pub fn lookup(&self, build: &Build<'_>, key: &str, parent: &str) -> Option<Record> {
        if self.refused.lock().map_or(true, |r| r.contains(key)) {
            return None;
        }
        for (index, source) in self.sources.iter().enumerate() {
            let session =
                source
                    .session
                    .get_or_init(|| match Session::connect(build, &source.location) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            warn(
                                build,
                                format!("--cache-from {}: not used: {e}", source.location),
                            );
                            None
                        }
                    });
            let Some(repo) = session else { continue };
            match find(build, repo, key, parent) {
                Ok(Some(Found::Here(record))) => return Some(record),
                Ok(Some(Found::Lazy(record, content_size))) => {
                    let Some(layer) = record.layer.clone() else {
                        continue;
                    };
                    if let Ok(mut lazy) = self.lazy.lock() {
                        lazy.insert(
                            layer.diff_id,
                            Lazy {
                                source: index,
                                record: record.clone(),
                                layer,
                                content_size,
                            },
                        );
                        return Some(record);
                    }
                }
                Ok(None) => {}
                Err(reason) => warn(
                    build,
                    format!(
                        "--cache-from {}: entry {} ignored: {reason}",
                        source.location,
                        tag_of(key)
                    ),
                ),
            }
        }
        None
    }

    /// The records noted so far, with their stages.
    pub fn records(&self) -> Vec<(usize, Record)> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

fn registry_options(build: &Build<'_>) -> tare_registry::Options {
    build
        .opts
        .registry
        .clone()
        .unwrap_or_else(tare_registry::Options::from_env)
}

fn warn(build: &Build<'_>, message: String) {
    build.report(Event::Warning { message });
}

/// A usable entry.
enum Found {
    /// Its layer (if any) is in the store, and its record in the local cache.
    Here(Record),
    /// Its layer stays in the registry until a step or the image needs it (a lazy hit), with
    /// its size as docker counts it.
    Lazy(Record, u64),
}

/// Reads and checks the entry of `key` in `repo`; `Ok(None)` when there is none, `Err` with
/// the reason when it cannot be used. The layer is not fetched when the store lacks it and
/// the entry gives its size (every entry tare writes does): the hit is lazy.
fn find(
    build: &Build<'_>,
    repo: &Session,
    key: &str,
    parent: &str,
) -> Result<Option<Found>, String> {
    let Some(bytes) = repo.manifest(&tag_of(key))? else {
        return Ok(None);
    };
    let manifest: EntryManifest =
        serde_json::from_slice(&bytes).map_err(|e| format!("its manifest is not valid: {e}"))?;
    if manifest.config.media_type != ENTRY_MEDIA_TYPE {
        return Err(format!(
            "its config is a {:?}, not a tare cache entry",
            manifest.config.media_type
        ));
    }
    if manifest.config.size > MAX_ENTRY {
        return Err(format!(
            "its config is {} bytes, more than {MAX_ENTRY}",
            manifest.config.size
        ));
    }
    let config = repo.blob(&manifest.config.digest, manifest.config.size, MAX_ENTRY)?;
    let entry: Entry =
        serde_json::from_slice(&config).map_err(|e| format!("its config is not an entry: {e}"))?;
    if let Some(reason) = entry.refuse(key, parent) {
        return Err(reason);
    }
    let listed: Vec<(Digest, u64)> = manifest.layers.iter().map(|d| (d.digest, d.size)).collect();
    let claimed: Vec<(Digest, u64)> = entry
        .layer
        .iter()
        .map(|l| (l.digest, l.compressed_size))
        .collect();
    if listed != claimed {
        return Err("its manifest's layers are not the entry's layer".into());
    }
    let mut record = entry.record();
    if let Some(layer) = &entry.layer {
        let store = build.store;
        let have = store
            .layer_variants(&layer.diff_id)
            .map_err(|e| error_chain(&e))?
            .into_iter()
            .find(|v| store.has_blob(&v.digest));
        let info = match (have, entry.content_size) {
            (Some(info), _) => info,
            (None, Some(n)) => {
                // The registry holds the blob (it accepted a manifest naming it): a push of
                // the result may mount it from here.
                if let Session::Registry(repo) = repo {
                    repo.note_holds(store, &[layer.digest])
                        .map_err(|e| error_chain(&e))?;
                }
                return Ok(Some(Found::Lazy(record, n)));
            }
            (None, None) => repo.fetch_layer(store, layer)?,
        };
        if let Some(n) = entry.content_size {
            store
                .record_content_size(&info.diff_id, n)
                .map_err(|e| error_chain(&e))?;
        }
        record.layer = Some(info);
    }
    build.cache.put(&record).map_err(|e| error_chain(&e))?;
    Ok(Some(Found::Here(record)))
}

/// The stages an export of `mode` writes: all that were built, or the target and the stages
/// it is built FROM.
fn exported_stages(build: &Build<'_>, mode: Mode, target: usize) -> Option<BTreeSet<usize>> {
    if mode == Mode::Max {
        return None;
    }
    let mut stages = BTreeSet::new();
    let mut next = Some(target);
    while let Some(i) = next {
        if !stages.insert(i) {
            break;
        }
        next = build.dockerfile.stages.get(i).and_then(|s| s.base_stage);
    }
    Some(stages)
}

/// Writes the cache entries of this build to every `--cache-to`. A failure is a warning:
/// the image is built, and an entry is written only after its blobs are in the registry, so
/// a half-done export leaves nothing that points at a missing blob.
pub(crate) fn export(build: &Build<'_>, target: usize) {
    let records = build.remote.records();
    for to in &build.opts.cache_to {
        let stages = exported_stages(build, to.mode, target);
        let mut seen = BTreeSet::new();
        let chosen: Vec<&Record> = records
            .iter()
            .filter(|(stage, _)| stages.as_ref().is_none_or(|s| s.contains(stage)))
            .map(|(_, r)| r)
            .filter(|r| seen.insert(r.key.clone()))
            .collect();
        let exported = match &to.location {
            Location::Registry(reference) => export_to(build, reference, &chosen),
            Location::Local(dir) => export_local(build, dir, &chosen),
        };
        if let Err(e) = exported {
            warn(
                build,
                format!(
                    "--cache-to {}: the cache was not exported: {}",
                    to.location,
                    error_chain(&e)
                ),
            );
        }
    }
}

/// An entry ready to be written.
pub(crate) struct Prepared {
    pub tag: String,
    pub manifest: Vec<u8>,
    /// The store blobs it names: its layer (if any) and its config.
    pub blobs: Vec<Digest>,
}

/// Each record's entry (its config blob is put into the store).
fn entries_of(build: &Build<'_>, records: &[&Record]) -> Result<Vec<Prepared>, Error> {
    let store = build.store;
    let mut entries = Vec::new();
    for record in records {
        let content_size = match &record.layer {
            Some(l) => Some(build.remote.content_size(store, l)?),
            None => None,
        };
        let entry = Entry::of(record, content_size);
        let config = serde_json::to_vec(&entry)
            .map_err(|e| Error::Invalid(format!("cache entry {}: {e}", record.key)))?;
        let config_digest = store.put_bytes(&config)?;
        let manifest = manifest_of(&entry, &config_digest, config.len())?;
        let mut blobs: Vec<Digest> = entry.layer.iter().map(|l| l.digest).collect();
        blobs.push(config_digest);
        entries.push(Prepared {
            tag: tag_of(&record.key),
            manifest,
            blobs,
        });
    }
    Ok(entries)
}

/// Writes the entries of `records` into the OCI layout `dir`; lazy hits' layers are fetched
/// first (the directory must hold every blob an entry names).
fn export_local(
    build: &Build<'_>,
    dir: &std::path::Path,
    records: &[&Record],
) -> Result<(), Error> {
    for record in records {
        if let Some(layer) = &record.layer {
            build.remote.materialize(build, layer)?;
        }
    }
    local::export(build.store, dir, &entries_of(build, records)?)
}

fn export_to(build: &Build<'_>, reference: &Reference, records: &[&Record]) -> Result<(), Error> {
    let store = build.store;
    let options = registry_options(build);
    let entries = entries_of(build, records)?;
    let mut sources: Vec<String> = Vec::new();
    for entry in &entries {
        for b in &entry.blobs {
            for s in Repository::mount_sources(store, reference, b) {
                if !sources.contains(&s) {
                    sources.push(s);
                }
            }
        }
    }
    let repo = Repository::connect(reference, &options, Access::Push, &sources)?;
    // Entries the repository already has, byte for byte, cost one HEAD.
    let mut missing = Vec::new();
    for entry in entries {
        if repo.manifest_digest(&entry.tag)? != Some(Digest::of(&entry.manifest)) {
            missing.push(entry);
        }
    }
    let blobs: Vec<Digest> = missing
        .iter()
        .flat_map(|e| e.blobs.iter().copied())
        .collect();
    repo.push_blobs(store, &blobs, &options, &NoReporter)?;
    for entry in &missing {
        repo.put_manifest(&entry.tag, OCI_MANIFEST, &entry.manifest)?;
    }
    Ok(())
}

/// An entry as `tare cache ls` shows it: what its manifest says (its config is not read).
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    pub tag: String,
    /// The manifest's digest (what a delete removes).
    pub digest: Digest,
    pub key: String,
    pub parent: String,
    /// When the step first ran; `None` when the manifest does not say (or not in RFC 3339).
    pub created: Option<chrono::DateTime<chrono::Utc>>,
    /// The layer blob's size in the registry, 0 for a step without a layer.
    pub size: u64,
}

/// The entries of the cache repository of `reference`: every tag with [`TAG_PREFIX`] whose
/// manifest is a tare cache entry. Other tags are not touched.
pub fn list(reference: &Reference, options: &tare_registry::Options) -> Result<Vec<Listed>, Error> {
    let repo = Repository::connect(reference, options, Access::Pull, &[])?;
    list_in(&repo)
}

fn list_in(repo: &Repository) -> Result<Vec<Listed>, Error> {
    let mut listed = Vec::new();
    for tag in repo.tags()? {
        let Some(key) = tag.strip_prefix(TAG_PREFIX) else {
            continue;
        };
        // Deleted between the listing and now (another prune): nothing to show.
        let Some(bytes) = repo.manifest(&tag)? else {
            continue;
        };
        let Ok(manifest) = serde_json::from_slice::<EntryManifest>(&bytes) else {
            continue;
        };
        if manifest.config.media_type != ENTRY_MEDIA_TYPE {
            continue;
        }
        let annotation = |k: &str| manifest.annotations.get(k).cloned().unwrap_or_default();
        listed.push(Listed {
            digest: Digest::of(&bytes),
            key: key.to_string(),
            parent: annotation(ANNOTATION_PARENT),
            created: chrono::DateTime::parse_from_rfc3339(&annotation(ANNOTATION_CREATED))
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc)),
            size: manifest.layers.iter().map(|l| l.size).sum(),
            tag,
        });
    }
    listed.sort_by(|a, b| a.created.cmp(&b.created).then(a.tag.cmp(&b.tag)));
    Ok(listed)
}

/// Deletes the entries of the cache repository of `reference` made before `before` (and
/// those that do not say when they were made) through the registry's API; returns them. The
/// layer blobs go when the registry's garbage collector finds no manifest using them.
pub fn prune(
    reference: &Reference,
    options: &tare_registry::Options,
    before: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<Listed>, Error> {
    let repo = Repository::connect(reference, options, Access::Delete, &[])?;
    let mut removed = Vec::new();
    for entry in list_in(&repo)? {
        if entry.created.is_some_and(|t| t >= before) {
            continue;
        }
        repo.delete_manifest(&entry.digest)?;
        removed.push(entry);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_options_parse_as_buildx_writes_them() {
        let to = CacheTo::parse("type=registry,ref=localhost:5000/app:cache,mode=max").expect("to");
        assert_eq!(to.mode, Mode::Max);
        assert_eq!(to.location.to_string(), "localhost:5000/app");
        let from = CacheFrom::parse("localhost:5000/app:cache").expect("short form");
        assert_eq!(from.location, to.location);
        for bad in [
            "type=registry",
            "type=registry,ref=r,mode=all",
            "type=registry,ref=r,colour=red",
            "type=nope,ref=r",
            "type=registry,ref=r,ref=s",
        ] {
            assert!(CacheTo::parse(bad).is_err(), "{bad}");
        }
    }

    fn entry() -> Entry {
        let inputs = json!({"run": {"parent": "p", "argv": ["true"]}});
        let layer = LayerInfo {
            digest: Digest::of(b"tar"),
            diff_id: Digest::of(b"tar"),
            size: 3,
            compressed_size: 3,
            media_type: tare_store::MEDIA_TYPE_LAYER_TAR.into(),
        };
        Entry {
            format: ENTRY_FORMAT,
            cache_format: CACHE_FORMAT,
            key: digest_of(&inputs),
            parent: "p".into(),
            inputs,
            layer: Some(layer),
            content_size: Some(0),
            created: "2026-11-30T00:00:00Z".into(),
        }
    }

    #[test]
    fn an_entry_answers_only_its_own_key_on_its_own_parent() {
        let e = entry();
        let key = e.key.clone();
        assert_eq!(e.refuse(&key, "p"), None);
        assert!(e.refuse(&key, "q").is_some_and(|r| r.contains("parent")));
        assert!(e.refuse("other", "p").is_some());
        let mut forged = entry();
        forged.inputs = json!({"run": {"parent": "p", "argv": ["false"]}});
        assert!(forged.refuse(&key, "p").is_some_and(|r| r.contains("hash")));
        let mut future = entry();
        future.format = ENTRY_FORMAT + 1;
        assert!(future.refuse(&key, "p").is_some());
        let mut layer = entry();
        if let Some(l) = layer.layer.as_mut() {
            l.diff_id = Digest::of(b"other");
        }
        assert!(layer.refuse(&key, "p").is_some());
    }
}
