//! The system calls the child makes to build the container's file system, behind a trait (as
//! youki's `Syscall`): [`Linux`] makes them; the tests' recorder (`fake`) writes them down
//! instead, so that the mounts a plan leads to, and their order, are checked without root.
//!
//! Every method is one system call (`create_file`: an open and its close) on arguments the
//! caller owns, and allocates nothing: the child calls them after `clone`. The calls that are
//! not about the file system (setuid, capset, seccomp, execve) stay direct in the `child`
//! module.

#[cfg(test)]
pub(crate) mod fake;

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, CWD};
use rustix::io::{Errno, Result};
use rustix::mount::{
    self, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};

/// The file-system calls of the child, relative to its working directory for relative paths.
pub(crate) trait Syscall {
    /// `mount(2)` of a new file system of type `fstype` on `target`.
    fn mount(
        &self,
        source: &CStr,
        target: &CStr,
        fstype: &CStr,
        flags: MountFlags,
        data: Option<&CStr>,
    ) -> Result<()>;
    /// `mount --bind SOURCE TARGET` (not recursive).
    fn mount_bind(&self, source: &CStr, target: &CStr) -> Result<()>;
    /// `mount --rbind SOURCE TARGET`.
    fn mount_bind_recursive(&self, source: &CStr, target: &CStr) -> Result<()>;
    /// `mount -o remount` with exactly `flags` (`MS_REMOUNT` is added).
    fn mount_remount(&self, target: &CStr, flags: MountFlags, data: &CStr) -> Result<()>;
    /// Changes the propagation of `target` (`mount --make-rprivate`).
    fn mount_change(&self, target: &CStr, flags: MountPropagationFlags) -> Result<()>;
    /// `umount2(target, flags)`.
    fn unmount(&self, target: &CStr, flags: UnmountFlags) -> Result<()>;
    /// A detached copy of the tree at `path` (`open_tree(2)`).
    fn open_tree(&self, path: &CStr, flags: OpenTreeFlags) -> Result<OwnedFd>;
    /// Attaches a detached tree on `target` (`move_mount(2)` from the descriptor itself).
    fn move_mount(&self, tree: BorrowedFd<'_>, target: &CStr) -> Result<()>;
    /// `mount_setattr(2)` on a detached tree, recursively: `nodev`, and read-only when asked.
    fn set_tree_attributes(&self, tree: BorrowedFd<'_>, readonly: bool) -> Result<()>;
    /// `mkdir(path, mode)` (the umask applies).
    fn mkdir(&self, path: &CStr, mode: u32) -> Result<()>;
    /// `mknod(path, S_IFCHR | mode, makedev(major, minor))`.
    fn mknod_char(&self, path: &CStr, mode: u32, major: u32, minor: u32) -> Result<()>;
    /// `symlink(target, link)`.
    fn symlink(&self, target: &CStr, link: &CStr) -> Result<()>;
    /// `openat(CWD, path, flags, mode)` of a file to create, closed at once.
    fn create_file(&self, path: &CStr, flags: OFlags, mode: u32) -> Result<()>;
    /// The type of `path` itself: a final symbolic link is not followed.
    fn file_type(&self, path: &CStr) -> Result<FileType>;
    /// Whether `path` exists, symbolic links followed.
    fn exists(&self, path: &CStr) -> bool;
    /// `chdir(path)`.
    fn chdir(&self, path: &CStr) -> Result<()>;
    /// `pivot_root(new_root, put_old)`.
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()>;
}

/// The kernel's calls, through rustix (and one raw `mount_setattr`).
pub(crate) struct Linux;

impl Syscall for Linux {
    fn mount(
        &self,
        source: &CStr,
        target: &CStr,
        fstype: &CStr,
        flags: MountFlags,
        data: Option<&CStr>,
    ) -> Result<()> {
        mount::mount(source, target, fstype, flags, data)
    }

    fn mount_bind(&self, source: &CStr, target: &CStr) -> Result<()> {
        mount::mount_bind(source, target)
    }

    fn mount_bind_recursive(&self, source: &CStr, target: &CStr) -> Result<()> {
        mount::mount_bind_recursive(source, target)
    }

    fn mount_remount(&self, target: &CStr, flags: MountFlags, data: &CStr) -> Result<()> {
        mount::mount_remount(target, flags, data)
    }

    fn mount_change(&self, target: &CStr, flags: MountPropagationFlags) -> Result<()> {
        mount::mount_change(target, flags)
    }

    fn unmount(&self, target: &CStr, flags: UnmountFlags) -> Result<()> {
        mount::unmount(target, flags)
    }

    fn open_tree(&self, path: &CStr, flags: OpenTreeFlags) -> Result<OwnedFd> {
        mount::open_tree(CWD, path, flags)
    }

    fn move_mount(&self, tree: BorrowedFd<'_>, target: &CStr) -> Result<()> {
        mount::move_mount(
            tree,
            c"",
            CWD,
            target,
            MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
        )
    }

    /// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_NODEV [| RDONLY]})`:
    /// no device node on a volume can be opened (see the device note at the child's
    /// `mount_kernel_filesystems`), and a read-only volume is read-only all the way down.
    fn set_tree_attributes(&self, tree: BorrowedFd<'_>, readonly: bool) -> Result<()> {
        #[repr(C)]
        struct MountAttr {
            attr_set: u64,
            attr_clr: u64,
            propagation: u64,
            userns_fd: u64,
        }
        const MOUNT_ATTR_RDONLY: u64 = 0x1;
        const MOUNT_ATTR_NODEV: u64 = 0x4;
        let attr = MountAttr {
            attr_set: MOUNT_ATTR_NODEV | if readonly { MOUNT_ATTR_RDONLY } else { 0 },
            attr_clr: 0,
            propagation: 0,
            userns_fd: 0,
        };
        // SAFETY: mount_setattr reads `size` bytes from a valid, initialised `attr`, and the
        // path is a NUL-terminated empty string; a raw syscall is async-signal-safe.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_mount_setattr,
                tree.as_raw_fd(),
                c"".as_ptr(),
                (libc::AT_EMPTY_PATH | libc::AT_RECURSIVE) as libc::c_uint,
                &attr as *const MountAttr,
                std::mem::size_of::<MountAttr>(),
            )
        };
        if rc < 0 {
            return Err(Errno::from_raw_os_error(errno()));
        }
        Ok(())
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> Result<()> {
        rfs::mkdir(path, Mode::from_raw_mode(mode))
    }

    fn mknod_char(&self, path: &CStr, mode: u32, major: u32, minor: u32) -> Result<()> {
        rfs::mknodat(
            CWD,
            path,
            FileType::CharacterDevice,
            Mode::from_raw_mode(mode),
            rfs::makedev(major, minor),
        )
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<()> {
        rfs::symlink(target, link)
    }

    fn create_file(&self, path: &CStr, flags: OFlags, mode: u32) -> Result<()> {
        rfs::openat(CWD, path, flags, Mode::from_raw_mode(mode)).map(drop)
    }

    fn file_type(&self, path: &CStr) -> Result<FileType> {
        let st = rfs::statat(CWD, path, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(FileType::from_raw_mode(st.st_mode))
    }

    fn exists(&self, path: &CStr) -> bool {
        rfs::statat(CWD, path, AtFlags::empty()).is_ok()
    }

    fn chdir(&self, path: &CStr) -> Result<()> {
        rustix::process::chdir(path)
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()> {
        rustix::process::pivot_root(new_root, put_old)
    }
}

/// This thread's `errno`.
pub(crate) fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}
