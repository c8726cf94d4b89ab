//! `tare cache ls|prune --registry|--dir`: the entries of a cache repository or directory, and
//! removing old ones.

use std::path::Path;

use serde::Serialize;
use tare_registry::{Access, Repository};
use tare_store::{Digest, Reference};

use super::entry::EntryManifest;
use super::local::{self, Layout};
use super::{ANNOTATION_CREATED, ANNOTATION_PARENT, ENTRY_MEDIA_TYPE, TAG_PREFIX};
use crate::error::Error;

/// An entry as `tare cache ls` shows it: what its manifest says (its config is not read).
#[derive(Debug, Clone, Serialize)]
pub struct Listed {
    /// The entry's tag ([`TAG_PREFIX`] and the step's key).
    pub tag: String,
    /// The manifest's digest (what a delete removes).
    pub digest: Digest,
    /// The step's key.
    pub key: String,
    /// The key of the state the step ran on.
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
        if !tag.starts_with(TAG_PREFIX) {
            continue;
        }
        // Deleted between the listing and now (another prune): nothing to show.
        let Some(bytes) = repo.manifest(&tag)? else {
            continue;
        };
        listed.extend(listed_of(tag, &bytes));
    }
    listed.sort_by(|a, b| a.created.cmp(&b.created).then(a.tag.cmp(&b.tag)));
    Ok(listed)
}

/// The entry tagged `tag` whose manifest is `bytes` as `tare cache ls` shows it; `None` when
/// the manifest is not a tare cache entry.
fn listed_of(tag: String, bytes: &[u8]) -> Option<Listed> {
    let key = tag.strip_prefix(TAG_PREFIX)?.to_string();
    let manifest = serde_json::from_slice::<EntryManifest>(bytes).ok()?;
    if manifest.config.media_type != ENTRY_MEDIA_TYPE {
        return None;
    }
    let annotation = |k: &str| manifest.annotations.get(k).cloned().unwrap_or_default();
    Some(Listed {
        digest: Digest::of(bytes),
        key,
        parent: annotation(ANNOTATION_PARENT),
        created: chrono::DateTime::parse_from_rfc3339(&annotation(ANNOTATION_CREATED))
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc)),
        size: manifest.layers.iter().map(|l| l.size).sum(),
        tag,
    })
}

/// The entries of the cache directory `dir` (`--cache-to type=local,dest=DIR`), as [`list`]
/// shows a registry's; read as a `--cache-from` source reads it (no symlinks, limits,
/// digests checked). An entry whose manifest cannot be read is left out.
pub fn list_dir(dir: &Path) -> Result<Vec<Listed>, Error> {
    let layout = Layout::open(dir).map_err(|reason| Error::CacheDir {
        dir: dir.to_path_buf(),
        reason,
    })?;
    let mut listed = Vec::new();
    for tag in layout.tags() {
        if let Ok(Some(bytes)) = layout.manifest(&tag) {
            listed.extend(listed_of(tag, &bytes));
        }
    }
    listed.sort_by(|a, b| a.created.cmp(&b.created).then(a.tag.cmp(&b.tag)));
    Ok(listed)
}

/// Deletes the entries of the cache directory `dir` made before `before` (and those that do
/// not say when): their tags leave `index.json`, then the blobs no other entry names are
/// deleted. Returns them.
pub fn prune_dir(dir: &Path, before: chrono::DateTime<chrono::Utc>) -> Result<Vec<Listed>, Error> {
    let old: Vec<Listed> = list_dir(dir)?
        .into_iter()
        .filter(|e| e.created.is_none_or(|t| t < before))
        .collect();
    if !old.is_empty() {
        local::remove(dir, &old.iter().map(|e| e.digest).collect())?;
    }
    Ok(old)
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
