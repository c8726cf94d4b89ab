//! The child's mounts after the root filesystem: /proc, /sys, /dev and its devices, the masked
//! paths, and the volumes' detached trees.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::fs::{FileType, OFlags};
use rustix::io::Errno;
use rustix::mount::{MountFlags, OpenTreeFlags};

use super::start::PATH_BUF;
use super::{into_raw, At, StepResult};
use crate::plan::{Plan, Step};
use crate::syscall::Syscall;

/// The device nodes of /dev: null, zero, full, random, urandom, tty (ptmx and the ptys come
/// from the private devpts).
const DEVICES: [(&CStr, u32, u32); 6] = [
    (c"/dev/null", 1, 3),
    (c"/dev/zero", 1, 5),
    (c"/dev/full", 1, 7),
    (c"/dev/random", 1, 8),
    (c"/dev/urandom", 1, 9),
    (c"/dev/tty", 5, 0),
];

/// Rootless: detached copies of the host's device nodes (a user namespace cannot make device
/// nodes, but may bind existing ones, as rootless Podman does) and, on the host's network, of
/// its /sys. Taken while the host's tree is still visible.
pub(super) fn open_host_devices(sys: &impl Syscall, plan: &mut Plan) -> StepResult {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    for (i, (path, _, _)) in DEVICES.iter().enumerate() {
        let fd = sys.open_tree(path, flags).at(Step::Devices)?;
        plan.device_fds[i] = into_raw(fd);
    }
    if plan.bind_sys {
        let fd = sys
            .open_tree(c"/sys", flags | OpenTreeFlags::AT_RECURSIVE)
            .at(Step::MountSys)?;
        sys.set_tree_attributes(fd.as_fd(), true)
            .at(Step::MountSys)?;
        plan.sys_fd = into_raw(fd);
    }
    Ok(())
}

/// Attaches a detached tree taken by [`open_host_devices`] on `target`.
fn attach_fd(sys: &impl Syscall, fd: i32, target: &CStr) -> rustix::io::Result<()> {
    // SAFETY: `fd` came from `Syscall::open_tree` (an owned descriptor given up with
    // `into_raw`) and is owned by its plan slot alone, used once.
    let tree = unsafe { OwnedFd::from_raw_fd(fd) };
    sys.move_mount(tree.as_fd(), target)
}

/// /proc and /sys, mounted on `proc` and `sys` relative to the working directory: the new
/// root before pivot_root (rootless, see [`mount_proc_and_sys`]) or `/` after it.
fn mount_proc_sys_at(calls: &impl Syscall, plan: &Plan, proc: &CStr, sys: &CStr) -> StepResult {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    ensure_real_dir(calls, proc).at(Step::MountProc)?;
    calls
        .mount(
            c"proc",
            proc,
            c"proc",
            nosuid_nodev_noexec | MountFlags::RDONLY,
            None,
        )
        .at(Step::MountProc)?;
    ensure_real_dir(calls, sys).at(Step::MountSys)?;
    if plan.sys_fd >= 0 {
        attach_fd(calls, plan.sys_fd, sys).at(Step::MountSys)?;
    } else {
        calls
            .mount(
                c"sysfs",
                sys,
                c"sysfs",
                nosuid_nodev_noexec | MountFlags::RDONLY,
                None,
            )
            .at(Step::MountSys)?;
    }
    Ok(())
}

/// Rootless: the kernel lets a user namespace mount proc and sysfs only while a fully
/// visible instance is in its mount namespace ("mount_too_revealing"), which the host's are
/// until pivot_root detaches them. So they are mounted into the new root first, from inside
/// it (the working directory), on directories that must not be symlinks.
pub(super) fn mount_proc_and_sys(sys: &impl Syscall, plan: &Plan) -> StepResult {
    mount_proc_sys_at(sys, plan, c"proc", c"sys")
}

/// `mkdir` when missing; an existing non-directory (a symlink the image put there) is
/// refused, so that a mount never follows it.
fn ensure_real_dir(sys: &impl Syscall, rel: &CStr) -> rustix::io::Result<()> {
    ensure_dir(sys, rel)?;
    if sys.file_type(rel)? != FileType::Directory {
        return Err(Errno::NOTDIR);
    }
    Ok(())
}

pub(super) fn mount_kernel_filesystems(sys: &impl Syscall, plan: &Plan) -> StepResult {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if !plan.rootless {
        mount_proc_sys_at(sys, plan, c"/proc", c"/sys")?;
    }
    ensure_dir(sys, c"dev").at(Step::MountDev)?;
    sys.mount(
        c"tmpfs",
        c"/dev",
        c"tmpfs",
        MountFlags::NOSUID | MountFlags::STRICTATIME,
        Some(c"mode=755,size=65536k"),
    )
    .at(Step::MountDev)?;
    // Devices: only these nodes can be opened. Each is bind-mounted onto itself while /dev
    // still allows devices, then /dev becomes `nodev`: the binds are mounts of their own and
    // keep working, while a node made later in /dev (CAP_MKNOD is kept, as in Docker, so that
    // RUN steps can put device nodes into an image) cannot be opened. The root filesystem and
    // the volumes are `nodev` too, which disarms the nodes an image brings. Docker reaches
    // the same with a device cgroup; this host has cgroup v1, and mount flags cost nothing to
    // tear down.
    for (i, (path, major, minor)) in DEVICES.into_iter().enumerate() {
        if plan.device_fds[i] >= 0 {
            sys.create_file(
                path,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                0o666,
            )
            .at(Step::Devices)?;
            attach_fd(sys, plan.device_fds[i], path).at(Step::Devices)?;
            continue;
        }
        sys.mknod_char(path, 0o666, major, minor)
            .at(Step::Devices)?;
        sys.mount_bind(path, path).at(Step::Devices)?;
    }
    for (target, link) in [
        (c"/proc/self/fd", c"/dev/fd"),
        (c"/proc/self/fd/0", c"/dev/stdin"),
        (c"/proc/self/fd/1", c"/dev/stdout"),
        (c"/proc/self/fd/2", c"/dev/stderr"),
        (c"pts/ptmx", c"/dev/ptmx"),
    ] {
        sys.symlink(target, link).at(Step::Devices)?;
    }
    sys.mkdir(c"/dev/pts", 0o755).at(Step::MountDevpts)?;
    sys.mount_remount(
        c"/dev",
        MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::STRICTATIME,
        c"",
    )
    .at(Step::MountDev)?;
    let devpts = |options: &CStr| {
        sys.mount(
            c"devpts",
            c"/dev/pts",
            c"devpts",
            MountFlags::NOSUID | MountFlags::NOEXEC,
            Some(options),
        )
    };
    // A single-ID rootless mapping has no group 5 (tty): the terminals keep group 0 there.
    match devpts(c"newinstance,ptmxmode=0666,mode=0620,gid=5") {
        Err(Errno::INVAL) if plan.rootless => devpts(c"newinstance,ptmxmode=0666,mode=0620"),
        other => other,
    }
    .at(Step::MountDevpts)?;
    sys.mkdir(c"/dev/shm", 0o1777).at(Step::MountShm)?;
    sys.mount(
        c"shm",
        c"/dev/shm",
        c"tmpfs",
        nosuid_nodev_noexec,
        Some(plan.shm_data.as_c_str()),
    )
    .at(Step::MountShm)?;
    sys.mkdir(c"/dev/mqueue", 0o755).at(Step::MountShm)?;
    sys.mount(
        c"mqueue",
        c"/dev/mqueue",
        c"mqueue",
        nosuid_nodev_noexec,
        None,
    )
    .at(Step::MountShm)?;
    Ok(())
}

/// Hides the kernel files Docker hides: files behind /dev/null, directories behind an
/// empty read-only tmpfs. Missing ones are skipped.
pub(super) fn mask_paths(sys: &impl Syscall) {
    for file in [
        c"/proc/kcore",
        c"/proc/keys",
        c"/proc/latency_stats",
        c"/proc/timer_list",
        c"/proc/timer_stats",
        c"/proc/sched_debug",
    ] {
        let _ = sys.mount_bind(c"/dev/null", file);
    }
    for dir in [
        c"/proc/acpi",
        c"/proc/scsi",
        c"/sys/firmware",
        c"/sys/devices/virtual/powercap",
    ] {
        let _ = sys.mount(c"tmpfs", dir, c"tmpfs", MountFlags::RDONLY, None);
    }
}

pub(super) fn attach(
    sys: &impl Syscall,
    bind: &crate::plan::Bind,
    tree: BorrowedFd<'_>,
) -> rustix::io::Result<()> {
    if bind.create {
        if bind.dir {
            mkdir_all(sys, bind.target.as_c_str(), 0o755)?;
        } else {
            if let Some(parent) = parent_of(bind.target.as_c_str(), &mut [0u8; PATH_BUF]) {
                mkdir_all(sys, parent, 0o755)?;
            }
            match sys.create_file(
                bind.target.as_c_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                0o644,
            ) {
                Ok(()) => {}
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }
    sys.move_mount(tree, bind.target.as_c_str())
}

fn ensure_dir(sys: &impl Syscall, rel: &CStr) -> rustix::io::Result<()> {
    match sys.mkdir(rel, 0o755) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `mkdir -p`, with the path copied into a stack buffer so components can be cut in place.
pub(super) fn mkdir_all(sys: &impl Syscall, path: &CStr, mode: u32) -> rustix::io::Result<()> {
    let bytes = path.to_bytes();
    if bytes.len() + 1 > PATH_BUF {
        return Err(Errno::NAMETOOLONG);
    }
    let mut buf = [0u8; PATH_BUF];
    buf[..bytes.len()].copy_from_slice(bytes);
    let mut end = 1;
    while end <= bytes.len() {
        if end == bytes.len() || bytes[end] == b'/' {
            buf[end] = 0;
            let prefix = CStr::from_bytes_until_nul(&buf[..=end]).map_err(|_| Errno::INVAL)?;
            if !prefix.to_bytes().is_empty() {
                match sys.mkdir(prefix, mode) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e),
                }
            }
            if end < bytes.len() {
                buf[end] = b'/';
            }
        }
        end += 1;
    }
    Ok(())
}

/// The parent directory of `path`, copied into `buf`.
fn parent_of<'a>(path: &CStr, buf: &'a mut [u8; PATH_BUF]) -> Option<&'a CStr> {
    let bytes = path.to_bytes();
    let cut = bytes.iter().rposition(|b| *b == b'/')?;
    if cut == 0 || cut + 1 > PATH_BUF {
        return None;
    }
    buf[..cut].copy_from_slice(&bytes[..cut]);
    buf[cut] = 0;
    CStr::from_bytes_until_nul(&buf[..=cut]).ok()
}
