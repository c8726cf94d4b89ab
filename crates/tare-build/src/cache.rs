//! The build cache: a step's result, found again by what determines it.
//!
//! A step's key is the hash of its [`StepKey`](crate::key::StepKey): the parent state's key,
//! the instruction after expansion with every flag, the state the step reads, and for
//! COPY/ADD the content, mode and owner of every source file (not its mtime). Config-only
//! instructions have no key: what a step reads of the config is in its own key, so a RUN
//! after a changed ENV misses and a COPY after a changed LABEL hits. Records live in
//! `ROOT/cache/records/<key>.json` and hold the encoded key (`inputs`); the key of the
//! parent also indexes its children (`ROOT/cache/children/<parent>/<key>`), which is how
//! `--explain-cache` finds what a missed step was last time and compares the two inputs.
//!
//! Every record carries the cache format version ([`CACHE_FORMAT`]): a record of another
//! version is never used, and `tare prune --cache` removes it whatever the size limit.
//!
//! File hashes are remembered per host path with the file's stat data
//! (`ROOT/cache/files.json`): a file whose size, mtime, ctime and inode are unchanged is not
//! read again.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tare_store::{Hasher, LayerInfo, Store};

use crate::error::{io_err, Error};
pub use crate::key::CACHE_FORMAT;
use crate::tree::Node;

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    /// [`CACHE_FORMAT`] when written; 0 for records from before versions existed.
    #[serde(default)]
    pub format: u32,
    /// The step's key: the digest of its encoded [`StepKey`](crate::key::StepKey), the
    /// record's file name.
    pub key: String,
    /// The key of the state the step started from (the children index it is filed in).
    pub parent: String,
    /// The step's encoded [`StepKey`](crate::key::StepKey): what `--explain-cache` compares.
    #[serde(default)]
    pub inputs: Value,
    /// The layer the step made: the steps record one for every layer step, an empty diff
    /// included (`None` is read, from cache entries that hold no layer).
    pub layer: Option<LayerInfo>,
    /// RFC 3339 time the step first ran (kept, so a cached rebuild gives the same image).
    pub created: String,
    /// Unix seconds of the last use, for pruning (kept up to date as the file's mtime).
    #[serde(default)]
    pub used: u64,
}

impl Record {
    /// Whether this record may answer a step: written by this cache format.
    pub fn is_current(&self) -> bool {
        self.format == CACHE_FORMAT
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct FileStat {
    size: u64,
    mtime: i64,
    mtime_ns: i64,
    ctime: i64,
    ctime_ns: i64,
    ino: u64,
    digest: String,
}

impl FileStat {
    /// The stat data of `meta`, without a digest.
    fn of(meta: &fs::Metadata) -> FileStat {
        FileStat {
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
            ino: meta.ino(),
            digest: String::new(),
        }
    }

    /// Whether both describe the same, unchanged file.
    fn same_file(&self, other: &FileStat) -> bool {
        self.size == other.size
            && self.mtime == other.mtime
            && self.mtime_ns == other.mtime_ns
            && self.ctime == other.ctime
            && self.ctime_ns == other.ctime_ns
            && self.ino == other.ino
    }
}

/// Whether `opened` (the metadata of a descriptor) is the same, unchanged file as `listed`
/// (what a directory listing gave): same inode, size, mtime and ctime.
pub(crate) fn unchanged(listed: &fs::Metadata, opened: &fs::Metadata) -> bool {
    FileStat::of(listed).same_file(&FileStat::of(opened))
}

/// The cache of one store.
pub struct Cache {
    dir: PathBuf,
    files: Mutex<HashMap<String, FileStat>>,
    files_dirty: Mutex<bool>,
}

/// The sha256 (hex) of the parts, each length-prefixed so no two lists collide: a content
/// digest for inline sources. Step keys are [`StepKey`](crate::key::StepKey)s, not lists.
pub fn key_of(parts: &[&str]) -> String {
    let mut h = Hasher::new();
    for p in parts {
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    h.finish().hex()
}

impl Cache {
    /// Opens the cache under the store's root.
    pub fn open(store: &Store) -> Result<Cache, Error> {
        let dir = store.dir(tare_store::StoreDir::Cache)?;
        for sub in ["records", "children"] {
            let p = dir.join(sub);
            fs::create_dir_all(&p).map_err(io_err(&p))?;
        }
        let files = fs::read(dir.join("files.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or_default();
        Ok(Cache {
            dir,
            files: Mutex::new(files),
            files_dirty: Mutex::new(false),
        })
    }

    fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join("records").join(format!("{key}.json"))
    }

    /// Removes a record's entry in its parent's index (and the index when empty).
    fn remove_marker(&self, parent: &str, key: &str) {
        let children = self.dir.join("children").join(parent);
        let _ = fs::remove_file(children.join(key));
        let _ = fs::remove_dir(&children);
    }

    /// The record for `key`, when it is of this format and its layer is still in the store.
    pub fn get(&self, store: &Store, key: &str) -> Option<Record> {
        let path = self.record_path(key);
        let bytes = fs::read(&path).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
        if !record.is_current() || record.key != key {
            return None;
        }
        if let Some(layer) = &record.layer {
            if !store.has_blob(&layer.digest) {
                return None;
            }
        }
        // The record file's mtime is its last use (for pruning): cheaper than rewriting it.
        let _ = filetime::set_file_mtime(&path, filetime::FileTime::now());
        Some(record)
    }

    /// Stores a record (and indexes it under its parent).
    pub fn put(&self, record: &Record) -> Result<(), Error> {
        let json = serde_json::to_vec(record).map_err(|error| Error::Encode {
            what: "cache record",
            error,
        })?;
        tare_store::write_atomic(&self.record_path(&record.key), &json)?;
        let children = self.dir.join("children").join(&record.parent);
        fs::create_dir_all(&children).map_err(io_err(&children))?;
        let marker = children.join(&record.key);
        fs::write(&marker, b"").map_err(io_err(&marker))?;
        Ok(())
    }

    /// Why a step with these inputs (an encoded `StepKey`) missed: compared with the most
    /// recent record of this format that had the same parent.
    pub fn explain(&self, parent: &str, inputs: &Value) -> String {
        let children = self.dir.join("children").join(parent);
        let mut previous: Vec<Record> = fs::read_dir(&children)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read(self.record_path(&e.file_name().to_string_lossy())).ok())
            .filter_map(|b| serde_json::from_slice::<Record>(&b).ok())
            .filter(Record::is_current)
            .collect();
        previous.sort_by(|a, b| b.created.cmp(&a.created));
        let Some(prev) = previous.first() else {
            return "no cached result for this step after the same previous step (first build, an earlier step changed, or the cache is from an older tare)".to_string();
        };
        explain_difference(&prev.inputs, inputs)
    }

    /// The content digest remembered for `node`, when its stat data is unchanged since: the
    /// file is not read.
    pub fn known_digest(&self, node: &Node) -> Option<String> {
        let key = node.host.to_string_lossy();
        let files = self.files.lock().ok()?;
        let known = files.get(key.as_ref())?;
        known
            .same_file(&FileStat::of(&node.meta))
            .then(|| known.digest.clone())
    }

    /// Remembers the content digest of the file at `host`, taken while it was read through a
    /// descriptor whose metadata is `opened` (a COPY streaming it into the layer tar).
    pub(crate) fn remember(&self, host: &Path, opened: &fs::Metadata, digest: String) {
        if let Ok(mut files) = self.files.lock() {
            files.insert(
                host.to_string_lossy().into_owned(),
                FileStat {
                    digest,
                    ..FileStat::of(opened)
                },
            );
        }
        if let Ok(mut dirty) = self.files_dirty.lock() {
            *dirty = true;
        }
    }

    /// The content digest of a regular file of a source tree, read only when its stat data
    /// changed. The file is opened as COPY reads it ([`Node::open`]: below its tree, no
    /// symlink followed, regular files only, never blocking), and the stat data remembered is
    /// that of the opened file, which must still be the one `node` describes.
    pub fn file_digest(&self, node: &Node) -> Result<String, Error> {
        if let Some(known) = self.known_digest(node) {
            return Ok(known);
        }
        let listed = FileStat::of(&node.meta);
        let mut file = node.open()?;
        let opened = file.metadata().map_err(io_err(&node.host))?;
        if !FileStat::of(&opened).same_file(&listed) {
            return Err(Error::FileChanged {
                path: node.host.display().to_string(),
            });
        }
        let mut h = Hasher::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = file.read(&mut buf).map_err(io_err(&node.host))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest = h.finish().hex();
        self.remember(&node.host, &opened, digest.clone());
        Ok(digest)
    }

    /// Writes the file-hash table back when it changed.
    pub fn save(&self) -> Result<(), Error> {
        let dirty = self.files_dirty.lock().map(|d| *d).unwrap_or(false);
        if !dirty {
            return Ok(());
        }
        let files = match self.files.lock() {
            Ok(f) => serde_json::to_vec(&*f).map_err(|error| Error::Encode {
                what: "cache",
                error,
            })?,
            Err(_) => return Ok(()),
        };
        Ok(tare_store::write_atomic(
            &self.dir.join("files.json"),
            &files,
        )?)
    }
}

/// One step key computed at a time in this process: builds of several platforms run at
/// once, and a step they share (a `FROM --platform=$BUILDPLATFORM` stage's) is made by the
/// first to claim its key while the others wait, then find it in the cache, as BuildKit's
/// solver merges equal vertices. Released when dropped.
pub(crate) struct Claim {
    key: String,
}

static CLAIMED: std::sync::LazyLock<(
    Mutex<std::collections::HashSet<String>>,
    std::sync::Condvar,
)> = std::sync::LazyLock::new(Default::default);

impl Claim {
    /// Waits until no other thread holds `key`, then holds it.
    pub(crate) fn take(key: &str) -> Claim {
        let (set, freed) = &*CLAIMED;
        let mut held = set.lock().unwrap_or_else(|e| e.into_inner());
        while held.contains(key) {
            held = freed.wait(held).unwrap_or_else(|e| e.into_inner());
        }
        held.insert(key.to_string());
        Claim {
            key: key.to_string(),
        }
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        let (set, freed) = &*CLAIMED;
        set.lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
        freed.notify_all();
    }
}

/// The layers the cache's records hold: `tare prune` keeps them (with `Store::prune_keeping`)
/// so that removing unused images does not empty the build cache.
pub fn layers(store: &Store) -> Result<Vec<LayerInfo>, Error> {
    let cache = Cache::open(store)?;
    let dir = cache.dir.join("records");
    let layers = fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .flatten()
        .filter_map(|e| serde_json::from_slice::<Record>(&fs::read(e.path()).ok()?).ok())
        .filter(Record::is_current)
        .filter_map(|record| record.layer)
        .collect();
    Ok(layers)
}

/// What pruning the cache removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
    /// How many records were removed.
    pub records: usize,
    /// Uncompressed bytes of the layers the removed records held.
    pub bytes: u64,
}

/// Removes cache records, least recently used first, until the layers the remaining ones
/// hold add up to at most `keep_bytes` (all of them when `None`). The layers themselves are
/// blobs of the store: `Store::prune` removes those no image uses afterwards.
pub fn prune(store: &Store, keep_bytes: Option<u64>) -> Result<PruneReport, Error> {
    let cache = Cache::open(store)?;
    let dir = cache.dir.join("records");
    let mut report = PruneReport::default();
    let mut records: Vec<(PathBuf, Record)> = Vec::new();
    for entry in fs::read_dir(&dir).map_err(io_err(&dir))?.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let mtime = entry.metadata().map(|m| m.mtime()).unwrap_or(0);
        let record = fs::read(&path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Record>(&b).ok());
        match record {
            Some(mut record)
                if record.is_current()
                    && name.to_str() == Some(format!("{}.json", record.key).as_str()) =>
            {
                record.used = u64::try_from(mtime).unwrap_or(0);
                records.push((path, record));
            }
            // An older format (never used again), an unreadable record or one filed under
            // another key (never used either): always removed.
            other => {
                fs::remove_file(&path).map_err(io_err(&path))?;
                if let Some(record) = other {
                    // The file's own name: a misfiled record must not unlist the real one.
                    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
                    cache.remove_marker(&record.parent, stem);
                    report.bytes += record.layer.as_ref().map_or(0, |l| l.size);
                }
                report.records += 1;
            }
        }
    }
    // Most recently used first: those are kept while the size limit allows.
    records.sort_by(|(_, a), (_, b)| b.used.cmp(&a.used).then(b.created.cmp(&a.created)));
    let mut kept = 0u64;
    for (path, record) in records {
        let size = record.layer.as_ref().map_or(0, |l| l.size);
        let keep = match keep_bytes {
            Some(limit) => kept + size <= limit,
            None => false,
        };
        if keep {
            kept += size;
            continue;
        }
        fs::remove_file(&path).map_err(io_err(&path))?;
        cache.remove_marker(&record.parent, &record.key);
        report.records += 1;
        report.bytes += size;
    }
    if keep_bytes.is_none() {
        let _ = fs::remove_file(cache.dir.join("files.json"));
    }
    Ok(report)
}

/// What changed between a previous step's inputs and this one's, in words: build args
/// first, then source files, then the other fields of the key.
pub(crate) fn explain_difference(old: &Value, new: &Value) -> String {
    let (Some((old_kind, old)), Some((new_kind, new))) = (variant(old), variant(new)) else {
        return "the cached result is gone (its layer was pruned)".to_string();
    };
    if old_kind != new_kind {
        return format!("instruction changed: was a {old_kind} step, now a {new_kind} step");
    }
    let field = |v: &Value, name: &str| v.get(name).cloned().unwrap_or(Value::Null);
    let (old_args, new_args) = (field(old, "build_args"), field(new, "build_args"));
    if old_args != new_args {
        return format!(
            "build arg changed: {}",
            diff_pairs(&old_args, &new_args, true)
        );
    }
    let (old_files, new_files) = (field(old, "files"), field(new, "files"));
    if old_files != new_files {
        return format!(
            "context files changed: {}",
            diff_pairs(&old_files, &new_files, false)
        );
    }
    let mut changed: Vec<String> = Vec::new();
    if let (Some(o), Some(n)) = (old.as_object(), new.as_object()) {
        for (k, nv) in n {
            let ov = o.get(k).unwrap_or(&Value::Null);
            if ov != nv && k != "parent" {
                changed.push(format!("{k} ({} -> {})", short(ov), short(nv)));
            }
        }
    }
    if changed.is_empty() {
        return "the cached result is gone (its layer was pruned)".to_string();
    }
    format!("instruction changed: {}", changed.join(", "))
}

/// The variant name and fields of an encoded `StepKey` (`{"run": {...}}`).
fn variant(v: &Value) -> Option<(&str, &Value)> {
    match v {
        Value::Object(map) if map.len() == 1 => map.iter().next().map(|(k, v)| (k.as_str(), v)),
        Value::String(s) => Some((s.as_str(), &Value::Null)),
        _ => None,
    }
}

/// A JSON value for a message, cut at 80 characters.
fn short(v: &Value) -> String {
    let text = v.to_string();
    if text.chars().count() > 80 {
        format!("{}...", text.chars().take(80).collect::<String>())
    } else {
        text
    }
}

/// The names whose values differ between two lists of `[name, value]` pairs; with
/// `values`, the old and new values too (build args), else at most five names (files).
fn diff_pairs(old: &Value, new: &Value, values: bool) -> String {
    let pairs = |v: &Value| -> BTreeMap<String, String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let name = p.get(0)?.as_str()?.to_string();
                let value = p
                    .get(1)
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_string))?;
                Some((name, value))
            })
            .collect()
    };
    let (old, new) = (pairs(old), pairs(new));
    let mut changed: Vec<String> = Vec::new();
    for (k, v) in &new {
        match old.get(k) {
            Some(o) if o == v => {}
            Some(o) if values => changed.push(format!("{k} ({o:?} -> {v:?})")),
            None if values => changed.push(format!("{k} (new)")),
            _ => changed.push(k.clone()),
        }
    }
    for k in old.keys() {
        if !new.contains_key(k) {
            changed.push(if values {
                format!("{k} (removed)")
            } else {
                k.clone()
            });
        }
    }
    if values || changed.len() <= 5 {
        return changed.join(", ");
    }
    format!("{} and {} more", changed[..5].join(", "), changed.len() - 5)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(key: &str, parent: &str, used: u64, size: u64) -> Record {
        Record {
            format: CACHE_FORMAT,
            key: key.to_string(),
            parent: parent.to_string(),
            inputs: json!({"run": {"argv": [key]}}),
            layer: Some(LayerInfo {
                digest: tare_store::Digest::of(key.as_bytes()),
                diff_id: tare_store::Digest::of(key.as_bytes()),
                size,
                compressed_size: size,
                media_type: tare_store::MEDIA_TYPE_LAYER_TAR.to_string(),
            }),
            created: "2026-01-01T00:00:00Z".to_string(),
            used,
        }
    }

    #[test]
    fn prune_keeps_the_most_recently_used_within_the_size_limit() {
        let root = tempfile::tempdir().expect("tmp");
        let store = Store::open(root.path()).expect("store");
        let cache = Cache::open(&store).expect("cache");
        cache.put(&record("old", "p", 10, 600)).expect("put");
        cache.put(&record("new", "p", 20, 600)).expect("put");
        let at = |secs| filetime::FileTime::from_unix_time(secs, 0);
        filetime::set_file_mtime(cache.record_path("old"), at(1_000)).expect("mtime");
        filetime::set_file_mtime(cache.record_path("new"), at(2_000)).expect("mtime");
        let report = prune(&store, Some(1000)).expect("prune");
        assert_eq!(
            report,
            PruneReport {
                records: 1,
                bytes: 600
            }
        );
        assert!(cache.record_path("new").exists());
        assert!(!cache.record_path("old").exists());
        let report = prune(&store, None).expect("prune all");
        assert_eq!(report.records, 1);
    }

    #[test]
    fn records_of_another_format_are_never_used_and_always_pruned() {
        let root = tempfile::tempdir().expect("tmp");
        let store = Store::open(root.path()).expect("store");
        let cache = Cache::open(&store).expect("cache");
        // A record as tare wrote them before format versions (no `format` field), with no
        // layer so that only the format can make it unusable.
        let old = json!({"key": "k1", "parent": "p", "instruction": "COPY f /f # buildkit",
            "args": [], "files": [], "layer": null, "created": "2026-01-01T00:00:00Z"});
        fs::write(cache.record_path("k1"), old.to_string()).expect("write old");
        let mut current = record("k2", "p", 0, 0);
        current.layer = None;
        cache.put(&current).expect("put");
        assert!(cache.get(&store, "k1").is_none());
        assert!(cache.get(&store, "k2").is_some());
        // Neither does a record filed under another key.
        fs::copy(cache.record_path("k2"), cache.record_path("k3")).expect("copy");
        assert!(cache.get(&store, "k3").is_none());
        // A generous limit keeps the current record and removes the old one.
        let report = prune(&store, Some(1 << 40)).expect("prune");
        assert_eq!(report.records, 2, "the old record and the misfiled one");
        assert!(!cache.record_path("k1").exists());
        assert!(cache.record_path("k2").exists());
    }

    #[test]
    fn explain_names_changed_files_args_and_flags() {
        let root = tempfile::tempdir().expect("tmp");
        let store = Store::open(root.path()).expect("store");
        let cache = Cache::open(&store).expect("cache");
        let inputs = |chown: Option<&str>, v: &str, b: &str| {
            json!({"copy": {"parent": "parent", "chown": chown, "build_args": [["V", v]],
                "files": [["a", "1"], ["b", b]]}})
        };
        let mut r = record("k", "parent", 1, 1);
        r.inputs = inputs(None, "1", "2");
        cache.put(&r).expect("put");
        let why = cache.explain("parent", &inputs(None, "1", "3"));
        assert_eq!(why, "context files changed: b");
        let why = cache.explain("parent", &inputs(None, "2", "3"));
        assert_eq!(why, "build arg changed: V (\"1\" -> \"2\")");
        let why = cache.explain("parent", &inputs(Some("7:7"), "1", "2"));
        assert_eq!(why, "instruction changed: chown (null -> \"7:7\")");
        let why = cache.explain("other", &inputs(None, "1", "2"));
        assert!(why.starts_with("no cached result"), "{why}");
    }

    /// A context file listed as a regular file, then swapped for a fifo or for a symlink to a
    /// host file before its digest is taken: the read must neither hang nor follow the link.
    #[test]
    fn file_digest_reads_the_listed_file_only() {
        let root = tempfile::tempdir().expect("tmp");
        let store = Store::open(root.path().join("store")).expect("store");
        let cache = Cache::open(&store).expect("cache");
        let ctx = root.path().join("ctx");
        std::fs::create_dir(&ctx).expect("ctx");
        let secret = root.path().join("secret");
        std::fs::write(&secret, "host secret").expect("secret");
        let listed = |name: &str| {
            let host = ctx.join(name);
            std::fs::write(&host, "context file").expect("write");
            Node {
                meta: std::fs::symlink_metadata(&host).expect("stat"),
                host,
                base: ctx.clone(),
            }
        };
        let good = listed("good");
        assert_eq!(
            cache.file_digest(&good).expect("digest"),
            tare_store::Digest::of(b"context file").hex()
        );

        let fifo = listed("fifo");
        std::fs::remove_file(&fifo.host).expect("rm");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo.host)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let err = chain(&cache.file_digest(&fifo).expect_err("a fifo is not read"));
        assert!(err.contains("not a regular file"), "{err}");

        let link = listed("link");
        std::fs::remove_file(&link.host).expect("rm");
        std::os::unix::fs::symlink(&secret, &link.host).expect("symlink");
        let err = cache
            .file_digest(&link)
            .expect_err("a symlink is not followed");
        assert!(err.to_string().contains("link"), "{err}");

        // A file replaced by another regular file after it was listed: refused too.
        let swapped = listed("swapped");
        std::fs::remove_file(&swapped.host).expect("rm");
        std::fs::write(&swapped.host, "another file").expect("write");
        let err = chain(&cache.file_digest(&swapped).expect_err("changed"));
        assert!(err.contains("changed while the build read it"), "{err}");
    }

    /// An error and its sources, for assertions.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            text.push_str(&format!(": {s}"));
            source = s.source();
        }
        text
    }
}
