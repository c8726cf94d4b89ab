//! Mount-point stubs: the directories and empty files a run creates in the root filesystem to
//! mount /proc, /sys, /dev and the /etc files on, and, when asked
//! ([`crate::RunSpec::remove_mount_points`]), those of the volumes (a RUN step's secret at
//! /run/secrets/ID, say). They must not end up in a layer, so the parent removes the ones the
//! run created once the container is gone.

use std::ffi::{CStr, CString};
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

use crate::{layers, EtcFiles};

pub(crate) struct Stub {
    /// Relative to the container's root.
    pub path: &'static CStr,
    pub dir: bool,
}

/// Parents before children; removal goes in reverse.
pub(crate) const STUBS: [Stub; 7] = [
    Stub {
        path: c"proc",
        dir: true,
    },
    Stub {
        path: c"sys",
        dir: true,
    },
    Stub {
        path: c"dev",
        dir: true,
    },
    Stub {
        path: c"etc",
        dir: true,
    },
    Stub {
        path: c"etc/resolv.conf",
        dir: false,
    },
    Stub {
        path: c"etc/hosts",
        dir: false,
    },
    Stub {
        path: c"etc/hostname",
        dir: false,
    },
];

/// The bits of [`STUBS`] that are no mount point in a run with `etc`: whatever the run leaves
/// there is its own, never a stub to remove. A build step has no /etc/hostname mount
/// ([`EtcFiles::BuildStep`]), so an /etc/hostname it creates, even empty, stays in its layer.
pub(crate) fn not_mount_points(etc: EtcFiles) -> u32 {
    match etc {
        EtcFiles::Container => 0,
        EtcFiles::BuildStep => STUBS
            .iter()
            .position(|s| s.path == c"etc/hostname")
            .map_or(0, |i| 1 << i),
    }
}

/// A volume's mount point or one of its parents, relative to the container's root.
#[derive(Debug, Clone)]
pub(crate) struct MountStub {
    pub path: CString,
    pub dir: bool,
}

/// The most mount-point stubs one run tracks (the child reports them 32 to a record).
const MAX_MOUNT_STUBS: usize = 256;

/// Every component of every volume target, parents first and each once: `/run/secrets/a`
/// gives `run`, `run/secrets` and the file `run/secrets/a`.
pub(crate) fn for_targets(mounts: &[crate::BindMount]) -> Result<Vec<MountStub>, crate::Error> {
    let mut out: Vec<MountStub> = Vec::new();
    for m in mounts {
        let is_dir = std::fs::metadata(&m.source)
            .map_err(|e| crate::Error::io(&m.source, e))?
            .is_dir();
        let parts: Vec<&str> = m
            .target
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .collect();
        for i in 0..parts.len() {
            let rel = parts[..=i].join("/");
            let dir = i + 1 < parts.len() || is_dir;
            if out.iter().any(|s| s.path.as_bytes() == rel.as_bytes()) {
                continue;
            }
            let path = CString::new(rel).map_err(|_| crate::Error::Invalid {
                what: "volume target",
                value: m.target.clone(),
                reason: "contains a NUL byte",
            })?;
            out.push(MountStub { path, dir });
        }
    }
    if out.len() > MAX_MOUNT_STUBS {
        return Err(crate::Error::Invalid {
            what: "volume targets",
            value: format!("{} path components", out.len()),
            reason: "too many to track",
        });
    }
    Ok(out)
}

fn rel(stub: &Stub) -> &str {
    stub.path.to_str().unwrap_or("")
}

/// The writable directory, opened once; every stub is reached from it without following a
/// symbolic link, so a run that replaced `/etc` by a link to a host directory makes the
/// cleanup skip that stub instead of deleting the host's files.
fn open_writable(writable: &Path) -> Option<OwnedFd> {
    rfs::open(
        writable,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()
}

/// The directory holding `path` (opened with `RESOLVE_NO_SYMLINKS`) and its last component.
fn parent_of<'a>(root: &OwnedFd, path: &'a str) -> Option<(OwnedFd, &'a str)> {
    let (dir, name) = path.rsplit_once('/').unwrap_or((".", path));
    let parent = rfs::openat2(
        root,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::NO_SYMLINKS | ResolveFlags::BENEATH,
    )
    .ok()?;
    Some((parent, name))
}

fn stat_of(root: &OwnedFd, path: &str) -> Option<(OwnedFd, String, rfs::Stat)> {
    let (parent, name) = parent_of(root, path)?;
    let stat = rfs::statat(&parent, name, AtFlags::SYMLINK_NOFOLLOW).ok()?;
    Some((parent, name.to_string(), stat))
}

/// Which stubs exist in the writable directory itself before the run (bit i for `STUBS[i]`).
pub(crate) fn present_in(writable: &Path) -> u32 {
    let Some(root) = open_writable(writable) else {
        return 0;
    };
    let mut mask = 0;
    for (i, stub) in STUBS.iter().enumerate() {
        if stat_of(&root, rel(stub)).is_some() {
            mask |= 1 << i;
        }
    }
    mask
}

/// [`present_in`] for the mount-point stubs.
pub(crate) fn present(writable: &Path, stubs: &[MountStub]) -> Vec<bool> {
    let Some(root) = open_writable(writable) else {
        return vec![false; stubs.len()];
    };
    stubs
        .iter()
        .map(|s| stat_of(&root, s.path.to_str().unwrap_or("")).is_some())
        .collect()
}

/// Removes from `writable` the stubs the run added.
///
/// `in_writable` is [`present_in`] before the run; `in_view` says which existed in the
/// container's merged view before anything was created (reported by the child); `lower` are
/// the read-only layers (empty for a plain directory rootfs). A stub file is removed when it
/// did not exist at all before; a directory is removed when it is empty and either did not
/// exist before, or was only copied up from a lower layer with its metadata unchanged.
pub(crate) fn remove_created(
    writable: &Path,
    in_writable: u32,
    in_view: u32,
    lower: &[std::path::PathBuf],
) {
    let Some(root) = open_writable(writable) else {
        return;
    };
    for (i, stub) in STUBS.iter().enumerate().rev() {
        let bit = 1 << i;
        if in_writable & bit == 0 {
            remove_one(&root, rel(stub), stub.dir, in_view & bit != 0, lower);
        }
    }
}

/// [`remove_created`] for the mount-point stubs, children before parents.
pub(crate) fn remove_created_list(
    writable: &Path,
    stubs: &[MountStub],
    in_writable: &[bool],
    in_view: &[bool],
    lower: &[std::path::PathBuf],
) {
    let Some(root) = open_writable(writable) else {
        return;
    };
    for (i, stub) in stubs.iter().enumerate().rev() {
        if !in_writable.get(i).copied().unwrap_or(true) {
            let existed = in_view.get(i).copied().unwrap_or(true);
            remove_one(
                &root,
                stub.path.to_str().unwrap_or(""),
                stub.dir,
                existed,
                lower,
            );
        }
    }
}

/// Removes one stub that was not in the writable directory before the run; `existed` says
/// whether it was in the container's view (a lower layer).
fn remove_one(root: &OwnedFd, path: &str, dir: bool, existed: bool, lower: &[std::path::PathBuf]) {
    if path.is_empty() {
        return;
    }
    let Some((parent, name, stat)) = stat_of(root, path) else {
        return;
    };
    let kind = rfs::FileType::from_raw_mode(stat.st_mode);
    if !dir {
        if !existed && kind == rfs::FileType::RegularFile && stat.st_size == 0 {
            let _ = rfs::unlinkat(&parent, name.as_str(), AtFlags::empty());
        }
        return;
    }
    if kind != rfs::FileType::Directory {
        return;
    }
    let copied_up_unchanged = existed
        && !is_opaque_at(&parent, &name)
        && match layers::lookup(lower, path) {
            Ok(layers::Found::Dir(below)) => std::fs::symlink_metadata(below)
                .map(|b| {
                    b.mode() == stat.st_mode && b.uid() == stat.st_uid && b.gid() == stat.st_gid
                })
                .unwrap_or(false),
            _ => false,
        };
    if !existed || copied_up_unchanged {
        // Fails, and so keeps the directory, when the run put something in it.
        let _ = rfs::unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR);
    }
}

/// [`layers::is_opaque`] for the directory `name` under `parent`, without following links.
fn is_opaque_at(parent: &OwnedFd, name: &str) -> bool {
    match rfs::openat(
        parent,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(dir) => layers::is_opaque_fd(&dir),
        // Unreadable: keep the directory (the safe answer).
        Err(_) => true,
    }
}
