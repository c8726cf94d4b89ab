//! Garbage collection (`prune`) and consistency checks (`check`).

use std::fs;
use std::path::Path;

use crate::digest::{Digest, Hasher};
use crate::error::{io, Result};
use crate::image::{read_json, ImageRecord, LayerInfo};
use crate::temp::remove_tree;
use crate::Store;

/// What `prune` removed.
#[derive(Debug, Default)]
pub struct PruneReport {
    /// Removed blobs with their sizes.
    pub blobs: Vec<(Digest, u64)>,
    /// Removed snapshot directories (by diffID).
    pub snapshots: Vec<Digest>,
    /// Bytes of blobs freed.
    pub freed: u64,
}

/// Problems `check` found; empty when the store is consistent.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// One sentence per problem (a blob whose content does not match its name, a missing blob, a
    /// broken record).
    pub problems: Vec<String>,
    /// How many blobs were read and verified.
    pub blobs_checked: usize,
    /// How many image records were read.
    pub images_checked: usize,
}

impl Store {
    /// Removes every blob, layer record and snapshot no image references, and leftovers of
    /// interrupted writes. Waits until no other tare process has the store open.
    pub fn prune(&self) -> Result<PruneReport> {
        self.prune_keeping(&[])
    }

    /// [`Store::prune`], also keeping `keep`: layers that something other than an image still
    /// needs (the build cache's), with their layer records and snapshots.
    pub fn prune_keeping(&self, keep: &[LayerInfo]) -> Result<PruneReport> {
        self.exclusively(|| {
            let mut referenced = self.referenced_blobs()?;
            referenced.extend(keep.iter().map(|l| l.digest));
            let mut report = PruneReport::default();
            report.freed += self.reclaim_temp(true)?;
            sweep_write_temps(self.root())?;
            let mut live_diffs: std::collections::BTreeSet<Digest> =
                keep.iter().map(|l| l.diff_id).collect();
            for id in self.image_ids()? {
                let path = self
                    .root()
                    .join("images")
                    .join(format!("{}.json", id.hex()));
                if let Some(rec) = read_json::<ImageRecord>(&path)? {
                    live_diffs.extend(rec.layers.iter().map(|l| l.diff_id));
                }
            }
            for (digest, path) in self.blob_files()? {
                if digest.map(|d| referenced.contains(&d)).unwrap_or(false) {
                    continue;
                }
                let size = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                fs::remove_file(&path).map_err(io("removing", &path))?;
                if let Some(d) = digest {
                    report.blobs.push((d, size));
                }
                report.freed += size;
            }
            let layers = self.root().join("layers");
            for entry in fs::read_dir(&layers).map_err(io("reading", &layers))? {
                let entry = entry.map_err(io("reading", &layers))?;
                let name = entry.file_name();
                let diff = name
                    .to_str()
                    .and_then(|n| n.strip_suffix(".json"))
                    .and_then(|h| Digest::from_hex(h).ok());
                if diff.map(|d| !live_diffs.contains(&d)).unwrap_or(true) {
                    fs::remove_file(entry.path()).map_err(io("removing", entry.path()))?;
                } else if let Some(d) = diff {
                    // Drop variants whose blob was just removed.
                    let _ = self.layer_variants(&d);
                }
            }
            // tare-size's file indexes of diffs no image or cache uses any more (its squash
            // cache, `squash-*.json`, names layers it checks itself).
            let index = self.root().join("index");
            if let Ok(entries) = fs::read_dir(&index) {
                for entry in entries.flatten() {
                    let name = entry.file_name();
                    let diff = name
                        .to_str()
                        .and_then(|n| n.strip_suffix(".json"))
                        .and_then(|h| Digest::from_hex(h).ok());
                    if diff.is_some_and(|d| !live_diffs.contains(&d)) {
                        remove_tree(&entry.path()).map_err(io("removing", entry.path()))?;
                    }
                }
            }
            let snaps = self.root().join("snapshots");
            for entry in fs::read_dir(&snaps).map_err(io("reading", &snaps))? {
                let entry = entry.map_err(io("reading", &snaps))?;
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let hex = name.strip_suffix(".lock").unwrap_or(&name);
                let diff = Digest::from_hex(hex).ok();
                if diff.map(|d| live_diffs.contains(&d)).unwrap_or(false) {
                    continue;
                }
                let path = entry.path();
                if path.is_dir() {
                    remove_tree(&path).map_err(io("removing", &path))?;
                    if let Some(d) = diff {
                        report.snapshots.push(d);
                    }
                } else {
                    let _ = fs::remove_file(&path);
                }
            }
            Ok(report)
        })
    }

    /// Removes blobs a failed operation wrote, unless an image references them by now. For
    /// rolling back a load or import that stored some blobs and then failed.
    pub fn discard_blobs(&self, blobs: &[Digest]) -> Result<()> {
        let _guard = self.meta_lock()?;
        let referenced = self.referenced_blobs()?;
        for d in blobs {
            if !referenced.contains(d) {
                let path = self.blob_path(d);
                match fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => {
                        return Err(crate::Error::Io {
                            op: "removing",
                            path,
                            source: e,
                        })
                    }
                }
            }
        }
        Ok(())
    }

    /// Verifies every blob's digest, and that every image's config, manifest and layers exist
    /// and agree, and that every tag names an existing image.
    pub fn check(&self) -> Result<CheckReport> {
        let mut report = CheckReport::default();
        for (digest, path) in self.blob_files()? {
            report.blobs_checked += 1;
            let Some(digest) = digest else {
                report
                    .problems
                    .push(format!("{}: not named by a sha256 digest", path.display()));
                continue;
            };
            match hash_file(&path) {
                Ok(actual) if actual == digest => {}
                Ok(actual) => report.problems.push(format!(
                    "blob {digest} is corrupt: its content hashes to {actual}"
                )),
                Err(e) => report.problems.push(format!("blob {digest}: {e}")),
            }
        }
        for id in self.image_ids()? {
            report.images_checked += 1;
            match self.image_by_id(&id) {
                Ok(img) => {
                    if !self.has_blob(&img.manifest_digest) {
                        report.problems.push(format!(
                            "image {id}: manifest blob {} is missing",
                            img.manifest_digest
                        ));
                    }
                    let diffs: Vec<Digest> = img.layers.iter().map(|l| l.diff_id).collect();
                    if diffs != img.config.rootfs.diff_ids {
                        report.problems.push(format!(
                            "image {id}: layers do not match the config's diff_ids"
                        ));
                    }
                    for l in &img.layers {
                        match self.blob_size(&l.digest) {
                            Ok(size) if size == l.compressed_size => {}
                            Ok(size) => report.problems.push(format!(
                                "image {id}: layer {} is {size} bytes, the record says {}",
                                l.digest, l.compressed_size
                            )),
                            Err(_) => report
                                .problems
                                .push(format!("image {id}: layer blob {} is missing", l.digest)),
                        }
                    }
                }
                Err(e) => report.problems.push(format!("image {id}: {e}")),
            }
        }
        let ids: std::collections::BTreeSet<Digest> = self.image_ids()?.into_iter().collect();
        for (tag, id) in self.tags()? {
            if !ids.contains(&id) {
                report
                    .problems
                    .push(format!("tag {tag} points at missing image {id}"));
            }
        }
        self.check_indexes(&mut report.problems)?;
        Ok(report)
    }

    /// Every file under blobs/sha256, with its digest when the name is a valid one.
    fn blob_files(&self) -> Result<Vec<(Option<Digest>, std::path::PathBuf)>> {
        let dir = self.root().join("blobs/sha256");
        let mut out = Vec::new();
        for entry in fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let entry = entry.map_err(io("reading", &dir))?;
            let name = entry.file_name();
            let digest = name.to_str().and_then(|n| Digest::from_hex(n).ok());
            out.push((digest, entry.path()));
        }
        out.sort();
        Ok(out)
    }
}

fn hash_file(path: &std::path::Path) -> std::io::Result<Digest> {
    use std::io::Read;
    let mut f = fs::File::open(path)?;
    let mut h = Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            return Ok(h.finish());
        }
        h.update(&buf[..n]);
    }
}

/// Removes the temporary files of small-file writes (write, then rename over the target) that
/// a killed process left in ROOT and the directories directly in it: the store's `.tmp-*`,
/// tare-size's `.tmp-*` and `squash-*.tmp<pid>`, tare-registry's `*.json.tmp`. Only under the
/// exclusive store lock, when nobody is writing.
fn sweep_write_temps(root: &Path) -> Result<()> {
    fn is_write_temp(name: &str) -> bool {
        name.starts_with(".tmp-")
            || name.ends_with(".tmp")
            || name
                .rsplit_once(".tmp")
                .is_some_and(|(_, pid)| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
    }
    let mut dirs = vec![root.to_path_buf()];
    for entry in fs::read_dir(root).map_err(io("reading", root))? {
        let entry = entry.map_err(io("reading", root))?;
        let name = entry.file_name();
        let own_rules = ["tmp", "snapshots", "containers", "blobs"];
        if entry.file_type().is_ok_and(|t| t.is_dir())
            && !own_rules.iter().any(|r| name == std::ffi::OsStr::new(r))
        {
            dirs.push(entry.path());
        }
    }
    for dir in dirs {
        for entry in fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let entry = entry.map_err(io("reading", &dir))?;
            let is_file = entry.file_type().is_ok_and(|t| t.is_file());
            if is_file && entry.file_name().to_str().is_some_and(is_write_temp) {
                remove_tree(&entry.path()).map_err(io("removing", entry.path()))?;
            }
        }
    }
    Ok(())
}
