//! The build cache: a step's result, found again by what determines it.
//!
//! A step's key is the sha256 of its parent's key, its instruction after expansion, the build
//! args it sees, and for COPY/ADD the content, mode and owner of every source file (not its
//! mtime). Config-only instructions chain into the key too, so a RUN after a changed ENV
//! misses. Records live in `ROOT/cache/records/<key>.json`; the key of the parent also
//! indexes its children (`ROOT/cache/children/<parent>/<key>`), which is how
//! `--explain-cache` finds what a missed step was last time.
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
use sha2::{Digest as _, Sha256};
use tare_store::{LayerInfo, Store};

use crate::error::{io_err, Error};

/// What a cached step produced.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Record {
    pub key: String,
    pub parent: String,
    /// The instruction after expansion.
    pub instruction: String,
    /// `KEY=VALUE` build args the step saw.
    pub args: Vec<String>,
    /// Source files (path, content digest) for COPY/ADD.
    #[serde(default)]
    pub files: Vec<(String, String)>,
    /// The layer, `None` for an empty diff.
    pub layer: Option<LayerInfo>,
    /// RFC 3339 time the step first ran (kept, so a cached rebuild gives the same image).
    pub created: String,
    /// Unix seconds of the last use, for pruning (kept up to date as the file's mtime).
    #[serde(default)]
    pub used: u64,
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

/// The cache of one store.
pub struct Cache {
    dir: PathBuf,
    files: Mutex<HashMap<String, FileStat>>,
    files_dirty: Mutex<bool>,
}

/// The sha256 (hex) of the parts, each length-prefixed so no two lists collide.
pub fn key_of(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update((p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
    }
    hex(&h.finalize())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Cache {
    /// Opens the cache under the store's root.
    pub fn open(store: &Store) -> Result<Cache, Error> {
        let dir = store.root().join("cache");
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

    /// The record for `key`, when its layer is still in the store.
    pub fn get(&self, store: &Store, key: &str) -> Option<Record> {
        let path = self.record_path(key);
        let bytes = fs::read(&path).ok()?;
        let record: Record = serde_json::from_slice(&bytes).ok()?;
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
        let json =
            serde_json::to_vec(record).map_err(|e| Error::Invalid(format!("cache record: {e}")))?;
        write_atomic(&self.record_path(&record.key), &json)?;
        let children = self.dir.join("children").join(&record.parent);
        fs::create_dir_all(&children).map_err(io_err(&children))?;
        let marker = children.join(&record.key);
        fs::write(&marker, b"").map_err(io_err(&marker))?;
        Ok(())
    }

    /// Why a step with these inputs missed: compared with the most recent record that had
    /// the same parent. Build args come first: a RUN's text includes them.
    pub fn explain(
        &self,
        parent: &str,
        instruction: &str,
        args: &[String],
        files: &[(String, String)],
    ) -> String {
        let children = self.dir.join("children").join(parent);
        let mut previous: Vec<Record> = fs::read_dir(&children)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| fs::read(self.record_path(&e.file_name().to_string_lossy())).ok())
            .filter_map(|b| serde_json::from_slice::<Record>(&b).ok())
            .collect();
        previous.sort_by(|a, b| b.created.cmp(&a.created));
        let Some(prev) = previous.first() else {
            return "no cached result for this step after the same previous step (first build, or an earlier step changed)".to_string();
        };
        if prev.args != args {
            let old: BTreeMap<&str, &str> = prev
                .args
                .iter()
                .map(|a| a.split_once('=').unwrap_or((a, "")))
                .collect();
            let new: BTreeMap<&str, &str> = args
                .iter()
                .map(|a| a.split_once('=').unwrap_or((a, "")))
                .collect();
            let mut changed: Vec<String> = Vec::new();
            for (k, v) in &new {
                match old.get(k) {
                    Some(o) if o == v => {}
                    Some(o) => changed.push(format!("{k} ({o:?} -> {v:?})")),
                    None => changed.push(format!("{k} (new)")),
                }
            }
            for k in old.keys() {
                if !new.contains_key(k) {
                    changed.push(format!("{k} (removed)"));
                }
            }
            return format!("build arg changed: {}", changed.join(", "));
        }
        if prev.instruction != instruction {
            return format!("instruction changed: was {:?}", prev.instruction);
        }
        let old: BTreeMap<&str, &str> = prev
            .files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_str()))
            .collect();
        let new: BTreeMap<&str, &str> = files
            .iter()
            .map(|(p, d)| (p.as_str(), d.as_str()))
            .collect();
        let mut changed: Vec<&str> = Vec::new();
        for (p, d) in &new {
            if old.get(p) != Some(d) {
                changed.push(p);
            }
        }
        for p in old.keys() {
            if !new.contains_key(p) {
                changed.push(p);
            }
        }
        if changed.is_empty() {
            return "the cached result is gone (its layer was pruned)".to_string();
        }
        let shown: Vec<&str> = changed.iter().take(5).copied().collect();
        let more = if changed.len() > 5 {
            format!(" and {} more", changed.len() - 5)
        } else {
            String::new()
        };
        format!("context files changed: {}{more}", shown.join(", "))
    }

    /// The content digest of a regular file, read only when its stat data changed.
    pub fn file_digest(&self, path: &Path, meta: &fs::Metadata) -> Result<String, Error> {
        let key = path.to_string_lossy().into_owned();
        let stat = FileStat {
            size: meta.len(),
            mtime: meta.mtime(),
            mtime_ns: meta.mtime_nsec(),
            ctime: meta.ctime(),
            ctime_ns: meta.ctime_nsec(),
            ino: meta.ino(),
            digest: String::new(),
        };
        if let Ok(files) = self.files.lock() {
            if let Some(known) = files.get(&key) {
                if known.size == stat.size
                    && known.mtime == stat.mtime
                    && known.mtime_ns == stat.mtime_ns
                    && known.ctime == stat.ctime
                    && known.ctime_ns == stat.ctime_ns
                    && known.ino == stat.ino
                {
                    return Ok(known.digest.clone());
                }
            }
        }
        let mut file = fs::File::open(path).map_err(io_err(path))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 256 << 10];
        loop {
            let n = file.read(&mut buf).map_err(io_err(path))?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        let digest = hex(&h.finalize());
        if let Ok(mut files) = self.files.lock() {
            files.insert(
                key,
                FileStat {
                    digest: digest.clone(),
                    ..stat
                },
            );
        }
        if let Ok(mut dirty) = self.files_dirty.lock() {
            *dirty = true;
        }
        Ok(digest)
    }

    /// Writes the file-hash table back when it changed.
    pub fn save(&self) -> Result<(), Error> {
        let dirty = self.files_dirty.lock().map(|d| *d).unwrap_or(false);
        if !dirty {
            return Ok(());
        }
        let files = match self.files.lock() {
            Ok(f) => serde_json::to_vec(&*f).map_err(|e| Error::Invalid(format!("cache: {e}")))?,
            Err(_) => return Ok(()),
        };
        write_atomic(&self.dir.join("files.json"), &files)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(io_err(&tmp))?;
    fs::rename(&tmp, path).map_err(io_err(path))
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
        .filter_map(|record| record.layer)
        .collect();
    Ok(layers)
}

/// What pruning the cache removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PruneReport {
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
    let mut records: Vec<Record> = fs::read_dir(&dir)
        .map_err(io_err(&dir))?
        .flatten()
        .filter_map(|e| {
            let mtime = e.metadata().ok()?.mtime();
            let mut record = serde_json::from_slice::<Record>(&fs::read(e.path()).ok()?).ok()?;
            record.used = u64::try_from(mtime).unwrap_or(0);
            Some(record)
        })
        .collect();
    // Most recently used first: those are kept while the size limit allows.
    records.sort_by(|a, b| b.used.cmp(&a.used).then(b.created.cmp(&a.created)));
    let mut kept = 0u64;
    let mut report = PruneReport::default();
    for record in records {
        let size = record.layer.as_ref().map_or(0, |l| l.size);
        let keep = match keep_bytes {
            Some(limit) => kept + size <= limit,
            None => false,
        };
        if keep {
            kept += size;
            continue;
        }
        let path = cache.record_path(&record.key);
        fs::remove_file(&path).map_err(io_err(&path))?;
        let marker = cache
            .dir
            .join("children")
            .join(&record.parent)
            .join(&record.key);
        let _ = fs::remove_file(&marker);
        let _ = fs::remove_dir(cache.dir.join("children").join(&record.parent));
        report.records += 1;
        report.bytes += size;
    }
    if keep_bytes.is_none() {
        let _ = fs::remove_file(cache.dir.join("files.json"));
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(key: &str, parent: &str, used: u64, size: u64) -> Record {
        Record {
            key: key.to_string(),
            parent: parent.to_string(),
            instruction: format!("RUN {key}"),
            args: Vec::new(),
            files: Vec::new(),
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
    fn explain_names_changed_files_and_args() {
        let root = tempfile::tempdir().expect("tmp");
        let store = Store::open(root.path()).expect("store");
        let cache = Cache::open(&store).expect("cache");
        let mut r = record("k", "parent", 1, 1);
        r.instruction = "COPY . /app".into();
        r.args = vec!["V=1".into()];
        r.files = vec![("a".into(), "1".into()), ("b".into(), "2".into())];
        cache.put(&r).expect("put");
        let files = vec![
            ("a".to_string(), "1".to_string()),
            ("b".to_string(), "3".to_string()),
        ];
        let why = cache.explain("parent", "COPY . /app", &["V=1".into()], &files);
        assert_eq!(why, "context files changed: b");
        let why = cache.explain("parent", "COPY . /app", &["V=2".into()], &files);
        assert_eq!(why, "build arg changed: V (\"1\" -> \"2\")");
        let why = cache.explain("other", "COPY . /app", &[], &files);
        assert!(why.starts_with("no cached result"), "{why}");
    }
}
