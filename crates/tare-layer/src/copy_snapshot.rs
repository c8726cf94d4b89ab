//! Copy-based snapshots: the fallback for a RUN step where overlayfs cannot be mounted (a
//! kernel or filesystem that refuses it in a user namespace, or `TARE_SNAPSHOTTER=copy`).
//!
//! [`CopySnapshot::make`] merges the step's snapshots (overlay-format directories) into one
//! plain directory with the same code as a flattening export: each snapshot, bottom first, is
//! written as its layer tar ([`crate::diff::write_overlay_diff`]) and applied with
//! [`ApplyMode::Flatten`] (whiteouts delete, opaque directories clear). It then records every
//! path's inode and change time (ctime), and waits until the clock has moved past the newest
//! ctime, so that anything the step changes afterwards, even within the same clock tick, gets a
//! different ctime: the kernel updates ctime on every change of content, mode, owner, xattrs,
//! link count or name.
//!
//! After the step, [`CopySnapshot::into_upper`] turns the directory into an overlayfs upper
//! directory, which the layer diff reads as if overlayfs had written it: entries whose inode,
//! birth time or ctime changed (or that are new) are *moved* into it with `renameat` (content,
//! owner, mode, xattrs, times and hard links stay as they are, nothing is copied), a directory
//! that is new or replaced moves whole (opaque when it replaced one), a path that is gone
//! becomes a whiteout (character device 0/0), and the directories above a change are made in
//! the upper directory with the merged directory's mode, owner, xattrs and times, as
//! overlayfs' copy-up does. Every call is relative to a directory descriptor, without
//! following symlinks.
//!
//! A container that others read while it runs (`tare ps -s`, `tare commit`) saves its stamps
//! ([`CopySnapshot::save_stamps`], format and checks in `copy_stamps`); another process opens
//! them ([`CopySnapshot::open`]) and [`CopySnapshot::link_upper`] gives the same upper
//! directory without touching the running copy: changed entries are hard-linked instead of
//! moved, and new directories are made and filled with links. A lock on the stamps file keeps
//! readers and the final move apart: the move takes it exclusively and unlinks the file first,
//! so a reader that gets it afterwards finds no stamps and reads the writable layer.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, Mode, OFlags, StatxFlags, Timespec, Timestamps, XattrFlags,
};

use crate::apply::{apply, ApplyMode};
use crate::copy_stamps::{self, stamp_at, Stamp};
use crate::diff::{write_overlay_diff, DiffOptions};
use crate::error::{io, Error, Result};

/// A merged copy of a step's snapshots, and what it held before the step.
pub struct CopySnapshot {
    root: PathBuf,
    /// Relative path (empty for the root) to its stamp.
    before: HashMap<PathBuf, Stamp>,
    /// Directory (relative) to the names it held.
    children: HashMap<PathBuf, Vec<OsString>>,
    /// Where [`CopySnapshot::save_stamps`] saved the stamps.
    saved: Option<PathBuf>,
    /// The shared lock on the stamps of a snapshot [`CopySnapshot::open`]ed.
    _lock: Option<OwnedFd>,
}

fn open_dir(p: &Path) -> Result<OwnedFd> {
    rfs::open(
        p,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::Io {
        op: "opening",
        path: p.to_path_buf(),
        source: e.into(),
    })
}

fn open_subdir(dir: &OwnedFd, name: &OsStr) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// The names in a directory, sorted.
fn names_in(dir: &OwnedFd) -> rustix::io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name != b"." && name != b".." {
            names.push(OsStr::from_bytes(name).to_os_string());
        }
    }
    names.sort();
    Ok(names)
}

/// Owner, mode and times of an open directory.
fn dir_meta(fd: &OwnedFd) -> rustix::io::Result<rfs::Statx> {
    rfs::statx(fd, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)
}

impl CopySnapshot {
    /// Merges `lower` (top first, overlay format) into `root`, an empty directory.
    pub fn make(lower: &[PathBuf], root: &Path) -> Result<CopySnapshot> {
        for dir in lower.iter().rev() {
            let (reader, writer) = std::io::pipe().map_err(io("making a pipe for", dir))?;
            let name = dir.display().to_string();
            std::thread::scope(|s| -> Result<()> {
                let writing = s.spawn(move || {
                    write_overlay_diff(dir, std::io::BufWriter::new(writer), DiffOptions::default())
                });
                let applied = apply(
                    std::io::BufReader::new(reader),
                    root,
                    ApplyMode::Flatten,
                    &name,
                );
                let written = writing
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                written.map_err(|e| Error::Stream {
                    what: format!("copying snapshot {name}"),
                    source: std::io::Error::other(e),
                })?;
                applied.map(|_| ())
            })?;
        }
        let mut snap = CopySnapshot {
            root: root.to_path_buf(),
            before: HashMap::new(),
            children: HashMap::new(),
            saved: None,
            _lock: None,
        };
        let mut newest = (0, 0);
        let root_fd = open_dir(root)?;
        snap.record(&root_fd, Path::new(""), &mut newest)?;
        wait_past(root, newest)?;
        Ok(snap)
    }

    /// The merged directory, the step's root filesystem.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn record(&mut self, dir: &OwnedFd, rel: &Path, newest: &mut (i64, i64)) -> Result<()> {
        let root = self.root.clone();
        let read_err = |e: rustix::io::Errno| Error::Io {
            op: "reading",
            path: root.join(rel),
            source: e.into(),
        };
        let names = names_in(dir).map_err(read_err)?;
        for name in &names {
            let st = stamp_at(dir, name).map_err(read_err)?;
            *newest = (*newest).max(st.ctime);
            let child = rel.join(name);
            self.before.insert(child.clone(), st);
            if st.dir {
                let fd = open_subdir(dir, name).map_err(read_err)?;
                self.record(&fd, &child, newest)?;
            }
        }
        self.children.insert(rel.to_path_buf(), names);
        Ok(())
    }

    /// Saves the stamps to `path` (replaced atomically), for [`CopySnapshot::open`] in other
    /// processes; [`CopySnapshot::into_upper`] removes the file before it moves anything.
    pub fn save_stamps(&mut self, path: &Path) -> Result<()> {
        let mut order: Vec<&PathBuf> = self.before.keys().collect();
        // Component-wise order: a directory comes before what it holds.
        order.sort();
        tare_store::write_atomic(path, &copy_stamps::encode(&order, &self.before))?;
        self.saved = Some(path.to_path_buf());
        Ok(())
    }

    /// The snapshot another process made in `root` and saved the stamps of at `stamps`, read
    /// while that process may still run in it; `None` when there are no stamps (never saved,
    /// or the changes were moved out already). The stamps file is untrusted input (see
    /// `copy_stamps`). A shared lock on it is held until the snapshot is dropped.
    pub fn open(root: &Path, stamps: &Path) -> Result<Option<CopySnapshot>> {
        let Some((lock, before)) = copy_stamps::open(stamps)? else {
            return Ok(None);
        };
        let mut children: HashMap<PathBuf, Vec<OsString>> = HashMap::new();
        for path in before.keys() {
            let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
            let name = path.file_name().expect("checked: a plain name");
            children
                .entry(parent)
                .or_default()
                .push(name.to_os_string());
        }
        for names in children.values_mut() {
            names.sort();
        }
        Ok(Some(CopySnapshot {
            root: root.to_path_buf(),
            before,
            children,
            saved: None,
            _lock: Some(lock),
        }))
    }

    /// Moves what the step changed into `upper` (an empty directory on the same filesystem)
    /// in overlayfs form, and removes what is left of the merged directory.
    pub fn into_upper(self, upper: &Path) -> Result<()> {
        // Readers of the saved stamps finish first; later ones find no stamps.
        let _lock = match &self.saved {
            Some(path) => copy_stamps::retire(path)?,
            None => None,
        };
        self.to_upper(upper, Action::Move)?;
        std::fs::remove_dir_all(&self.root).map_err(io("removing", &self.root))
    }

    /// What [`CopySnapshot::into_upper`] would give, in `upper` (an empty directory on the
    /// same filesystem), made of hard links to the changed entries: the merged directory is
    /// left as it is, and may be in use.
    pub fn link_upper(&self, upper: &Path) -> Result<()> {
        self.to_upper(upper, Action::Link)
    }

    fn to_upper(&self, upper: &Path, action: Action) -> Result<()> {
        let mut mover = Mover {
            snap: self,
            upper: upper.to_path_buf(),
            made: Vec::new(),
            in_userns: crate::in_user_namespace(),
            action,
        };
        let root_fd = open_dir(&self.root)?;
        let upper_fd = open_dir(upper)?;
        let mut chain = vec![Level {
            rel: PathBuf::new(),
            merged: root_fd,
            upper: Some(upper_fd),
            meta: None,
        }];
        mover.walk(&mut chain)?;
        // Moving entries in and making whiteouts changed the times of the directories made.
        for (rel, meta) in mover.made.iter().rev() {
            let path = upper.join(rel);
            let times = Timestamps {
                last_access: Timespec {
                    tv_sec: meta.stx_atime.tv_sec,
                    tv_nsec: meta.stx_atime.tv_nsec as _,
                },
                last_modification: Timespec {
                    tv_sec: meta.stx_mtime.tv_sec,
                    tv_nsec: meta.stx_mtime.tv_nsec as _,
                },
            };
            rfs::utimensat(rfs::CWD, &path, &times, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
                Error::Io {
                    op: "setting the times of",
                    path: path.clone(),
                    source: e.into(),
                }
            })?;
        }
        Ok(())
    }
}

/// Waits (a few clock ticks at most) until a new file's ctime is later than `newest`.
fn wait_past(root: &Path, newest: (i64, i64)) -> Result<()> {
    let probe = root.with_extension("clock");
    for _ in 0..1000 {
        std::fs::write(&probe, b"").map_err(io("writing", &probe))?;
        let meta = std::fs::symlink_metadata(&probe).map_err(io("reading", &probe))?;
        std::fs::remove_file(&probe).map_err(io("removing", &probe))?;
        if (
            std::os::unix::fs::MetadataExt::ctime(&meta),
            std::os::unix::fs::MetadataExt::ctime_nsec(&meta),
        ) > newest
        {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    Err(Error::Io {
        op: "waiting for the clock to pass the snapshot's times at",
        path: root.to_path_buf(),
        source: std::io::Error::from(std::io::ErrorKind::TimedOut),
    })
}

/// What happens to a changed entry: moved out of the merged directory, or hard-linked.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Action {
    Move,
    Link,
}

/// One directory on the way down: its descriptor in the merged tree, in the upper tree once
/// made there, and its metadata as it was before anything was moved out of it.
struct Level {
    rel: PathBuf,
    merged: OwnedFd,
    upper: Option<OwnedFd>,
    meta: Option<rfs::Statx>,
}

struct Mover<'a> {
    snap: &'a CopySnapshot,
    upper: PathBuf,
    /// Directories made in the upper tree, parents first, with the metadata they copy.
    made: Vec<(PathBuf, rfs::Statx)>,
    in_userns: bool,
    action: Action,
}

impl Mover<'_> {
    fn err(&self, op: &'static str, rel: &Path, e: rustix::io::Errno) -> Error {
        Error::Io {
            op,
            path: self.upper.join(rel),
            source: e.into(),
        }
    }

    fn merged_err(&self, rel: &Path, e: rustix::io::Errno) -> Error {
        Error::Io {
            op: "reading",
            path: self.snap.root.join(rel),
            source: e.into(),
        }
    }

    /// The upper directory of the deepest level, made (with its parents) when missing.
    fn upper_dir(&mut self, chain: &mut [Level]) -> Result<()> {
        let first_missing = chain.iter().position(|l| l.upper.is_none());
        let Some(first) = first_missing else {
            return Ok(());
        };
        for i in first..chain.len() {
            let (done, rest) = chain.split_at_mut(i);
            let parent = done[i - 1].upper.as_ref().expect("made above");
            let level = &mut rest[0];
            let meta = level.meta.expect("a level below the root has its metadata");
            let name = level
                .rel
                .file_name()
                .expect("a level below the root has a name");
            rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(|e| self.err("making", &level.rel, e))?;
            let fd = open_subdir(parent, name).map_err(|e| self.err("opening", &level.rel, e))?;
            copy_xattrs(&level.merged, &fd)
                .map_err(|e| self.err("copying xattrs to", &level.rel, e))?;
            rfs::fchown(
                &fd,
                Some(rfs::Uid::from_raw(meta.stx_uid)),
                Some(rfs::Gid::from_raw(meta.stx_gid)),
            )
            .map_err(|e| self.err("setting the owner of", &level.rel, e))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(u32::from(meta.stx_mode) & 0o7777))
                .map_err(|e| self.err("setting the mode of", &level.rel, e))?;
            self.made.push((level.rel.clone(), meta));
            level.upper = Some(fd);
        }
        Ok(())
    }

    /// Moves or links the changed entry `name` of the deepest level into the upper tree.
    fn take_entry(&mut self, chain: &mut Vec<Level>, name: &OsStr, dir: bool) -> Result<()> {
        self.upper_dir(chain)?;
        let level = chain.last().expect("a level");
        let rel = level.rel.join(name);
        let upper = level.upper.as_ref().expect("made");
        match (self.action, dir) {
            (Action::Move, _) => rfs::renameat(&level.merged, name, upper, name)
                .map_err(|e| self.err("moving into the upper directory", &rel, e)),
            (Action::Link, false) => {
                match rfs::linkat(&level.merged, name, upper, name, AtFlags::empty()) {
                    // Removed since it was listed: it is not part of the changes any more.
                    Err(rustix::io::Errno::NOENT) => Ok(()),
                    r => r.map_err(|e| self.err("linking into the upper directory", &rel, e)),
                }
            }
            (Action::Link, true) => {
                let fd = open_subdir(&level.merged, name).map_err(|e| self.merged_err(&rel, e))?;
                let meta = dir_meta(&fd).map_err(|e| self.merged_err(&rel, e))?;
                chain.push(Level {
                    rel,
                    merged: fd,
                    upper: None,
                    meta: Some(meta),
                });
                self.upper_dir(chain)?;
                let linked = self.link_all(chain);
                chain.pop();
                linked
            }
        }
    }

    /// Links everything below the deepest level (a new directory) into the upper tree.
    fn link_all(&mut self, chain: &mut Vec<Level>) -> Result<()> {
        let level = chain.last().expect("a level");
        let rel = level.rel.clone();
        let names = names_in(&level.merged).map_err(|e| self.merged_err(&rel, e))?;
        for name in &names {
            let level = chain.last().expect("a level");
            let st = match stamp_at(&level.merged, name) {
                Err(rustix::io::Errno::NOENT) => continue,
                r => r.map_err(|e| self.merged_err(&rel.join(name), e))?,
            };
            self.take_entry(chain, name, st.dir)?;
        }
        Ok(())
    }

    fn set_opaque(&self, chain: &[Level], name: &OsStr) -> Result<()> {
        let level = chain.last().expect("a level");
        let rel = level.rel.join(name);
        let upper = level.upper.as_ref().expect("made");
        let fd = open_subdir(upper, name).map_err(|e| self.err("opening", &rel, e))?;
        let key = if self.in_userns {
            "user.overlay.opaque"
        } else {
            "trusted.overlay.opaque"
        };
        rfs::fsetxattr(&fd, key, b"y", XattrFlags::empty())
            .map_err(|e| self.err("marking opaque", &rel, e))
    }

    fn whiteout(&mut self, chain: &mut [Level], name: &OsStr) -> Result<()> {
        self.upper_dir(chain)?;
        let level = chain.last().expect("a level");
        let upper = level.upper.as_ref().expect("made");
        crate::whiteout::make_overlay_whiteout(upper, name)
            .map_err(|e| self.err("making the whiteout", &level.rel.join(name), e))
    }

    fn walk(&mut self, chain: &mut Vec<Level>) -> Result<()> {
        let rel = chain.last().expect("a level").rel.clone();
        let mut names = names_in(&chain.last().expect("a level").merged)
            .map_err(|e| self.merged_err(&rel, e))?;
        let mut i = 0;
        while i < names.len() {
            let name = names[i].clone();
            let child = rel.join(&name);
            let level = chain.last().expect("a level");
            let now = match stamp_at(&level.merged, &name) {
                // Removed since it was listed (a running container): gone.
                Err(rustix::io::Errno::NOENT) if self.action == Action::Link => {
                    names.remove(i);
                    continue;
                }
                r => r.map_err(|e| self.merged_err(&child, e))?,
            };
            i += 1;
            let before = self.snap.before.get(&child).copied();
            if now.dir && before.is_some_and(|b| b.dir && b.same_inode(&now)) {
                // The same directory: what changed is below it (or its own metadata).
                let fd =
                    open_subdir(&level.merged, &name).map_err(|e| self.merged_err(&child, e))?;
                let meta = dir_meta(&fd).map_err(|e| self.merged_err(&child, e))?;
                let own_change = before.is_some_and(|b| b.ctime != now.ctime);
                chain.push(Level {
                    rel: child,
                    merged: fd,
                    upper: None,
                    meta: Some(meta),
                });
                if own_change {
                    self.upper_dir(chain)?;
                }
                self.walk(chain)?;
                chain.pop();
            } else if before != Some(now) {
                self.take_entry(chain, &name, now.dir)?;
                if now.dir && before.is_some_and(|b| b.dir) {
                    self.set_opaque(chain, &name)?;
                }
            }
        }
        let gone: Vec<OsString> = self
            .snap
            .children
            .get(&rel)
            .into_iter()
            .flatten()
            .filter(|n| names.binary_search(n).is_err())
            .cloned()
            .collect();
        for name in gone {
            self.whiteout(chain, &name)?;
        }
        Ok(())
    }
}

/// Copies the xattrs of `from` to `to` (both directories), leaving overlayfs' own out.
fn copy_xattrs(from: &OwnedFd, to: &OwnedFd) -> rustix::io::Result<()> {
    let mut names = vec![0u8; 4096];
    let len = match rfs::flistxattr(from.as_fd(), &mut names) {
        Ok(len) => len,
        Err(rustix::io::Errno::NOTSUP) => return Ok(()),
        Err(e) => return Err(e),
    };
    for key in names[..len].split(|b| *b == 0).filter(|k| !k.is_empty()) {
        if key.starts_with(b"trusted.overlay.") || key.starts_with(b"user.overlay.") {
            continue;
        }
        let key = OsStr::from_bytes(key);
        let mut value = vec![0u8; 65536];
        let n = rfs::fgetxattr(from.as_fd(), key, &mut value)?;
        rfs::fsetxattr(to.as_fd(), key, &value[..n], XattrFlags::empty())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(tar: &[u8]) -> Vec<String> {
        let mut archive = tar::Archive::new(tar);
        let mut out: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                format!(
                    "{} {:?} {:o}",
                    e.path().unwrap().display(),
                    e.header().entry_type(),
                    e.header().mode().unwrap()
                )
            })
            .collect();
        out.sort();
        out
    }

    /// A base tree, a snapshot of it in `root`, and what a step does to it.
    fn changed_snapshot(tmp: &Path) -> (PathBuf, CopySnapshot) {
        let base = tmp.join("base");
        for d in ["keep/deep", "gone/sub", "replace/old", "meta", "edit"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("keep/deep/f"), "same").unwrap();
        std::fs::write(base.join("gone/sub/f"), "x").unwrap();
        std::fs::write(base.join("replace/old/f"), "x").unwrap();
        std::fs::write(base.join("edit/f"), "before").unwrap();
        std::fs::write(base.join("edit/rm"), "x").unwrap();
        std::fs::write(base.join("edit/same"), "x").unwrap();
        let root = tmp.join("root");
        std::fs::create_dir(&root).unwrap();
        let snap = CopySnapshot::make(std::slice::from_ref(&base), &root).unwrap();
        assert_eq!(std::fs::read(root.join("keep/deep/f")).unwrap(), b"same");

        // What a step does.
        std::fs::write(root.join("edit/f"), "after").unwrap();
        std::fs::remove_file(root.join("edit/rm")).unwrap();
        std::fs::remove_dir_all(root.join("gone")).unwrap();
        std::fs::remove_dir_all(root.join("replace")).unwrap();
        std::fs::create_dir(root.join("replace")).unwrap();
        std::fs::create_dir(root.join("replace/sub")).unwrap();
        std::fs::write(root.join("replace/sub/new"), "n").unwrap();
        std::fs::set_permissions(
            root.join("meta"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(root.join("new"), "n").unwrap();
        std::fs::hard_link(root.join("new"), root.join("edit/link")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("keep/host")).unwrap();
        (root, snap)
    }

    fn diff_listing(upper: &Path) -> Vec<String> {
        let mut tar = Vec::new();
        write_overlay_diff(upper, &mut tar, DiffOptions::default()).unwrap();
        listing(&tar)
    }

    /// Unchanged `keep/deep` is left out; `gone/` (with its contents) is one whiteout; the
    /// replaced `replace/` is opaque; the two names of one new inode are a hard link.
    const WANT: &[&str] = &[
        ".wh.gone Regular 644",
        "edit/ Directory 755",
        "edit/.wh.rm Regular 644",
        "edit/f Regular 644",
        "edit/link Regular 644",
        "keep/ Directory 755",
        "keep/host Symlink 777",
        "meta/ Directory 700",
        "new Link 644",
        "replace/ Directory 755",
        "replace/.wh..wh..opq Regular 644",
        "replace/sub/ Directory 755",
        "replace/sub/new Regular 644",
    ];

    #[test]
    fn a_copy_snapshot_gives_the_diff_overlayfs_would() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, snap) = changed_snapshot(tmp.path());
        let upper = tmp.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        snap.into_upper(&upper).unwrap();
        assert!(!root.exists());
        assert_eq!(diff_listing(&upper), WANT);
    }

    #[test]
    fn linking_from_saved_stamps_gives_what_moving_gives_and_leaves_the_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let (root, mut snap) = changed_snapshot(tmp.path());
        let stamps = tmp.path().join("stamps");
        snap.save_stamps(&stamps).unwrap();
        let reader = CopySnapshot::open(&root, &stamps).unwrap().expect("saved");
        let linked = tmp.path().join("linked");
        std::fs::create_dir(&linked).unwrap();
        reader.link_upper(&linked).unwrap();
        drop(reader);
        assert_eq!(diff_listing(&linked), WANT);
        assert_eq!(std::fs::read(root.join("edit/f")).unwrap(), b"after");
        assert!(
            root.join("replace/sub/new").exists(),
            "the copy is left as it is"
        );

        // The move retires the stamps: a reader afterwards finds none.
        let upper = tmp.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        snap.into_upper(&upper).unwrap();
        assert!(!stamps.exists());
        assert!(CopySnapshot::open(&root, &stamps).unwrap().is_none());
        assert_eq!(diff_listing(&upper), WANT);
    }
}
