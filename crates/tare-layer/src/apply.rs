//! Applying a layer tar to a directory, safely.
//!
//! Every file operation is relative to a directory descriptor. Parent directories are opened
//! with `openat2(RESOLVE_IN_ROOT)`, so `..` and symlinks (absolute or relative) resolve inside
//! the target as if it were `/`; final components are created or replaced without following
//! symlinks. Paths with `..` components are refused, absolute paths are taken relative to the
//! target, hard links must point inside it, and device nodes are only made when running as root.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, Dir, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps,
    XattrFlags,
};

use crate::error::{Error, Result};
use crate::path::clean_path;
use crate::whiteout::Marker;

/// What to do with whiteouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyMode {
    /// Delete what whiteouts hide: the result is the merged filesystem (export, flattening).
    Flatten,
    /// Keep whiteouts in overlayfs form (char device 0/0, `trusted.overlay.opaque=y`), so the
    /// directory can serve as an overlay lower layer.
    Overlay,
}

/// What an apply did.
#[derive(Debug, Default, Clone, Copy)]
pub struct ApplyStats {
    /// Tar entries applied, whiteouts and directories included.
    pub entries: u64,
    /// Regular files written, and their bytes.
    pub files: u64,
    /// Content bytes of the regular files written.
    pub bytes: u64,
    /// Device nodes left out because the caller is not root.
    pub skipped_devices: u64,
}

/// Unpacks the tar stream `reader` under `target` (an existing directory). `name` names the
/// stream in errors (a file name or a digest).
pub fn apply<R: Read>(reader: R, target: &Path, mode: ApplyMode, name: &str) -> Result<ApplyStats> {
    Applier::open(target, mode, name, None)?.run(reader)
}

/// How ADD extracts a local archive with [`extract`].
pub struct ExtractOptions<'a> {
    /// The directory below the target that the archive's entries go to.
    pub dest: &'a Path,
    /// The owner of every entry instead of the archive's (`ADD --chown`).
    pub chown: Option<(u32, u32)>,
    /// Makes a missing directory `name` in `parent` (its path below the target is the third
    /// argument) that the archive needs but does not hold, e.g. by copying the image's.
    pub make_dir: &'a mut dyn FnMut(&OwnedFd, &OsStr, &Path) -> io::Result<()>,
}

/// What the image below an extraction holds at a path (relative to the target's root), for
/// resolving an archive's parent directories with [`extract_over`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Below {
    /// Nothing is there.
    Missing,
    /// A directory.
    Directory,
    /// A symbolic link with this target.
    Symlink(PathBuf),
    /// A file or any other non-directory.
    Other,
}

/// Says what the layers below an extraction hold at a path relative to the target's root.
pub type BelowFn<'a> = &'a dyn Fn(&Path) -> io::Result<Below>;

/// Extracts the tar stream `reader` into `opts.dest` below `target` with the same safe
/// applier as layers (symlinks resolve inside `target`, nothing is written outside it):
/// whiteout names are ordinary files, owners come from the archive unless `opts.chown`,
/// modes keep setuid and setgid bits. For `-o type=local` and a context archive.
pub fn extract<'a, R: Read>(
    reader: R,
    target: &Path,
    opts: ExtractOptions<'a>,
    name: &'a str,
) -> Result<ApplyStats> {
    Applier::open(target, ApplyMode::Flatten, name, Some(opts))?.run(reader)
}

/// [`extract`] as ADD does it, into a `target` that is the top of a stack: `below` says what
/// the lower layers hold where `target` holds nothing.
///
/// The directories of each entry's path are resolved with `opts.dest` as the root, as
/// BuildKit 0.25 extracts: a symlink among them (one the archive made, or one in the layers
/// below) is followed, an absolute target from `opts.dest`, and missing directories on the
/// way are made; a target that climbs above `opts.dest` is an error.
pub fn extract_over<'a, R: Read>(
    reader: R,
    target: &Path,
    opts: ExtractOptions<'a>,
    below: BelowFn<'a>,
    name: &'a str,
) -> Result<ApplyStats> {
    let mut applier = Applier::open(target, ApplyMode::Flatten, name, Some(opts))?;
    applier.below = Some(below);
    applier.run(reader)
}

impl<'a> Applier<'a> {
    fn open(
        target: &Path,
        mode: ApplyMode,
        name: &'a str,
        extract: Option<ExtractOptions<'a>>,
    ) -> Result<Applier<'a>> {
        let root = rfs::open(
            target,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Io {
            op: "opening",
            path: target.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Applier {
            root,
            mode,
            name,
            is_root: rustix::process::geteuid().is_root(),
            in_userns: crate::in_user_namespace(),
            created: HashSet::new(),
            dirs: Vec::new(),
            stats: ApplyStats::default(),
            extract,
            below: None,
            last_resolved: None,
        })
    }

    fn run<R: Read>(mut self, reader: R) -> Result<ApplyStats> {
        let mut archive = crate::bounded::tar_archive(reader);
        let entries = archive.entries().map_err(|e| self.stream_err(e))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.stream_err(e))?;
            self.entry(&mut entry)?;
        }
        self.finish_dirs()?;
        Ok(self.stats)
    }
}

struct Applier<'a> {
    root: OwnedFd,
    mode: ApplyMode,
    name: &'a str,
    is_root: bool,
    /// Root of a user namespace (rootless tare), not of the host.
    in_userns: bool,
    /// Paths this layer created: an opaque marker must not delete them.
    created: HashSet<PathBuf>,
    /// Directories whose mode and mtime are set last (writing into them changes the mtime).
    dirs: Vec<(PathBuf, u32, i64)>,
    stats: ApplyStats,
    /// Set for ADD's [`extract`].
    extract: Option<ExtractOptions<'a>>,
    /// What lies below the target: set by [`extract_over`], whose entries resolve their
    /// directories with the destination as the root.
    below: Option<BelowFn<'a>>,
    /// The last entry's directories as named and as resolved by `resolve_in_dest`.
    last_resolved: Option<(PathBuf, PathBuf)>,
}

/// How many symlinks resolving one path may follow, as Linux's `MAXSYMLINKS`.
const MAX_LINKS: usize = 40;

impl Applier<'_> {
    fn stream_err(&self, e: io::Error) -> Error {
        Error::Stream {
            what: format!("reading layer {}", self.name),
            source: e,
        }
    }

    fn bad(&self, entry: &Path, reason: impl std::fmt::Display) -> Error {
        Error::BadEntry {
            archive: self.name.to_string(),
            entry: entry.display().to_string(),
            reason: reason.to_string(),
        }
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<()> {
        let raw = entry.path().map_err(|e| self.stream_err(e))?.into_owned();
        let kind = entry.header().entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let Some(path) = clean_path(&raw).map_err(|r| self.bad(&raw, r))? else {
            // The root directory itself: keep the target's own mode.
            return Ok(());
        };
        let path = match &self.extract {
            Some(x) if self.below.is_some() => {
                let dest = x.dest.to_path_buf();
                let parent = path.parent().unwrap_or(Path::new(""));
                let name = path
                    .file_name()
                    .ok_or_else(|| self.bad(&raw, "no file name"))?;
                // Entries come grouped by directory: the last resolution is reused until an
                // entry that can make a symlink (one that may lie on the path) is written.
                let resolved = match &self.last_resolved {
                    Some((raw_parent, resolved)) if raw_parent == parent => resolved.clone(),
                    _ => {
                        let resolved = self
                            .resolve_in_dest(&dest, parent)
                            .map_err(|e| self.bad(&raw, e))?;
                        self.last_resolved = Some((parent.to_path_buf(), resolved.clone()));
                        resolved
                    }
                };
                // A symlink entry may lie on any later path. An entry at one of this path's
                // own directories has another parent, so it already missed the reuse above.
                if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
                    self.last_resolved = None;
                }
                dest.join(resolved).join(name)
            }
            Some(x) => x.dest.join(path),
            None => path,
        };
        self.stats.entries += 1;
        let (parent_path, file_name) = match (path.parent(), path.file_name()) {
            (Some(p), Some(f)) => (p.to_path_buf(), f.to_os_string()),
            _ => return Err(self.bad(&raw, "no file name")),
        };
        let parent = self
            .ensure_dir(&parent_path)
            .map_err(|e| self.bad(&raw, e))?;
        // ADD's archives are not layers: their `.wh.` names are ordinary files.
        let marker = match self.extract {
            None => Marker::of(&file_name),
            Some(_) => Marker::Entry,
        };
        if marker == Marker::Invalid {
            return Err(self.bad(&raw, "invalid whiteout"));
        }
        if marker == Marker::Opaque {
            return match self.mode {
                ApplyMode::Overlay => {
                    // In a user namespace (rootless tare) `trusted.*` is refused, and
                    // overlayfs, mounted with `userxattr` there, reads `user.overlay.*`.
                    match rfs::fsetxattr(
                        &parent,
                        "trusted.overlay.opaque",
                        b"y",
                        XattrFlags::empty(),
                    ) {
                        Err(rustix::io::Errno::PERM) if self.in_userns => rfs::fsetxattr(
                            &parent,
                            "user.overlay.opaque",
                            b"y",
                            XattrFlags::empty(),
                        ),
                        other => other,
                    }
                    .map_err(|e| self.bad(&raw, format!("setting the opaque xattr: {e}")))
                }
                ApplyMode::Flatten => self
                    .clear_dir(&parent, &parent_path)
                    .map_err(|e| self.bad(&raw, e)),
            };
        }
        if let Marker::Whiteout(hidden) = marker {
            let hidden_path = parent_path.join(hidden);
            if self.created.contains(&hidden_path) {
                return Ok(());
            }
            remove_all(&parent, hidden).map_err(|e| self.bad(&raw, e))?;
            if self.mode == ApplyMode::Overlay {
                crate::whiteout::make_overlay_whiteout(&parent, hidden)
                    .map_err(|e| self.bad(&raw, format!("making the overlay whiteout: {e}")))?;
            }
            return Ok(());
        }

        let header = entry.header().clone();
        let perm = header.mode().map_err(|e| self.stream_err(e))? & 0o7777;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let (uid, gid) = self
            .extract
            .as_ref()
            .and_then(|x| x.chown)
            .unwrap_or((uid, gid));
        let mtime = header.mtime().unwrap_or(0) as i64;
        let name: &OsStr = &file_name;
        let existing = rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok();
        let existing_is_dir = existing
            .as_ref()
            .is_some_and(|st| FileType::from_raw_mode(st.st_mode) == FileType::Directory);

        if kind == tar::EntryType::Directory {
            if existing.is_some() && !existing_is_dir {
                remove_all(&parent, name).map_err(|e| self.bad(&raw, e))?;
            }
            if !existing_is_dir {
                rfs::mkdirat(&parent, name, Mode::from_raw_mode(0o700))
                    .map_err(|e| self.bad(&raw, format!("creating directory: {e}")))?;
            }
            let dir = rfs::openat(
                &parent,
                name,
                OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.bad(&raw, format!("opening directory: {e}")))?;
            self.set_xattrs(&dir, entry, &raw)?;
            if self.is_root {
                rfs::fchown(
                    &dir,
                    Some(rfs::Uid::from_raw(uid)),
                    Some(rfs::Gid::from_raw(gid)),
                )
                .map_err(|e| self.chown_err(&raw, uid, gid, e))?;
            }
            self.dirs.push((path.clone(), perm, mtime));
            self.created.insert(path);
            return Ok(());
        }
        if existing.is_some() {
            remove_all(&parent, name).map_err(|e| self.bad(&raw, e))?;
        }
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let fd = rfs::openat(
                    &parent,
                    name,
                    OFlags::WRONLY
                        | OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(|e| self.bad(&raw, format!("creating file: {e}")))?;
                let mut file = std::fs::File::from(fd);
                self.stats.bytes += io::copy(entry, &mut file).map_err(|e| self.stream_err(e))?;
                self.stats.files += 1;
                self.finish_fd(file.as_fd(), uid, gid, perm, mtime, &raw)?;
                // After chown, which removes security.capability.
                self.set_xattrs(&file, entry, &raw)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(|e| self.stream_err(e))?
                    .ok_or_else(|| self.bad(&raw, "symlink without a target"))?;
                rfs::symlinkat(target.as_ref(), &parent, name)
                    .map_err(|e| self.bad(&raw, format!("creating symlink: {e}")))?;
                if self.is_root {
                    rfs::chownat(
                        &parent,
                        name,
                        Some(rfs::Uid::from_raw(uid)),
                        Some(rfs::Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| self.chown_err(&raw, uid, gid, e))?;
                }
                let ts = Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                let _ = rfs::utimensat(
                    &parent,
                    name,
                    &Timestamps {
                        last_access: ts,
                        last_modification: ts,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            tar::EntryType::Link => {
                let target_raw = entry
                    .link_name()
                    .map_err(|e| self.stream_err(e))?
                    .ok_or_else(|| self.bad(&raw, "hard link without a target"))?
                    .into_owned();
                let target = clean_path(&target_raw)
                    .map_err(|r| self.bad(&raw, format!("hard link target: {r}")))?
                    .ok_or_else(|| self.bad(&raw, "hard link to the root directory"))?;
                let target = match &self.extract {
                    Some(x) => x.dest.join(target),
                    None => target,
                };
                let tparent_path = target.parent().unwrap_or(Path::new(""));
                let tname = target
                    .file_name()
                    .ok_or_else(|| self.bad(&raw, "hard link target has no name"))?;
                let tparent = self.open_dir(tparent_path).map_err(|e| {
                    self.bad(&raw, format!("hard link target {}: {e}", target.display()))
                })?;
                rfs::linkat(&tparent, tname, &parent, name, AtFlags::empty()).map_err(|e| {
                    self.bad(&raw, format!("hard link to {}: {e}", target.display()))
                })?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let ft = match kind {
                    tar::EntryType::Char => FileType::CharacterDevice,
                    tar::EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                if ft != FileType::Fifo && !self.is_root {
                    self.stats.skipped_devices += 1;
                    return Ok(());
                }
                let dev = rfs::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                match rfs::mknodat(&parent, name, ft, Mode::from_raw_mode(perm), dev) {
                    // A user namespace may not make device nodes (rootless tare): left out,
                    // as containerd and Docker do in one. The layer's blob keeps them.
                    Err(rustix::io::Errno::PERM) if self.in_userns && ft != FileType::Fifo => {
                        self.stats.skipped_devices += 1;
                        return Ok(());
                    }
                    other => other.map_err(|e| self.bad(&raw, format!("mknod: {e}")))?,
                }
                if self.is_root {
                    rfs::chownat(
                        &parent,
                        name,
                        Some(rfs::Uid::from_raw(uid)),
                        Some(rfs::Gid::from_raw(gid)),
                        AtFlags::SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| self.chown_err(&raw, uid, gid, e))?;
                }
                rfs::chmodat(&parent, name, Mode::from_raw_mode(perm), AtFlags::empty())
                    .map_err(|e| self.bad(&raw, format!("chmod: {e}")))?;
                let ts = Timespec {
                    tv_sec: mtime,
                    tv_nsec: 0,
                };
                let _ = rfs::utimensat(
                    &parent,
                    name,
                    &Timestamps {
                        last_access: ts,
                        last_modification: ts,
                    },
                    AtFlags::SYMLINK_NOFOLLOW,
                );
            }
            other => return Err(self.bad(&raw, format!("unsupported entry type {other:?}"))),
        }
        self.created.insert(path);
        Ok(())
    }

    /// A chown that failed. EINVAL means the ID does not exist in the user namespace tare runs
    /// in (rootless, with a single-ID mapping or an ID beyond the subordinate range).
    fn chown_err(&self, raw: &Path, uid: u32, gid: u32, e: rustix::io::Errno) -> Error {
        if e == rustix::io::Errno::INVAL && self.in_userns {
            return self.bad(
                raw,
                format!(
                    "chown to {uid}:{gid}: the ID is not mapped in tare's rootless user \
                     namespace; add a subordinate ID range for the user running tare to \
                     /etc/subuid and /etc/subgid (as root: usermod --add-subuids \
                     100000-165535 --add-subgids 100000-165535 USER) and install the uidmap \
                     package"
                ),
            );
        }
        self.bad(raw, format!("chown: {e}"))
    }

    fn finish_fd(
        &self,
        fd: BorrowedFd<'_>,
        uid: u32,
        gid: u32,
        perm: u32,
        mtime: i64,
        raw: &Path,
    ) -> Result<()> {
        if self.is_root {
            rfs::fchown(
                fd,
                Some(rfs::Uid::from_raw(uid)),
                Some(rfs::Gid::from_raw(gid)),
            )
            .map_err(|e| self.chown_err(raw, uid, gid, e))?;
        }
        // After chown, which clears setuid/setgid bits.
        rfs::fchmod(fd, Mode::from_raw_mode(perm))
            .map_err(|e| self.bad(raw, format!("chmod: {e}")))?;
        let ts = Timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        };
        rfs::futimens(
            fd,
            &Timestamps {
                last_access: ts,
                last_modification: ts,
            },
        )
        .map_err(|e| self.bad(raw, format!("setting times: {e}")))?;
        Ok(())
    }

    fn set_xattrs<R: Read, F: AsFd>(
        &self,
        fd: F,
        entry: &mut tar::Entry<'_, R>,
        raw: &Path,
    ) -> Result<()> {
        let Some(exts) = entry.pax_extensions().map_err(|e| self.stream_err(e))? else {
            return Ok(());
        };
        for ext in exts {
            let ext = ext.map_err(|e| self.stream_err(e))?;
            let Some(key) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") else {
                continue;
            };
            if !layer_xattr_allowed(key) {
                continue;
            }
            let key = OsStr::from_bytes(key);
            if let Err(e) = rfs::fsetxattr(&fd, key, ext.value_bytes(), XattrFlags::empty()) {
                if e != rustix::io::Errno::PERM && e != rustix::io::Errno::OPNOTSUPP {
                    return Err(
                        self.bad(raw, format!("setting xattr {}: {e}", key.to_string_lossy()))
                    );
                }
            }
        }
        Ok(())
    }

    /// Resolves `parent`, the directories of an extracted entry's path, below `dest` with
    /// `dest` as the root (see [`extract`]). The result holds no symlink, `.` or `..`.
    fn resolve_in_dest(&self, dest: &Path, parent: &Path) -> std::result::Result<PathBuf, String> {
        let mut pending: Vec<std::ffi::OsString> = parent
            .components()
            .rev()
            .map(|c| c.as_os_str().to_os_string())
            .collect();
        let mut done = PathBuf::new();
        let mut links = 0;
        while let Some(comp) = pending.pop() {
            if comp == "." || comp == "/" || comp.is_empty() {
                continue;
            }
            if comp == ".." {
                if !done.pop() {
                    return Err("a symlink leads out of the destination directory".into());
                }
                continue;
            }
            let here = done.join(&comp);
            match self.kind_at(&dest.join(&here)).map_err(|e| e.to_string())? {
                Below::Symlink(target) => {
                    links += 1;
                    if links > MAX_LINKS {
                        return Err(format!("{}: too many levels of symlinks", here.display()));
                    }
                    if target.is_absolute() {
                        done = PathBuf::new();
                    }
                    pending.extend(
                        target
                            .components()
                            .rev()
                            .map(|c| c.as_os_str().to_os_string()),
                    );
                }
                _ => done = here,
            }
        }
        Ok(done)
    }

    /// What is at `rel` (relative to the root): what this extraction or step wrote there,
    /// else what the layers below hold. Nothing on the way is followed.
    fn kind_at(&self, rel: &Path) -> io::Result<Below> {
        let (parent, name) = match (rel.parent(), rel.file_name()) {
            (Some(p), Some(n)) => (p, n),
            _ => return Ok(Below::Directory),
        };
        let here = match self.open_dir(parent) {
            Ok(dir) => match rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => Some((dir, st)),
                Err(rustix::io::Errno::NOENT) => None,
                Err(e) => return Err(e.into()),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
        match here {
            Some((dir, st)) => Ok(match FileType::from_raw_mode(st.st_mode) {
                FileType::Directory => Below::Directory,
                FileType::Symlink => {
                    let target = rfs::readlinkat(&dir, name, Vec::new())?;
                    Below::Symlink(PathBuf::from(std::ffi::OsString::from_vec(
                        target.into_bytes(),
                    )))
                }
                _ => Below::Other,
            }),
            None => match self.below {
                Some(below) => below(rel),
                None => Ok(Below::Missing),
            },
        }
    }

    /// Opens a directory inside the root; `..` and symlinks resolve within the root.
    fn open_dir(&self, rel: &Path) -> io::Result<OwnedFd> {
        let rel = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        Ok(rfs::openat2(
            &self.root,
            rel,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    /// Opens a directory, creating it and missing parents (mode 0755) first.
    fn ensure_dir(&mut self, rel: &Path) -> io::Result<OwnedFd> {
        match self.open_dir(rel) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let parent = rel.parent().unwrap_or(Path::new(""));
                let name = rel
                    .file_name()
                    .ok_or_else(|| io::Error::other("cannot create the root"))?;
                let pfd = self.ensure_dir(parent)?;
                if let Some(x) = &mut self.extract {
                    (x.make_dir)(&pfd, name, rel)?;
                    return self.open_dir(rel);
                }
                match rfs::mkdirat(&pfd, name, Mode::from_raw_mode(0o755)) {
                    Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                self.open_dir(rel)
            }
            other => other,
        }
    }

    /// Removes everything under a directory that this layer did not create (opaque marker).
    fn clear_dir(&self, dir: &OwnedFd, dir_path: &Path) -> io::Result<()> {
        let mut names = Vec::new();
        for entry in Dir::read_from(dir)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n == b"." || n == b".." {
                continue;
            }
            names.push(OsStr::from_bytes(n).to_os_string());
        }
        for n in names {
            if !self.created.contains(&dir_path.join(&n)) {
                remove_all(dir, &n)?;
            }
        }
        Ok(())
    }

    fn finish_dirs(&mut self) -> Result<()> {
        // Deepest first, so setting a parent's mtime is the last change to it.
        self.dirs
            .sort_by_key(|d| std::cmp::Reverse(d.0.components().count()));
        for (path, perm, mtime) in std::mem::take(&mut self.dirs) {
            let fd = self.open_dir(&path).map_err(|e| self.bad(&path, e))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(perm))
                .map_err(|e| self.bad(&path, format!("chmod: {e}")))?;
            let ts = Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            };
            rfs::futimens(
                &fd,
                &Timestamps {
                    last_access: ts,
                    last_modification: ts,
                },
            )
            .map_err(|e| self.bad(&path, format!("setting times: {e}")))?;
        }
        Ok(())
    }
}

/// Whether an extended attribute from a layer may be set. `trusted.*` and `security.*` belong
/// to the kernel and the host (overlayfs keeps whiteouts and redirects in `trusted.overlay.*`,
/// LSMs their labels in `security.*`): an image must not set them on the host. Only
/// `security.capability` (file capabilities, part of what the image means) passes, and never
/// `user.overlay.*`, which overlayfs reads as its own in `userxattr` mounts.
fn layer_xattr_allowed(key: &[u8]) -> bool {
    key == b"security.capability"
        || !(key.starts_with(b"trusted.")
            || key.starts_with(b"security.")
            || key.starts_with(b"user.overlay."))
}

/// Removes `name` in `dir` (recursively for directories) without following symlinks.
/// Missing is fine.
pub fn remove_all(dir: &OwnedFd, name: &OsStr) -> io::Result<()> {
    let st = match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => st,
        Err(rustix::io::Errno::NOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    if FileType::from_raw_mode(st.st_mode) == FileType::Directory {
        let sub = rfs::openat(
            dir,
            name,
            OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in Dir::read_from(&sub)? {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_os_string());
            }
        }
        for n in names {
            remove_all(&sub, &n)?;
        }
        rfs::unlinkat(dir, name, AtFlags::REMOVEDIR)?;
    } else {
        rfs::unlinkat(dir, name, AtFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A tar whose raw names are written as given (bypassing the tar crate's path checks).
    fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind, link, data) in entries {
            let mut h = tar::Header::new_gnu();
            h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
            h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(if *kind == tar::EntryType::Directory {
                0o755
            } else {
                0o644
            });
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    use tar::EntryType::{Directory as D, Link as L, Regular as F, Symlink as S};

    #[test]
    fn symlinks_never_lead_writes_out_of_the_target() {
        let outside = tempfile::tempdir().unwrap();
        let target = tempfile::tempdir().unwrap();
        let out = outside.path().to_str().unwrap().to_string();
        let tar = raw_tar(&[
            ("abs", S, &out, b""),
            ("abs/x", F, "", b"escaped"),
            ("rel", S, "../../../../../../..", b""),
            ("rel/tmp/y", F, "", b"escaped"),
        ]);
        // Writes through the symlinks resolve inside the target (like a chroot) or fail;
        // either way nothing appears outside.
        let _ = apply(&tar[..], target.path(), ApplyMode::Flatten, "test");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        let tar = raw_tar(&[
            ("evil", S, "/etc", b""),
            ("evil", F, "", b"replaced, not followed"),
        ]);
        apply(&tar[..], target.path(), ApplyMode::Flatten, "test").unwrap();
        assert!(std::fs::symlink_metadata(target.path().join("evil"))
            .unwrap()
            .is_file());
    }

    /// ADD resolves an archive's directories with the destination as the root (BuildKit
    /// 0.25): a symlink the archive made is followed, an absolute one from the destination,
    /// and one that climbs above the destination is refused.
    #[test]
    fn extract_follows_parent_symlinks_inside_the_destination_only() {
        let target = tempfile::tempdir().unwrap();
        std::fs::create_dir(target.path().join("dest")).unwrap();
        let run = |tar: &[u8]| {
            let mut make_dir = |parent: &OwnedFd, name: &OsStr, _: &Path| -> io::Result<()> {
                rfs::mkdirat(parent, name, Mode::from_raw_mode(0o755))?;
                Ok(())
            };
            let opts = ExtractOptions {
                dest: Path::new("dest"),
                chown: None,
                make_dir: &mut make_dir,
            };
            extract_over(
                tar,
                target.path(),
                opts,
                &|_| Ok(Below::Missing),
                "test.tar",
            )
        };
        run(&raw_tar(&[
            ("rel", S, "sub", b""),
            ("rel/f", F, "", b"rel"),
            ("abs", S, "/etc", b""),
            ("abs/g", F, "", b"abs"),
        ]))
        .unwrap();
        let dest = target.path().join("dest");
        assert_eq!(std::fs::read(dest.join("sub/f")).unwrap(), b"rel");
        assert_eq!(std::fs::read(dest.join("etc/g")).unwrap(), b"abs");
        assert!(std::fs::symlink_metadata(dest.join("abs"))
            .unwrap()
            .file_type()
            .is_symlink());
        assert!(!target.path().join("etc").exists());
        // A directory entry that replaces a symlink is not gone through afterwards.
        run(&raw_tar(&[
            ("l", S, "real", b""),
            ("l/a", F, "", b"a"),
            ("l", D, "", b""),
            ("l/b", F, "", b"b"),
        ]))
        .unwrap();
        assert_eq!(std::fs::read(dest.join("real/a")).unwrap(), b"a");
        assert_eq!(std::fs::read(dest.join("l/b")).unwrap(), b"b");
        assert!(!dest.join("real/b").exists());
        let err = run(&raw_tar(&[("up", S, "..", b""), ("up/x", F, "", b"x")])).unwrap_err();
        assert!(err.to_string().contains("out of the destination"), "{err}");
        assert!(!target.path().join("x").exists());
    }

    #[test]
    fn dotdot_and_outside_hard_links_are_refused() {
        let target = tempfile::tempdir().unwrap();
        for tar in [
            raw_tar(&[("../x", F, "", b"x")]),
            raw_tar(&[("a/../../x", F, "", b"x")]),
            raw_tar(&[("h", L, "../../etc/passwd", b"")]),
        ] {
            let err = apply(&tar[..], target.path(), ApplyMode::Flatten, "test").unwrap_err();
            assert!(err.to_string().contains("'..'"), "{err}");
        }
        // A hard link through a symlink to outside resolves inside the target, and fails.
        let tar = raw_tar(&[("s", S, "/etc", b""), ("h", L, "s/passwd", b"")]);
        assert!(apply(&tar[..], target.path(), ApplyMode::Flatten, "test").is_err());
        assert!(std::fs::symlink_metadata(target.path().join("h")).is_err());
    }

    #[test]
    fn whiteouts_delete_in_flatten_mode_and_become_overlay_whiteouts_in_overlay_mode() {
        let base = raw_tar(&[
            ("d", D, "", b""),
            ("d/a", F, "", b"a"),
            ("d/b", F, "", b"b"),
            ("o", D, "", b""),
            ("o/old", F, "", b"old"),
        ]);
        let upper = raw_tar(&[
            ("d/.wh.a", F, "", b""),
            ("o", D, "", b""),
            ("o/.wh..wh..opq", F, "", b""),
            ("o/new", F, "", b"new"),
        ]);
        let flat = tempfile::tempdir().unwrap();
        apply(&base[..], flat.path(), ApplyMode::Flatten, "base").unwrap();
        apply(&upper[..], flat.path(), ApplyMode::Flatten, "upper").unwrap();
        assert!(!flat.path().join("d/a").exists());
        assert_eq!(std::fs::read(flat.path().join("d/b")).unwrap(), b"b");
        assert!(!flat.path().join("o/old").exists());
        assert_eq!(std::fs::read(flat.path().join("o/new")).unwrap(), b"new");
        assert!(!flat.path().join("d/.wh.a").exists());
        if !rustix::process::geteuid().is_root() {
            return;
        }
        let over = tempfile::tempdir().unwrap();
        apply(&upper[..], over.path(), ApplyMode::Overlay, "upper").unwrap();
        let wh = std::fs::symlink_metadata(over.path().join("d/a")).unwrap();
        assert_eq!(wh.mode() & 0o170000, 0o020000, "character device");
        assert_eq!(wh.rdev(), 0);
        assert_eq!(
            xattr::get(over.path().join("o"), "trusted.overlay.opaque")
                .unwrap()
                .as_deref(),
            Some(&b"y"[..])
        );
    }

    #[test]
    fn host_and_overlay_xattrs_from_a_layer_are_dropped() {
        if !rustix::process::geteuid().is_root() {
            return;
        }
        // VFS_CAP_REVISION_2 with the effective flag, cap_net_raw permitted.
        let cap: &[u8] = &[
            1, 0, 0, 2, 0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ];
        let xattrs: &[(&str, &[u8])] = &[
            ("SCHILY.xattr.trusted.overlay.opaque", b"y"),
            ("SCHILY.xattr.trusted.overlay.redirect", b"/etc"),
            ("SCHILY.xattr.trusted.other", b"1"),
            ("SCHILY.xattr.security.evm", b"1"),
            ("SCHILY.xattr.user.overlay.opaque", b"y"),
            ("SCHILY.xattr.user.kept", b"1"),
            ("SCHILY.xattr.security.capability", cap),
        ];
        let mut b = tar::Builder::new(Vec::new());
        for (name, kind) in [("d", D), ("f", F)] {
            b.append_pax_extensions(xattrs.iter().copied()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(kind);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, name, std::io::empty()).unwrap();
        }
        let tar = b.into_inner().unwrap();
        let target = tempfile::tempdir().unwrap();
        apply(&tar[..], target.path(), ApplyMode::Overlay, "test").unwrap();
        for name in ["d", "f"] {
            let path = target.path().join(name);
            let mut names: Vec<String> = xattr::list(&path)
                .unwrap()
                .map(|n| n.to_string_lossy().into_owned())
                .collect();
            names.sort();
            let mut want = vec!["security.capability", "user.kept"];
            if name == "d" {
                // File capabilities mean nothing on a directory; the kernel may refuse them.
                names.retain(|n| n != "security.capability");
                want.retain(|n| *n != "security.capability");
            }
            assert_eq!(names, want, "{name}");
        }
        // Set after chown, which would have removed it.
        assert_eq!(
            xattr::get(target.path().join("f"), "security.capability")
                .unwrap()
                .as_deref(),
            Some(cap)
        );
    }
}
