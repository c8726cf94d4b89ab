//! Which repositories of which registry are known to hold a blob, so a push can ask the
//! registry to mount it from there instead of uploading it again.
//!
//! Kept in `ROOT/registry/sources.json` (this crate's own file in the store directory). It is
//! only a hint: a lost update or a stale entry costs an upload, never correctness, because the
//! registry answers a failed mount by opening an ordinary upload.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use tare_store::{Digest, Store, StoreDir};

use crate::error::{Error, Result};

/// Repositories known to hold each blob: registry -> digest -> repositories.
type Map = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

/// At most this many repositories are remembered per blob.
const MAX_REPOS: usize = 8;

fn path(store: &Store) -> Result<PathBuf> {
    Ok(store.dir(StoreDir::Registry)?.join("sources.json"))
}

fn read(store: &Store) -> Map {
    // A missing or damaged hint file just means no mounts are tried.
    path(store)
        .ok()
        .and_then(|p| std::fs::read(p).ok())
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_default()
}

/// Repositories of `registry` other than `except` that hold `digest`.
pub(crate) fn lookup(store: &Store, registry: &str, digest: &Digest, except: &str) -> Vec<String> {
    read(store)
        .get(registry)
        .and_then(|m| m.get(&digest.to_string()))
        .map(|repos| repos.iter().filter(|r| *r != except).cloned().collect())
        .unwrap_or_default()
}

/// Records that `repository` on `registry` holds `digests`.
pub(crate) fn record(
    store: &Store,
    registry: &str,
    repository: &str,
    digests: &[Digest],
) -> Result<()> {
    let _guard = store.meta_lock()?;
    let mut map = read(store);
    let blobs = map.entry(registry.to_string()).or_default();
    for d in digests {
        let repos = blobs.entry(d.to_string()).or_default();
        repos.insert(repository.to_string());
        while repos.len() > MAX_REPOS {
            let first = repos.iter().next().cloned();
            if let Some(first) = first.filter(|f| f != repository) {
                repos.remove(&first);
            } else {
                break;
            }
        }
    }
    let p = path(store)?;
    let json = serde_json::to_vec(&map).map_err(|source| Error::Json {
        what: p.display().to_string(),
        source,
    })?;
    Ok(tare_store::write_atomic(&p, &json)?)
}
