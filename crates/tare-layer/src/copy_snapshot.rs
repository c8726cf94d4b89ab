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
//! birth time or ctime changed (or that are new) are *moved* into it with `renameat` (content, owner, mode,
//! xattrs, times and hard links stay as they are, nothing is copied), a directory that is new
//! or replaced moves whole (opaque when it replaced one), a path that is gone becomes a
//! whiteout (character device 0/0), and the directories above a change are made in the upper
//! directory with the merged directory's mode, owner, xattrs and times, as overlayfs' copy-up
//! does. Every call is relative to a directory descriptor, without following symlinks.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, Timespec, Timestamps, XattrFlags};

use crate::apply::{apply, ApplyMode};
use crate::diff::{write_overlay_diff, DiffOptions};
use crate::error::{io, Error, Result};

/// What identifies an unchanged entry: its inode and its ctime.
/// The birth time tells a directory from a new one that got the inode number of a removed one
/// (`rm -rf d && mkdir d` often does: the new one must be opaque, not a list of whiteouts).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    ino: u64,
    born: Option<std::time::SystemTime>,
    ctime: (i64, i64),
    dir: bool,
}

impl Stamp {
    fn same_inode(&self, other: &Stamp) -> bool {
        self.ino == other.ino && self.born == other.born
    }
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        ino: meta.ino(),
        born: meta.created().ok(),
        ctime: (meta.ctime(), meta.ctime_nsec()),
        dir: meta.is_dir(),
    }
}

/// A merged copy of a step's snapshots, and what it held before the step.
pub struct CopySnapshot {
    root: PathBuf,
    /// Relative path (empty for the root) to its stamp.
    before: HashMap<PathBuf, Stamp>,
    /// Directory (relative) to the names it held.
    children: HashMap<PathBuf, Vec<OsString>>,
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
        };
        let mut newest = (0, 0);
        snap.record(Path::new(""), &mut newest)?;
        wait_past(root, newest)?;
        Ok(snap)
    }

    /// The merged directory, the step's root filesystem.
    pub fn path(&self) -> &Path {
        &self.root
    }

    fn record(&mut self, rel: &Path, newest: &mut (i64, i64)) -> Result<()> {
        let dir = self.root.join(rel);
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io("reading", &dir))? {
            let entry = entry.map_err(io("reading", &dir))?;
            let path = entry.path();
            let meta = std::fs::symlink_metadata(&path).map_err(io("reading", &path))?;
            let st = stamp(&meta);
            *newest = (*newest).max(st.ctime);
            let child = rel.join(entry.file_name());
            self.before.insert(child.clone(), st);
            names.push(entry.file_name());
            if st.dir {
                self.record(&child, newest)?;
            }
        }
        self.children.insert(rel.to_path_buf(), names);
        Ok(())
    }

    /// Moves what the step changed into `upper` (an empty directory on the same filesystem)
    /// in overlayfs form, and removes what is left of the merged directory.
    pub fn into_upper(self, upper: &Path) -> Result<()> {
        let open_dir = |p: &Path| {
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
        };
        let mut mover = Mover {
            snap: &self,
            upper: upper.to_path_buf(),
            made: Vec::new(),
            in_userns: crate::in_user_namespace(),
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
                    tv_sec: meta.atime(),
                    tv_nsec: meta.atime_nsec() as _,
                },
                last_modification: Timespec {
                    tv_sec: meta.mtime(),
                    tv_nsec: meta.mtime_nsec() as _,
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
        drop(chain);
        std::fs::remove_dir_all(&self.root).map_err(io("removing", &self.root))
    }
}

/// Waits (a few clock ticks at most) until a new file's ctime is later than `newest`.
fn wait_past(root: &Path, newest: (i64, i64)) -> Result<()> {
    let probe = root.with_extension("clock");
    for _ in 0..1000 {
        std::fs::write(&probe, b"").map_err(io("writing", &probe))?;
        let meta = std::fs::symlink_metadata(&probe).map_err(io("reading", &probe))?;
        std::fs::remove_file(&probe).map_err(io("removing", &probe))?;
        if (meta.ctime(), meta.ctime_nsec()) > newest {
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

/// One directory on the way down: its descriptor in the merged tree, in the upper tree once
/// made there, and its metadata as it was before anything was moved out of it.
struct Level {
    rel: PathBuf,
    merged: OwnedFd,
    upper: Option<OwnedFd>,
    meta: Option<std::fs::Metadata>,
}

struct Mover<'a> {
    snap: &'a CopySnapshot,
    upper: PathBuf,
    /// Directories made in the upper tree, parents first, with the metadata they copy.
    made: Vec<(PathBuf, std::fs::Metadata)>,
    in_userns: bool,
}

impl Mover<'_> {
    fn err(&self, op: &'static str, rel: &Path, e: rustix::io::Errno) -> Error {
        Error::Io {
            op,
            path: self.upper.join(rel),
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
            let meta = level
                .meta
                .clone()
                .expect("a level below the root has its metadata");
            let name = level
                .rel
                .file_name()
                .expect("a level below the root has a name");
            rfs::mkdirat(parent, name, Mode::from_raw_mode(0o700))
                .map_err(|e| self.err("making", &level.rel, e))?;
            let fd = rfs::openat(
                parent,
                name,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
            )
            .map_err(|e| self.err("opening", &level.rel, e))?;
            copy_xattrs(&level.merged, &fd)
                .map_err(|e| self.err("copying xattrs to", &level.rel, e))?;
            rfs::fchown(
                &fd,
                Some(rfs::Uid::from_raw(meta.uid())),
                Some(rfs::Gid::from_raw(meta.gid())),
            )
            .map_err(|e| self.err("setting the owner of", &level.rel, e))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(meta.mode() & 0o7777))
                .map_err(|e| self.err("setting the mode of", &level.rel, e))?;
            self.made.push((level.rel.clone(), meta));
            level.upper = Some(fd);
        }
        Ok(())
    }

    fn move_entry(&mut self, chain: &mut [Level], name: &OsStr) -> Result<()> {
        self.upper_dir(chain)?;
        let level = chain.last().expect("a level");
        let upper = level.upper.as_ref().expect("made");
        rfs::renameat(&level.merged, name, upper, name)
            .map_err(|e| self.err("moving into the upper directory", &level.rel.join(name), e))
    }

    fn set_opaque(&self, chain: &[Level], name: &OsStr) -> Result<()> {
        let level = chain.last().expect("a level");
        let rel = level.rel.join(name);
        let upper = level.upper.as_ref().expect("made");
        let fd = rfs::openat(
            upper,
            name,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| self.err("opening", &rel, e))?;
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
        let dir_path = self.snap.root.join(&rel);
        let mut names: Vec<OsString> = std::fs::read_dir(&dir_path)
            .map_err(io("reading", &dir_path))?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<std::io::Result<_>>()
            .map_err(io("reading", &dir_path))?;
        names.sort();
        for name in &names {
            let child = rel.join(name);
            let path = self.snap.root.join(&child);
            let meta = std::fs::symlink_metadata(&path).map_err(io("reading", &path))?;
            let now = stamp(&meta);
            let before = self.snap.before.get(&child).copied();
            if now.dir && before.is_some_and(|b| b.dir && b.same_inode(&now)) {
                // The same directory: what changed is below it (or its own metadata).
                let fd = rfs::openat(
                    &chain.last().expect("a level").merged,
                    name.as_os_str(),
                    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(|e| self.err("opening", &child, e))?;
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
                self.move_entry(chain, name)?;
                if now.dir && before.is_some_and(|b| b.dir) {
                    self.set_opaque(chain, name)?;
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

    #[test]
    fn a_copy_snapshot_gives_the_diff_overlayfs_would() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().join("base");
        for d in ["keep/deep", "gone/sub", "replace/old", "meta", "edit"] {
            std::fs::create_dir_all(base.join(d)).unwrap();
        }
        std::fs::write(base.join("keep/deep/f"), "same").unwrap();
        std::fs::write(base.join("gone/sub/f"), "x").unwrap();
        std::fs::write(base.join("replace/old/f"), "x").unwrap();
        std::fs::write(base.join("edit/f"), "before").unwrap();
        std::fs::write(base.join("edit/rm"), "x").unwrap();
        std::fs::write(base.join("edit/same"), "x").unwrap();
        let root = tmp.path().join("root");
        std::fs::create_dir(&root).unwrap();
        let snap = CopySnapshot::make(std::slice::from_ref(&base), &root).unwrap();
        assert_eq!(std::fs::read(root.join("keep/deep/f")).unwrap(), b"same");

        // What a step does.
        std::fs::write(root.join("edit/f"), "after").unwrap();
        std::fs::remove_file(root.join("edit/rm")).unwrap();
        std::fs::remove_dir_all(root.join("gone")).unwrap();
        std::fs::remove_dir_all(root.join("replace")).unwrap();
        std::fs::create_dir(root.join("replace")).unwrap();
        std::fs::write(root.join("replace/new"), "n").unwrap();
        std::fs::set_permissions(
            root.join("meta"),
            std::os::unix::fs::PermissionsExt::from_mode(0o700),
        )
        .unwrap();
        std::fs::write(root.join("new"), "n").unwrap();
        std::fs::hard_link(root.join("new"), root.join("edit/link")).unwrap();

        let upper = tmp.path().join("upper");
        std::fs::create_dir(&upper).unwrap();
        snap.into_upper(&upper).unwrap();
        assert!(!root.exists());
        let mut tar = Vec::new();
        write_overlay_diff(&upper, &mut tar, DiffOptions::default()).unwrap();
        // Unchanged `keep/` is left out; `gone/` (with its contents) is one whiteout; the
        // replaced `replace/` is opaque; the two names of one new inode are a hard link.
        assert_eq!(
            listing(&tar),
            [
                ".wh.gone Regular 644",
                "edit/ Directory 755",
                "edit/.wh.rm Regular 644",
                "edit/f Regular 644",
                "edit/link Regular 644",
                "meta/ Directory 700",
                "new Link 644",
                "replace/ Directory 755",
                "replace/.wh..wh..opq Regular 644",
                "replace/new Regular 644",
            ]
        );
    }
}
