//! OCI whiteouts: how a layer tar says that a path of the layers below is gone.
//!
//! `DIR/.wh.NAME` deletes `DIR/NAME` of the lower layers; `DIR/.wh..wh..opq` hides all the
//! lower layers' content of `DIR`. [`Marker::of`] is the one reading of an entry's name that
//! every reader of layers uses (apply, export, the size indexes, squash), so they agree on
//! which names are markers and which are malformed.
//!
//! Overlay-format directories (snapshots, upper directories) say it the kernel's way: a
//! character device 0/0 named like the path, or, where the filesystem refuses that node (an
//! overlayfs mount refuses it with `EPERM`, as tare's store is when tare itself runs in a
//! container), the xattr form of Linux 6.7: an empty regular file carrying
//! `trusted.overlay.whiteout` (`user.overlay.whiteout` in a user namespace). Overlayfs stores
//! those xattrs escaped in its own upper layer and gives them back unchanged, so every reader
//! of the directory ([`is_overlay_whiteout`]) sees the same whiteout.

use std::ffi::OsStr;
use std::os::fd::AsFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use rustix::fs::{self as rfs, FileType, Mode, OFlags, XattrFlags};

/// The xattrs that make an empty regular file an overlay whiteout.
pub const OVERLAY_WHITEOUT_XATTRS: [&str; 2] =
    ["trusted.overlay.whiteout", "user.overlay.whiteout"];

/// Makes an overlay whiteout `name` in `dir`: a character device 0/0, or where that node is
/// refused with `EPERM`, an empty file with the whiteout xattr.
pub fn make_overlay_whiteout(dir: impl AsFd, name: &OsStr) -> rustix::io::Result<()> {
    let dir = dir.as_fd();
    match rfs::mknodat(dir, name, FileType::CharacterDevice, Mode::empty(), 0) {
        Err(rustix::io::Errno::PERM) => {}
        other => return other,
    }
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let key = if crate::in_user_namespace() {
        OVERLAY_WHITEOUT_XATTRS[1]
    } else {
        OVERLAY_WHITEOUT_XATTRS[0]
    };
    let set = rfs::fsetxattr(&fd, key, b"", XattrFlags::empty());
    if set.is_err() {
        let _ = rfs::unlinkat(dir, name, rfs::AtFlags::empty());
    }
    set
}

/// True when `path`, with metadata `meta` (not following a symlink), is an overlay whiteout
/// in either form.
pub fn is_overlay_whiteout(path: &Path, meta: &std::fs::Metadata) -> bool {
    let ft = meta.file_type();
    (ft.is_char_device() && meta.rdev() == 0)
        || (ft.is_file()
            && meta.len() == 0
            && OVERLAY_WHITEOUT_XATTRS
                .iter()
                .any(|k| matches!(xattr::get(path, k), Ok(Some(_)))))
}

/// Prefix of OCI whiteout files.
pub const WHITEOUT_PREFIX: &str = ".wh.";
/// Name of the OCI opaque-directory marker.
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// What the last component of a layer entry's name means; `T` is the name's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker<T> {
    /// An ordinary entry.
    Entry,
    /// The opaque marker: the lower layers' content of the parent directory is hidden.
    Opaque,
    /// A whiteout of this name in the same directory.
    Whiteout(T),
    /// `.wh.` followed by nothing, `.` or `..`: no path to delete.
    Invalid,
}

impl<'a> Marker<&'a OsStr> {
    /// Reads a file name (the entry path's last component).
    pub fn of(name: &'a OsStr) -> Marker<&'a OsStr> {
        let bytes = name.as_bytes();
        if bytes == OPAQUE_MARKER.as_bytes() {
            return Marker::Opaque;
        }
        match bytes.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            None => Marker::Entry,
            Some(b"" | b"." | b"..") => Marker::Invalid,
            Some(hidden) => Marker::Whiteout(OsStr::from_bytes(hidden)),
        }
    }
}

impl<'a> Marker<&'a str> {
    /// [`Marker::of`] for a UTF-8 name.
    pub fn of_str(name: &'a str) -> Marker<&'a str> {
        match Marker::of(OsStr::new(name)) {
            Marker::Entry => Marker::Entry,
            Marker::Opaque => Marker::Opaque,
            Marker::Invalid => Marker::Invalid,
            // The hidden name is the end of `name`, after the ASCII prefix.
            Marker::Whiteout(_) => Marker::Whiteout(&name[WHITEOUT_PREFIX.len()..]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_read_once_for_every_layer_reader() {
        assert_eq!(Marker::of_str("file"), Marker::Entry);
        assert_eq!(Marker::of_str(".wh..wh..opq"), Marker::Opaque);
        assert_eq!(Marker::of_str(".wh.gone"), Marker::Whiteout("gone"));
        assert_eq!(Marker::of_str(".wh..hidden"), Marker::Whiteout(".hidden"));
        for bad in [".wh.", ".wh..", ".wh..."] {
            assert_eq!(Marker::of_str(bad), Marker::Invalid, "{bad}");
        }
        let raw = OsStr::from_bytes(b".wh.\xff");
        assert_eq!(
            Marker::of(raw),
            Marker::Whiteout(OsStr::from_bytes(b"\xff"))
        );
    }
}
