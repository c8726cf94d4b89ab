//! COPY and ADD: sources into a fresh snapshot directory.
//!
//! A COPY step writes only what it adds into an empty directory (the step's *upper*): the
//! copied files, and the parent directories of the destination, those that exist in the image
//! copied with their metadata so the layer does not change them. That directory is both the
//! step's diff (through `tare_layer::diff::write_tree`) and its snapshot.
//!
//! Rules, as BuildKit applies them: a directory source copies its contents; a file source goes
//! to `DEST/NAME` when DEST ends with `/` or is a directory in the image, else to DEST (so
//! several sources to such a DEST are written there in turn, the last one winning); a
//! symlink named as a source is followed (inside its tree, never above its root), symlinks inside a copied
//! directory are kept; hard links inside a copied directory stay linked. Files from the context
//! are owned by 0:0 unless `--chown`; from a stage or an image they keep their owner.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Timespec};

use crate::chmod::Chmod;
use crate::dockerignore::{clean, has_wildcard, match_component, DockerIgnore, Filter};
use crate::error::{io_err, Error};
use crate::fsops::{self, Root};
use crate::plan::Plan;
use crate::target::{Content, Disk, FileAttrs, Target};
use crate::tree::{Layers, Node, SourceTree};
use tare_layer::apply::Below;

mod archive;
mod writer;

pub use archive::{archive_kind, decoder, ArchiveKind};

/// One source of a COPY/ADD.
pub enum Source<'a> {
    /// A path (maybe a wildcard) in a tree: the context, a stage, an image.
    Tree {
        tree: &'a dyn SourceTree,
        path: String,
    },
    /// A heredoc body (`COPY <<EOF /dst`).
    Bytes {
        name: String,
        content: Vec<u8>,
        mode: u32,
        mtime: i64,
    },
    /// A file of tare's own outside every tree: a download (ADD URL) kept in the store's
    /// temporary directory. `name` is the name it gets in the image.
    File {
        name: String,
        path: PathBuf,
        mode: u32,
        mtime: i64,
    },
}

/// How a COPY/ADD writes what it copies.
#[derive(Debug, Clone, Default)]
pub struct CopyOptions {
    /// The destination as written, after expansion.
    pub dest: String,
    /// The image's working directory, for a relative destination.
    pub workdir: String,
    /// `--chown`, already resolved to numbers.
    pub chown: Option<(u32, u32)>,
    /// `--chmod`.
    pub chmod: Option<Chmod>,
    /// Keep the owners found in the source tree (COPY --from); otherwise 0:0.
    pub keep_owner: bool,
    /// ADD: local tar archives are extracted.
    pub extract_archives: bool,
    /// `--exclude` and `--parents`.
    pub select: Select,
}

/// Which files below each source a COPY takes.
#[derive(Debug, Clone, Default)]
pub struct Select {
    /// `--exclude` patterns, matched below each source with `.dockerignore`'s rules.
    pub exclude: DockerIgnore,
    /// `--parents`: a source `PIVOT/./PATH` (or `PATH`, the pivot then being the root) copies
    /// the pivot directory with only what `PATH` (maybe a wildcard) matches, so the matches
    /// keep their path below the pivot, as BuildKit does with an include pattern.
    pub parents: bool,
}

#[allow(clippy::large_enum_variant)] // short-lived, one per source
enum Expanded<'a> {
    Node {
        /// The source's tree as seen with `--exclude` applied below the source.
        tree: Box<Excluding<'a>>,
        name: String,
        node: Node,
    },
    Bytes(usize),
}

/// Writes what a COPY copies into a [`Target`].
struct Writer<'a, T: Target> {
    out: T,
    lower: &'a Layers,
    opts: &'a CopyOptions,
    /// The first copy of each hard-linked inode, by (device, inode).
    links: HashMap<(u64, u64), String>,
    /// Directories whose mtimes are set at the end, once nothing writes into them any more.
    mirrored: Vec<(String, Timespec)>,
    /// The mode of each directory the step creates on the way to a destination: an octal
    /// `--chmod` sets it for COPY, as in BuildKit 0.25 (`COPY --chmod=600 f /p/q/r` makes `/p`
    /// and `/p/q` 0600); else, and while an ADD archive is unpacked, 0755.
    new_dir_mode: u32,
}

impl<'a, T: Target> Writer<'a, T> {
    fn new(out: T, lower: &'a Layers, opts: &'a CopyOptions) -> Writer<'a, T> {
        Writer {
            out,
            lower,
            opts,
            links: HashMap::new(),
            mirrored: Vec::new(),
            new_dir_mode: opts
                .chmod
                .as_ref()
                .and_then(Chmod::created_dest_mode)
                .unwrap_or(0o755),
        }
    }
}

/// One COPY source seen through its `--exclude` patterns, as BuildKit's copier (fsutil)
/// applies them: paths below `base` (the source as resolved in `inner`) are matched relative
/// to `base`, with `.dockerignore`'s rules; the source itself and everything outside it are
/// never hidden (`COPY --exclude=*.txt *.txt /d/` still copies the matched files).
pub(crate) struct Excluding<'a> {
    inner: &'a dyn SourceTree,
    base: String,
    /// A path is hidden when one of them hides it: the `--parents` include pattern, then
    /// `--exclude`.
    filters: Vec<Filter>,
}

impl<'a> Excluding<'a> {
    fn new(inner: &'a dyn SourceTree, base: String, filters: &[DockerIgnore]) -> Excluding<'a> {
        Excluding {
            inner,
            base,
            filters: filters
                .iter()
                .filter(|f| !f.is_empty())
                .map(|f| Filter::new(f.clone()))
                .collect(),
        }
    }

    /// `rel` relative to the source, when it lies strictly below it.
    fn below<'r>(&self, rel: &'r str) -> Option<&'r str> {
        if self.base.is_empty() {
            return Some(rel).filter(|r| !r.is_empty());
        }
        rel.strip_prefix(self.base.as_str())?.strip_prefix('/')
    }
}

impl SourceTree for Excluding<'_> {
    fn lstat(&self, rel: &str) -> Result<Option<Node>, Error> {
        let node = self.inner.lstat(rel)?;
        if let (Some(n), Some(below)) = (&node, self.below(rel)) {
            let holds_any = |dir: &str| Ok(!self.read_dir(&join(&self.base, dir))?.is_empty());
            for filter in &self.filters {
                if filter.hidden(below, n.meta.is_dir(), &holds_any)? {
                    return Ok(None);
                }
            }
        }
        Ok(node)
    }

    fn read_dir(&self, rel: &str) -> Result<Vec<String>, Error> {
        let names = self.inner.read_dir(rel)?;
        if self.filters.is_empty() {
            return Ok(names);
        }
        let mut kept = Vec::with_capacity(names.len());
        for name in names {
            if self.lstat(&join(rel, &name))?.is_some() {
                kept.push(name);
            }
        }
        Ok(kept)
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Expands wildcards and follows named symlinks: what each source names, in order, each
/// seen through the `--exclude` patterns.
fn expand<'a>(sources: &'a [Source<'a>], select: &Select) -> Result<Vec<Expanded<'a>>, Error> {
    let mut expanded: Vec<Expanded<'_>> = Vec::new();
    for (index, source) in sources.iter().enumerate() {
        match source {
            Source::Tree { tree, path } => {
                let (rel, include) = if select.parents {
                    parents_split(*tree, path)?
                } else {
                    (source_rel(path), DockerIgnore::default())
                };
                let filters = [include, select.exclude.clone()];
                if has_wildcard(&rel) {
                    // BuildKit allows a wildcard that matches nothing: it copies nothing.
                    for m in glob(*tree, &rel)? {
                        let resolved = tree.resolve(&m, true)?;
                        let Some(node) = tree.lstat(&resolved)? else {
                            return Err(Error::SourceNotFound {
                                path: m,
                                tree: tree.describe(),
                            });
                        };
                        expanded.push(Expanded::Node {
                            tree: Box::new(Excluding::new(*tree, resolved, &filters)),
                            name: m,
                            node,
                        });
                    }
                } else {
                    let resolved = tree.resolve(&rel, true)?;
                    let node = tree
                        .lstat(&resolved)?
                        .ok_or_else(|| Error::SourceNotFound {
                            path: path.clone(),
                            tree: tree.describe(),
                        })?;
                    expanded.push(Expanded::Node {
                        tree: Box::new(Excluding::new(*tree, resolved, &filters)),
                        name: rel,
                        node,
                    });
                }
            }
            Source::Bytes { .. } | Source::File { .. } => expanded.push(Expanded::Bytes(index)),
        }
    }
    Ok(expanded)
}

/// Every file the sources name (directories walked), as `(path, digest)` pairs where the
/// digest covers kind, mode, owner and content (or link target), never the mtime: the
/// cache key input of a COPY. `file_digest` hashes a regular file's content (read fd-relative
/// through [`Node::open`]).
pub fn source_digests(
    sources: &[Source<'_>],
    select: &Select,
    file_digest: &dyn Fn(&Node) -> Result<String, Error>,
) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for item in expand(sources, select)? {
        match item {
            Expanded::Node { tree, name, node } => {
                digest_node(tree.as_ref(), &name, &node, file_digest, &mut out)?;
            }
            Expanded::Bytes(i) => match sources.get(i) {
                Some(Source::Bytes {
                    name,
                    content,
                    mode,
                    ..
                }) => {
                    let d = crate::cache::key_of(&[
                        &String::from_utf8_lossy(content),
                        &mode.to_string(),
                    ]);
                    out.push((format!("<<{name}"), d));
                }
                Some(Source::File {
                    name, path, mode, ..
                }) => {
                    let node = Node::of_own_file(path)?;
                    let d = format!("{mode:o} {}", file_digest(&node)?);
                    out.push((format!("url:{name}"), d));
                }
                _ => {}
            },
        }
    }
    Ok(out)
}

fn digest_node(
    tree: &dyn SourceTree,
    rel: &str,
    node: &Node,
    file_digest: &dyn Fn(&Node) -> Result<String, Error>,
    out: &mut Vec<(String, String)>,
) -> Result<(), Error> {
    let meta = &node.meta;
    let head = format!("{:o} {}:{}", meta.mode(), meta.uid(), meta.gid());
    if meta.is_dir() {
        out.push((format!("{rel}/"), head));
        let dir = tree.resolve(rel, true)?;
        for name in tree.read_dir(&dir)? {
            let child = if dir.is_empty() {
                name.clone()
            } else {
                format!("{dir}/{name}")
            };
            if let Some(n) = tree.lstat(&child)? {
                let shown = if rel.is_empty() {
                    name
                } else {
                    format!("{rel}/{name}")
                };
                digest_node(tree, &shown, &n, file_digest, out)?;
            }
        }
    } else if meta.is_file() {
        out.push((rel.to_string(), format!("{head} {}", file_digest(node)?)));
    } else if meta.file_type().is_symlink() {
        let target = node.read_link()?;
        out.push((rel.to_string(), format!("{head} -> {}", target.display())));
    } else {
        out.push((rel.to_string(), format!("{head} dev {}", meta.rdev())));
    }
    Ok(())
}

/// Copies `sources` into `upper`, reading the image's state from `lower`.
pub fn copy_into(
    upper: &Path,
    lower: &Layers,
    sources: &[Source<'_>],
    opts: &CopyOptions,
) -> Result<(), Error> {
    let expanded = expand(sources, &opts.select)?;
    let disk = Disk::new(Root::open(upper)?);
    write_sources(disk, lower, sources, &expanded, opts)?;
    Ok(())
}

/// The COPY held in memory as a [`Plan`], to be written as the layer tar straight from the
/// sources; `None` when a source is an archive that ADD extracts, which needs a directory
/// ([`copy_into`]).
pub(crate) fn plan(
    lower: &Layers,
    sources: &[Source<'_>],
    opts: &CopyOptions,
) -> Result<Option<Plan>, Error> {
    let expanded = expand(sources, &opts.select)?;
    if opts.extract_archives {
        for item in &expanded {
            if let Expanded::Node { node, .. } = item {
                if node.meta.is_file() && archive_kind(&mut node.open()?, &node.host)?.is_some() {
                    return Ok(None);
                }
            }
        }
    }
    let w = write_sources(Plan::new(), lower, sources, &expanded, opts)?;
    Ok(Some(w.out))
}

fn write_sources<'a, T: Target>(
    out: T,
    lower: &'a Layers,
    sources: &[Source<'_>],
    expanded: &[Expanded<'_>],
    opts: &'a CopyOptions,
) -> Result<Writer<'a, T>, Error> {
    let mut w = Writer::new(out, lower, opts);
    // The count of what the sources name decides the destination.
    let dest_abs = if opts.dest.starts_with('/') {
        opts.dest.clone()
    } else {
        format!("{}/{}", opts.workdir.trim_end_matches('/'), opts.dest)
    };
    let wants_dir = opts.dest.ends_with('/')
        || opts.dest.ends_with("/.")
        || opts.dest == "."
        || opts.dest.is_empty();
    let dest_rel = clean(&dest_abs).trim_start_matches('/').to_string();
    let dest_rel = lower.resolve(&dest_rel, true)?;
    let dest_is_dir_in_image = lower.lstat(&dest_rel)?.is_some_and(|n| n.meta.is_dir());
    let into_dir = wants_dir || dest_is_dir_in_image;
    if expanded.is_empty() {
        return Ok(w);
    }
    // Several sources to a destination that is not a directory are written in turn to that
    // one path, the last one winning, as BuildKit 0.25 does (0.8 refused them).
    for item in expanded {
        // Hard links stay linked within one source (a directory's tree), never across two
        // sources or two matches of a wildcard: BuildKit 0.25 copies each on its own.
        w.links.clear();
        match item {
            Expanded::Node { tree, name, node } if node.meta.is_dir() => {
                let resolved = tree.resolve(name, true)?;
                w.ensure_parents(&dest_rel)?;
                w.copy_dir_root(tree.as_ref(), &resolved, node, &dest_rel)?;
            }
            Expanded::Node { name, node, .. } => {
                let archive = if opts.extract_archives && node.meta.is_file() {
                    let mut file = node.open()?;
                    archive_kind(&mut file, &node.host)?.map(|kind| (file, kind))
                } else {
                    None
                };
                if let Some((file, kind)) = archive {
                    // BuildKit 0.25 ignores --chmod for an unpacked archive, the
                    // directories it makes included.
                    let new_dir_mode = std::mem::replace(&mut w.new_dir_mode, 0o755);
                    w.ensure_parents(&dest_rel)?;
                    w.ensure_dir_exact(&dest_rel)?;
                    w.extract(file, kind, &dest_rel, name)?;
                    w.new_dir_mode = new_dir_mode;
                } else {
                    let target = file_target(&dest_rel, into_dir, name);
                    w.ensure_parents(&target)?;
                    w.copy_node(node, &target)?;
                }
            }
            Expanded::Bytes(index) => match sources.get(*index) {
                Some(Source::Bytes {
                    name,
                    content,
                    mode,
                    mtime,
                }) => {
                    let target = file_target(&dest_rel, into_dir, name);
                    w.ensure_parents(&target)?;
                    w.write_file(&target, Content::Bytes(content), *mode, *mtime)?;
                }
                Some(Source::File {
                    name,
                    path,
                    mode,
                    mtime,
                }) => {
                    let target = file_target(&dest_rel, into_dir, name);
                    w.ensure_parents(&target)?;
                    w.write_file(&target, Content::Host(path), *mode, *mtime)?;
                }
                _ => {}
            },
        }
    }
    w.restore_mtimes()?;
    Ok(w)
}

fn file_target(dest_rel: &str, into_dir: bool, name: &str) -> String {
    if into_dir {
        let base = name.rsplit('/').next().unwrap_or(name);
        if dest_rel.is_empty() {
            base.to_string()
        } else {
            format!("{dest_rel}/{base}")
        }
    } else {
        dest_rel.to_string()
    }
}

/// The cleaned, root-relative form of a source path. `..` above the root stays at the root,
/// as BuildKit 0.25 cleans sources (`COPY ../f /f` copies the context's `f`); symlinks are
/// clamped the same way when they are resolved.
fn source_rel(path: &str) -> String {
    clean(&format!("/{path}"))
        .trim_start_matches('/')
        .to_string()
}

/// A `--parents` source split at its pivot (`PIVOT/./PATH`; the root when there is none):
/// the pivot, and `PATH` as an include pattern (`**` then `!PATH`, so the directories on
/// the way to a match are walked and made only when something below them is copied).
/// Without a wildcard, `PIVOT/PATH` must exist, as BuildKit requires it.
fn parents_split(tree: &dyn SourceTree, path: &str) -> Result<(String, DockerIgnore), Error> {
    let (pivot, pattern) = path.split_once("/./").unwrap_or(("", path));
    let (pivot, pattern) = (source_rel(pivot), source_rel(pattern));
    if pattern.is_empty() {
        return Ok((pivot, DockerIgnore::default()));
    }
    if !has_wildcard(&pivot) && !has_wildcard(&pattern) {
        let resolved = tree.resolve(&join(&pivot, &pattern), true)?;
        if tree.lstat(&resolved)?.is_none() {
            return Err(Error::SourceNotFound {
                path: path.to_string(),
                tree: tree.describe(),
            });
        }
    }
    let exception = format!("!{pattern}");
    let include = DockerIgnore::from_patterns(["**", exception.as_str()]).map_err(|source| {
        Error::Wildcard {
            pattern: path.to_string(),
            source,
        }
    })?;
    Ok((pivot, include))
}

/// Paths of `tree` matching the wildcard `pattern`, component by component, sorted.
fn glob(tree: &dyn SourceTree, pattern: &str) -> Result<Vec<String>, Error> {
    let mut current = vec![String::new()];
    for comp in pattern.split('/') {
        let mut next = Vec::new();
        for base in &current {
            if has_wildcard(comp) {
                let dir = tree.resolve(base, true)?;
                match tree.lstat(&dir)? {
                    Some(n) if n.meta.is_dir() => {}
                    _ => continue,
                }
                for name in tree.read_dir(&dir)? {
                    let hit = match_component(comp, &name).map_err(|source| Error::Wildcard {
                        pattern: pattern.to_string(),
                        source,
                    })?;
                    if hit {
                        let child = if base.is_empty() {
                            name
                        } else {
                            format!("{base}/{name}")
                        };
                        if tree.lstat(&tree.resolve(&child, false)?)?.is_some() {
                            next.push(child);
                        }
                    }
                }
            } else {
                let literal = unescape(comp);
                next.push(if base.is_empty() {
                    literal
                } else {
                    format!("{base}/{literal}")
                });
            }
        }
        current = next;
    }
    current.sort();
    Ok(current)
}

fn unescape(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Creates directory `rel` and its missing parents in `upper`: those the image has are
/// mirrored with their metadata, new ones are 0755 and owned by `owner` (WORKDIR).
pub fn make_dirs(upper: &Path, lower: &Layers, rel: &str, owner: (u32, u32)) -> Result<(), Error> {
    let opts = CopyOptions {
        chown: Some(owner),
        ..CopyOptions::default()
    };
    let disk = Disk::new(Root::open(upper)?);
    let mut w = Writer::new(disk, lower, &opts);
    let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
    for i in 1..=comps.len() {
        w.ensure_dir_exact(&comps[..i].join("/"))?;
    }
    w.restore_mtimes()
}

fn mtime_of(meta: &fs::Metadata) -> Timespec {
    Timespec {
        tv_sec: meta.mtime(),
        tv_nsec: meta.mtime_nsec(),
    }
}

fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::ContextTree;
    use std::os::unix::fs::symlink;
    use std::os::unix::fs::PermissionsExt;

    struct Fixture {
        _tmp: tempfile::TempDir,
        ctx: ContextTree,
        image: Layers,
        upper: PathBuf,
    }

    fn fixture(files: &[(&str, &str)]) -> Fixture {
        let tmp = tempfile::tempdir().expect("tmp");
        let ctx_dir = tmp.path().join("ctx");
        for (path, content) in files {
            let p = ctx_dir.join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, content).expect("write");
        }
        fs::create_dir_all(&ctx_dir).expect("ctx");
        let image_dir = tmp.path().join("image");
        fs::create_dir_all(image_dir.join("usr/bin")).expect("mkdir");
        fs::create_dir_all(image_dir.join("existing")).expect("mkdir");
        fs::set_permissions(
            image_dir.join("existing"),
            fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        symlink("usr/bin", image_dir.join("bin")).expect("symlink");
        let upper = tmp.path().join("upper");
        fs::create_dir(&upper).expect("upper");
        Fixture {
            ctx: ContextTree::open(&ctx_dir, None).expect("ctx"),
            image: Layers::new(vec![image_dir], "image"),
            upper,
            _tmp: tmp,
        }
    }

    fn copy(f: &Fixture, srcs: &[&str], dest: &str) -> Result<(), Error> {
        let sources: Vec<Source<'_>> = srcs
            .iter()
            .map(|s| Source::Tree {
                tree: &f.ctx,
                path: s.to_string(),
            })
            .collect();
        let opts = CopyOptions {
            dest: dest.to_string(),
            workdir: "/".to_string(),
            ..CopyOptions::default()
        };
        copy_into(&f.upper, &f.image, &sources, &opts)
    }

    fn listing(root: &Path) -> Vec<String> {
        let mut out = Vec::new();
        fn walk(root: &Path, rel: &str, out: &mut Vec<String>) {
            let mut names: Vec<_> = fs::read_dir(root.join(rel))
                .expect("readdir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                let r = if rel.is_empty() {
                    n
                } else {
                    format!("{rel}/{n}")
                };
                let meta = fs::symlink_metadata(root.join(&r)).expect("meta");
                if meta.is_dir() {
                    out.push(format!("{r}/"));
                    walk(root, &r, out);
                } else {
                    out.push(r);
                }
            }
        }
        walk(root, "", &mut out);
        out
    }

    #[test]
    fn a_directory_source_copies_its_contents() {
        let f = fixture(&[("src/one", "1"), ("src/nested/two", "2")]);
        copy(&f, &["src"], "/dst").expect("copy");
        assert_eq!(
            listing(&f.upper),
            ["dst/", "dst/nested/", "dst/nested/two", "dst/one"]
        );
    }

    #[test]
    fn trailing_slash_and_existing_dirs_take_the_file_name() {
        let f = fixture(&[("hello.txt", "hi")]);
        copy(&f, &["hello.txt"], "/dir/").expect("copy");
        copy(&f, &["hello.txt"], "/existing").expect("copy");
        copy(&f, &["hello.txt"], "/renamed").expect("copy");
        assert_eq!(
            listing(&f.upper),
            [
                "dir/",
                "dir/hello.txt",
                "existing/",
                "existing/hello.txt",
                "renamed"
            ]
        );
        // The image's directory is mirrored with its own mode, not changed.
        let mode = fs::metadata(f.upper.join("existing")).expect("meta").mode() & 0o7777;
        assert_eq!(mode, 0o700);
    }

    #[test]
    fn destination_symlinks_in_the_image_are_followed() {
        let f = fixture(&[("tool", "t")]);
        copy(&f, &["tool"], "/bin/").expect("copy");
        assert_eq!(listing(&f.upper), ["usr/", "usr/bin/", "usr/bin/tool"]);
    }

    #[test]
    fn wildcards_match_and_several_sources_to_a_file_path_last_wins() {
        let f = fixture(&[
            ("a.txt", "a"),
            ("b.txt", "b"),
            ("data1.bin", "1"),
            ("other.bin", "o"),
        ]);
        copy(&f, &["*.txt"], "/texts/").expect("copy");
        copy(&f, &["dat?1.bin"], "/bins/").expect("copy");
        assert_eq!(
            listing(&f.upper),
            [
                "bins/",
                "bins/data1.bin",
                "texts/",
                "texts/a.txt",
                "texts/b.txt"
            ]
        );
        copy(&f, &["a.txt", "b.txt"], "/multi").expect("several sources to one path");
        assert_eq!(fs::read(f.upper.join("multi")).expect("read"), b"b");
        copy(&f, &["*.none"], "/x/").expect("an empty wildcard copies nothing");
        assert!(!f.upper.join("x").exists());
    }

    #[test]
    fn symlinks_inside_dirs_are_kept_and_named_ones_followed() {
        let f = fixture(&[("tree/file", "f")]);
        symlink("file", f.ctx.root().join("tree/link")).expect("symlink");
        symlink("tree/file", f.ctx.root().join("named")).expect("symlink");
        copy(&f, &["tree"], "/tree").expect("copy");
        copy(&f, &["named"], "/named").expect("copy");
        let link = fs::symlink_metadata(f.upper.join("tree/link")).expect("meta");
        assert!(link.file_type().is_symlink());
        let named = fs::symlink_metadata(f.upper.join("named")).expect("meta");
        assert!(named.is_file());
    }

    #[test]
    fn symlinks_leaving_the_context_are_errors_and_dotdot_is_clamped() {
        let f = fixture(&[("in", "i")]);
        symlink("../../etc/passwd", f.ctx.root().join("out")).expect("symlink");
        let err = copy(&f, &["out"], "/x").expect_err("must fail");
        assert!(err.to_string().contains("\"out\""), "{err}");
        // `..` in a source path stays at the context root, as BuildKit cleans it.
        copy(&f, &["../in"], "/x").expect("clamped to the context's in");
        assert_eq!(fs::read(f.upper.join("x")).expect("read"), b"i");
    }

    #[test]
    fn dockerignored_files_are_not_copied() {
        let f = fixture(&[
            (".dockerignore", "*.log\n!keep.log\n"),
            ("a.log", "a"),
            ("keep.log", "k"),
            ("x", "x"),
        ]);
        let ctx = ContextTree::open(f.ctx.root(), None).expect("reopen");
        let opts = CopyOptions {
            dest: "/c".into(),
            workdir: "/".into(),
            ..CopyOptions::default()
        };
        let sources = [Source::Tree {
            tree: &ctx,
            path: ".".into(),
        }];
        copy_into(&f.upper, &f.image, &sources, &opts).expect("copy");
        assert_eq!(
            listing(&f.upper),
            ["c/", "c/.dockerignore", "c/keep.log", "c/x"]
        );
    }

    #[test]
    fn chown_and_chmod_apply_to_what_is_copied() {
        let f = fixture(&[("src/s", "s")]);
        let opts = CopyOptions {
            dest: "/private".into(),
            workdir: "/".into(),
            chown: Some((1000, 1000)),
            chmod: Some(Chmod::Octal(0o600)),
            ..CopyOptions::default()
        };
        let sources = [Source::Tree {
            tree: &f.ctx,
            path: "src".into(),
        }];
        copy_into(&f.upper, &f.image, &sources, &opts).expect("copy");
        let m = fs::metadata(f.upper.join("private/s")).expect("meta");
        assert_eq!((m.mode() & 0o7777, m.uid(), m.gid()), (0o600, 1000, 1000));
        let m = fs::metadata(f.upper.join("private")).expect("meta");
        assert_eq!((m.uid(), m.gid()), (1000, 1000));
        assert_eq!(
            m.mode() & 0o7777,
            0o600,
            "a destination the step creates takes --chmod (BuildKit 0.25)"
        );
    }

    #[test]
    fn add_extracts_compressed_tars() {
        let f = fixture(&[("payload/inner.txt", "inside")]);
        let status = std::process::Command::new("tar")
            .arg("-czf")
            .arg(f.ctx.root().join("a.tar.gz"))
            .arg("-C")
            .arg(f.ctx.root().join("payload"))
            .arg("inner.txt")
            .status()
            .expect("tar");
        assert!(status.success());
        let opts = CopyOptions {
            dest: "/unpacked/".into(),
            workdir: "/".into(),
            extract_archives: true,
            ..CopyOptions::default()
        };
        let sources = [Source::Tree {
            tree: &f.ctx,
            path: "a.tar.gz".into(),
        }];
        copy_into(&f.upper, &f.image, &sources, &opts).expect("add");
        assert_eq!(
            fs::read_to_string(f.upper.join("unpacked/inner.txt")).expect("read"),
            "inside"
        );
    }
}
