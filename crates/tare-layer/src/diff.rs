//! Directory trees to layer tars (diffs).
//!
//! Two inputs become an uncompressed layer tar written to any [`Write`]:
//!
//! - an overlayfs *upper* directory ([`write_overlay_diff`]): overlay whiteouts (character
//!   devices 0/0) become OCI whiteout files `.wh.NAME`, opaque directories (xattr
//!   `trusted.overlay.opaque=y`, or `user.overlay.opaque` on a `userxattr` mount) get a
//!   `.wh..wh..opq` entry;
//! - a plain directory tree ([`write_tree`]), for COPY/ADD results, written as it is.
//!
//! Entries are written depth first, children of a directory sorted by name bytes, so the same
//! tree gives the same bytes. Modes (with setuid, setgid and sticky), owners, mtimes (whole
//! seconds, as Docker writes them), symlink targets, hard links (one inode seen twice becomes a
//! tar hard link to the first path), device nodes, fifos and xattrs are kept; overlayfs'
//! own xattrs are not.

use std::collections::HashMap;
use std::ffi::OsString;
use std::fs::{self, Metadata};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

pub use crate::whiteout::{OPAQUE_MARKER, WHITEOUT_PREFIX};

use crate::whiteout::OVERLAY_WHITEOUT_XATTRS;

const OVERLAY_OPAQUE_XATTRS: [&str; 2] = ["trusted.overlay.opaque", "user.overlay.opaque"];

/// Errors from turning a tree into a tar.
#[derive(Debug, thiserror::Error)]
pub enum DiffError {
    /// Reading a file, directory, link or xattr of the tree failed.
    #[error("reading {path}")]
    Read {
        /// The path in the tree.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// Writing the tar entry failed (usually the output stream).
    #[error("writing the tar entry for {path}")]
    Write {
        /// The path in the tree whose entry was being written.
        path: PathBuf,
        /// The output's error.
        #[source]
        source: io::Error,
    },
    /// The tree holds something a layer tar cannot carry (a socket, an overlay redirect).
    #[error("{path}: {what} cannot be stored in a layer")]
    Unsupported {
        /// The path in the tree.
        path: PathBuf,
        /// What it is, for the message ("a socket", "a redirected directory").
        what: &'static str,
    },
}

/// What was written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DiffStats {
    /// Tar entries written (whiteouts and opaque markers included).
    pub entries: u64,
}

/// Decides whether a directory that the diff would otherwise keep only for its own sake is in
/// fact unchanged (same mode, owner and xattrs as in the layers below), so it can be left out
/// when none of its children changed either. Receives the path relative to the tree root.
pub type UnchangedDir<'a> = &'a dyn Fn(&Path, &Metadata) -> bool;

/// Options for [`write_overlay_diff`].
#[derive(Default, Clone, Copy)]
pub struct DiffOptions<'a> {
    /// See [`UnchangedDir`]; `None` keeps every directory of the upper dir.
    pub unchanged_dir: Option<UnchangedDir<'a>>,
    /// `SOURCE_DATE_EPOCH` with `--rewrite-timestamp`: an mtime later than this (seconds since
    /// 1970) is written as this, in the tar and in the tree itself, so the tree stays the
    /// snapshot of the layer it became. `None` keeps every mtime.
    pub mtime_clamp: Option<u64>,
}

/// Writes the diff held in an overlayfs upper directory as a layer tar.
pub fn write_overlay_diff<W: Write>(
    upper: &Path,
    out: W,
    options: DiffOptions<'_>,
) -> Result<DiffStats, DiffError> {
    let entries = collect(upper, Mode::Overlay, options)?;
    write_entries(upper, &entries, out, options.mtime_clamp)
}

/// Writes every file under `root` as a layer tar, paths relative to `root`.
pub fn write_tree<W: Write>(root: &Path, out: W) -> Result<DiffStats, DiffError> {
    write_tree_with(root, out, DiffOptions::default())
}

/// [`write_tree`] with options (`mtime_clamp`; `unchanged_dir` applies too).
pub fn write_tree_with<W: Write>(
    root: &Path,
    out: W,
    options: DiffOptions<'_>,
) -> Result<DiffStats, DiffError> {
    let entries = collect(root, Mode::Plain, options)?;
    write_entries(root, &entries, out, options.mtime_clamp)
}

/// True when `upper` holds no change at all under the rules of [`write_overlay_diff`].
pub fn overlay_diff_is_empty(upper: &Path, options: DiffOptions<'_>) -> Result<bool, DiffError> {
    Ok(collect(upper, Mode::Overlay, options)?.is_empty())
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Overlay,
    Plain,
}

enum Kind {
    Dir { opaque: bool },
    File,
    Symlink(PathBuf),
    Whiteout,
    Char,
    Block,
    Fifo,
}

struct Entry {
    rel: PathBuf,
    meta: Metadata,
    kind: Kind,
    xattrs: Vec<(OsString, Vec<u8>)>,
}

fn read_err(path: &Path) -> impl FnOnce(io::Error) -> DiffError + '_ {
    move |source| DiffError::Read {
        path: path.to_path_buf(),
        source,
    }
}

fn collect(root: &Path, mode: Mode, options: DiffOptions<'_>) -> Result<Vec<Entry>, DiffError> {
    let mut out = Vec::new();
    walk_dir(root, Path::new(""), mode, &options, &mut out)?;
    Ok(out)
}

/// Appends the entries of directory `root/rel`'s children to `out`, in order.
fn walk_dir(
    root: &Path,
    rel: &Path,
    mode: Mode,
    options: &DiffOptions<'_>,
    out: &mut Vec<Entry>,
) -> Result<(), DiffError> {
    let dir = root.join(rel);
    let mut names: Vec<OsString> = fs::read_dir(&dir)
        .map_err(read_err(&dir))?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read_err(&dir))?;
    names.sort_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
    for name in names {
        let child_rel = rel.join(&name);
        let path = root.join(&child_rel);
        let meta = fs::symlink_metadata(&path).map_err(read_err(&path))?;
        let ft = meta.file_type();
        let mut xattrs = read_xattrs(&path)?;
        let kind = if ft.is_dir() {
            let opaque = mode == Mode::Overlay
                && xattrs.iter().any(|(k, v)| {
                    OVERLAY_OPAQUE_XATTRS
                        .iter()
                        .any(|o| k.as_bytes() == o.as_bytes())
                        && v.as_slice() == b"y"
                });
            Kind::Dir { opaque }
        } else if ft.is_file() {
            // The xattr form of a whiteout (see `crate::whiteout`).
            let whiteout = mode == Mode::Overlay
                && meta.len() == 0
                && xattrs.iter().any(|(k, _)| {
                    OVERLAY_WHITEOUT_XATTRS
                        .iter()
                        .any(|w| k.as_bytes() == w.as_bytes())
                });
            if whiteout {
                Kind::Whiteout
            } else {
                Kind::File
            }
        } else if ft.is_symlink() {
            Kind::Symlink(fs::read_link(&path).map_err(read_err(&path))?)
        } else if ft.is_char_device() {
            if mode == Mode::Overlay && meta.rdev() == 0 {
                Kind::Whiteout
            } else {
                Kind::Char
            }
        } else if ft.is_block_device() {
            Kind::Block
        } else if ft.is_fifo() {
            Kind::Fifo
        } else {
            return Err(DiffError::Unsupported {
                path,
                what: "a socket",
            });
        };
        if mode == Mode::Overlay {
            // A metadata-only copy-up or a renamed directory points into the lower layers:
            // its content is not in the upper dir. The sandbox mounts with metacopy=off and
            // redirect_dir=off; refuse rather than write a wrong layer if one appears.
            for (k, what) in [
                (
                    "trusted.overlay.metacopy",
                    "a metacopy-only file (mount with metacopy=off)",
                ),
                (
                    "trusted.overlay.redirect",
                    "a redirected directory (mount with redirect_dir=off)",
                ),
            ] {
                if xattrs
                    .iter()
                    .any(|(name, _)| name.as_bytes() == k.as_bytes())
                {
                    return Err(DiffError::Unsupported { path, what });
                }
            }
            // overlayfs bookkeeping never belongs to the image.
            xattrs.retain(|(k, _)| {
                let k = k.as_bytes();
                !k.starts_with(b"trusted.overlay.") && !k.starts_with(b"user.overlay.")
            });
        }
        let is_dir = matches!(kind, Kind::Dir { .. });
        let opaque = matches!(kind, Kind::Dir { opaque: true });
        let index = out.len();
        out.push(Entry {
            rel: child_rel.clone(),
            meta,
            kind,
            xattrs,
        });
        if is_dir {
            walk_dir(root, &child_rel, mode, options, out)?;
            let has_children = out.len() > index + 1;
            if !has_children && !opaque {
                if let Some(unchanged) = options.unchanged_dir {
                    if unchanged(&out[index].rel, &out[index].meta) {
                        out.truncate(index);
                    }
                }
            }
        }
    }
    Ok(())
}

fn read_xattrs(path: &Path) -> Result<Vec<(OsString, Vec<u8>)>, DiffError> {
    let names = match xattr::list(path) {
        Ok(names) => names,
        // Filesystems without xattr support simply have none.
        Err(e) if e.raw_os_error() == Some(libc_enotsup()) => return Ok(Vec::new()),
        Err(e) => return Err(read_err(path)(e)),
    };
    let mut out = Vec::new();
    for name in names {
        if name.as_bytes() == b"security.selinux" {
            continue;
        }
        if let Some(value) = xattr::get(path, &name).map_err(read_err(path))? {
            out.push((name, value));
        }
    }
    out.sort();
    Ok(out)
}

const fn libc_enotsup() -> i32 {
    95 // EOPNOTSUPP on Linux
}

fn write_entries<W: Write>(
    root: &Path,
    entries: &[Entry],
    out: W,
    clamp: Option<u64>,
) -> Result<DiffStats, DiffError> {
    let mut tar = LayerTar::new(out);
    // (dev, ino) of regular files already written, for hard links.
    let mut seen: HashMap<(u64, u64), PathBuf> = HashMap::new();
    let clamp = match clamp {
        Some(epoch) => Some(Clamp::open(root, epoch)?),
        None => None,
    };
    for entry in entries {
        let path = root.join(&entry.rel);
        let werr = |source| DiffError::Write {
            path: path.clone(),
            source,
        };
        if let Some(c) = &clamp {
            c.apply(&entry.rel, &entry.meta).map_err(werr)?;
        }
        let mut attrs = Attrs::of(&entry.meta);
        if let Some(c) = &clamp {
            attrs.mtime = i64::try_from(c.mtime(&entry.meta)).unwrap_or(i64::MAX);
        }
        let xattrs = entry.xattrs.as_slice();
        match &entry.kind {
            Kind::Whiteout => {
                let name = entry.rel.file_name().unwrap_or_default();
                let mut wh = OsString::from(WHITEOUT_PREFIX);
                wh.push(name);
                let rel = entry.rel.with_file_name(wh);
                tar.append_marker(&rel, attrs.mtime).map_err(werr)?;
            }
            Kind::Dir { opaque } => {
                tar.append(&entry.rel, attrs, xattrs, Listed::Dir)
                    .map_err(werr)?;
                if *opaque {
                    let marker = entry.rel.join(OPAQUE_MARKER);
                    tar.append_marker(&marker, attrs.mtime).map_err(werr)?;
                }
            }
            Kind::File => {
                let key = (entry.meta.dev(), entry.meta.ino());
                if entry.meta.nlink() > 1 {
                    if let Some(first) = seen.get(&key) {
                        tar.append(&entry.rel, attrs, xattrs, Listed::HardLink(first))
                            .map_err(werr)?;
                        continue;
                    }
                    seen.insert(key, entry.rel.clone());
                }
                let file = fs::File::open(&path).map_err(read_err(&path))?;
                let content = &mut io::BufReader::new(file);
                let size = entry.meta.len();
                tar.append(&entry.rel, attrs, xattrs, Listed::File { size, content })
                    .map_err(werr)?;
            }
            Kind::Symlink(target) => {
                tar.append(&entry.rel, attrs, xattrs, Listed::Symlink(target))
                    .map_err(werr)?;
            }
            Kind::Char | Kind::Block | Kind::Fifo => {
                let rdev = entry.meta.rdev();
                let listed = match entry.kind {
                    Kind::Char => Listed::Char { rdev },
                    Kind::Block => Listed::Block { rdev },
                    _ => Listed::Fifo,
                };
                tar.append(&entry.rel, attrs, xattrs, listed)
                    .map_err(werr)?;
            }
        }
    }
    tar.finish().map_err(|source| DiffError::Write {
        path: root.to_path_buf(),
        source,
    })
}

/// `--rewrite-timestamp`: mtimes later than the epoch become the epoch, in the tar headers and
/// (through the root's descriptor, without following a symlink) in the tree.
struct Clamp {
    root: rustix::fd::OwnedFd,
    epoch: u64,
}

impl Clamp {
    fn open(root: &Path, epoch: u64) -> Result<Clamp, DiffError> {
        let root_fd = rustix::fs::open(
            root,
            rustix::fs::OFlags::DIRECTORY
                | rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| DiffError::Read {
            path: root.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Clamp {
            root: root_fd,
            epoch,
        })
    }

    fn mtime(&self, meta: &Metadata) -> u64 {
        u64::try_from(meta.mtime()).unwrap_or(0).min(self.epoch)
    }

    /// Sets the entry's atime and mtime to the epoch when its mtime is later.
    fn apply(&self, rel: &Path, meta: &Metadata) -> io::Result<()> {
        if u64::try_from(meta.mtime()).unwrap_or(0) <= self.epoch {
            return Ok(());
        }
        let ts = rustix::fs::Timespec {
            tv_sec: i64::try_from(self.epoch).unwrap_or(i64::MAX),
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            &self.root,
            rel,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )?;
        Ok(())
    }
}

/// The owner, mode bits (with setuid, setgid and sticky) and mtime a tar entry carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attrs {
    /// Permission bits with setuid, setgid and sticky (`0o7777` at most).
    pub mode: u32,
    /// Owner's user ID.
    pub uid: u32,
    /// Owner's group ID.
    pub gid: u32,
    /// Seconds; the tar keeps whole seconds, as Docker writes them.
    pub mtime: i64,
}

impl Attrs {
    /// What a file's metadata gives.
    pub fn of(meta: &Metadata) -> Attrs {
        Attrs {
            mode: meta.mode() & 0o7777,
            uid: meta.uid(),
            gid: meta.gid(),
            mtime: meta.mtime(),
        }
    }
}

/// What one entry of a [`LayerTar`] is.
pub enum Listed<'a> {
    /// A directory (its children are separate entries).
    Dir,
    /// A regular file: `content` must hold exactly `size` bytes (anything else is an error,
    /// never a padded or cut entry).
    File {
        /// Length in bytes.
        size: u64,
        /// Where the bytes come from.
        content: &'a mut dyn io::Read,
    },
    /// A hard link to a regular file written earlier in the same tar.
    HardLink(&'a Path),
    /// A symbolic link with this target, written as given.
    Symlink(&'a Path),
    /// A character device.
    Char {
        /// Its device number (major and minor, as `st_rdev`).
        rdev: u64,
    },
    /// A block device.
    Block {
        /// Its device number (major and minor, as `st_rdev`).
        rdev: u64,
    },
    /// A named pipe.
    Fifo,
}

/// A layer tar written entry by entry, in the caller's order. [`write_tree`] and
/// [`write_overlay_diff`] write through it, and so can a caller that holds a tree only as a
/// description (COPY streams its sources this way without writing them to disk first): the
/// same entries give the same bytes.
pub struct LayerTar<W: Write> {
    builder: tar::Builder<W>,
    stats: DiffStats,
}

impl<W: Write> LayerTar<W> {
    /// Starts a tar on `out`, with headers written in full (GNU format, owners, modes and mtimes as
    /// given).
    pub fn new(out: W) -> LayerTar<W> {
        let mut builder = tar::Builder::new(out);
        builder.mode(tar::HeaderMode::Complete);
        LayerTar {
            builder,
            stats: DiffStats::default(),
        }
    }

    /// Appends one entry at `rel` (relative, without a trailing slash), its xattrs (sorted by
    /// name) first as a PAX header.
    pub fn append(
        &mut self,
        rel: &Path,
        attrs: Attrs,
        xattrs: &[(OsString, Vec<u8>)],
        listed: Listed<'_>,
    ) -> io::Result<()> {
        let builder = &mut self.builder;
        append_xattrs(builder, xattrs)?;
        let header = |ty: tar::EntryType| {
            let mut header = tar::Header::new_gnu();
            header.set_entry_type(ty);
            header.set_mode(attrs.mode & 0o7777);
            header.set_uid(u64::from(attrs.uid));
            header.set_gid(u64::from(attrs.gid));
            header.set_mtime(u64::try_from(attrs.mtime).unwrap_or(0));
            header.set_size(0);
            header
        };
        match listed {
            Listed::Dir => {
                let mut rel = rel.as_os_str().to_owned();
                rel.push("/");
                builder.append_data(&mut header(tar::EntryType::Directory), &rel, io::empty())?;
            }
            Listed::File { size, content } => {
                let mut h = header(tar::EntryType::Regular);
                h.set_size(size);
                let mut exact = Exact {
                    inner: content,
                    left: size,
                };
                builder.append_data(&mut h, rel, &mut exact)?;
                exact.at_end()?;
            }
            Listed::HardLink(first) => {
                builder.append_link(&mut header(tar::EntryType::Link), rel, first)?;
            }
            Listed::Symlink(target) => {
                builder.append_link(&mut header(tar::EntryType::Symlink), rel, target)?;
            }
            Listed::Char { rdev } | Listed::Block { rdev } => {
                let ty = match listed {
                    Listed::Char { .. } => tar::EntryType::Char,
                    _ => tar::EntryType::Block,
                };
                let mut h = header(ty);
                h.set_device_major(dev_major(rdev))?;
                h.set_device_minor(dev_minor(rdev))?;
                builder.append_data(&mut h, rel, io::empty())?;
            }
            Listed::Fifo => {
                builder.append_data(&mut header(tar::EntryType::Fifo), rel, io::empty())?;
            }
        }
        self.stats.entries += 1;
        Ok(())
    }

    /// An empty file, 0644 and root's: a whiteout or an opaque marker.
    fn append_marker(&mut self, rel: &Path, mtime: i64) -> io::Result<()> {
        let attrs = Attrs {
            mode: 0o644,
            uid: 0,
            gid: 0,
            mtime,
        };
        let content = &mut io::empty();
        self.append(rel, attrs, &[], Listed::File { size: 0, content })
    }

    /// Writes the end of the archive.
    pub fn finish(mut self) -> io::Result<DiffStats> {
        self.builder.finish()?;
        Ok(self.stats)
    }
}

/// A reader that gives exactly `left` bytes of `inner`: an error when `inner` ends early, and
/// [`Exact::at_end`] fails when it holds more (a file that changed while it was read).
struct Exact<'a> {
    inner: &'a mut dyn io::Read,
    left: u64,
}

impl io::Read for Exact<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.left == 0 {
            return Ok(0);
        }
        let max = usize::try_from(self.left)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let n = self.inner.read(&mut buf[..max])?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the file became shorter while it was read",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

impl Exact<'_> {
    fn at_end(&mut self) -> io::Result<()> {
        let mut probe = [0u8; 1];
        match self.inner.read(&mut probe)? {
            0 => Ok(()),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the file became longer while it was read",
            )),
        }
    }
}

fn append_xattrs<W: Write>(
    builder: &mut tar::Builder<W>,
    xattrs: &[(OsString, Vec<u8>)],
) -> io::Result<()> {
    if xattrs.is_empty() {
        return Ok(());
    }
    let keys: Vec<(String, &[u8])> = xattrs
        .iter()
        .map(|(k, v)| {
            (
                format!("SCHILY.xattr.{}", k.to_string_lossy()),
                v.as_slice(),
            )
        })
        .collect();
    builder.append_pax_extensions(keys.iter().map(|(k, v)| (k.as_str(), *v)))
}

fn dev_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0x0000_0fff)) as u32
}

fn dev_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0x0000_00ff)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{symlink, PermissionsExt};
    use std::process::Command;

    fn list(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType, u32, String)> {
        let mut archive = tar::Archive::new(tar_bytes);
        archive
            .entries()
            .expect("entries")
            .map(|e| {
                let e = e.expect("entry");
                let h = e.header();
                let link = h
                    .link_name()
                    .ok()
                    .flatten()
                    .map(|l| l.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (
                    e.path().expect("path").to_string_lossy().into_owned(),
                    h.entry_type(),
                    h.mode().expect("mode"),
                    link,
                )
            })
            .collect()
    }

    fn mknod(path: &Path, major_minor: &str) {
        let mut parts = major_minor.split(',');
        let status = Command::new("mknod")
            .arg(path)
            .arg("c")
            .arg(parts.next().expect("major"))
            .arg(parts.next().expect("minor"))
            .status()
            .expect("mknod");
        assert!(status.success(), "mknod needs root");
    }

    #[test]
    fn overlay_whiteouts_and_opaque_dirs_become_oci_markers() {
        let dir = tempfile::tempdir().expect("tmp");
        let up = dir.path();
        fs::create_dir(up.join("etc")).expect("mkdir");
        mknod(&up.join("etc/removed"), "0,0");
        // The xattr form, as made where the device node is refused; an empty file without
        // the xattr stays a file.
        fs::write(up.join("etc/gone"), "").expect("write");
        xattr::set(up.join("etc/gone"), "user.overlay.whiteout", b"").expect("xattr");
        fs::write(up.join("etc/empty"), "").expect("write");
        fs::create_dir(up.join("opaque")).expect("mkdir");
        xattr::set(up.join("opaque"), "trusted.overlay.opaque", b"y").expect("xattr");
        fs::write(up.join("opaque/new"), "x").expect("write");
        let mut out = Vec::new();
        let stats = write_overlay_diff(up, &mut out, DiffOptions::default()).expect("diff");
        let names: Vec<_> = list(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(
            names,
            [
                "etc/",
                "etc/empty",
                "etc/.wh.gone",
                "etc/.wh.removed",
                "opaque/",
                "opaque/.wh..wh..opq",
                "opaque/new"
            ]
        );
        assert_eq!(stats.entries, 7);
    }

    #[test]
    fn plain_tree_keeps_char_devices_as_devices() {
        let dir = tempfile::tempdir().expect("tmp");
        mknod(&dir.path().join("null"), "1,3");
        let mut out = Vec::new();
        write_tree(dir.path(), &mut out).expect("tree");
        let mut archive = tar::Archive::new(out.as_slice());
        let entry = archive
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        assert_eq!(entry.header().entry_type(), tar::EntryType::Char);
        assert_eq!(entry.header().device_major().expect("major"), Some(1));
        assert_eq!(entry.header().device_minor().expect("minor"), Some(3));
    }

    #[test]
    fn links_modes_and_empty_dirs_are_kept_in_sorted_order() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        fs::create_dir(root.join("b")).expect("mkdir");
        fs::create_dir(root.join("a.d")).expect("mkdir");
        fs::create_dir(root.join("empty")).expect("mkdir");
        fs::write(root.join("b/tool"), "bin").expect("write");
        fs::set_permissions(root.join("b/tool"), fs::Permissions::from_mode(0o4755))
            .expect("chmod");
        fs::hard_link(root.join("b/tool"), root.join("a.d/hard")).expect("link");
        symlink("../b/tool", root.join("a.d/soft")).expect("symlink");
        fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o1777)).expect("chmod");
        let mut out = Vec::new();
        write_tree(root, &mut out).expect("tree");
        let entries = list(&out);
        let names: Vec<_> = entries.iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            names,
            ["a.d/", "a.d/hard", "a.d/soft", "b/", "b/tool", "empty/"]
        );
        assert_eq!(entries[1].1, tar::EntryType::Regular);
        assert_eq!(entries[2].1, tar::EntryType::Symlink);
        assert_eq!(entries[2].3, "../b/tool");
        assert_eq!(entries[4].1, tar::EntryType::Link);
        assert_eq!(entries[4].3, "a.d/hard");
        assert_eq!(entries[4].2, 0o4755);
        assert_eq!(entries[5].2, 0o1777);
    }

    #[test]
    fn the_same_tree_gives_the_same_bytes() {
        let dir = tempfile::tempdir().expect("tmp");
        for i in (0..30).rev() {
            fs::write(dir.path().join(format!("f{i}")), format!("{i}")).expect("write");
        }
        let mut a = Vec::new();
        let mut b = Vec::new();
        write_tree(dir.path(), &mut a).expect("a");
        write_tree(dir.path(), &mut b).expect("b");
        assert_eq!(a, b);
    }

    /// Sets `path`'s mtime (and atime) without following a symlink.
    fn set_mtime(path: &Path, secs: i64) {
        let ts = rustix::fs::Timespec {
            tv_sec: secs,
            tv_nsec: 0,
        };
        rustix::fs::utimensat(
            rustix::fs::CWD,
            path,
            &rustix::fs::Timestamps {
                last_access: ts,
                last_modification: ts,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .expect("utimensat");
    }

    fn mtimes(tar_bytes: &[u8]) -> Vec<(String, u64)> {
        let mut archive = tar::Archive::new(tar_bytes);
        let entries = archive.entries().expect("entries");
        entries
            .map(|e| {
                let e = e.expect("entry");
                let path = e.path().expect("path").to_string_lossy().into_owned();
                (path, e.header().mtime().expect("mtime"))
            })
            .collect()
    }

    #[test]
    fn mtime_clamp_lowers_later_mtimes_only_in_tar_and_tree() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        fs::create_dir(root.join("d")).expect("mkdir");
        fs::write(root.join("d/new"), "n").expect("write");
        fs::write(root.join("old"), "o").expect("write");
        symlink("old", root.join("link")).expect("symlink");
        set_mtime(&root.join("old"), 1_000);
        set_mtime(&root.join("d/new"), 3_000_000_000);
        set_mtime(&root.join("link"), 3_000_000_000);
        set_mtime(&root.join("d"), 3_000_000_000);
        let options = DiffOptions {
            mtime_clamp: Some(2_000),
            ..DiffOptions::default()
        };
        let mut clamped = Vec::new();
        write_tree_with(root, &mut clamped, options).expect("write");
        assert_eq!(
            mtimes(&clamped),
            vec![
                ("d/".to_string(), 2_000),
                ("d/new".to_string(), 2_000),
                ("link".to_string(), 2_000),
                ("old".to_string(), 1_000),
            ]
        );
        // The tree now matches its tar, so written again without the clamp it gives the
        // same bytes: the snapshot and the layer agree.
        for (p, want) in [
            ("d", 2_000),
            ("d/new", 2_000),
            ("link", 2_000),
            ("old", 1_000),
        ] {
            let got = fs::symlink_metadata(root.join(p)).expect("stat").mtime();
            assert_eq!(got, want, "{p}");
        }
        let mut again = Vec::new();
        write_tree(root, &mut again).expect("write");
        assert_eq!(clamped, again);
    }

    #[test]
    fn capability_xattrs_are_kept_and_overlay_xattrs_dropped() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("ping");
        fs::write(&file, "x").expect("write");
        // A v2 capability blob for cap_net_raw (bit 13), permitted + effective.
        let cap: [u8; 20] = [
            0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        xattr::set(&file, "security.capability", &cap).expect("set cap");
        xattr::set(&file, "trusted.overlay.origin", b"zz").expect("set origin");
        let mut out = Vec::new();
        write_overlay_diff(dir.path(), &mut out, DiffOptions::default()).expect("diff");
        let mut archive = tar::Archive::new(out.as_slice());
        let mut entry = archive
            .entries()
            .expect("entries")
            .next()
            .expect("one")
            .expect("entry");
        let ext: Vec<(String, Vec<u8>)> = entry
            .pax_extensions()
            .expect("pax")
            .expect("has pax")
            .map(|e| {
                let e = e.expect("ext");
                (e.key().expect("key").to_string(), e.value_bytes().to_vec())
            })
            .collect();
        assert_eq!(
            ext,
            [("SCHILY.xattr.security.capability".to_string(), cap.to_vec())]
        );
    }

    #[test]
    fn unchanged_dirs_without_changed_children_are_left_out() {
        let dir = tempfile::tempdir().expect("tmp");
        fs::create_dir_all(dir.path().join("etc/ssl")).expect("mkdir");
        fs::create_dir(dir.path().join("new")).expect("mkdir");
        fs::write(dir.path().join("etc/ssl/cert"), "c").expect("write");
        fs::create_dir(dir.path().join("var")).expect("mkdir");
        let unchanged = |rel: &Path, _: &Metadata| rel != Path::new("new");
        let options = DiffOptions {
            unchanged_dir: Some(&unchanged),
            mtime_clamp: None,
        };
        let mut out = Vec::new();
        write_overlay_diff(dir.path(), &mut out, options).expect("diff");
        let names: Vec<_> = list(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names, ["etc/", "etc/ssl/", "etc/ssl/cert", "new/"]);
        fs::remove_dir_all(dir.path().join("etc")).expect("rm");
        fs::remove_dir(dir.path().join("new")).expect("rm");
        assert!(overlay_diff_is_empty(dir.path(), options).expect("empty"));
    }

    #[test]
    fn metacopy_files_are_refused_not_written_empty() {
        let dir = tempfile::tempdir().expect("tmp");
        let file = dir.path().join("bin");
        fs::write(&file, "").expect("write");
        xattr::set(&file, "trusted.overlay.metacopy", b"").expect("xattr");
        let err = write_overlay_diff(dir.path(), io::sink(), DiffOptions::default())
            .expect_err("metacopy must be refused");
        assert!(err.to_string().contains("metacopy"), "{err}");
    }

    #[test]
    fn long_paths_survive() {
        let dir = tempfile::tempdir().expect("tmp");
        let deep = dir.path().join("d".repeat(90)).join("e".repeat(90));
        fs::create_dir_all(&deep).expect("mkdir");
        fs::write(deep.join("f".repeat(80)), "x").expect("write");
        let mut out = Vec::new();
        write_tree(dir.path(), &mut out).expect("tree");
        let names: Vec<_> = list(&out).into_iter().map(|e| e.0).collect();
        assert_eq!(names.len(), 3);
        assert!(names[2].ends_with(&"f".repeat(80)));
    }
}
