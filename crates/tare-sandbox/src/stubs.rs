//! Mount-point stubs: the directories and empty files a run creates in the root filesystem to
//! mount /proc, /sys, /dev and the /etc files on. They must not end up in a layer, so the
//! parent removes the ones the run created once the container is gone.

use std::ffi::CStr;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

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

/// Which stubs exist in the writable directory itself before the run (bit i for `STUBS[i]`).
pub(crate) fn present_in(writable: &Path) -> u32 {
    let mut mask = 0;
    for (i, stub) in STUBS.iter().enumerate() {
        if std::fs::symlink_metadata(writable.join(rel(stub))).is_ok() {
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
    for (i, stub) in STUBS.iter().enumerate().rev() {
        let bit = 1 << i;
        if in_writable & bit != 0 {
            continue;
        }
        let path = writable.join(rel(stub));
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if !stub.dir {
            if in_view & bit == 0 && meta.is_file() && meta.len() == 0 {
                let _ = std::fs::remove_file(&path);
            }
            continue;
        }
        if !meta.is_dir() {
            continue;
        }
        let created = in_view & bit == 0;
        let copied_up_unchanged = !created
            && !layers::is_opaque(&path)
            && match layers::lookup(lower, rel(stub)) {
                Ok(layers::Found::Dir(below)) => std::fs::symlink_metadata(below)
                    .map(|b| {
                        b.mode() == meta.mode() && b.uid() == meta.uid() && b.gid() == meta.gid()
                    })
                    .unwrap_or(false),
                _ => false,
            };
        if created || copied_up_unchanged {
            // Fails, and so keeps the directory, when the run put something in it.
            let _ = std::fs::remove_dir(&path);
        }
    }
}
