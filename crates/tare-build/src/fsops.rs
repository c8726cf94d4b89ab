//! The one way tare-build touches a tree: through directory descriptors.
//!
//! A step writes into its upper directory (COPY, ADD, WORKDIR) and reads from the build
//! context and from snapshots. None of it goes through a path-based `std::fs` call, because
//! the trees hold symlinks that a Dockerfile, a context or an image chose: `x -> /etc` made by
//! one source of a COPY must not send the next source's `x/file` to the host.
//!
//! - Writing: [`Root`] holds the upper directory's descriptor. Parent directories are opened
//!   with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so a symlink (absolute or
//!   relative) made earlier in the step resolves inside the upper directory as it would inside
//!   a chroot. The final component is created, replaced, chowned and chmodded through `*at`
//!   calls that never follow it (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`, `unlinkat`), or through
//!   the descriptor of what was just created.
//! - Reading: [`open_beneath`] opens a source file below its tree's root with
//!   `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS`: the trees resolve symlinks themselves
//!   (`SourceTree::resolve` in tree.rs), so a symlink met at open time means the tree
//!   changed under us, and the open fails instead of following it out of the tree.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Gid, Mode, OFlags, ResolveFlags, Timespec, Timestamps, Uid,
};

use crate::error::Error;

/// A tree that a step writes into, held by its root directory's descriptor. Paths are
/// relative, `/`-separated, cleaned; `""` is the root.
pub struct Root {
    fd: OwnedFd,
    path: PathBuf,
}

impl Root {
    /// Opens the directory `path` (which must not be a symlink).
    pub fn open(path: &Path) -> Result<Root, Error> {
        let fd = rfs::open(
            path,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        Ok(Root {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The directory on the host (for messages and for [`tare_layer::apply::extract`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The error for an operation on `rel`, naming the path as the user knows it (`/rel`).
    pub fn err(&self, rel: &str) -> impl FnOnce(io::Error) -> Error + '_ {
        let path = Path::new("/").join(rel);
        move |source| Error::Io { path, source }
    }

    /// Opens directory `rel`; symlinks on the way resolve inside the root.
    pub fn try_dir(&self, rel: &str) -> io::Result<OwnedFd> {
        let rel = if rel.is_empty() { "." } else { rel };
        Ok(rfs::openat2(
            &self.fd,
            rel,
            OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
            ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
        )?)
    }

    /// [`Root::try_dir`] with an error naming `rel`.
    pub fn dir(&self, rel: &str) -> Result<OwnedFd, Error> {
        self.try_dir(rel).map_err(self.err(rel))
    }

    /// The parent directory of `rel` (which must exist) and `rel`'s last component.
    pub fn parent<'r>(&self, rel: &'r str) -> Result<(OwnedFd, &'r str), Error> {
        let (parent, name) = split_last(rel);
        if matches!(name, "" | "." | "..") {
            return Err(Error::NotAFileName {
                path: rel.to_string(),
            });
        }
        Ok((self.dir(parent)?, name))
    }
}

/// `("a/b", "c")` for `"a/b/c"`, `("", "c")` for `"c"`.
pub fn split_last(rel: &str) -> (&str, &str) {
    match rel.rfind('/') {
        Some(i) => (&rel[..i], &rel[i + 1..]),
        None => ("", rel),
    }
}

/// The kind of `name` in `dir`, without following it; `None` when absent.
pub fn kind_at(dir: &OwnedFd, name: &str) -> io::Result<Option<FileType>> {
    match rfs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(FileType::from_raw_mode(st.st_mode))),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Removes `name` from `dir`, recursively for a directory, never following a symlink.
pub fn remove_at(dir: &OwnedFd, name: &str) -> io::Result<()> {
    tare_layer::apply::remove_all(dir, OsStr::new(name))
}

/// Opens directory `name` of `dir` without following a symlink.
pub fn open_dir_at(dir: &OwnedFd, name: &str) -> io::Result<OwnedFd> {
    Ok(rfs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?)
}

/// Makes directory `name` in `dir` (it must not exist) owned by `owner` with `mode`, and
/// returns its descriptor.
pub fn mkdir_at(dir: &OwnedFd, name: &str, mode: u32, owner: (u32, u32)) -> io::Result<OwnedFd> {
    rfs::mkdirat(dir, name, Mode::from_raw_mode(0o700))?;
    let fd = open_dir_at(dir, name)?;
    set_owner_mode(&fd, owner, mode)?;
    Ok(fd)
}

/// Makes sure `name` in `dir` is a directory: an existing one is kept, anything else (a file
/// or a symlink this step made) is replaced by a new directory with `mode` and `owner`.
/// Returns the descriptor and whether it was created.
pub fn ensure_dir_at(
    dir: &OwnedFd,
    name: &str,
    mode: u32,
    owner: (u32, u32),
) -> io::Result<(OwnedFd, bool)> {
    match kind_at(dir, name)? {
        Some(FileType::Directory) => Ok((open_dir_at(dir, name)?, false)),
        Some(_) => {
            remove_at(dir, name)?;
            Ok((mkdir_at(dir, name, mode, owner)?, true))
        }
        None => Ok((mkdir_at(dir, name, mode, owner)?, true)),
    }
}

/// Creates the regular file `name` in `dir` (it must not exist), writable by us only until
/// [`set_owner_mode`] gives it its mode.
pub fn create_file_at(dir: &OwnedFd, name: &str) -> io::Result<File> {
    let fd = rfs::openat(
        dir,
        name,
        OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    )?;
    Ok(File::from(fd))
}

/// chown, then chmod (chown clears setuid and setgid bits, which the mode then sets).
pub fn set_owner_mode<Fd: AsFd>(fd: Fd, owner: (u32, u32), mode: u32) -> io::Result<()> {
    rfs::fchown(
        &fd,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
    )?;
    rfs::fchmod(&fd, Mode::from_raw_mode(mode & 0o7777))?;
    Ok(())
}

/// Sets the access and modification times of what `fd` holds.
pub fn set_mtime<Fd: AsFd>(fd: Fd, mtime: Timespec) -> io::Result<()> {
    Ok(rfs::futimens(
        &fd,
        &Timestamps {
            last_access: mtime,
            last_modification: mtime,
        },
    )?)
}

/// chown of `name` in `dir`, never following it.
fn chown_at(dir: &OwnedFd, name: &str, owner: (u32, u32)) -> io::Result<()> {
    Ok(rfs::chownat(
        dir,
        name,
        Some(Uid::from_raw(owner.0)),
        Some(Gid::from_raw(owner.1)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?)
}

/// Makes the symlink `name -> target` in `dir`, owned by `owner`, with `mtime`.
pub fn symlink_at(
    dir: &OwnedFd,
    name: &str,
    target: &OsStr,
    owner: (u32, u32),
    mtime: Timespec,
) -> io::Result<()> {
    rfs::symlinkat(target, dir, name)?;
    chown_at(dir, name, owner)?;
    rfs::utimensat(
        dir,
        name,
        &Timestamps {
            last_access: mtime,
            last_modification: mtime,
        },
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    Ok(())
}

/// Makes a device node or fifo `name` in `dir` with `mode`, `rdev` and `owner`.
pub fn mknod_at(
    dir: &OwnedFd,
    name: &str,
    kind: FileType,
    mode: u32,
    rdev: u64,
    owner: (u32, u32),
) -> io::Result<()> {
    rfs::mknodat(dir, name, kind, Mode::from_raw_mode(mode & 0o7777), rdev)?;
    chown_at(dir, name, owner)?;
    // The node was just made by us in a directory only this step writes: not a symlink.
    rfs::chmodat(
        dir,
        name,
        Mode::from_raw_mode(mode & 0o7777),
        AtFlags::empty(),
    )?;
    Ok(())
}

/// Opens `rel` below the directory `base` for reading, failing rather than following any
/// symlink or leaving `base`. The file must be regular and is opened without blocking, so a
/// fifo swapped in cannot hang the build.
pub fn open_beneath(base: &Path, rel: &Path) -> io::Result<File> {
    let root = rfs::open(
        base,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let fd = rfs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    let st = rfs::fstat(&fd)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(io::Error::other("not a regular file"));
    }
    Ok(File::from(fd))
}

/// Reads the symlink `rel` below `base` without following any symlink on the way.
pub fn read_link_beneath(base: &Path, rel: &Path) -> io::Result<PathBuf> {
    let root = rfs::open(
        base,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    let name = rel
        .file_name()
        .ok_or_else(|| io::Error::other("no file name"))?;
    let dir = rfs::openat2(
        &root,
        parent,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )?;
    let target = rfs::readlinkat(&dir, name, Vec::new())?;
    Ok(PathBuf::from(
        <std::ffi::OsString as std::os::unix::ffi::OsStringExt>::from_vec(target.into_bytes()),
    ))
}

/// Copies the extended attributes of `from` to `to`, both by descriptor (see
/// [`file_xattrs`]); an attribute the filesystem refuses is dropped, as `cp -a` does.
pub fn copy_xattrs(from: &File, to: &File) {
    use xattr::FileExt;
    for (name, value) in file_xattrs(from) {
        let _ = to.set_xattr(&name, &value);
    }
}

/// The extended attributes of `file` that belong to an image, sorted by name. Overlay's own
/// attributes and SELinux labels describe the build machine, not the image.
pub fn file_xattrs(file: &File) -> Vec<(std::ffi::OsString, Vec<u8>)> {
    use xattr::FileExt;
    let Ok(names) = file.list_xattr() else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for name in names {
        let n = name.to_string_lossy();
        if n.starts_with("trusted.overlay.")
            || n.starts_with("user.overlay.")
            || n == "security.selinux"
        {
            continue;
        }
        if let Ok(Some(v)) = file.get_xattr(&name) {
            out.push((name, v));
        }
    }
    out.sort();
    out
}
