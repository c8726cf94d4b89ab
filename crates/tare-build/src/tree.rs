//! Read-only views of the trees a step reads from: the build context on the host (with its
//! `.dockerignore`) and a stack of snapshots merged with overlayfs' rules.
//!
//! Both answer the same questions ([`SourceTree`]): what is at a path, what a directory holds,
//! and where a path leads once its symlinks are followed without leaving the tree. COPY and ADD
//! work on the trait, so `COPY` from the context and `COPY --from=stage` share one code path.

use std::collections::BTreeMap;
use std::fs::{self, File, Metadata};
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::dockerignore::{DockerIgnore, Filter};
use crate::error::{io_err, Error};

/// How many symlinks one resolution may follow, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

/// One entry of a tree: where its bytes are on the host and what it is.
#[derive(Debug, Clone)]
pub struct Node {
    /// The entry's path on the host.
    pub host: PathBuf,
    /// Its `lstat` data.
    pub meta: Metadata,
    /// The directory `host` lies below (the context root or a snapshot): opening the node
    /// never follows a symlink on the way from there.
    pub base: PathBuf,
}

impl Node {
    fn below_base(&self) -> &Path {
        self.host.strip_prefix(&self.base).unwrap_or(Path::new("."))
    }

    /// A file of tare's own (a download in the store's temporary directory), as a node below
    /// its own directory.
    pub fn of_own_file(path: &Path) -> Result<Node, Error> {
        let meta = fs::symlink_metadata(path).map_err(io_err(path))?;
        let base = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        Ok(Node {
            host: path.to_path_buf(),
            meta,
            base,
        })
    }

    /// Opens the regular file for reading, without following symlinks out of its tree.
    pub fn open(&self) -> Result<fs::File, Error> {
        crate::fsops::open_beneath(&self.base, self.below_base()).map_err(io_err(&self.host))
    }

    /// The target of the symlink, read without following symlinks on the way.
    pub fn read_link(&self) -> Result<PathBuf, Error> {
        crate::fsops::read_link_beneath(&self.base, self.below_base()).map_err(io_err(&self.host))
    }
}

/// A tree that COPY reads. Paths are relative, `/`-separated, already cleaned; `""` is the root.
pub trait SourceTree: Send + Sync {
    /// The entry at `rel`, without following a final symlink; `None` when absent or hidden.
    fn lstat(&self, rel: &str) -> Result<Option<Node>, Error>;
    /// The names in directory `rel`, sorted by bytes, hidden entries left out.
    fn read_dir(&self, rel: &str) -> Result<Vec<String>, Error>;
    /// A name for messages (`context`, `stage builder`, ...).
    fn describe(&self) -> String;
    /// Follows symlinks in `rel` (the final one too when `follow_last`), never above the root:
    /// `..` at the root stays there and an absolute target starts again from the root, as the
    /// kernel resolves inside a chroot and as BuildKit 0.25 resolves sources in the context
    /// and in images alike.
    fn resolve(&self, rel: &str, follow_last: bool) -> Result<String, Error> {
        let mut pending: Vec<String> = split(rel).into_iter().rev().collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            if comp == ".." {
                done.pop();
                continue;
            }
            let candidate = join(&done, &comp);
            let is_last = pending.is_empty();
            let node = self.lstat(&candidate)?;
            match node {
                Some(node) if node.meta.file_type().is_symlink() && (!is_last || follow_last) => {
                    hops += 1;
                    if hops > MAX_LINKS {
                        return Err(Error::SymlinkLoop {
                            path: rel.to_string(),
                        });
                    }
                    let target = node.read_link()?;
                    let target = target.as_os_str().as_bytes();
                    let target = String::from_utf8_lossy(target).into_owned();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    for part in split(&target).into_iter().rev() {
                        pending.push(part);
                    }
                }
                _ => done.push(comp),
            }
        }
        Ok(done.join("/"))
    }
}

fn split(rel: &str) -> Vec<String> {
    rel.split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .map(str::to_string)
        .collect()
}

fn join(done: &[String], comp: &str) -> String {
    if done.is_empty() {
        comp.to_string()
    } else {
        format!("{}/{}", done.join("/"), comp)
    }
}

/// The build context: a host directory, filtered by `.dockerignore` as BuildKit's context
/// transfer (fsutil) filters it (see [`Filter`]).
pub struct ContextTree {
    root: PathBuf,
    filter: Filter,
    /// What messages call it; `None` is the build context.
    name: Option<String>,
}

impl ContextTree {
    /// Opens `root`, filtered by `ignore_file` when given (a Dockerfile's own
    /// `<Dockerfile>.dockerignore`), else by its `.dockerignore` when present.
    pub fn open(root: &Path, ignore_file: Option<&Path>) -> Result<ContextTree, Error> {
        let root = fs::canonicalize(root).map_err(io_err(root))?;
        let (text, ignore_path) = match ignore_file {
            // The Dockerfile's own, found inside the context: read there, as the context's.
            Some(path) => match path.strip_prefix(&root) {
                Ok(rel) => {
                    let rel = rel.to_string_lossy();
                    (read_in_context(&root, &rel)?, path.to_path_buf())
                }
                Err(_) => (Some(read_build_file(path)?), path.to_path_buf()),
            },
            None => (
                read_in_context(&root, ".dockerignore")?,
                root.join(".dockerignore"),
            ),
        };
        let ignore = match text {
            Some(text) => DockerIgnore::parse(&text).map_err(|source| Error::DockerIgnore {
                path: ignore_path,
                source,
            })?,
            None => DockerIgnore::default(),
        };
        Ok(ContextTree {
            root,
            filter: Filter::new(ignore),
            name: None,
        })
    }

    /// Opens `root` with every file in it, no `.dockerignore` read (a git checkout that ADD
    /// copies, as BuildKit copies its git source); `name` names it in messages.
    pub fn open_all(root: &Path, name: String) -> Result<ContextTree, Error> {
        let root = fs::canonicalize(root).map_err(io_err(root))?;
        Ok(ContextTree {
            root,
            filter: Filter::new(DockerIgnore::default()),
            name: Some(name),
        })
    }

    /// Whether `rel` (a directory when `is_dir`) is left out of the context.
    fn hidden(&self, rel: &str, is_dir: bool) -> Result<bool, Error> {
        self.filter
            .hidden(rel, is_dir, &|dir| Ok(!self.read_dir(dir)?.is_empty()))
    }

    /// The context directory on the host.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl SourceTree for ContextTree {
    fn lstat(&self, rel: &str) -> Result<Option<Node>, Error> {
        let host = self.root.join(rel);
        match fs::symlink_metadata(&host) {
            Ok(meta) => {
                if self.hidden(rel, meta.is_dir())? {
                    return Ok(None);
                }
                Ok(Some(Node {
                    host,
                    meta,
                    base: self.root.clone(),
                }))
            }
            Err(e)
                if e.kind() == std::io::ErrorKind::NotFound
                    || e.raw_os_error() == Some(20 /* ENOTDIR */) =>
            {
                Ok(None)
            }
            Err(e) => Err(io_err(&host)(e)),
        }
    }

    fn read_dir(&self, rel: &str) -> Result<Vec<String>, Error> {
        let host = self.root.join(rel);
        let mut names = Vec::new();
        for entry in fs::read_dir(&host).map_err(io_err(&host))? {
            let entry = entry.map_err(io_err(&host))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
            if self.hidden(&child, is_dir)? {
                continue;
            }
            names.push(name);
        }
        names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        Ok(names)
    }

    fn describe(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| "the build context".to_string())
    }
}

/// A stack of snapshot directories (bottom first) seen as one tree, as an overlay mount of
/// them would show it: upper entries hide lower ones, whiteouts (0/0 character devices) hide
/// names, opaque directories hide everything below them in lower layers.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    dirs: Vec<PathBuf>,
    name: String,
}

impl Layers {
    /// The stack of snapshot directories `dirs` (bottom first), described as `name` in errors.
    pub fn new(dirs: Vec<PathBuf>, name: impl Into<String>) -> Layers {
        Layers {
            dirs,
            name: name.into(),
        }
    }

    /// The snapshot directories, bottom first.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }
}

fn is_opaque(path: &Path) -> bool {
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| matches!(xattr::get(path, name), Ok(Some(v)) if v == b"y"))
}

impl SourceTree for Layers {
    fn lstat(&self, rel: &str) -> Result<Option<Node>, Error> {
        let comps = split(rel);
        if comps.is_empty() {
            // The root is the top layer's root.
            return match self.dirs.last() {
                Some(top) => {
                    let meta = fs::symlink_metadata(top).map_err(io_err(top))?;
                    Ok(Some(Node {
                        host: top.clone(),
                        meta,
                        base: top.clone(),
                    }))
                }
                None => Ok(None),
            };
        }
        for dir in self.dirs.iter().rev() {
            let mut host = dir.clone();
            let mut hidden_below = false;
            for (i, comp) in comps.iter().enumerate() {
                host.push(comp);
                let meta = match fs::symlink_metadata(&host) {
                    Ok(m) => m,
                    Err(_) => break,
                };
                if tare_layer::whiteout::is_overlay_whiteout(&host, &meta) {
                    return Ok(None);
                }
                if i + 1 == comps.len() {
                    return Ok(Some(Node {
                        host,
                        meta,
                        base: dir.clone(),
                    }));
                }
                if !meta.is_dir() {
                    // A file where a directory is needed hides the path in every lower layer.
                    return Ok(None);
                }
                if is_opaque(&host) {
                    hidden_below = true;
                }
            }
            if hidden_below {
                return Ok(None);
            }
        }
        Ok(None)
    }

    fn read_dir(&self, rel: &str) -> Result<Vec<String>, Error> {
        let comps = split(rel);
        let mut names: BTreeMap<Vec<u8>, bool> = BTreeMap::new(); // name -> visible
        'layers: for dir in self.dirs.iter().rev() {
            let mut host = dir.clone();
            for comp in &comps {
                host.push(comp);
                match fs::symlink_metadata(&host) {
                    Ok(m) if m.is_dir() => {}
                    Ok(_) => break 'layers,
                    Err(_) => continue 'layers,
                }
            }
            for entry in fs::read_dir(&host).map_err(io_err(&host))? {
                let entry = entry.map_err(io_err(&host))?;
                let name = entry.file_name().as_bytes().to_vec();
                if names.contains_key(&name) {
                    continue;
                }
                let meta = entry.metadata().map_err(io_err(&entry.path()))?;
                names.insert(
                    name,
                    !tare_layer::whiteout::is_overlay_whiteout(&entry.path(), &meta),
                );
            }
            if is_opaque(&host) {
                break;
            }
        }
        Ok(names
            .into_iter()
            .filter(|(_, visible)| *visible)
            .map(|(n, _)| String::from_utf8_lossy(&n).into_owned())
            .collect())
    }

    fn describe(&self) -> String {
        self.name.clone()
    }
}

/// The most bytes a Dockerfile or an ignore file may hold.
pub const MAX_DOCKERFILE: u64 = 16 << 20;

/// Reads the Dockerfile or ignore file at `path`, a path the user gave (symlinks followed):
/// it must be a regular file of at most [`MAX_DOCKERFILE`] bytes. Opened without
/// blocking, so a fifo fails instead of hanging the build.
pub fn read_build_file(path: &Path) -> Result<String, Error> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| io_err(path)(e.into()))?;
    read_regular(File::from(fd), path)
}

/// Reads `rel` of the directory `root` (a context tare made, or the build context) as a
/// Dockerfile or ignore file, following symlinks inside `root` as in a chroot: an absolute
/// target or `..` never leaves it. `None` when absent.
pub fn read_in_context(root: &Path, rel: &str) -> Result<Option<String>, Error> {
    let tree = ContextTree::open_all(root, "the build context".into())?;
    let path = root.join(rel);
    let Some(node) = tree.lstat(&tree.resolve(rel, true)?)? else {
        return Ok(None);
    };
    if !node.meta.is_file() {
        return Err(not_regular(&path));
    }
    read_regular(node.open()?, &path).map(Some)
}

fn not_regular(path: &Path) -> Error {
    Error::BuildFile {
        path: path.to_path_buf(),
        reason: "not a regular file",
    }
}

/// The whole of `file` (named `path`), checked to be a regular file of at most
/// [`MAX_DOCKERFILE`] bytes (bytes that are not UTF-8 replaced).
fn read_regular(file: File, path: &Path) -> Result<String, Error> {
    let meta = file.metadata().map_err(io_err(path))?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path));
    }
    let mut bytes = Vec::new();
    file.take(MAX_DOCKERFILE + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_DOCKERFILE {
        return Err(Error::TooLarge {
            what: path.display().to_string(),
            limit: MAX_DOCKERFILE,
        });
    }
    // BuildKit reads bytes: a byte that is not UTF-8 (a Latin-1 comment) is no error; in a
    // label it becomes U+FFFD, as Go's JSON encoder writes it.
    Ok(match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn merged_view_applies_whiteouts_and_opaque_dirs() {
        let tmp = tempfile::tempdir().expect("tmp");
        let lower = tmp.path().join("lower");
        let upper = tmp.path().join("upper");
        fs::create_dir_all(lower.join("data")).expect("mkdir");
        fs::write(lower.join("data/old"), "o").expect("write");
        fs::write(lower.join("gone"), "g").expect("write");
        fs::write(lower.join("kept"), "k").expect("write");
        fs::create_dir_all(upper.join("data")).expect("mkdir");
        xattr::set(upper.join("data"), "trusted.overlay.opaque", b"y").expect("xattr");
        fs::write(upper.join("data/new"), "n").expect("write");
        let status = std::process::Command::new("mknod")
            .arg(upper.join("gone"))
            .args(["c", "0", "0"])
            .status()
            .expect("mknod");
        assert!(status.success());
        let layers = Layers::new(vec![lower, upper], "test");
        assert!(layers.lstat("gone").expect("lstat").is_none());
        assert!(layers.lstat("kept").expect("lstat").is_some());
        assert!(layers.lstat("data/old").expect("lstat").is_none());
        assert_eq!(layers.read_dir("data").expect("readdir"), ["new"]);
        assert_eq!(layers.read_dir("").expect("readdir"), ["data", "kept"]);
    }

    #[test]
    fn context_symlinks_are_clamped_at_the_context_root() {
        let tmp = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(tmp.path().join("ctx/sub")).expect("mkdir");
        fs::write(tmp.path().join("secret"), "s").expect("write");
        symlink("../secret", tmp.path().join("ctx/out")).expect("symlink");
        symlink("../../../secret", tmp.path().join("ctx/sub/deep")).expect("symlink");
        symlink("/etc/passwd", tmp.path().join("ctx/abs")).expect("symlink");
        fs::write(tmp.path().join("ctx/file"), "f").expect("write");
        symlink("file", tmp.path().join("ctx/in")).expect("symlink");
        let ctx = ContextTree::open(&tmp.path().join("ctx"), None).expect("open");
        assert_eq!(ctx.resolve("in", true).expect("in"), "file");
        // Every way out ends at the root's own names: never the host's files.
        assert_eq!(ctx.resolve("out", true).expect("out"), "secret");
        assert_eq!(ctx.resolve("sub/deep", true).expect("deep"), "secret");
        assert_eq!(ctx.resolve("abs", true).expect("abs"), "etc/passwd");
        assert!(ctx.lstat("secret").expect("lstat").is_none());
        assert!(ctx.lstat("etc/passwd").expect("lstat").is_none());
    }

    fn context_with(ignore: &str, files: &[&str]) -> (tempfile::TempDir, ContextTree) {
        let tmp = tempfile::tempdir().expect("tmp");
        for f in files {
            let p = tmp.path().join(f);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(&p, f).expect("write");
        }
        fs::write(tmp.path().join(".dockerignore"), ignore).expect("write");
        let ctx = ContextTree::open(tmp.path(), None).expect("open");
        (tmp, ctx)
    }

    fn listing(ctx: &ContextTree, rel: &str, out: &mut Vec<String>) {
        for name in ctx.read_dir(rel).expect("readdir") {
            let child = if rel.is_empty() {
                name
            } else {
                format!("{rel}/{name}")
            };
            let node = ctx
                .lstat(&child)
                .expect("lstat")
                .expect("listed entries exist");
            if node.meta.is_dir() {
                out.push(format!("{child}/"));
                listing(ctx, &child, out);
            } else {
                out.push(child);
            }
        }
    }

    #[test]
    fn excluded_dirs_exist_only_for_what_an_exception_includes() {
        let (_tmp, ctx) = context_with(
            "docs/\n**/tmp\n*.log\n!keep.log\nvendor\n!vendor/lib/keep.go\n",
            &[
                "docs/a.md",
                "app/tmp/x",
                "app/src/main.c",
                "keep.log",
                "other.log",
                "vendor/lib/keep.go",
                "vendor/lib/drop.go",
                "vendor/bin/tool",
            ],
        );
        let mut out = Vec::new();
        listing(&ctx, "", &mut out);
        assert_eq!(
            out,
            [
                ".dockerignore",
                "app/",
                "app/src/",
                "app/src/main.c",
                "keep.log",
                "vendor/",
                "vendor/lib/",
                "vendor/lib/keep.go"
            ]
        );
        assert!(ctx.lstat("docs").expect("lstat").is_none());
        assert!(ctx.lstat("vendor/bin").expect("lstat").is_none());
    }

    #[test]
    fn an_excluded_dir_with_nothing_included_is_not_there() {
        let (_tmp, ctx) = context_with(
            "**\n!folder1/file\n",
            &["folder1/file1", "folder1/file2", "folder/sub/other"],
        );
        assert!(ctx.lstat("folder1").expect("lstat").is_none());
        assert!(ctx.read_dir("").expect("readdir").is_empty());
        // A wildcard in an exception walks every excluded directory.
        let (_tmp, ctx) = context_with(
            "build\n!build/**/*.log\n",
            &["build/out/logs/a.log", "build/out/a.o", "build/cache/c.bin"],
        );
        let mut out = Vec::new();
        listing(&ctx, "", &mut out);
        assert_eq!(
            out,
            [
                ".dockerignore",
                "build/",
                "build/out/",
                "build/out/logs/",
                "build/out/logs/a.log"
            ]
        );
    }

    #[test]
    fn image_symlinks_are_clamped_at_the_root() {
        let tmp = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(tmp.path().join("usr/bin")).expect("mkdir");
        symlink("/usr/bin", tmp.path().join("bin")).expect("symlink");
        symlink("../../../../usr", tmp.path().join("up")).expect("symlink");
        let layers = Layers::new(vec![tmp.path().to_path_buf()], "img");
        assert_eq!(layers.resolve("bin/x", true).expect("bin"), "usr/bin/x");
        assert_eq!(layers.resolve("up/bin", true).expect("up"), "usr/bin");
    }
}
