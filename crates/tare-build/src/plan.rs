//! A COPY held in memory: the tree the step adds, described and not written. [`Plan::write`]
//! streams it as the layer tar straight from the sources, so a COPY of 5,000 files creates
//! no file on disk (its snapshot is extracted from the layer only when a later step reads
//! the tree). The entries, their order and metadata are those that writing the same COPY
//! into a directory (`copy::copy_into`) and diffing it (`write_tree`) give: both go
//! through the same [`Target`] calls and the same tar writer
//! ([`tare_layer::diff::LayerTar`]).

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use rustix::fs::{FileType, Timespec};
use tare_layer::diff::{Attrs, LayerTar, Listed};

use crate::error::{io_err, Error};
use crate::target::{Content, FileAttrs, Target};
use crate::tree::Node;

type Xattrs = Vec<(std::ffi::OsString, Vec<u8>)>;

/// Symlinks followed at most while resolving one path, as the kernel's limit.
const MAX_HOPS: usize = 40;

/// The content digests (sha256, hex, as [`crate::cache::Cache::file_digest`] gives them) of
/// the source files a [`Plan::write`] streamed, taken while it read them for the tar:
/// a cold COPY reads each file once, for the layer and its cache key together.
#[derive(Default)]
pub struct Streamed {
    /// By host path: the metadata of the descriptor read, and the digest.
    files: HashMap<PathBuf, (fs::Metadata, String)>,
}

impl Streamed {
    /// The digest of `node`'s content when the stream read it (`None` when it did not, e.g. a
    /// second name of a hard link); an error when the file changed since it was read.
    pub fn digest(&self, node: &Node) -> Result<Option<String>, Error> {
        match self.files.get(&node.host) {
            None => Ok(None),
            Some((read, digest)) if crate::cache::unchanged(&node.meta, read) => {
                Ok(Some(digest.clone()))
            }
            Some(_) => Err(Error::FileChanged {
                path: node.host.display().to_string(),
            }),
        }
    }

    /// Every file read: host path, the metadata of the descriptor read, digest.
    pub fn files(&self) -> impl Iterator<Item = (&Path, &fs::Metadata, &str)> {
        self.files
            .iter()
            .map(|(host, (meta, digest))| (host.as_path(), meta, digest.as_str()))
    }
}

/// What writing the tar carries from one entry to the next.
struct Writing<'s> {
    /// How many names each leaf has (more than one: hard links).
    names: Vec<u32>,
    /// The first name written of a leaf with several, and its xattrs.
    first: HashMap<usize, (PathBuf, Xattrs)>,
    clamp: Option<i64>,
    streamed: Option<&'s mut Streamed>,
}

/// A reader that hashes what it gives.
struct Hashing<R> {
    inner: R,
    hash: tare_store::Hasher,
}

impl<R: Read> Read for Hashing<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }
}

/// The tree a COPY adds (see the module documentation).
pub struct Plan {
    root: Dir,
    /// Everything that is not a directory; a hard link is a second name for one of them.
    leaves: Vec<Leaf>,
    /// The mtime of directories the step creates without a source to copy it from: the
    /// time they are made, as on disk.
    now: i64,
}

struct Dir {
    attrs: Attrs,
    children: BTreeMap<String, Entry>,
}

enum Entry {
    Dir(Dir),
    Leaf(usize),
}

struct Leaf {
    attrs: Attrs,
    kind: LeafKind,
}

enum LeafKind {
    File(FileFrom),
    Symlink(PathBuf),
    Device { kind: FileType, rdev: u64 },
}

/// Where a regular file's bytes are, read only when the tar is written.
enum FileFrom {
    Node(Box<Node>),
    Bytes(Vec<u8>),
    Host(PathBuf),
}

fn os_err(rel: &str, errno: rustix::io::Errno) -> Error {
    Error::Io {
        path: Path::new("/").join(rel),
        source: errno.into(),
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Default for Plan {
    fn default() -> Self {
        Plan::new()
    }
}

impl Plan {
    /// The bytes of the regular files the tar will carry, as known now (files named by host
    /// path alone count 0): the total a COPY's progress is measured against.
    pub fn content_size(&self) -> u64 {
        self.leaves
            .iter()
            .map(|leaf| match &leaf.kind {
                LeafKind::File(FileFrom::Node(node)) => node.meta.len(),
                LeafKind::File(FileFrom::Bytes(bytes)) => bytes.len() as u64,
                LeafKind::File(FileFrom::Host(_))
                | LeafKind::Symlink(_)
                | LeafKind::Device { .. } => 0,
            })
            .sum()
    }

    pub fn new() -> Plan {
        let now = now_secs();
        Plan {
            root: Dir::new(Attrs {
                mode: 0o755,
                uid: 0,
                gid: 0,
                mtime: now,
            }),
            leaves: Vec::new(),
            now,
        }
    }

    /// `rel` resolved to its components, symlinks the plan holds followed inside the root (the
    /// last one too when `follow_last`), as `openat2(RESOLVE_IN_ROOT)` resolves them on disk.
    /// Every component but the last must be a directory.
    fn resolve(&self, rel: &str, follow_last: bool) -> Result<Vec<String>, Error> {
        let mut pending: Vec<String> = rel
            .split('/')
            .filter(|c| !c.is_empty())
            .rev()
            .map(str::to_string)
            .collect();
        let mut done: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(comp) = pending.pop() {
            match comp.as_str() {
                "." => continue,
                ".." => {
                    done.pop();
                    continue;
                }
                _ => {}
            }
            let last = pending.is_empty();
            let dir = self
                .dir(&done)
                .ok_or_else(|| os_err(rel, rustix::io::Errno::NOTDIR))?;
            match dir.children.get(&comp) {
                Some(Entry::Leaf(i)) if !last || follow_last => {
                    let LeafKind::Symlink(target) = &self.leaves[*i].kind else {
                        if last {
                            done.push(comp);
                            continue;
                        }
                        return Err(os_err(rel, rustix::io::Errno::NOTDIR));
                    };
                    hops += 1;
                    if hops > MAX_HOPS {
                        return Err(os_err(rel, rustix::io::Errno::LOOP));
                    }
                    let target = target.to_string_lossy();
                    if target.starts_with('/') {
                        done.clear();
                    }
                    pending.extend(
                        target
                            .split('/')
                            .filter(|c| !c.is_empty())
                            .rev()
                            .map(str::to_string),
                    );
                }
                None if !last => return Err(os_err(rel, rustix::io::Errno::NOENT)),
                _ => done.push(comp),
            }
        }
        Ok(done)
    }

    fn dir(&self, comps: &[String]) -> Option<&Dir> {
        let mut dir = &self.root;
        for c in comps {
            match dir.children.get(c) {
                Some(Entry::Dir(d)) => dir = d,
                _ => return None,
            }
        }
        Some(dir)
    }

    fn dir_mut(&mut self, comps: &[String]) -> Option<&mut Dir> {
        let mut dir = &mut self.root;
        for c in comps {
            match dir.children.get_mut(c) {
                Some(Entry::Dir(d)) => dir = d,
                _ => return None,
            }
        }
        Some(dir)
    }

    /// The components of the directory holding `rel` and `rel`'s last name, as
    /// [`crate::fsops::Root::parent`] finds them on disk.
    fn parent_path(&self, rel: &str) -> Result<(Vec<String>, String), Error> {
        let (parent, name) = crate::fsops::split_last(rel);
        if matches!(name, "" | "." | "..") {
            return Err(Error::NotAFileName {
                path: rel.to_string(),
            });
        }
        let comps = self.resolve(parent, true)?;
        if self.dir(&comps).is_none() {
            return Err(os_err(rel, rustix::io::Errno::NOTDIR));
        }
        Ok((comps, name.to_string()))
    }

    /// [`Plan::parent_path`], the directory held mutably.
    fn parent(&mut self, rel: &str) -> Result<(&mut Dir, String), Error> {
        let (comps, name) = self.parent_path(rel)?;
        match self.dir_mut(&comps) {
            Some(dir) => Ok((dir, name)),
            None => Err(os_err(rel, rustix::io::Errno::NOTDIR)),
        }
    }

    /// Directory `rel`, symlinks followed.
    fn dir_at(&mut self, rel: &str) -> Result<&mut Dir, Error> {
        let comps = self.resolve(rel, true)?;
        self.dir_mut(&comps)
            .ok_or_else(|| os_err(rel, rustix::io::Errno::NOTDIR))
    }

    fn add_leaf(&mut self, rel: &str, leaf: Leaf) -> Result<(), Error> {
        let index = self.leaves.len();
        let (dir, name) = self.parent(rel)?;
        if dir.children.contains_key(&name) {
            return Err(os_err(rel, rustix::io::Errno::EXIST));
        }
        dir.children.insert(name, Entry::Leaf(index));
        self.leaves.push(leaf);
        Ok(())
    }

    /// Writes the tree as an uncompressed layer tar: depth first, names sorted by bytes;
    /// mtimes later than `clamp` (`--rewrite-timestamp`) become `clamp`.
    /// With `streamed`, the content digest of every source file read is kept there.
    pub fn write<W: Write>(
        &self,
        out: W,
        clamp: Option<u64>,
        streamed: Option<&mut Streamed>,
    ) -> Result<(), Error> {
        let mut names = vec![0u32; self.leaves.len()];
        count_names(&self.root, &mut names);
        let mut tar = LayerTar::new(out);
        let mut state = Writing {
            names,
            first: HashMap::new(),
            clamp: clamp.map(|c| i64::try_from(c).unwrap_or(i64::MAX)),
            streamed,
        };
        self.write_dir(&self.root, Path::new(""), &mut state, &mut tar)?;
        tar.finish().map_err(|e| Error::Io {
            path: PathBuf::from("/"),
            source: e,
        })?;
        Ok(())
    }

    fn write_dir<W: Write>(
        &self,
        dir: &Dir,
        at: &Path,
        state: &mut Writing<'_>,
        tar: &mut LayerTar<W>,
    ) -> Result<(), Error> {
        let clamp = state.clamp;
        let clamped = |mut a: Attrs| {
            if let Some(c) = clamp {
                a.mtime = a.mtime.min(c);
            }
            a
        };
        for (name, entry) in &dir.children {
            let rel = at.join(name);
            let werr = |e: io::Error| Error::Io {
                path: Path::new("/").join(&rel),
                source: e,
            };
            match entry {
                Entry::Dir(sub) => {
                    tar.append(&rel, clamped(sub.attrs), &[], Listed::Dir)
                        .map_err(werr)?;
                    self.write_dir(sub, &rel, state, tar)?;
                }
                Entry::Leaf(i) => {
                    let leaf = &self.leaves[*i];
                    let attrs = clamped(leaf.attrs);
                    match &leaf.kind {
                        LeafKind::File(from) => {
                            if let Some((to, xattrs)) = state.first.get(i) {
                                tar.append(&rel, attrs, xattrs, Listed::HardLink(to))
                                    .map_err(werr)?;
                                continue;
                            }
                            let streamed = state.streamed.as_deref_mut();
                            let xattrs = write_file(tar, &rel, attrs, from, streamed)?;
                            if state.names[*i] > 1 {
                                state.first.insert(*i, (rel.clone(), xattrs));
                            }
                        }
                        LeafKind::Symlink(target) => {
                            tar.append(&rel, attrs, &[], Listed::Symlink(target))
                                .map_err(werr)?;
                        }
                        LeafKind::Device { kind, rdev } => {
                            let listed = match kind {
                                FileType::CharacterDevice => Listed::Char { rdev: *rdev },
                                FileType::BlockDevice => Listed::Block { rdev: *rdev },
                                _ => Listed::Fifo,
                            };
                            tar.append(&rel, attrs, &[], listed).map_err(werr)?;
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// How many names each leaf has in the tree (more than one: hard links).
fn count_names(dir: &Dir, names: &mut [u32]) {
    for entry in dir.children.values() {
        match entry {
            Entry::Dir(sub) => count_names(sub, names),
            Entry::Leaf(i) => names[*i] += 1,
        }
    }
}

/// One regular file's entry, its bytes read now: a source file through a descriptor opened
/// without following symlinks ([`Node::open`]) that must still be the file the listing saw,
/// with its xattrs (those copying it to disk would keep), which are returned. With
/// `streamed`, a source file's content is hashed as it is read, and its digest kept there.
fn write_file<W: Write>(
    tar: &mut LayerTar<W>,
    rel: &Path,
    attrs: Attrs,
    from: &FileFrom,
    streamed: Option<&mut Streamed>,
) -> Result<Xattrs, Error> {
    let werr = |e: io::Error| Error::Io {
        path: Path::new("/").join(rel),
        source: e,
    };
    match from {
        FileFrom::Node(node) => {
            let file = node.open()?;
            let opened = file.metadata().map_err(io_err(&node.host))?;
            if !crate::cache::unchanged(&node.meta, &opened) {
                return Err(Error::FileChanged {
                    path: node.host.display().to_string(),
                });
            }
            let xattrs = crate::fsops::file_xattrs(&file);
            let mut content = Hashing {
                inner: io::BufReader::with_capacity(256 << 10, file),
                hash: tare_store::Hasher::new(),
            };
            let size = opened.len();
            match streamed {
                Some(streamed) => {
                    tar.append(
                        rel,
                        attrs,
                        &xattrs,
                        Listed::File {
                            size,
                            content: &mut content,
                        },
                    )
                    .map_err(io_err(&node.host))?;
                    let digest = content.hash.finish().hex();
                    streamed.files.insert(node.host.clone(), (opened, digest));
                }
                None => {
                    let content = &mut content.inner;
                    tar.append(rel, attrs, &xattrs, Listed::File { size, content })
                        .map_err(io_err(&node.host))?;
                }
            }
            Ok(xattrs)
        }
        FileFrom::Bytes(bytes) => {
            let listed = Listed::File {
                size: bytes.len() as u64,
                content: &mut bytes.as_slice(),
            };
            tar.append(rel, attrs, &[], listed).map_err(werr)?;
            Ok(Vec::new())
        }
        FileFrom::Host(path) => {
            let file = fs::File::open(path).map_err(io_err(path))?;
            let size = file.metadata().map_err(io_err(path))?.len();
            let content = &mut io::BufReader::with_capacity(256 << 10, file);
            tar.append(rel, attrs, &[], Listed::File { size, content })
                .map_err(werr)?;
            Ok(Vec::new())
        }
    }
}

impl Dir {
    fn new(attrs: Attrs) -> Dir {
        Dir {
            attrs,
            children: BTreeMap::new(),
        }
    }
}

fn attrs(mode: u32, owner: (u32, u32), mtime: i64) -> Attrs {
    Attrs {
        mode: mode & 0o7777,
        uid: owner.0,
        gid: owner.1,
        mtime,
    }
}

impl Target for Plan {
    fn kind(&mut self, rel: &str) -> Result<Option<FileType>, Error> {
        let (comps, name) = self.parent_path(rel)?;
        let Some(dir) = self.dir(&comps) else {
            return Err(os_err(rel, rustix::io::Errno::NOTDIR));
        };
        Ok(match dir.children.get(&name) {
            None => None,
            Some(Entry::Dir(_)) => Some(FileType::Directory),
            Some(Entry::Leaf(i)) => Some(match &self.leaves[*i].kind {
                LeafKind::File(_) => FileType::RegularFile,
                LeafKind::Symlink(_) => FileType::Symlink,
                LeafKind::Device { kind, .. } => *kind,
            }),
        })
    }

    fn ensure_dir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> Result<(), Error> {
        let now = self.now;
        let (dir, name) = self.parent(rel)?;
        if !matches!(dir.children.get(&name), Some(Entry::Dir(_))) {
            dir.children
                .insert(name, Entry::Dir(Dir::new(attrs(mode, owner, now))));
        }
        Ok(())
    }

    fn mkdir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> Result<(), Error> {
        let now = self.now;
        let (dir, name) = self.parent(rel)?;
        if dir.children.contains_key(&name) {
            return Err(os_err(rel, rustix::io::Errno::EXIST));
        }
        dir.children
            .insert(name, Entry::Dir(Dir::new(attrs(mode, owner, now))));
        Ok(())
    }

    fn set_owner_mode(&mut self, rel: &str, owner: (u32, u32), mode: u32) -> Result<(), Error> {
        let dir = self.dir_at(rel)?;
        dir.attrs = attrs(mode, owner, dir.attrs.mtime);
        Ok(())
    }

    fn remove(&mut self, rel: &str) -> Result<(), Error> {
        let (dir, name) = self.parent(rel)?;
        dir.children.remove(&name);
        Ok(())
    }

    fn link(&mut self, first: &str, rel: &str) -> Result<(), Error> {
        let (dir, name) = self.parent(first)?;
        let index = match dir.children.get(&name) {
            Some(Entry::Leaf(i)) => *i,
            Some(Entry::Dir(_)) => return Err(os_err(rel, rustix::io::Errno::PERM)),
            None => return Err(os_err(rel, rustix::io::Errno::NOENT)),
        };
        let (dir, name) = self.parent(rel)?;
        if dir.children.contains_key(&name) {
            return Err(os_err(rel, rustix::io::Errno::EXIST));
        }
        dir.children.insert(name, Entry::Leaf(index));
        Ok(())
    }

    fn symlink(
        &mut self,
        rel: &str,
        target: &Path,
        owner: (u32, u32),
        mtime: Timespec,
    ) -> Result<(), Error> {
        let leaf = Leaf {
            attrs: attrs(0o777, owner, mtime.tv_sec),
            kind: LeafKind::Symlink(target.to_path_buf()),
        };
        self.add_leaf(rel, leaf)
    }

    fn file(&mut self, rel: &str, content: Content<'_>, a: FileAttrs) -> Result<u64, Error> {
        let (from, size) = match content {
            Content::Node(node) => (FileFrom::Node(Box::new(node.clone())), node.meta.len()),
            Content::Bytes(bytes) => (FileFrom::Bytes(bytes.to_vec()), bytes.len() as u64),
            Content::Host(path) => {
                let size = fs::metadata(path).map_err(io_err(path))?.len();
                (FileFrom::Host(path.to_path_buf()), size)
            }
        };
        let leaf = Leaf {
            attrs: attrs(a.mode, a.owner, a.mtime.tv_sec),
            kind: LeafKind::File(from),
        };
        self.add_leaf(rel, leaf)?;
        Ok(size)
    }

    fn mknod(
        &mut self,
        rel: &str,
        kind: FileType,
        mode: u32,
        rdev: u64,
        owner: (u32, u32),
    ) -> Result<(), Error> {
        let rdev = if kind == FileType::Fifo { 0 } else { rdev };
        let leaf = Leaf {
            attrs: attrs(mode, owner, self.now),
            kind: LeafKind::Device { kind, rdev },
        };
        self.add_leaf(rel, leaf)
    }

    fn set_dir_mtime(&mut self, rel: &str, mtime: Timespec) -> Result<(), Error> {
        let dir = self.dir_at(rel)?;
        dir.attrs.mtime = mtime.tv_sec;
        Ok(())
    }

    fn extract<'o>(
        &mut self,
        _reader: Box<dyn Read>,
        _opts: tare_layer::apply::ExtractOptions<'o>,
        _below: tare_layer::apply::BelowFn<'o>,
        name: &'o str,
    ) -> Result<tare_layer::ApplyStats, Error> {
        // copy::plan hands archives to a directory before anything is planned; an
        // archive seen only now changed between the two looks.
        Err(Error::FileChanged {
            path: name.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{symlink, PermissionsExt};

    use super::*;
    use crate::copy::{self, CopyOptions, Select, Source};
    use crate::dockerignore::DockerIgnore;
    use crate::tree::{ContextTree, Layers, SourceTree};

    /// Sets the mtime of `path` (not following a symlink) to `secs`.
    fn touch(path: &Path, secs: i64) {
        let t = Timespec {
            tv_sec: secs,
            tv_nsec: 123,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("utimensat");
    }

    fn write(path: &Path, content: &str, mode: u32) {
        fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        fs::write(path, content).expect("write");
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
    }

    /// Gives every entry below `root` (and `root`) a fixed mtime, children first.
    fn fix_mtimes(root: &Path, secs: i64) {
        for entry in fs::read_dir(root).expect("readdir") {
            let path = entry.expect("entry").path();
            if fs::symlink_metadata(&path).expect("stat").is_dir() {
                fix_mtimes(&path, secs + 7);
            }
            touch(&path, secs);
        }
        touch(root, secs);
    }

    /// A context and an image with what COPY treats specially: modes with setuid, a nested
    /// tree, symlinks, hard links, xattrs, an empty directory, an image directory to mirror
    /// and an image symlink on the destination's way.
    fn fixture(tmp: &Path) -> (ContextTree, Layers) {
        let ctx = tmp.join("ctx");
        write(&ctx.join("src/run.sh"), "#!/bin/sh\n", 0o4755);
        write(&ctx.join("src/private"), "secret", 0o600);
        write(&ctx.join("src/deep/er/file.txt"), "deep", 0o644);
        write(&ctx.join("src/deep/other.bin"), &"x".repeat(70_000), 0o640);
        fs::create_dir_all(ctx.join("src/empty")).expect("mkdir");
        fs::set_permissions(ctx.join("src/deep"), fs::Permissions::from_mode(0o750))
            .expect("chmod");
        symlink("deep/er/file.txt", ctx.join("src/link")).expect("symlink");
        symlink("../nowhere", ctx.join("src/dangling")).expect("symlink");
        fs::hard_link(ctx.join("src/deep/er/file.txt"), ctx.join("src/hard")).expect("link");
        xattr::set(ctx.join("src/private"), "user.tare.test", b"v").expect("xattr");
        write(&ctx.join("one.txt"), "one", 0o644);
        write(&ctx.join("two.log"), "two", 0o644);
        fix_mtimes(&ctx, 1_600_000_000);
        let image = tmp.join("image");
        fs::create_dir_all(image.join("usr/bin")).expect("mkdir");
        fs::create_dir_all(image.join("existing/sub")).expect("mkdir");
        fs::set_permissions(image.join("existing"), fs::Permissions::from_mode(0o711))
            .expect("chmod");
        symlink("usr/bin", image.join("bin")).expect("symlink");
        fix_mtimes(&image, 1_500_000_000);
        (
            ContextTree::open(&ctx, None).expect("ctx"),
            Layers::new(vec![image], "image"),
        )
    }

    fn tar_of_disk(
        tmp: &Path,
        lower: &Layers,
        sources: &[Source<'_>],
        opts: &CopyOptions,
    ) -> Vec<u8> {
        let upper = tmp.join("upper");
        let _ = fs::remove_dir_all(&upper);
        fs::create_dir(&upper).expect("upper");
        copy::copy_into(&upper, lower, sources, opts).expect("copy to disk");
        let mut out = Vec::new();
        tare_layer::diff::write_tree(&upper, &mut out).expect("diff");
        out
    }

    fn tar_of_plan(lower: &Layers, sources: &[Source<'_>], opts: &CopyOptions) -> Vec<u8> {
        let plan = copy::plan(lower, sources, opts)
            .expect("plan")
            .expect("no archive");
        let mut out = Vec::new();
        plan.write(&mut out, None, None).expect("write");
        out
    }

    /// The layer a COPY streams from memory is, byte for byte, the one writing it to disk
    /// and diffing the directory gives (the image ID of a COPY does not depend on the path).
    #[test]
    fn a_planned_copy_gives_the_same_tar_as_one_written_to_disk() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (ctx, image) = fixture(tmp.path());
        let tree = |p: &str| Source::Tree {
            tree: &ctx,
            path: p.to_string(),
        };
        let opts = |dest: &str| CopyOptions {
            dest: dest.to_string(),
            workdir: "/".to_string(),
            ..CopyOptions::default()
        };
        let exclude = DockerIgnore::from_patterns(["deep/er"]).expect("patterns");
        let cases: Vec<(Vec<Source<'_>>, CopyOptions)> = vec![
            (vec![tree("src")], opts("/dst")),
            (vec![tree("src"), tree("one.txt")], opts("/existing/")),
            (vec![tree("one.txt"), tree("*.log")], opts("/bin/")),
            (
                vec![tree("one.txt"), tree("two.log")],
                opts("/existing/sub/f"),
            ),
            (vec![tree(".")], opts("/")),
            (
                vec![tree("src")],
                CopyOptions {
                    chown: Some((7, 8)),
                    chmod: Some(crate::chmod::Chmod::Octal(0o700)),
                    ..opts("/owned")
                },
            ),
            (
                vec![tree("src")],
                CopyOptions {
                    keep_owner: true,
                    select: Select {
                        exclude,
                        parents: false,
                    },
                    ..opts("/kept")
                },
            ),
            (
                vec![
                    tree("src/deep"),
                    Source::Bytes {
                        name: "here".into(),
                        content: b"heredoc\n".to_vec(),
                        mode: 0o644,
                        mtime: 0,
                    },
                ],
                opts("/existing/"),
            ),
            // A later source replaces what an earlier one wrote, the hard link's first name
            // among them.
            (vec![tree("src/deep"), tree("src")], opts("/existing")),
        ];
        // What makes the comparison worth it is there: the xattr, the hard links.
        let first = tar_of_disk(tmp.path(), &image, &cases[0].0, &cases[0].1);
        let has = |needle: &[u8]| first.windows(needle.len()).any(|w| w == needle);
        assert!(has(b"SCHILY.xattr.user.tare.test"));
        let links = tar::Archive::new(first.as_slice())
            .entries()
            .expect("entries")
            .filter(|e| e.as_ref().expect("entry").header().entry_type() == tar::EntryType::Link)
            .count();
        assert_eq!(links, 1, "src/hard and src/deep/er/file.txt are one file");
        for (i, (sources, opts)) in cases.iter().enumerate() {
            let disk = tar_of_disk(tmp.path(), &image, sources, opts);
            let planned = tar_of_plan(&image, sources, opts);
            assert!(disk.len() > 1024, "case {i}: something was copied");
            assert!(disk == planned, "case {i} ({}): the tars differ", opts.dest);
        }
    }

    /// The digests taken while streaming are those the cache takes reading a file alone, for
    /// every file the tar read; a file changed after it was streamed is refused, not keyed.
    #[test]
    fn streaming_hashes_each_source_file_as_the_cache_would() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (ctx, image) = fixture(tmp.path());
        let sources = [Source::Tree {
            tree: &ctx,
            path: "src".into(),
        }];
        let opts = CopyOptions {
            dest: "/dst".into(),
            workdir: "/".into(),
            ..CopyOptions::default()
        };
        let plan = copy::plan(&image, &sources, &opts)
            .expect("plan")
            .expect("no archive");
        let mut streamed = Streamed::default();
        let mut with = Vec::new();
        plan.write(&mut with, None, Some(&mut streamed))
            .expect("write");
        let mut without = Vec::new();
        plan.write(&mut without, None, None).expect("write");
        assert!(with == without, "hashing does not change the tar");
        let store = tare_store::Store::open(tmp.path().join("store")).expect("store");
        let cache = crate::cache::Cache::open(&store).expect("cache");
        // run.sh, private, deep/er/file.txt (or its second name, hard), deep/other.bin.
        assert_eq!(streamed.files().count(), 4);
        for (host, _, digest) in streamed.files() {
            let node = ctx
                .lstat(
                    host.strip_prefix(ctx.root())
                        .expect("below")
                        .to_str()
                        .expect("utf-8"),
                )
                .expect("lstat")
                .expect("exists");
            assert_eq!(cache.file_digest(&node).expect("digest"), digest);
            assert_eq!(
                streamed.digest(&node).expect("same").as_deref(),
                Some(digest)
            );
        }
        let private = ctx.lstat("src/private").expect("lstat").expect("exists");
        fs::write(ctx.root().join("src/private"), "changed").expect("write");
        let changed = ctx.lstat("src/private").expect("lstat").expect("exists");
        assert!(streamed.digest(&private).expect("as read").is_some());
        let err = streamed.digest(&changed).expect_err("changed since");
        assert!(
            err.to_string().contains("changed while the build read it"),
            "{err}"
        );
    }

    /// A source file that changes between the listing and the tar is an error, never a
    /// layer whose entry is padded or cut.
    #[test]
    fn a_source_that_changes_before_it_is_streamed_is_an_error() {
        let tmp = tempfile::tempdir().expect("tmp");
        let (ctx, image) = fixture(tmp.path());
        let sources = [Source::Tree {
            tree: &ctx,
            path: "one.txt".into(),
        }];
        let opts = CopyOptions {
            dest: "/f".into(),
            workdir: "/".into(),
            ..CopyOptions::default()
        };
        let plan = copy::plan(&image, &sources, &opts)
            .expect("plan")
            .expect("no archive");
        fs::write(ctx.root().join("one.txt"), "longer now").expect("write");
        let err = plan
            .write(&mut Vec::new(), None, None)
            .expect_err("must fail");
        assert!(err.to_string().contains("one.txt"), "{err}");
    }
}
