//! Waste analysis: which bytes an image ships that its final filesystem never shows.
//!
//! Layers are replayed bottom up over a map of the visible paths. A file version dies when a
//! later layer deletes it (a whiteout of it or of a directory above it, an opaque directory,
//! or a non-directory replacing its directory) or writes the same path again. Its bytes stay
//! in the image all the same: that is the waste. A rewrite with identical content (same size
//! and hash) is the `RUN chown -R` / `chmod -R` pattern and is counted on its own.
//!
//! The efficiency is dive's: for every path, the smallest size it was ever seen with, summed,
//! divided by the sum of every size it was seen with (whiteouts count the size of what they
//! delete).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use tare_store::{Image, Store};

use crate::error::Result;
use crate::index::{layer_indexes, EntryKind, LayerIndex};
use crate::steps::{layer_steps, Step};

/// How many of the largest files and directories a report keeps.
pub const LARGEST: usize = 20;

/// Why a file version is dead.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WasteKind {
    /// Deleted by a later step.
    Deleted,
    /// Replaced by a later step with different content.
    Overwritten,
    /// Rewritten by a later step with the same content (owner, mode or time changed).
    Metadata,
}

impl WasteKind {
    /// The remedy from the seed that fits this kind of waste.
    pub fn remedy(self) -> &'static str {
        match self {
            WasteKind::Deleted => {
                "fold the cleanup into the RUN that made the files (`RUN make && rm -rf build`), \
                 or build in an earlier stage and COPY --from only the result (multi-stage)"
            }
            WasteKind::Overwritten => {
                "write the file once: merge the steps that write it, or produce it in an earlier \
                 stage and COPY --from the final version (multi-stage)"
            }
            WasteKind::Metadata => {
                "set owner and mode while copying (`COPY --chown=app:app --chmod=755`) instead of \
                 `RUN chown -R` / `chmod -R`, which stores every file a second time"
            }
        }
    }

    /// What happened to the file, as a past participle for messages (`deleted`).
    pub fn verb(self) -> &'static str {
        match self {
            WasteKind::Deleted => "deleted",
            WasteKind::Overwritten => "overwritten",
            WasteKind::Metadata => "rewritten with the same content (metadata only)",
        }
    }
}

/// One dead file version.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Waste {
    /// The dead file version's path, absolute in the image (`/tmp/build.tar`).
    pub path: String,
    /// Its content bytes.
    pub size: u64,
    /// Index of the layer that added it (0 = bottom).
    pub added_layer: usize,
    /// Index of the layer that killed it.
    pub removed_layer: usize,
    /// Dockerfile line of the step that added it, when the build info records it.
    pub added_line: Option<usize>,
    /// Dockerfile line of the step that killed it, when recorded.
    pub removed_line: Option<usize>,
    /// The history command of the step that added it.
    pub added_by: Option<String>,
    /// The history command of the step that killed it.
    pub removed_by: Option<String>,
    /// How it died.
    pub kind: WasteKind,
}

/// One layer of the analysed image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LayerReport {
    /// Position in the image, 0 = the bottom layer.
    pub index: usize,
    /// The layer (blob) digest.
    pub digest: String,
    /// The diffID (digest of the uncompressed tar).
    pub diff_id: String,
    /// Uncompressed size of the diff (what the layer costs on disk once extracted).
    pub size: u64,
    /// Stored bytes of the blob.
    pub compressed_size: u64,
    /// Image size up to and including this layer.
    pub running_size: u64,
    /// Tar entries.
    pub entries: usize,
    /// Bytes of file content the layer adds.
    pub content_bytes: u64,
    /// Bytes this layer adds that a later layer kills.
    pub wasted_bytes: u64,
    /// Bytes of lower layers this layer kills (deletes or rewrites).
    pub kills_bytes: u64,
    /// The history command that made the layer.
    pub created_by: Option<String>,
    /// The Dockerfile line that made it, when the build info records it.
    pub line: Option<usize>,
}

/// A file of the final filesystem.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LargestPath {
    /// The file's path, absolute in the image.
    pub path: String,
    /// Content bytes.
    pub size: u64,
    /// Index of the layer that holds the visible version.
    pub layer: usize,
}

/// A directory of the final filesystem with its total size, for the treemap.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DirNode {
    /// The directory's own name (`/` for the root, `(other)` for the smaller siblings summed into
    /// one).
    pub name: String,
    /// Content bytes under it, all levels.
    pub size: u64,
    /// The 12 largest subdirectories, largest first, then `(other)` for the rest.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<DirNode>,
}

/// Dead bytes grouped by the steps that made and killed them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Finding {
    /// How the files died.
    pub kind: WasteKind,
    /// Index of the layer that added them.
    pub added_layer: usize,
    /// Index of the layer that killed them.
    pub removed_layer: usize,
    /// Dockerfile line of the adding step, when recorded.
    pub added_line: Option<usize>,
    /// Dockerfile line of the killing step, when recorded.
    pub removed_line: Option<usize>,
    /// History command of the adding step.
    pub added_by: Option<String>,
    /// History command of the killing step.
    pub removed_by: Option<String>,
    /// Dead content bytes of the group.
    pub bytes: u64,
    /// How many file versions the group holds.
    pub files: usize,
    /// The largest paths of the group (at most 5).
    pub examples: Vec<String>,
    /// The fix to suggest (see [`WasteKind::remedy`]).
    pub remedy: &'static str,
}

/// The whole analysis of one image.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Analysis {
    /// Image ID.
    pub image: String,
    /// The Dockerfile the image was built from, when tare built it.
    pub dockerfile: Option<String>,
    /// Sum of the uncompressed layer sizes.
    pub image_size: u64,
    /// Bytes of file content in the final filesystem.
    pub content_bytes: u64,
    /// Bytes of file versions the final filesystem does not show (all kinds).
    pub wasted_bytes: u64,
    /// The part of `wasted_bytes` that only changed metadata (chown -R / chmod -R).
    pub metadata_only_bytes: u64,
    /// dive's efficiency score, 0 to 1.
    pub efficiency: f64,
    /// One report per layer, bottom first.
    pub layers: Vec<LayerReport>,
    /// Every dead file version with content, largest first.
    pub wasted: Vec<Waste>,
    /// The largest files of the final filesystem.
    pub largest: Vec<LargestPath>,
    /// The final filesystem's directories by size (three levels, the largest of each level).
    pub tree: DirNode,
}

impl Analysis {
    /// Dead bytes grouped by (kind, adding step, killing step), largest first.
    pub fn findings(&self) -> Vec<Finding> {
        let mut groups: BTreeMap<(WasteKind, usize, usize), Finding> = BTreeMap::new();
        for w in &self.wasted {
            let f = groups
                .entry((w.kind, w.added_layer, w.removed_layer))
                .or_insert_with(|| Finding {
                    kind: w.kind,
                    added_layer: w.added_layer,
                    removed_layer: w.removed_layer,
                    added_line: w.added_line,
                    removed_line: w.removed_line,
                    added_by: w.added_by.clone(),
                    removed_by: w.removed_by.clone(),
                    bytes: 0,
                    files: 0,
                    examples: Vec::new(),
                    remedy: w.kind.remedy(),
                });
            f.bytes += w.size;
            f.files += 1;
            if f.examples.len() < 5 {
                f.examples.push(w.path.clone());
            }
        }
        let mut out: Vec<Finding> = groups.into_values().collect();
        out.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then(a.added_layer.cmp(&b.added_layer))
        });
        out
    }
}

/// Analyses an image in the store: reads (or builds and caches) each layer's index, then
/// replays them.
pub fn analyze(store: &Store, image: &Image) -> Result<Analysis> {
    let indexes = layer_indexes(store, &image.layers)?;
    let steps = layer_steps(image);
    let mut analysis = analyze_indexes(&indexes, &steps);
    analysis.image = image.id.to_string();
    analysis.dockerfile = crate::steps::dockerfile(image);
    for (report, layer) in analysis.layers.iter_mut().zip(&image.layers) {
        report.digest = layer.digest.to_string();
        report.diff_id = layer.diff_id.to_string();
        // Docker's measure (file bytes), the same as `tare history` and `tare images`.
        report.size = tare_layer::content_size(store, layer)?;
        report.compressed_size = layer.compressed_size;
    }
    let mut running = 0;
    for report in &mut analysis.layers {
        running += report.size;
        report.running_size = running;
    }
    analysis.image_size = running;
    Ok(analysis)
}

/// A visible path: which layer wrote it, and what.
#[derive(Clone, Copy)]
struct Version {
    layer: usize,
    kind: EntryKind,
    size: u64,
    hash: Option<u64>,
}

/// The replay, on indexes alone. `steps` names the layers (may be shorter than `indexes`).
/// Sizes in the layer reports are content sizes; [`analyze`] fills in the stored sizes.
pub fn analyze_indexes(indexes: &[LayerIndex], steps: &[Step]) -> Analysis {
    let step = |i: usize| steps.get(i).cloned().unwrap_or_default();
    let mut visible: BTreeMap<String, Version> = BTreeMap::new();
    let mut dead: Vec<(String, Version, usize, WasteKind)> = Vec::new();
    // dive's bookkeeping: per path, (sum of sizes seen, smallest size seen).
    let mut seen: HashMap<String, (u64, u64)> = HashMap::new();
    let mut layers = Vec::with_capacity(indexes.len());

    for (li, index) in indexes.iter().enumerate() {
        let mut kills = 0u64;
        let mut content = 0u64;
        // Deletions apply to the layers below only, so they go first.
        for e in &index.entries {
            let removed = match e.kind {
                EntryKind::Whiteout => remove_tree(&mut visible, &e.path, true, li, &mut dead),
                EntryKind::Opaque => remove_tree(&mut visible, &e.path, false, li, &mut dead),
                _ => continue,
            };
            kills += removed;
            note_seen(&mut seen, &e.path, removed);
        }
        for e in &index.entries {
            if matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque) {
                continue;
            }
            content += e.size;
            note_seen(&mut seen, &e.path, e.size);
            let new = Version {
                layer: li,
                kind: e.kind,
                size: e.size,
                hash: e.hash,
            };
            if e.kind != EntryKind::Dir {
                // A file replacing a directory replaces everything below it.
                kills += remove_tree(&mut visible, &e.path, false, li, &mut dead);
            }
            if let Some(old) = visible.insert(e.path.clone(), new) {
                if old.layer == li {
                    // The same path twice in one tar: only the last one counts, and the first
                    // one's bytes are in the layer all the same.
                    dead.push((e.path.clone(), old, li, WasteKind::Overwritten));
                    continue;
                }
                if old.kind == EntryKind::Dir && e.kind == EntryKind::Dir {
                    continue;
                }
                let kind = if old.kind == EntryKind::File
                    && e.kind == EntryKind::File
                    && old.size == e.size
                    && old.hash == e.hash
                {
                    WasteKind::Metadata
                } else {
                    WasteKind::Overwritten
                };
                kills += old.size;
                dead.push((e.path.clone(), old, li, kind));
            }
        }
        let s = step(li);
        layers.push(LayerReport {
            index: li,
            digest: String::new(),
            diff_id: String::new(),
            size: content,
            compressed_size: 0,
            running_size: 0,
            entries: index.entries.len(),
            content_bytes: content,
            wasted_bytes: 0,
            kills_bytes: kills,
            created_by: s.created_by,
            line: s.line,
        });
    }

    let mut wasted: Vec<Waste> = Vec::new();
    let mut metadata_only = 0;
    for (path, v, removed, kind) in dead {
        if v.size == 0 {
            continue;
        }
        if let Some(l) = layers.get_mut(v.layer) {
            l.wasted_bytes += v.size;
        }
        if kind == WasteKind::Metadata {
            metadata_only += v.size;
        }
        let (a, r) = (step(v.layer), step(removed));
        wasted.push(Waste {
            path: format!("/{path}"),
            size: v.size,
            added_layer: v.layer,
            removed_layer: removed,
            added_line: a.line,
            removed_line: r.line,
            added_by: a.created_by,
            removed_by: r.created_by,
            kind,
        });
    }
    wasted.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    let wasted_bytes = wasted.iter().map(|w| w.size).sum();

    let (min, cum) = seen
        .values()
        .fold((0u64, 0u64), |(m, c), (cum, min)| (m + min, c + cum));
    let efficiency = if cum == 0 {
        1.0
    } else {
        min as f64 / cum as f64
    };

    let mut files: Vec<LargestPath> = visible
        .iter()
        .filter(|(_, v)| v.kind == EntryKind::File)
        .map(|(p, v)| LargestPath {
            path: format!("/{p}"),
            size: v.size,
            layer: v.layer,
        })
        .collect();
    let content_bytes = files.iter().map(|f| f.size).sum();
    let tree = dir_tree(&files);
    files.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.path.cmp(&b.path)));
    files.truncate(LARGEST);

    let mut running = 0;
    for l in &mut layers {
        running += l.size;
        l.running_size = running;
    }
    Analysis {
        image: String::new(),
        dockerfile: None,
        image_size: running,
        content_bytes,
        wasted_bytes,
        metadata_only_bytes: metadata_only,
        efficiency,
        layers,
        wasted,
        largest: files,
        tree,
    }
}

fn note_seen(seen: &mut HashMap<String, (u64, u64)>, path: &str, size: u64) {
    seen.entry(path.to_string())
        .and_modify(|(cum, min)| {
            *cum += size;
            *min = (*min).min(size);
        })
        .or_insert((size, size));
}

/// Removes everything below `path` (and `path` itself when `itself`) from the visible map,
/// recording the dead versions. Returns their bytes.
fn remove_tree(
    visible: &mut BTreeMap<String, Version>,
    path: &str,
    itself: bool,
    layer: usize,
    dead: &mut Vec<(String, Version, usize, WasteKind)>,
) -> u64 {
    let mut bytes = 0;
    if itself {
        if let Some(v) = visible.remove(path) {
            bytes += v.size;
            dead.push((path.to_string(), v, layer, WasteKind::Deleted));
        }
    }
    // Every key starting with "path/": from "path/" up to "path0" ('0' follows '/').
    let (lo, hi) = if path.is_empty() {
        (String::new(), String::from("\u{10FFFF}"))
    } else {
        (format!("{path}/"), format!("{path}0"))
    };
    let keys: Vec<String> = visible.range(lo..hi).map(|(k, _)| k.clone()).collect();
    for k in keys {
        if let Some(v) = visible.remove(&k) {
            bytes += v.size;
            dead.push((k, v, layer, WasteKind::Deleted));
        }
    }
    bytes
}

/// Directory sizes of the final filesystem, three levels deep, the largest few per level.
fn dir_tree(files: &[LargestPath]) -> DirNode {
    #[derive(Default)]
    struct Acc {
        size: u64,
        children: BTreeMap<String, Acc>,
    }
    let mut root = Acc::default();
    for f in files {
        root.size += f.size;
        let mut node = &mut root;
        let parts: Vec<&str> = f.path.trim_start_matches('/').split('/').collect();
        // Only directories: the last component is the file itself.
        for part in parts.iter().take(parts.len().saturating_sub(1)).take(3) {
            node = node.children.entry((*part).to_string()).or_default();
            node.size += f.size;
        }
    }
    fn convert(name: String, acc: Acc) -> DirNode {
        let mut children: Vec<DirNode> = acc
            .children
            .into_iter()
            .map(|(n, a)| convert(n, a))
            .filter(|c| c.size > 0)
            .collect();
        children.sort_by(|a, b| b.size.cmp(&a.size).then_with(|| a.name.cmp(&b.name)));
        const KEEP: usize = 12;
        if children.len() > KEEP {
            let rest: u64 = children[KEEP..].iter().map(|c| c.size).sum();
            children.truncate(KEEP);
            children.push(DirNode {
                name: "(other)".to_string(),
                size: rest,
                children: Vec::new(),
            });
        }
        DirNode {
            name,
            size: acc.size,
            children,
        }
    }
    convert("/".to_string(), root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::IndexEntry;

    fn entry(path: &str, kind: EntryKind, size: u64, hash: u64) -> IndexEntry {
        IndexEntry {
            path: path.to_string(),
            kind,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            hash: (kind == EntryKind::File).then_some(hash),
            link: None,
        }
    }

    fn layer(entries: Vec<IndexEntry>) -> LayerIndex {
        LayerIndex {
            version: 1,
            entries,
        }
    }

    fn steps(lines: &[Option<usize>]) -> Vec<Step> {
        lines
            .iter()
            .map(|l| Step {
                created_by: l.map(|n| format!("step at {n}")),
                line: *l,
            })
            .collect()
    }

    #[test]
    fn file_deleted_by_a_later_layer_is_waste_with_both_lines() {
        let idx = vec![
            layer(vec![
                entry("bin", EntryKind::Dir, 0, 0),
                entry("bin/sh", EntryKind::File, 100, 1),
            ]),
            layer(vec![entry("bigfile", EntryKind::File, 10 << 20, 2)]),
            layer(vec![entry("bigfile", EntryKind::Whiteout, 0, 0)]),
            layer(vec![entry("tmp", EntryKind::Dir, 0, 0)]),
        ];
        let a = analyze_indexes(&idx, &steps(&[None, Some(2), Some(3), Some(4)]));
        assert_eq!(a.wasted_bytes, 10 << 20);
        assert_eq!(a.wasted.len(), 1);
        let w = &a.wasted[0];
        assert_eq!((w.path.as_str(), w.kind), ("/bigfile", WasteKind::Deleted));
        assert_eq!((w.added_line, w.removed_line), (Some(2), Some(3)));
        assert_eq!(a.content_bytes, 100);
        // dive: bigfile seen with 10 MiB (added) and 10 MiB (its whiteout), min 10 MiB.
        let expected = (100.0 + (10 << 20) as f64) / (100.0 + 2.0 * (10 << 20) as f64);
        assert!((a.efficiency - expected).abs() < 1e-9);
        assert_eq!(a.layers[1].wasted_bytes, 10 << 20);
        assert_eq!(a.layers[2].kills_bytes, 10 << 20);
    }

    #[test]
    fn same_content_rewrite_is_metadata_waste_and_changed_content_is_overwrite() {
        let idx = vec![
            layer(vec![
                entry("app/a", EntryKind::File, 50, 7),
                entry("app/b", EntryKind::File, 60, 8),
            ]),
            layer(vec![
                entry("app/a", EntryKind::File, 50, 7),
                entry("app/b", EntryKind::File, 61, 9),
            ]),
        ];
        let a = analyze_indexes(&idx, &[]);
        assert_eq!(a.wasted_bytes, 110);
        assert_eq!(a.metadata_only_bytes, 50);
        let kinds: Vec<(&str, WasteKind)> =
            a.wasted.iter().map(|w| (w.path.as_str(), w.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                ("/app/b", WasteKind::Overwritten),
                ("/app/a", WasteKind::Metadata)
            ]
        );
    }

    #[test]
    fn whiteout_and_opaque_directory_kill_everything_below() {
        let idx = vec![
            layer(vec![
                entry("var/cache/x", EntryKind::File, 5, 1),
                entry("var/cache/y", EntryKind::File, 6, 2),
                entry("var/cachez", EntryKind::File, 7, 3),
                entry("opt/a", EntryKind::File, 8, 4),
            ]),
            layer(vec![
                entry("var/cache", EntryKind::Whiteout, 0, 0),
                entry("opt", EntryKind::Opaque, 0, 0),
                entry("opt/b", EntryKind::File, 1, 5),
            ]),
        ];
        let a = analyze_indexes(&idx, &[]);
        assert_eq!(a.wasted_bytes, 5 + 6 + 8);
        let paths: Vec<&str> = a.largest.iter().map(|l| l.path.as_str()).collect();
        assert_eq!(paths, vec!["/var/cachez", "/opt/b"]);
        let f = a.findings();
        assert_eq!(f.len(), 1);
        assert_eq!((f[0].bytes, f[0].files), (19, 3));
    }

    #[test]
    fn tree_sums_directories() {
        let idx = vec![layer(vec![
            entry("usr/lib/x", EntryKind::File, 10, 1),
            entry("usr/bin/y", EntryKind::File, 5, 2),
            entry("etc/z", EntryKind::File, 1, 3),
        ])];
        let a = analyze_indexes(&idx, &[]);
        assert_eq!(a.tree.size, 16);
        assert_eq!(a.tree.children[0].name, "usr");
        assert_eq!(a.tree.children[0].size, 15);
        assert_eq!(a.tree.children[0].children[0].name, "lib");
    }
}
