//! `--cache-from`: looking steps up in the cache sources, and the layers of lazy hits.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Mutex, OnceLock};

use tare_registry::{Access, Repository};
use tare_store::{error_chain, Digest, LayerInfo, Reference};

use super::entry::{tag_of, Entry, EntryManifest};
use super::inline::{self, InlineEntries};
use super::options::{CacheFrom, Location};
use super::{local, ENTRY_MEDIA_TYPE, MAX_ENTRY};
use crate::cache::{Cache, Record};
use crate::error::Error;
use crate::report::{Event, Reporter};

/// What the remote cache uses of a build, lent by the engine for each call (so this module
/// does not depend on the build's context).
pub(crate) struct Env<'a> {
    pub store: &'a tare_store::Store,
    /// The local cache, where fetched entries' records are kept.
    pub cache: &'a Cache,
    pub reporter: &'a dyn Reporter,
    /// The build's step counter: a cache transfer is a step of its own ([`Env::transfer_step`]).
    pub steps: &'a std::sync::atomic::AtomicUsize,
    /// Registry settings; `None`: from the environment, as `tare push` without flags.
    pub registry: Option<&'a tare_registry::Options>,
    /// The platform built (`None`: this machine's): which manifest of an index holds the
    /// inline cache a `--cache-from type=registry,ref=IMAGE` reads.
    pub platform: Option<&'a crate::Platform>,
}

impl Env<'_> {
    pub(super) fn registry_options(&self) -> tare_registry::Options {
        self.registry
            .cloned()
            .unwrap_or_else(tare_registry::Options::from_env)
    }

    pub(super) fn warn(&self, message: String) {
        self.reporter
            .report(std::time::SystemTime::now(), Event::Warning { message });
    }
}

/// A `--cache-from` source during one build: connected on first use; after a failure to
/// connect, not asked again.
pub(super) struct Source {
    pub location: Location,
    pub session: OnceLock<Option<Session>>,
    /// Its tags, listed once by the first `--explain-cache` that asks.
    pub tags: OnceLock<Vec<String>>,
}

/// A connected `--cache-from` source.
pub(super) enum Session {
    /// A repository, with the inline cache of the image its reference names, if any.
    Registry(Box<Repository>, Option<Box<InlineEntries>>),
    Local(local::Layout),
}

impl Session {
    fn connect(env: &Env<'_>, location: &Location) -> Result<Session, String> {
        match location {
            Location::Registry(reference) => {
                let repo =
                    Repository::connect(reference, &env.registry_options(), Access::Pull, &[])
                        .map_err(|e| error_chain(&e))?;
                let platform = env.platform.cloned().unwrap_or_else(crate::Platform::host);
                let inline = match inline::read(&repo, reference, &platform) {
                    Ok(found) => found.map(Box::new),
                    Err(reason) => {
                        env.warn(format!(
                            "--cache-from {}: the inline cache of {} is not used: {reason}",
                            location,
                            reference.name()
                        ));
                        None
                    }
                };
                Ok(Session::Registry(Box::new(repo), inline))
            }
            Location::Local(dir) => local::Layout::open(dir).map(Session::Local),
            Location::Inline => Err("type=inline is written by --cache-to, not read".into()),
        }
    }

    /// The manifest tagged `tag`, `None` when there is none.
    fn manifest(&self, tag: &str) -> Result<Option<Vec<u8>>, String> {
        match self {
            Session::Registry(repo, _) => repo.manifest(tag).map_err(|e| error_chain(&e)),
            Session::Local(layout) => layout.manifest(tag),
        }
    }

    /// The repository's tags (a registry's tag listing, a directory's index).
    pub(super) fn tags(&self) -> Result<Vec<String>, String> {
        match self {
            Session::Registry(repo, _) => repo.tags().map_err(|e| error_chain(&e)),
            Session::Local(layout) => Ok(layout.tags()),
        }
    }

    /// A small blob of `size` bytes (at most `limit`), verified.
    fn blob(&self, digest: &Digest, size: u64, limit: u64) -> Result<Vec<u8>, String> {
        match self {
            Session::Registry(repo, _) => {
                repo.blob(digest, size, limit).map_err(|e| error_chain(&e))
            }
            Session::Local(layout) => layout.blob(digest, size, limit),
        }
    }

    /// Fetches a layer into the store, verified by digest and diffID, as a step of its own
    /// (`importing cache from SOURCE`, a bar for the layer).
    fn fetch_layer(&self, env: &Env<'_>, layer: &LayerInfo) -> Result<LayerInfo, String> {
        let store = env.store;
        let source = match self {
            Session::Registry(repo, _) => repo.name(),
            Session::Local(layout) => layout.dir().display().to_string(),
        };
        let step = env.transfer_step(format!("importing cache from {source}"));
        let fetched = match self {
            Session::Registry(repo, _) => repo
                .fetch_layer(store, layer, &step)
                .map_err(|e| error_chain(&e)),
            Session::Local(layout) => layout.fetch_layer(store, layer, &step),
        };
        if let Err(reason) = &fetched {
            step.log(format!("not imported: {reason}"));
        }
        step.finish(layer.compressed_size);
        fetched
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
    /// The layer, as the cache entry records it.
    pub layer: LayerInfo,
    /// The cache repository that holds it.
    pub repository: String,
}

/// The remote side of one build's cache: where steps are looked up, the layers of lazy hits,
/// and the records of the steps this build ran or found, for the export.
pub(crate) struct Remote {
    pub(super) sources: Vec<Source>,
    /// Each layer step's record with its stage's index, in the order they finished.
    used: Mutex<Vec<(usize, Record)>>,
    /// The layers each stage starts from (its base image's, or its FROM stage's), by stage:
    /// an export carries them too, so a push on a fresh machine mounts them.
    bases: Mutex<BTreeMap<usize, Vec<LayerInfo>>>,
    /// The blobs already recorded as held by a registry source ([`Remote::lookup`]), by
    /// source.
    noted: Mutex<BTreeSet<(usize, Digest)>>,
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
                    tags: OnceLock::new(),
                })
                .collect(),
            used: Mutex::new(Vec::new()),
            bases: Mutex::new(BTreeMap::new()),
            noted: Mutex::new(BTreeSet::new()),
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
            Location::Local(_) | Location::Inline => None,
        }
    }

    /// Makes sure the store has `layer`: a lazy hit's layer is fetched now (verified by digest
    /// and diffID, as a pull) and its record enters the local cache. Returns the stored
    /// layer. A layer that cannot be fetched is an [`Error::RemoteLayer`], and its entry is
    /// not used again by this build (the engine then builds again).
    pub fn materialize(&self, env: &Env<'_>, layer: &LayerInfo) -> Result<LayerInfo, Error> {
        let store = env.store;
        if store.has_blob(&layer.digest) {
            return Ok(layer.clone());
        }
        let Some(lazy) = self.lazy_of(layer) else {
            return Err(tare_store::Error::BlobNotFound(layer.digest).into());
        };
        let source = &self.sources[lazy.source];
        let fetched = match source.session.get().and_then(Option::as_ref) {
            Some(session) => session.fetch_layer(env, &lazy.layer),
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
        env.cache.put(&record)?;
        Ok(info)
    }

    /// Remembers a step's record for the export, and the layers its stage starts from
    /// (`base`).
    pub fn note(&self, stage: usize, record: &Record, base: &[LayerInfo]) {
        if let Ok(mut used) = self.used.lock() {
            used.push((stage, record.clone()));
        }
        if let Ok(mut bases) = self.bases.lock() {
            bases.entry(stage).or_insert_with(|| base.to_vec());
        }
    }

    /// The layers the stages start from, by stage ([`Self::note`]).
    pub(super) fn bases(&self) -> BTreeMap<usize, Vec<LayerInfo>> {
        self.bases.lock().map(|b| b.clone()).unwrap_or_default()
    }

    /// Records that the registry source `index` holds `digests` (a hit's layer and the layers
    /// below it: an export writes an entry only after all of them), so a push to another
    /// repository of that registry mounts them from there; each digest once per build. Only
    /// a hint: a blob that is not there costs the mount request, and the push uploads it.
    fn note_holds(&self, env: &Env<'_>, index: usize, repo: &Repository, digests: &[Digest]) {
        let new: Vec<Digest> = match self.noted.lock() {
            Ok(mut noted) => digests
                .iter()
                .filter(|d| noted.insert((index, **d)))
                .copied()
                .collect(),
            Err(_) => return,
        };
        if new.is_empty() {
            return;
        }
        if let Err(e) = repo.note_holds(env.store, &new) {
            env.warn(format!(
                "--cache-from {}: {}",
                self.sources[index].location,
                error_chain(&e)
            ));
        }
    }

    /// The record of `key` from the first `--cache-from` source that has a usable entry, its
    /// layer fetched into the store (verified) and the record kept in the local cache, or
    /// left in the registry (a lazy hit). A source that fails, or an entry that is refused,
    /// is a warning and a miss. `below` are the layers of the state the step runs on.
    pub fn lookup(
        &self,
        env: &Env<'_>,
        key: &str,
        parent: &str,
        below: &[LayerInfo],
    ) -> Option<Record> {
        if self.refused.lock().map_or(true, |r| r.contains(key)) {
            return None;
        }
        for (index, source) in self.sources.iter().enumerate() {
            let session =
                source
                    .session
                    .get_or_init(|| match Session::connect(env, &source.location) {
                        Ok(s) => Some(s),
                        Err(e) => {
                            env.warn(format!("--cache-from {}: not used: {e}", source.location));
                            None
                        }
                    });
            let Some(repo) = session else { continue };
            let found = find(env, repo, key, parent);
            if let (
                Ok(Some(Found::Here(record) | Found::Lazy(record, _))),
                Session::Registry(r, _),
            ) = (&found, repo)
            {
                let digests: Vec<Digest> = below
                    .iter()
                    .chain(&record.layer)
                    .map(|l| l.digest)
                    .collect();
                self.note_holds(env, index, r, &digests);
            }
            match found {
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
                Err(reason) => env.warn(format!(
                    "--cache-from {}: entry {} ignored: {reason}",
                    source.location,
                    tag_of(key)
                )),
            }
        }
        None
    }

    /// The records noted so far, with their stages.
    pub fn records(&self) -> Vec<(usize, Record)> {
        self.used.lock().map(|u| u.clone()).unwrap_or_default()
    }
}

/// A usable entry.
enum Found {
    /// Its layer (if any) is in the store, and its record in the local cache.
    Here(Record),
    /// Its layer stays in the registry until a step or the image needs it (a lazy hit), with
    /// its size as docker counts it.
    Lazy(Record, u64),
}

/// Reads the entry tagged `tag` in `repo`, its manifest and its config (verified by
/// digest, with size limits); `Ok(None)` when there is none, `Err` with the reason when it
/// is not a tare cache entry. The caller checks it ([`Entry::refuse`]).
pub(super) fn read_entry(
    repo: &Session,
    tag: &str,
) -> Result<Option<(EntryManifest, Entry)>, String> {
    let Some(bytes) = repo.manifest(tag)? else {
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
    Ok(Some((manifest, entry)))
}

/// Reads and checks the entry of `key` in `repo` (the inline cache of its image first, then
/// the key's tag); `Ok(None)` when there is none, `Err` with the reason when it cannot be
/// used.
fn find(env: &Env<'_>, repo: &Session, key: &str, parent: &str) -> Result<Option<Found>, String> {
    if let Session::Registry(_, Some(inline)) = repo {
        if let Some(entry) = inline.get(key) {
            let refused = entry
                .refuse(key, parent)
                .or_else(|| inline.refuse_layer(entry));
            if let Some(reason) = refused {
                return Err(format!("the inline cache of {}: {reason}", inline.image));
            }
            return use_entry(env, repo, entry).map(Some);
        }
    }
    let Some((manifest, entry)) = read_entry(repo, &tag_of(key))? else {
        return Ok(None);
    };
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
    use_entry(env, repo, &entry).map(Some)
}

/// A checked entry of `repo` as a hit. The layer is not fetched when the store lacks it and
/// the entry gives its size (every entry tare writes does): the hit is lazy.
fn use_entry(env: &Env<'_>, repo: &Session, entry: &Entry) -> Result<Found, String> {
    let mut record = entry.record();
    if let Some(layer) = &entry.layer {
        let store = env.store;
        let have = store
            .layer_variants(&layer.diff_id)
            .map_err(|e| error_chain(&e))?
            .into_iter()
            .find(|v| store.has_blob(&v.digest));
        let info = match (have, entry.content_size) {
            (Some(info), _) => info,
            // The registry holds the blob (it accepted a manifest naming it): a push of the
            // result mounts it from there (`Remote::lookup` notes it).
            (None, Some(n)) => return Ok(Found::Lazy(record, n)),
            (None, None) => repo.fetch_layer(env, layer)?,
        };
        if let Some(n) = entry.content_size {
            store
                .record_content_size(&info.diff_id, n)
                .map_err(|e| error_chain(&e))?;
        }
        record.layer = Some(info);
    }
    env.cache.put(&record).map_err(|e| error_chain(&e))?;
    Ok(Found::Here(record))
}
