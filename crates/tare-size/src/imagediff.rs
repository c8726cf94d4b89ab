//! `tare diff`: what changed between two images, file by file, layer by layer and in the
//! config, with the size deltas; and `why`: the first thing that makes two images' bytes
//! differ when their files do not.
//!
//! Files come from the per-layer indexes ([`crate::index`]), flattened the way the layers
//! stack (whiteouts and opaque directories applied), so a diff of two images sharing their
//! base reads only small cached JSON files. `why` reads the tars of the first layers that
//! differ, and the gzip headers of blobs that hold the same tar.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read};

use serde::Serialize;
use serde_json::Value;
use tare_layer::decompress_as;
use tare_layer::Compression;
use tare_store::{Image, LayerInfo, Store};

use crate::error::{io, Error, Result};
use crate::index::{layer_indexes, EntryKind, IndexEntry, LayerIndex};
use crate::steps::layer_steps;

/// What happened to one path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    /// Only B has the path.
    Added,
    /// Only A has the path.
    Removed,
    /// Both have it, with different attributes (see [`FileChange::what`]).
    Changed,
}

/// One path that differs.
#[derive(Clone, Debug, Serialize)]
pub struct FileChange {
    /// Clean relative path (`usr/bin/env`).
    pub path: String,
    /// Whether the path was added, removed or changed.
    pub change: Change,
    /// For `Changed`: which attributes differ (`content`, `mode`, `owner`, `type`, `link`).
    pub what: Vec<&'static str>,
    /// Content bytes in B minus content bytes in A.
    pub delta: i64,
    /// The layer that made the path's version: in B, or in A for a removed path.
    pub layer: usize,
    /// That layer's Dockerfile line, when the image's build info records it.
    pub line: Option<usize>,
    /// That layer's step: `line 3 (RUN make)`, or the history command, or `layer N`.
    pub step: String,
}

/// How the layers at one position compare.
#[derive(Clone, Debug, Serialize)]
pub struct LayerChange {
    /// Position of the layer, 0 = the bottom one.
    pub index: usize,
    /// `same`, `recompressed` (same tar, different blob), `same-files` (same file list and
    /// contents, different tar bytes), `different`, `only-in-a`, `only-in-b`.
    pub verdict: &'static str,
    /// A's layer digest at this position; `None` when A has fewer layers.
    pub a: Option<String>,
    /// B's layer digest at this position; `None` when B has fewer layers.
    pub b: Option<String>,
}

/// One config field that differs, as a JSON path (`config.Env[1]`).
#[derive(Clone, Debug, Serialize)]
pub struct ConfigChange {
    /// The field as a JSON path (`config.Env[1]`).
    pub field: String,
    /// A's value (`null` when A does not have the field).
    pub a: Value,
    /// B's value (`null` when B does not have the field).
    pub b: Value,
}

/// The whole comparison.
#[derive(Clone, Debug, Serialize)]
pub struct ImageDiff {
    /// Image ID of A.
    pub a: String,
    /// Image ID of B.
    pub b: String,
    /// Every path that differs, the largest change first.
    pub files: Vec<FileChange>,
    /// Every config field that differs.
    pub config: Vec<ConfigChange>,
    /// Every layer position, compared.
    pub layers: Vec<LayerChange>,
    /// Content bytes of all files, A and B.
    pub size_a: u64,
    /// Content bytes of all files of B.
    pub size_b: u64,
    /// Stored (compressed) bytes of all layers, A and B.
    pub wire_a: u64,
    /// Stored bytes of all layers of B.
    pub wire_b: u64,
}

impl ImageDiff {
    /// Content bytes of B minus those of A.
    pub fn size_delta(&self) -> i64 {
        self.size_b as i64 - self.size_a as i64
    }

    /// Stored layer bytes of B minus those of A.
    pub fn wire_delta(&self) -> i64 {
        self.wire_b as i64 - self.wire_a as i64
    }

    /// When B's files are larger than A's by more than `limit` bytes: what to print, the
    /// growth first, then the `top` files that grew most, each with the step that made it.
    pub fn growth_over(&self, limit: u64, top: usize) -> Option<Vec<String>> {
        let delta = self.size_delta();
        if delta <= limit as i64 {
            return None;
        }
        let mut lines = vec![format!(
            "grew by {} ({} -> {}), more than --max-growth {}; largest contributors:",
            crate::budget::human(delta as u64),
            crate::budget::human(self.size_a),
            crate::budget::human(self.size_b),
            crate::budget::human(limit),
        )];
        let mut grown: Vec<&FileChange> = self.files.iter().filter(|f| f.delta > 0).collect();
        grown.sort_by(|x, y| y.delta.cmp(&x.delta).then(x.path.cmp(&y.path)));
        for f in grown.into_iter().take(top) {
            let what = match f.change {
                Change::Added => "added",
                Change::Removed => "removed",
                Change::Changed => "changed",
            };
            lines.push(format!(
                "  +{:<9} {what:<8} /{}  ({})",
                crate::budget::human(f.delta as u64),
                f.path,
                f.step
            ));
        }
        Some(lines)
    }
}

/// A size change with its sign: `+1.2 MB`, `-300 B`.
pub fn signed_size(delta: i64) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!("{sign}{}", crate::budget::human(delta.unsigned_abs()))
}

/// The final filesystem of a stack of layers: path -> (entry, layer that made it).
pub(crate) fn flatten(indexes: &[LayerIndex]) -> BTreeMap<String, (IndexEntry, usize)> {
    let mut fs: BTreeMap<String, (IndexEntry, usize)> = BTreeMap::new();
    let drop_below = |fs: &mut BTreeMap<String, (IndexEntry, usize)>, dir: &str| {
        let prefix = format!("{dir}/");
        let doomed: Vec<String> = fs
            .range(prefix.clone()..)
            .take_while(|(k, _)| k.starts_with(&prefix))
            .map(|(k, _)| k.clone())
            .collect();
        for k in doomed {
            fs.remove(&k);
        }
    };
    for (li, index) in indexes.iter().enumerate() {
        for e in &index.entries {
            match e.kind {
                EntryKind::Whiteout => {
                    fs.remove(&e.path);
                    drop_below(&mut fs, &e.path);
                }
                EntryKind::Opaque => drop_below(&mut fs, &e.path),
                _ => {}
            }
        }
        for e in &index.entries {
            if matches!(e.kind, EntryKind::Whiteout | EntryKind::Opaque) {
                continue;
            }
            if e.kind != EntryKind::Dir {
                drop_below(&mut fs, &e.path);
            }
            fs.insert(e.path.clone(), (e.clone(), li));
        }
    }
    fs
}

/// What differs between two versions of one path.
fn attributes(a: &IndexEntry, b: &IndexEntry) -> Vec<&'static str> {
    let mut what = Vec::new();
    if a.kind != b.kind {
        what.push("type");
    }
    if a.size != b.size || a.hash != b.hash {
        what.push("content");
    }
    if a.mode != b.mode {
        what.push("mode");
    }
    if (a.uid, a.gid) != (b.uid, b.gid) {
        what.push("owner");
    }
    if a.link != b.link {
        what.push("link");
    }
    what
}

/// One image to compare and the store that holds it (an image read from an archive is in a
/// temporary store of its own).
#[derive(Clone, Copy)]
pub struct Side<'a> {
    /// The store that holds the image.
    pub store: &'a Store,
    /// The image.
    pub image: &'a Image,
}

/// Compares two images.
pub fn diff(a: Side<'_>, b: Side<'_>) -> Result<ImageDiff> {
    let ia = layer_indexes(a.store, &a.image.layers)?;
    let ib = layer_indexes(b.store, &b.image.layers)?;
    let (fa, fb) = (flatten(&ia), flatten(&ib));
    let (sa, sb) = (layer_steps(a.image), layer_steps(b.image));
    let change = |path: &str, change, what, delta, steps: &[crate::steps::Step], layer: usize| {
        let step = steps.get(layer).cloned().unwrap_or_default();
        FileChange {
            path: path.to_string(),
            change,
            what,
            delta,
            layer,
            line: step.line,
            step: step.label(layer),
        }
    };
    let mut files = Vec::new();
    for (path, (ea, la)) in &fa {
        match fb.get(path) {
            None => files.push(change(
                path,
                Change::Removed,
                Vec::new(),
                -(ea.size as i64),
                &sa,
                *la,
            )),
            Some((eb, lb)) => {
                let what = attributes(ea, eb);
                if !what.is_empty() {
                    let delta = eb.size as i64 - ea.size as i64;
                    files.push(change(path, Change::Changed, what, delta, &sb, *lb));
                }
            }
        }
    }
    for (path, (eb, lb)) in &fb {
        if !fa.contains_key(path) {
            let delta = eb.size as i64;
            files.push(change(path, Change::Added, Vec::new(), delta, &sb, *lb));
        }
    }
    files.sort_by(|x, y| y.delta.abs().cmp(&x.delta.abs()).then(x.path.cmp(&y.path)));

    let config_a = config_json(a)?;
    let config_b = config_json(b)?;
    let mut config = Vec::new();
    compare_json("", &config_a, &config_b, &mut config);

    let (a, b) = (a.image, b.image);
    let mut layers = Vec::new();
    for i in 0..a.layers.len().max(b.layers.len()) {
        let (la, lb) = (a.layers.get(i), b.layers.get(i));
        let verdict = match (la, lb) {
            (Some(x), Some(y)) if x.digest == y.digest => "same",
            (Some(x), Some(y)) if x.diff_id == y.diff_id => "recompressed",
            (Some(_), Some(_)) if same_files(&ia[i], &ib[i]) => "same-files",
            (Some(_), Some(_)) => "different",
            (Some(_), None) => "only-in-a",
            _ => "only-in-b",
        };
        layers.push(LayerChange {
            index: i,
            verdict,
            a: la.map(|l| l.digest.to_string()),
            b: lb.map(|l| l.digest.to_string()),
        });
    }
    let content =
        |fs: &BTreeMap<String, (IndexEntry, usize)>| fs.values().map(|(e, _)| e.size).sum();
    let wire = |img: &Image| img.layers.iter().map(|l| l.compressed_size).sum();
    Ok(ImageDiff {
        a: a.id.to_string(),
        b: b.id.to_string(),
        files,
        config,
        layers,
        size_a: content(&fa),
        size_b: content(&fb),
        wire_a: wire(a),
        wire_b: wire(b),
    })
}

/// Two layers with the same entries in the same order, timestamps and header details aside.
fn same_files(a: &LayerIndex, b: &LayerIndex) -> bool {
    a.entries == b.entries
}

/// The config blob as stored, without `rootfs` (the layers are compared on their own).
fn config_json(side: Side<'_>) -> Result<Value> {
    let img = side.image;
    let bytes = side.store.read_blob(&img.id)?;
    let mut v: Value = serde_json::from_slice(&bytes).map_err(|e| Error::Stream {
        digest: img.id,
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
    })?;
    if let Some(o) = v.as_object_mut() {
        o.remove("rootfs");
    }
    Ok(v)
}

/// The leaves of two JSON values that differ, by path.
fn compare_json(path: &str, a: &Value, b: &Value, out: &mut Vec<ConfigChange>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                compare_json(
                    &p,
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                compare_json(&format!("{path}[{i}]"), p, q, out);
            }
        }
        _ if a != b => out.push(ConfigChange {
            field: path.to_string(),
            a: a.clone(),
            b: b.clone(),
        }),
        _ => {}
    }
}

/// One reason two images' bytes differ, with its remedy.
#[derive(Clone, Debug, Serialize)]
pub struct Reason {
    /// Where: `layer 2: usr/bin/app`, `layer 0 blob`, `config`.
    pub place: String,
    /// What differs, with both values.
    pub what: String,
    /// How to make the two builds agree there.
    pub remedy: &'static str,
}

/// Why two images differ in their bytes: one reason per differing layer (the first header
/// field that differs in it), then the config fields. The first is what breaks the digest
/// first, bottom up.
pub fn why(sa: Side<'_>, sb: Side<'_>) -> Result<Vec<Reason>> {
    let (a, b) = (sa.image, sb.image);
    let mut reasons = Vec::new();
    for (i, (la, lb)) in a.layers.iter().zip(&b.layers).enumerate() {
        if la.digest == lb.digest {
            continue;
        }
        let reason = if la.diff_id == lb.diff_id {
            blob_reason((sa.store, la), (sb.store, lb), i)?
        } else {
            tar_reason((sa.store, la), (sb.store, lb), i)?
        };
        reasons.extend(reason);
    }
    if a.layers.len() != b.layers.len() {
        reasons.push(Reason {
            place: "layers".into(),
            what: format!("A has {} layers, B has {}", a.layers.len(), b.layers.len()),
            remedy: "the same Dockerfile steps make the same number of layers",
        });
    }
    let mut config = Vec::new();
    compare_json("", &config_json(sa)?, &config_json(sb)?, &mut config);
    for c in config {
        let remedy = match c.field.as_str() {
            f if f == "created" || f.starts_with("history") && f.ends_with(".created") => {
                "the builds recorded different times: rebuild from the same build cache (which \
                 keeps each step's layer and time), or fix the time in the inputs"
            }
            _ => "the images were built from different inputs: this field is part of the config",
        };
        reasons.push(Reason {
            place: "config".into(),
            what: format!("{}: {} vs {}", c.field, c.a, c.b),
            remedy,
        });
    }
    Ok(reasons)
}

/// Two blobs of the same tar: the compression, its level, or the gzip header.
fn blob_reason(
    (sa, a): (&Store, &LayerInfo),
    (sb, b): (&Store, &LayerInfo),
    i: usize,
) -> Result<Option<Reason>> {
    let place = format!("layer {i} blob");
    if a.media_type != b.media_type {
        return Ok(Some(Reason {
            place,
            what: format!("compression: {} vs {}", a.media_type, b.media_type),
            remedy: "use one compression for both (tare build/save --compression)",
        }));
    }
    let (ha, hb) = (blob_head(sa, a)?, blob_head(sb, b)?);
    let gzip = |h: &[u8]| h.len() >= 10 && h[0] == 0x1f && h[1] == 0x8b;
    let what = if gzip(&ha) && gzip(&hb) {
        if ha[4..8] != hb[4..8] {
            let t = |h: &[u8]| u32::from_le_bytes([h[4], h[5], h[6], h[7]]);
            format!("gzip header time: {} vs {}", t(&ha), t(&hb))
        } else if ha[3] != hb[3] {
            format!(
                "gzip header flags (a file name or comment): {:#x} vs {:#x}",
                ha[3], hb[3]
            )
        } else if ha[8] != hb[8] {
            format!("gzip compression level marker: {} vs {}", ha[8], hb[8])
        } else if ha[9] != hb[9] {
            format!("gzip header OS byte: {} vs {}", ha[9], hb[9])
        } else {
            "the same tar compressed by different compressors or levels".to_string()
        }
    } else {
        "the same tar compressed by different compressors or levels".to_string()
    };
    Ok(Some(Reason {
        place,
        what,
        remedy: "the content is identical: compress with one tool and level, with a zero \
                 gzip time and no name (tare does)",
    }))
}

fn blob_head(store: &Store, layer: &LayerInfo) -> Result<Vec<u8>> {
    let path = store.blob_path(&layer.digest);
    let mut head = Vec::with_capacity(16);
    File::open(&path)
        .and_then(|f| f.take(16).read_to_end(&mut head))
        .map_err(io("reading layer blob", &path))?;
    Ok(head)
}

/// One tar entry's header as `why` compares it.
#[derive(Debug, PartialEq)]
struct Head {
    path: String,
    kind: u8,
    mode: u32,
    uid: u64,
    gid: u64,
    uname: String,
    gname: String,
    mtime: u64,
    size: u64,
    link: Option<String>,
    pax: Vec<(String, Vec<u8>)>,
    content: u64,
}

fn read_heads(store: &Store, layer: &LayerInfo) -> Result<Vec<Head>> {
    let path = store.blob_path(&layer.digest);
    let file = File::open(&path).map_err(io("opening layer blob", &path))?;
    let kind = Compression::from_media_type(&layer.media_type).unwrap_or(Compression::None);
    let stream = |source| Error::Stream {
        digest: layer.digest,
        source,
    };
    let reader = decompress_as(kind, BufReader::with_capacity(256 << 10, file)).map_err(stream)?;
    let mut archive = tare_layer::tar_archive(reader);
    let mut heads = Vec::new();
    for entry in archive.entries().map_err(stream)? {
        let mut entry = entry.map_err(stream)?;
        let h = entry.header().clone();
        let pax: Vec<(String, Vec<u8>)> = match entry.pax_extensions().map_err(stream)? {
            Some(exts) => exts
                .filter_map(|e| e.ok())
                .map(|e| (e.key().unwrap_or("?").to_string(), e.value_bytes().to_vec()))
                .filter(|(k, _)| !matches!(k.as_str(), "path" | "linkpath" | "size" | "mtime"))
                .collect(),
            None => Vec::new(),
        };
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut buf = [0u8; 64 << 10];
        loop {
            let n = entry.read(&mut buf).map_err(stream)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
        }
        heads.push(Head {
            path: entry.path().map_err(stream)?.to_string_lossy().into_owned(),
            kind: h.entry_type().as_byte(),
            mode: h.mode().unwrap_or(0),
            uid: h.uid().unwrap_or(0),
            gid: h.gid().unwrap_or(0),
            uname: String::from_utf8_lossy(h.username_bytes().unwrap_or_default()).into_owned(),
            gname: String::from_utf8_lossy(h.groupname_bytes().unwrap_or_default()).into_owned(),
            mtime: entry.header().mtime().unwrap_or(0),
            size: entry.size(),
            link: entry
                .link_name()
                .ok()
                .flatten()
                .map(|l| l.to_string_lossy().into_owned()),
            pax,
            content: hasher.digest(),
        });
    }
    Ok(heads)
}

/// Two different tars: the first entry and header field that differ.
fn tar_reason(
    (sa, a): (&Store, &LayerInfo),
    (sb, b): (&Store, &LayerInfo),
    i: usize,
) -> Result<Option<Reason>> {
    let (ha, hb) = (read_heads(sa, a)?, read_heads(sb, b)?);
    let mut pa: Vec<&str> = ha.iter().map(|h| h.path.as_str()).collect();
    let mut pb: Vec<&str> = hb.iter().map(|h| h.path.as_str()).collect();
    for (x, y) in ha.iter().zip(&hb) {
        if x.path != y.path {
            pa.sort_unstable();
            pb.sort_unstable();
            let (what, remedy) = if pa == pb {
                (
                    format!(
                        "entry order: {} comes where the other has {}",
                        x.path, y.path
                    ),
                    "write tar entries in a fixed (sorted) order",
                )
            } else {
                (
                    format!("the entries differ from {} / {} on", x.path, y.path),
                    "the layers hold different files: see tare diff without --why",
                )
            };
            return Ok(Some(Reason {
                place: format!("layer {i}"),
                what,
                remedy,
            }));
        }
        let field = if x.content != y.content || x.size != y.size {
            Some((
                "content",
                "the file's bytes differ: the inputs or the step's output",
            ))
        } else if x.kind != y.kind || x.link != y.link {
            Some((
                "type or link target",
                "the step makes a different kind of entry",
            ))
        } else if x.mtime != y.mtime {
            Some((
                "mtime",
                "give the inputs fixed times (touch -d, tar --mtime) or reuse the cached layer",
            ))
        } else if (x.uid, x.gid) != (y.uid, y.gid) {
            Some((
                "uid/gid",
                "set owners explicitly (COPY --chown) or build as the same user",
            ))
        } else if (&x.uname, &x.gname) != (&y.uname, &y.gname) {
            Some((
                "user/group names in the tar header",
                "write numeric owners only",
            ))
        } else if x.mode != y.mode {
            Some((
                "mode",
                "set modes explicitly (COPY --chmod) or fix the umask",
            ))
        } else if x.pax != y.pax {
            Some((
                "PAX extended header (xattrs, times)",
                "write the same PAX records",
            ))
        } else {
            None
        };
        if let Some((what, remedy)) = field {
            let show = |h: &Head| match what {
                "mtime" => h.mtime.to_string(),
                "uid/gid" => format!("{}:{}", h.uid, h.gid),
                "mode" => format!("{:o}", h.mode),
                "user/group names in the tar header" => format!("{}:{}", h.uname, h.gname),
                _ => String::new(),
            };
            let values = match (show(x), show(y)) {
                (p, q) if p.is_empty() => format!("{p}{q}"),
                (p, q) => format!(": {p} vs {q}"),
            };
            return Ok(Some(Reason {
                place: format!("layer {i}: {}", x.path),
                what: format!("{what}{values}"),
                remedy,
            }));
        }
    }
    if ha.len() != hb.len() {
        return Ok(Some(Reason {
            place: format!("layer {i}"),
            what: format!("A's tar has {} entries, B's {}", ha.len(), hb.len()),
            remedy: "the layers hold different files: see tare diff without --why",
        }));
    }
    Ok(Some(Reason {
        place: format!("layer {i}"),
        what: "the same entries and headers in different tar bytes (header format, padding \
               or end-of-archive blocks)"
            .into(),
        remedy: "write the layers with one tar writer",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(path: &str, kind: EntryKind, size: u64) -> IndexEntry {
        IndexEntry {
            path: path.into(),
            kind,
            size,
            mode: 0o644,
            uid: 0,
            gid: 0,
            hash: Some(size),
            link: None,
        }
    }

    fn layer(entries: Vec<IndexEntry>) -> LayerIndex {
        LayerIndex {
            version: 1,
            entries,
        }
    }

    #[test]
    fn layers_stack_with_whiteouts_opaque_dirs_and_replacements() {
        let fs = flatten(&[
            layer(vec![
                e("a", EntryKind::Dir, 0),
                e("a/x", EntryKind::File, 3),
                e("b", EntryKind::Dir, 0),
                e("b/y", EntryKind::File, 4),
                e("c", EntryKind::Dir, 0),
                e("c/z", EntryKind::File, 5),
            ]),
            layer(vec![
                e("a", EntryKind::Whiteout, 0),
                e("b", EntryKind::Opaque, 0),
                e("b/new", EntryKind::File, 1),
                e("c", EntryKind::File, 9),
            ]),
        ]);
        let paths: Vec<(&str, usize)> = fs.iter().map(|(k, (_, l))| (k.as_str(), *l)).collect();
        assert_eq!(paths, [("b", 0), ("b/new", 1), ("c", 1)]);
    }

    #[test]
    fn json_leaves_are_compared_by_path() {
        let mut out = Vec::new();
        compare_json(
            "",
            &serde_json::json!({"created": "1", "config": {"Env": ["A=1", "B=2"], "User": "x"}}),
            &serde_json::json!({"created": "2", "config": {"Env": ["A=1", "B=3"], "User": "x"}}),
            &mut out,
        );
        let fields: Vec<&str> = out.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, ["config.Env[1]", "created"]);
    }
}
