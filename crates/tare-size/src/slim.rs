//! Slim: which files of an image a traced run needs, and the one-layer image made of them.
//!
//! The plan starts from the paths a run opened (the tracer of `tare-sandbox`) and adds what
//! they need to work:
//!
//! - for every ELF file kept: its interpreter (`PT_INTERP`) and the libraries its `DT_NEEDED`
//!   entries name, found the way the dynamic loader finds them (`DT_RPATH`, the image's
//!   `LD_LIBRARY_PATH`, `DT_RUNPATH` with `$ORIGIN`, the directories of the image's
//!   `/etc/ld.so.conf`, then the default and multiarch directories), recursively. The ELF
//!   headers are read here (a few hundred bytes per file, bounded), nothing runs;
//! - every symbolic link on the way to a kept path, and every link of the image that leads to
//!   a kept path (`/bin -> usr/bin` on merged-/usr systems, `/etc/alternatives` chains);
//! - the Python source of every kept bytecode cache file (`__pycache__/m.cpython-311.pyc`
//!   keeps `m.py`, which the interpreter stats but does not open);
//! - the targets of kept hard links, every parent directory, and the image's empty
//!   directories (`/tmp`, `/run`: written to or mounted on, never opened);
//! - `/etc/passwd`, `/etc/group` and `/etc/nsswitch.conf` whole (a few kilobytes: the config's
//!   user and any name lookup keep working);
//! - the CA certificates (`/etc/ssl`, `/usr/share/ca-certificates`, `/etc/pki`,
//!   `/usr/lib/ssl`) when a TLS library is kept;
//! - the `--include` paths (a directory with everything under it) and the files of the
//!   `--include-pkg` packages (from `/var/lib/dpkg/info/NAME.list`).
//!
//! Everything is resolved in an in-memory view of the image built from the layer indexes, so a
//! symbolic link to `/etc/shadow` names the image's file, never the host's. File content (ELF
//! headers, dpkg lists, ld.so.conf) is read from the extracted layer snapshots with
//! `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS)` and size limits.
//!
//! The new layer is written by the squash writer restricted to the kept paths
//! (`squash_filtered`), so entries keep their exact metadata.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Serialize;
use tare_store::{Image, Store};

use crate::error::{Error, Result};
use crate::index::{layer_indexes, EntryKind, IndexEntry};

mod elf;
pub use elf::{read_elf, ElfNeeds};

/// How many symbolic links one lookup follows.
const MAX_LINKS: usize = 40;
/// The largest text file read from the image (ld.so.conf, dpkg lists).
const MAX_TEXT: u64 = 8 << 20;

/// The image's merged filesystem: path (relative, clean) -> the entry and the index of the
/// layer (bottom = 0) that provides it.
pub struct View {
    entries: BTreeMap<String, (IndexEntry, usize)>,
    snapshots: Vec<PathBuf>,
}

/// What to keep besides the traced paths.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    /// Absolute paths inside the image (`--include`).
    pub include: Vec<String>,
    /// Debian package names (`--include-pkg`).
    pub include_pkg: Vec<String>,
    /// The config's environment (for `LD_LIBRARY_PATH`).
    pub env: Vec<String>,
}

/// A removed path, for the report.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Removed {
    /// The removed path, absolute in the image (`/usr/share/doc/x`).
    pub path: String,
    /// Its content bytes.
    pub size: u64,
    /// The layer (bottom = 0) that provides it.
    pub layer: usize,
    /// The distribution package that owns it, when the package database says so.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub package: Option<String>,
}

/// The outcome of planning.
#[derive(Debug, Clone, Default)]
pub struct Plan {
    /// Relative clean paths to keep.
    pub keep: BTreeSet<String>,
    /// Content bytes of the image's files, and of the kept ones.
    pub bytes_before: u64,
    /// Content bytes of the kept files.
    pub bytes_kept: u64,
    /// Every path left out, in path order.
    pub removed: Vec<Removed>,
}

/// The report `--report` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The image slimmed, as the user named it.
    pub image: String,
    /// The tags of the slim image, joined with `, `.
    pub slim: String,
    /// Uncompressed layer bytes of the image.
    pub size_before: u64,
    /// Uncompressed layer bytes of the slim image.
    pub size_after: u64,
    /// Content bytes of the image's files.
    pub content_before: u64,
    /// Content bytes of the kept files.
    pub content_after: u64,
    /// How many paths were kept.
    pub kept: usize,
    /// Every path left out, as in [`Plan::removed`].
    pub removed: Vec<Removed>,
}

impl View {
    /// Builds the view of `image` from its layer indexes; `snapshots[i]` is the extracted
    /// directory of layer `i` (bottom first), read for file content.
    pub fn new(store: &Store, image: &Image, snapshots: Vec<PathBuf>) -> Result<View> {
        let entries = crate::imagediff::flatten(&layer_indexes(store, &image.layers)?);
        Ok(View { entries, snapshots })
    }

    fn get(&self, path: &str) -> Option<&IndexEntry> {
        self.entries.get(path).map(|(e, _)| e)
    }

    /// Resolves an absolute or relative path inside the image, following symbolic links in
    /// the view. Returns the final clean relative path ("" is the root) when it exists, and
    /// pushes every link it crossed onto `links`.
    fn resolve(&self, path: &str, links: &mut Vec<String>) -> Option<String> {
        let mut pending: Vec<String> = split(path).into_iter().rev().collect();
        let mut current: Vec<String> = Vec::new();
        let mut followed = 0;
        while let Some(part) = pending.pop() {
            if part == ".." {
                current.pop();
                continue;
            }
            current.push(part);
            let here = current.join("/");
            let entry = self.get(&here)?;
            match entry.kind {
                EntryKind::Dir => {}
                EntryKind::Symlink => {
                    followed += 1;
                    if followed > MAX_LINKS {
                        return None;
                    }
                    links.push(here);
                    let target = entry.link.clone().unwrap_or_default();
                    current.pop();
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(split(&target).into_iter().rev());
                }
                _ if !pending.is_empty() => return None,
                _ => {}
            }
        }
        Some(current.join("/"))
    }

    /// Opens a regular file of the view from its layer's snapshot, without following any
    /// link and without leaving the snapshot.
    fn open(&self, path: &str) -> Option<File> {
        use rustix::fs::{Mode, OFlags, ResolveFlags};
        let (entry, layer) = self.entries.get(path)?;
        if entry.kind != EntryKind::File {
            return None;
        }
        let root = rustix::fs::open(
            &self.snapshots[*layer],
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .ok()?;
        let fd = rustix::fs::openat2(
            &root,
            path,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
        )
        .ok()?;
        let stat = rustix::fs::fstat(&fd).ok()?;
        if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
            return None;
        }
        Some(File::from(fd))
    }

    fn read_text(&self, path: &str) -> Option<String> {
        let mut text = String::new();
        self.open(path)?
            .take(MAX_TEXT)
            .read_to_string(&mut text)
            .ok()?;
        Some(text)
    }
}

fn split(path: &str) -> Vec<String> {
    path.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(str::to_string)
        .collect()
}

/// Plans what to keep: `traced` are absolute paths inside the container.
pub fn plan(view: &View, traced: &BTreeSet<String>, extras: &Extras) -> Plan {
    let mut p = Planner {
        view,
        keep: BTreeSet::new(),
        queue: Vec::new(),
        search: Vec::new(),
        ld_library_path: extras
            .env
            .iter()
            .find_map(|e| e.strip_prefix("LD_LIBRARY_PATH="))
            .map(|v| {
                v.split(':')
                    .filter(|d| !d.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default(),
    };
    p.search = p.loader_dirs();
    for path in traced {
        p.add(path, false);
    }
    for path in &extras.include {
        p.add(path, true);
    }
    for name in &extras.include_pkg {
        for file in package_files(view, name) {
            p.add(&file, false);
        }
    }
    for path in ["etc/passwd", "etc/group", "etc/nsswitch.conf"] {
        p.add(path, false);
    }
    p.drain();
    // Python opens a module's cached bytecode (`pkg/__pycache__/mod.cpython-311.pyc`) but only
    // stats its source (`pkg/mod.py`), which the tracer cannot see: without the source the
    // import system does not find the module at all.
    let sources: Vec<String> = p
        .keep
        .iter()
        .filter_map(|k| python_source_of(k))
        .filter(|s| view.entries.contains_key(s))
        .collect();
    for source in sources {
        p.add(&source, false);
    }
    p.drain();
    if p.keep.iter().any(|k| is_tls_library(k)) {
        for dir in [
            "etc/ssl",
            "usr/share/ca-certificates",
            "etc/pki",
            "usr/lib/ssl",
        ] {
            p.add(dir, true);
        }
        p.drain();
    }
    // Empty directories (`/tmp`, `/run`, a home): scratch space and mount points a run
    // writes to or mounts on, which the tracer cannot see (creating a file there is not an
    // open of anything the image has). A header each.
    let empty: Vec<String> = view
        .entries
        .iter()
        .filter(|(k, (e, _))| {
            e.kind == EntryKind::Dir
                && view
                    .entries
                    .range(format!("{k}/")..format!("{k}0"))
                    .next()
                    .is_none()
        })
        .map(|(k, _)| k.clone())
        .collect();
    p.keep.extend(empty);
    // Parents first: a link may lead to a directory kept only as a parent.
    add_parents(&mut p.keep);
    // Links of the image that lead to something kept.
    let links: Vec<String> = view
        .entries
        .iter()
        .filter(|(_, (e, _))| e.kind == EntryKind::Symlink)
        .map(|(k, _)| k.clone())
        .collect();
    for link in links {
        let mut crossed = Vec::new();
        if let Some(end) = view.resolve(&link, &mut crossed) {
            if p.keep.contains(&end) {
                p.keep.extend(crossed);
            }
        }
    }
    add_parents(&mut p.keep);
    p.keep.remove("");

    let owners = package_owners(view);
    let mut plan = Plan {
        keep: p.keep,
        ..Plan::default()
    };
    for (path, (e, layer)) in &view.entries {
        plan.bytes_before += e.size;
        if plan.keep.contains(path) {
            plan.bytes_kept += e.size;
        } else {
            plan.removed.push(Removed {
                path: format!("/{path}"),
                size: e.size,
                layer: *layer,
                package: owners.get(path.as_str()).cloned(),
            });
        }
    }
    plan
}

/// The source a Python bytecode cache file stands for (PEP 3147):
/// `a/__pycache__/mod.cpython-311[.opt-1].pyc` -> `a/mod.py`.
fn python_source_of(path: &str) -> Option<String> {
    let (dir, file) = path.rsplit_once('/')?;
    let package = dir.strip_suffix("__pycache__")?;
    if !(package.is_empty() || package.ends_with('/')) {
        return None;
    }
    let module = file.strip_suffix(".pyc")?.split('.').next()?;
    (!module.is_empty()).then(|| format!("{package}{module}.py"))
}

/// Adds every parent directory of the kept paths.
fn add_parents(keep: &mut BTreeSet<String>) {
    let kept: Vec<String> = keep.iter().cloned().collect();
    for path in kept {
        let mut at = path.as_str();
        while let Some((parent, _)) = at.rsplit_once('/') {
            if !keep.insert(parent.to_string()) {
                break;
            }
            at = parent;
        }
    }
}

struct Planner<'a> {
    view: &'a View,
    keep: BTreeSet<String>,
    /// Kept regular files whose ELF needs are still to be read.
    queue: Vec<String>,
    /// The loader's directories after the per-object and environment ones.
    search: Vec<String>,
    ld_library_path: Vec<String>,
}

impl Planner<'_> {
    /// Keeps `path` (absolute or relative) and the links on its way; `tree` keeps everything
    /// below a directory too.
    fn add(&mut self, path: &str, tree: bool) {
        let mut links = Vec::new();
        let Some(end) = self.view.resolve(path, &mut links) else {
            return;
        };
        self.keep.extend(links);
        if end.is_empty() {
            return;
        }
        self.mark(&end);
        if tree
            && self
                .view
                .get(&end)
                .is_some_and(|e| e.kind == EntryKind::Dir)
        {
            let (lo, hi) = (format!("{end}/"), format!("{end}0"));
            let below: Vec<String> = self
                .view
                .entries
                .range(lo..hi)
                .map(|(k, _)| k.clone())
                .collect();
            for b in below {
                self.mark(&b);
            }
        }
    }

    fn mark(&mut self, path: &str) {
        if !self.keep.insert(path.to_string()) {
            return;
        }
        match self.view.get(path) {
            Some(e) if e.kind == EntryKind::File => self.queue.push(path.to_string()),
            Some(e) if e.kind == EntryKind::Hardlink => {
                if let Some(target) = e.link.clone() {
                    self.mark(&target);
                }
            }
            Some(e) if e.kind == EntryKind::Symlink => {
                let mut links = Vec::new();
                if let Some(end) = self.view.resolve(path, &mut links) {
                    self.keep.extend(links);
                    if !end.is_empty() {
                        self.mark(&end);
                    }
                }
            }
            _ => {}
        }
    }

    fn drain(&mut self) {
        while let Some(path) = self.queue.pop() {
            let Some(elf) = self.view.open(&path).and_then(|f| read_elf(&f)) else {
                continue;
            };
            if let Some(interp) = &elf.interp {
                self.add(interp, false);
            }
            let origin = match path.rsplit_once('/') {
                Some((dir, _)) => format!("/{dir}"),
                None => "/".to_string(),
            };
            let expand = |dirs: &[String]| -> Vec<String> {
                dirs.iter()
                    .map(|d| d.replace("${ORIGIN}", &origin).replace("$ORIGIN", &origin))
                    .collect()
            };
            let mut dirs = Vec::new();
            if elf.runpath.is_empty() {
                dirs.extend(expand(&elf.rpath));
            }
            dirs.extend(self.ld_library_path.iter().cloned());
            dirs.extend(expand(&elf.runpath));
            dirs.extend(self.search.iter().cloned());
            for lib in &elf.needed {
                if lib.contains('/') {
                    self.add(lib, false);
                    continue;
                }
                let found = dirs.iter().find(|dir| {
                    let mut links = Vec::new();
                    self.view
                        .resolve(&format!("{dir}/{lib}"), &mut links)
                        .is_some_and(|end| {
                            self.view.get(&end).is_some_and(|e| {
                                matches!(e.kind, EntryKind::File | EntryKind::Hardlink)
                            })
                        })
                });
                if let Some(dir) = found.cloned() {
                    self.add(&format!("{dir}/{lib}"), false);
                }
            }
        }
    }

    /// `/etc/ld.so.conf` (with its `include` globs, one level of `*`), then the defaults.
    fn loader_dirs(&self) -> Vec<String> {
        let mut dirs = Vec::new();
        let mut files = vec!["etc/ld.so.conf".to_string()];
        let mut seen = BTreeSet::new();
        while let Some(file) = files.pop() {
            if !seen.insert(file.clone()) || seen.len() > 256 {
                continue;
            }
            let mut links = Vec::new();
            let Some(end) = self.view.resolve(&file, &mut links) else {
                continue;
            };
            let Some(text) = self.view.read_text(&end) else {
                continue;
            };
            for line in text.lines() {
                let line = line.split('#').next().unwrap_or("").trim();
                if let Some(pattern) = line.strip_prefix("include") {
                    files.extend(self.glob(pattern.trim()));
                } else if line.starts_with('/') {
                    dirs.push(line.to_string());
                }
            }
        }
        for d in [
            "/lib/x86_64-linux-gnu",
            "/usr/lib/x86_64-linux-gnu",
            "/lib/aarch64-linux-gnu",
            "/usr/lib/aarch64-linux-gnu",
            "/lib64",
            "/usr/lib64",
            "/lib",
            "/usr/lib",
            "/usr/local/lib",
        ] {
            dirs.push(d.to_string());
        }
        dirs
    }

    /// Paths matching `dir/*suffix` (the only glob ld.so.conf files use in practice).
    fn glob(&self, pattern: &str) -> Vec<String> {
        let pattern = pattern.trim_start_matches('/');
        let Some((dir, name)) = pattern.rsplit_once('/') else {
            return vec![pattern.to_string()];
        };
        let Some((prefix, suffix)) = name.split_once('*') else {
            return vec![pattern.to_string()];
        };
        let mut links = Vec::new();
        let Some(dir) = self.view.resolve(dir, &mut links) else {
            return Vec::new();
        };
        let (lo, hi) = (format!("{dir}/"), format!("{dir}0"));
        self.view
            .entries
            .range(lo.clone()..hi)
            .map(|(k, _)| k)
            .filter(|k| {
                let rest = &k[lo.len()..];
                !rest.contains('/') && rest.starts_with(prefix) && rest.ends_with(suffix)
            })
            .rev()
            .cloned()
            .collect()
    }
}

fn is_tls_library(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    [
        "libssl.so",
        "libcrypto.so",
        "libgnutls.so",
        "libnss3.so",
        "libmbedtls.so",
    ]
    .iter()
    .any(|l| name.starts_with(l))
        || (name.starts_with("_ssl.") && name.ends_with(".so"))
}

/// The files a Debian package installed, from `/var/lib/dpkg/info/NAME[:ARCH].list`.
fn package_files(view: &View, name: &str) -> Vec<String> {
    if name.is_empty() || name.contains('/') {
        return Vec::new();
    }
    let plain = format!("var/lib/dpkg/info/{name}.list");
    let arch = format!("var/lib/dpkg/info/{name}:");
    let mut lists: Vec<&String> = view
        .entries
        .keys()
        .filter(|k| **k == plain || (k.starts_with(&arch) && k.ends_with(".list")))
        .collect();
    lists.truncate(8);
    lists
        .into_iter()
        .filter_map(|l| view.read_text(l))
        .flat_map(|t| t.lines().map(String::from).collect::<Vec<_>>())
        .filter(|l| l.starts_with('/') && l.len() > 1)
        .collect()
}

/// Which package installed each path, from every dpkg list in the image.
fn package_owners(view: &View) -> HashMap<String, String> {
    let mut owners = HashMap::new();
    let lists: Vec<&String> = view
        .entries
        .range("var/lib/dpkg/info/".to_string().."var/lib/dpkg/info0".to_string())
        .map(|(k, _)| k)
        .filter(|k| k.ends_with(".list") && !k["var/lib/dpkg/info/".len()..].contains('/'))
        .collect();
    for list in lists {
        let name = list["var/lib/dpkg/info/".len()..]
            .trim_end_matches(".list")
            .split(':')
            .next()
            .unwrap_or("")
            .to_string();
        let Some(text) = view.read_text(list) else {
            continue;
        };
        for line in text.lines() {
            let path = line.trim_start_matches('/');
            if !path.is_empty() && view.get(path).is_some_and(|e| e.kind != EntryKind::Dir) {
                owners.insert(path.to_string(), name.clone());
            }
        }
    }
    owners
}

/// Writes the plan's layer (the kept entries only, metadata unchanged) and commits the image:
/// the config kept, the history entries of the old layers marked `empty_layer`, one entry
/// added. The image is not tagged: the caller tags it once verified.
/// `created` dates the new history entry (RFC 3339: SOURCE_DATE_EPOCH, or now).
pub fn write(
    store: &Store,
    image: &Image,
    plan: &Plan,
    compression: tare_layer::Compression,
    created: String,
) -> Result<Image> {
    let keep = |p: &str| plan.keep.contains(p);
    let layer = crate::squash::squash_filtered(store, &image.layers, &keep, compression)?;
    crate::squash::commit_one_layer(
        store,
        image,
        0,
        layer,
        tare_store::config::History {
            created: Some(created),
            created_by: Some(format!(
                "tare slim: {} of {} paths kept",
                plan.keep.len(),
                plan.keep.len() + plan.removed.len()
            )),
            comment: Some("slimmed by tracing a run".to_string()),
            ..Default::default()
        },
        &[],
    )
}

/// Per layer (bottom = 0): the content bytes it shows in the final filesystem, and how many
/// of them the plan removes (what the traced run never needed): `tare analyze --trace`.
pub fn unused_by_layer(view: &View, plan: &Plan, layers: usize) -> Vec<(u64, u64)> {
    let mut out = vec![(0u64, 0u64); layers];
    for (e, layer) in view.entries.values() {
        if let Some(slot) = out.get_mut(*layer) {
            slot.0 += e.size;
        }
    }
    for r in &plan.removed {
        if let Some(slot) = out.get_mut(r.layer) {
            slot.1 += r.size;
        }
    }
    out
}

/// The report as JSON.
pub fn report_json(report: &Report) -> Result<Vec<u8>> {
    serde_json::to_vec_pretty(report).map_err(|e| Error::Write(e.into()))
}

/// The report as one self-contained HTML page.
pub fn report_html(report: &Report) -> String {
    use crate::budget::human;
    let esc = crate::html::esc;
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>tare slim: {i}</title>\n<style>{css}</style></head><body>\n\
         <h1>{i} &rarr; {s}</h1>\n<p class=\"summary\">Image size <b>{b}</b> &rarr; <b>{a}</b> \
         · files {cb} &rarr; {ca} · {k} paths kept, {r} removed</p>\n\
         <table><tr><th>Removed path</th><th>Size</th><th>Package</th></tr>\n",
        css = crate::html::CSS,
        i = esc(&report.image),
        s = esc(&report.slim),
        b = human(report.size_before),
        a = human(report.size_after),
        cb = human(report.content_before),
        ca = human(report.content_after),
        k = report.kept,
        r = report.removed.len(),
    );
    for r in &report.removed {
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td class=\"n\">{}</td><td>{}</td></tr>",
            esc(&r.path),
            human(r.size),
            esc(r.package.as_deref().unwrap_or("")),
        );
    }
    h.push_str("</table></body></html>\n");
    h
}

/// Where the report goes, by extension.
pub fn write_report(path: &Path, report: &Report) -> Result<()> {
    let bytes = match path.extension().and_then(|e| e.to_str()) {
        Some("html" | "htm") => report_html(report).into_bytes(),
        _ => report_json(report)?,
    };
    std::fs::write(path, bytes).map_err(crate::error::io("writing", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(entries: &[(&str, EntryKind, Option<&str>)]) -> View {
        View {
            entries: entries
                .iter()
                .map(|(p, k, l)| {
                    (
                        p.to_string(),
                        (
                            IndexEntry {
                                path: p.to_string(),
                                kind: *k,
                                size: 1,
                                mode: 0o755,
                                uid: 0,
                                gid: 0,
                                hash: None,
                                link: l.map(String::from),
                            },
                            0,
                        ),
                    )
                })
                .collect(),
            snapshots: vec![PathBuf::from("/nonexistent")],
        }
    }

    #[test]
    fn links_resolve_inside_the_view_and_are_kept() {
        use EntryKind::*;
        let v = view(&[
            ("bin", Symlink, Some("usr/bin")),
            ("usr", Dir, None),
            ("usr/bin", Dir, None),
            ("usr/bin/sh", Symlink, Some("dash")),
            ("usr/bin/dash", File, None),
            ("usr/bin/unused", File, None),
            ("shadow", Symlink, Some("/etc/shadow")),
            ("loop", Symlink, Some("loop")),
        ]);
        let mut links = Vec::new();
        assert_eq!(
            v.resolve("/bin/sh", &mut links).as_deref(),
            Some("usr/bin/dash")
        );
        assert_eq!(links, vec!["bin".to_string(), "usr/bin/sh".to_string()]);
        assert_eq!(v.resolve("/shadow", &mut Vec::new()), None);
        assert_eq!(v.resolve("/loop", &mut Vec::new()), None);
        let traced: BTreeSet<String> = ["/usr/bin/dash".to_string()].into();
        let plan = plan(&v, &traced, &Extras::default());
        let keep: Vec<&str> = plan.keep.iter().map(String::as_str).collect();
        assert_eq!(
            keep,
            ["bin", "usr", "usr/bin", "usr/bin/dash", "usr/bin/sh"]
        );
        assert!(plan.removed.iter().any(|r| r.path == "/usr/bin/unused"));
        assert!(plan.removed.iter().any(|r| r.path == "/shadow"));
    }

    #[test]
    fn kept_python_bytecode_keeps_its_source_and_nothing_else() {
        use EntryKind::*;
        let v = view(&[
            ("lib", Dir, None),
            ("lib/enc", Dir, None),
            ("lib/enc/__init__.py", File, None),
            ("lib/enc/utf_8.py", File, None),
            ("lib/enc/idna.py", File, None),
            ("lib/enc/__pycache__", Dir, None),
            ("lib/enc/__pycache__/__init__.cpython-311.pyc", File, None),
            (
                "lib/enc/__pycache__/utf_8.cpython-311.opt-1.pyc",
                File,
                None,
            ),
            ("lib/enc/__pycache__/idna.cpython-311.pyc", File, None),
            ("lib/__pycache__", Dir, None),
            ("lib/__pycache__/gone.cpython-311.pyc", File, None),
        ]);
        let traced: BTreeSet<String> = [
            "/lib/enc/__pycache__/__init__.cpython-311.pyc",
            "/lib/enc/__pycache__/utf_8.cpython-311.opt-1.pyc",
            "/lib/__pycache__/gone.cpython-311.pyc",
        ]
        .map(String::from)
        .into();
        let plan = plan(&v, &traced, &Extras::default());
        assert!(plan.keep.contains("lib/enc/__init__.py"));
        assert!(plan.keep.contains("lib/enc/utf_8.py"));
        // Not traced, and a cache with no source adds nothing.
        assert!(!plan.keep.contains("lib/enc/idna.py"));
        assert!(!plan.keep.contains("lib/gone.py"));
        assert_eq!(
            python_source_of("__pycache__/m.cpython-311.pyc").as_deref(),
            Some("m.py")
        );
        assert_eq!(python_source_of("a/not__pycache__/m.cpython-311.pyc"), None);
        assert_eq!(python_source_of("a/__pycache__/m.txt"), None);
    }
}
