//! Mount-point stubs: the directories and empty files a run creates in the root filesystem to
//! mount /proc, /sys, /dev and the /etc files on. They must not end up in a layer, so the
//! parent removes the ones the run created once the container is gone.

use std::ffi::CStr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags, ResolveFlags};

use crate::layers;

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

/// The directory holding `stub` (opened with `RESOLVE_NO_SYMLINKS`) and its last component.
fn parent_of<'a>(root: &OwnedFd, stub: &'a Stub) -> Option<(OwnedFd, &'a str)> {
    let path = rel(stub);
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

fn stat_of(root: &OwnedFd, stub: &Stub) -> Option<(OwnedFd, String, rfs::Stat)> {
    let (parent, name) = parent_of(root, stub)?;
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
        if stat_of(&root, stub).is_some() {
            mask |= 1 << i;
        }
    }
    mask
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
        if in_writable & bit != 0 {
            continue;
        }
        let Some((parent, name, stat)) = stat_of(&root, stub) else {
            continue;
        };
        let kind = rfs::FileType::from_raw_mode(stat.st_mode);
        if !stub.dir {
            if in_view & bit == 0 && kind == rfs::FileType::RegularFile && stat.st_size == 0 {
                let _ = rfs::unlinkat(&parent, name.as_str(), AtFlags::empty());
            }
            continue;
        }
        if kind != rfs::FileType::Directory {
            continue;
        }
        let created = in_view & bit == 0;
        let copied_up_unchanged = !created
            && !is_opaque_at(&parent, &name)
            && match layers::lookup(lower, rel(stub)) {
                Ok(layers::Found::Dir(below)) => std::fs::symlink_metadata(below)
                    .map(|b| {
                        b.mode() == stat.st_mode && b.uid() == stat.st_uid && b.gid() == stat.st_gid
                    })
                    .unwrap_or(false),
                _ => false,
            };
        if created || copied_up_unchanged {
            // Fails, and so keeps the directory, when the run put something in it.
            let _ = rfs::unlinkat(&parent, name.as_str(), AtFlags::REMOVEDIR);
        }
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
