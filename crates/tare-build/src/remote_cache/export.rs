//! `--cache-to`: writing this build's entries to a registry or an OCI layout directory.

use std::collections::BTreeSet;

use tare_registry::{Access, Repository};
use tare_store::{error_chain, Digest, Reference};

use super::entry::{child_tag, manifest_of, tag_of, Entry};
use super::import::{Env, Remote};
use super::options::{CacheTo, Location, Mode};
use super::{local, OCI_MANIFEST};
use crate::cache::Record;
use crate::error::Error;
use tare_dockerfile::Dockerfile;

/// The stages an export of `mode` writes: all that were built, or the target and the stages
/// it is built FROM.
pub(super) fn exported_stages(
    dockerfile: &Dockerfile,
    mode: Mode,
    target: usize,
) -> Option<BTreeSet<usize>> {
    if mode == Mode::Max {
        return None;
    }
    let mut stages = BTreeSet::new();
    let mut next = Some(target);
    while let Some(i) = next {
        if !stages.insert(i) {
            break;
        }
        next = dockerfile.stages.get(i).and_then(|s| s.base_stage);
    }
    Some(stages)
}

/// Writes the cache entries of this build to every `--cache-to`. A failure is a warning:
/// the image is built, and an entry is written only after its blobs are in the registry, so
/// a half-done export leaves nothing that points at a missing blob. `target` is the index
/// of the final image's stage in `dockerfile`.
pub(crate) fn export(
    env: &Env<'_>,
    remote: &Remote,
    cache_to: &[CacheTo],
    dockerfile: &Dockerfile,
    target: usize,
) {
    let records = remote.records();
    let bases = remote.bases();
    for to in cache_to {
        let stages = exported_stages(dockerfile, to.mode, target);
        let mut seen = BTreeSet::new();
        let chosen: Vec<&Record> = records
            .iter()
            .filter(|(stage, _)| stages.as_ref().is_none_or(|s| s.contains(stage)))
            .map(|(_, r)| r)
            .filter(|r| seen.insert(r.key.clone()))
            .collect();
        // The layers the exported stages start from (a base image's): the cache carries
        // every layer of the image, so a push on a fresh machine mounts them too.
        let mut base: Vec<Digest> = Vec::new();
        for (_, layers) in bases
            .iter()
            .filter(|(stage, _)| stages.as_ref().is_none_or(|s| s.contains(stage)))
        {
            for l in layers {
                if !base.contains(&l.digest) && env.store.has_blob(&l.digest) {
                    base.push(l.digest);
                }
            }
        }
        let exported = match &to.location {
            Location::Registry(reference) => export_to(env, remote, reference, &chosen, &base),
            Location::Local(dir) => export_local(env, remote, dir, &chosen),
            // Written into the image's manifest when the image is made (`inline::annotate`).
            Location::Inline => Ok(()),
        };
        if let Err(e) = exported {
            env.warn(format!(
                "--cache-to {}: the cache was not exported: {}",
                to.location,
                error_chain(&e)
            ));
        }
    }
}

/// An entry ready to be written.
pub(crate) struct Prepared {
    pub tag: String,
    /// Its second tag, by parent ([`child_tag`]).
    pub child: String,
    pub manifest: Vec<u8>,
    /// The store blobs it names: its layer (if any) and its config.
    pub blobs: Vec<Digest>,
}

/// Each record's entry (its config blob is put into the store).
fn entries_of(env: &Env<'_>, remote: &Remote, records: &[&Record]) -> Result<Vec<Prepared>, Error> {
    let store = env.store;
    let mut entries = Vec::new();
    for record in records {
        let content_size = match &record.layer {
            Some(l) => Some(remote.content_size(store, l)?),
            None => None,
        };
        let entry = Entry::of(record, content_size);
        let config = serde_json::to_vec(&entry).map_err(|error| Error::Encode {
            what: "a cache entry",
            error,
        })?;
        let config_digest = store.put_bytes(&config)?;
        let manifest = manifest_of(&entry, &config_digest, config.len())?;
        let mut blobs: Vec<Digest> = entry.layer.iter().map(|l| l.digest).collect();
        blobs.push(config_digest);
        entries.push(Prepared {
            tag: tag_of(&record.key),
            child: child_tag(&record.parent, &record.key),
            manifest,
            blobs,
        });
    }
    Ok(entries)
}

/// Writes the entries of `records` into the OCI layout `dir`; lazy hits' layers are fetched
/// first (the directory must hold every blob an entry names).
fn export_local(
    env: &Env<'_>,
    remote: &Remote,
    dir: &std::path::Path,
    records: &[&Record],
) -> Result<(), Error> {
    for record in records {
        if let Some(layer) = &record.layer {
            remote.materialize(env, layer)?;
        }
    }
    let entries = entries_of(env, remote, records)?;
    let step = env.transfer_step(format!("exporting cache to {}", dir.display()));
    let moved = local::export(env.store, dir, &entries, &step)?;
    step.log(format!("cache entries: {} written", entries.len()));
    step.finish(moved);
    Ok(())
}

fn export_to(
    env: &Env<'_>,
    remote: &Remote,
    reference: &Reference,
    records: &[&Record],
    base: &[Digest],
) -> Result<(), Error> {
    let store = env.store;
    let options = env.registry_options();
    let entries = entries_of(env, remote, records)?;
    let mut sources: Vec<String> = Vec::new();
    for b in entries.iter().flat_map(|e| &e.blobs).chain(base) {
        for s in Repository::mount_sources(store, reference, b) {
            if !sources.contains(&s) {
                sources.push(s);
            }
        }
    }
    let repo = Repository::connect(reference, &options, Access::Push, &sources)?;
    // Entries the repository already has, byte for byte, cost one HEAD.
    let total = entries.len();
    let mut missing = Vec::new();
    for entry in entries {
        if repo.manifest_digest(&entry.tag)? != Some(Digest::of(&entry.manifest)) {
            missing.push(entry);
        }
    }
    // The base layers each cost a HEAD when the repository has them.
    let blobs: Vec<Digest> = base
        .iter()
        .copied()
        .chain(missing.iter().flat_map(|e| e.blobs.iter().copied()))
        .collect();
    let step = env.transfer_step(format!("exporting cache to {}", reference.familiar()));
    repo.push_blobs(store, &blobs, &options, &step)?;
    // The key's tag last: an entry found by its key has its second tag too.
    for entry in &missing {
        repo.put_manifest(&entry.child, OCI_MANIFEST, &entry.manifest)?;
        repo.put_manifest(&entry.tag, OCI_MANIFEST, &entry.manifest)?;
    }
    step.log(format!(
        "cache entries: {} written, {} already there",
        missing.len(),
        total - missing.len()
    ));
    // The size of the blobs the store has, sent or already there (a lazy hit's layer stays
    // in the registry).
    step.finish(blobs.iter().filter_map(|b| store.blob_size(b).ok()).sum());
    Ok(())
}
