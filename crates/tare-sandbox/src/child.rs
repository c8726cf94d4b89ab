//! The child side of a run: from `clone` to `execve`.
//!
//! Everything here runs in a copy of a possibly multi-threaded parent, so it must be
//! async-signal-safe: no allocation, no locks, no panics on expected errors; only system
//! calls on the prepared [`Plan`]. Paths are `&CStr` (rustix passes those to the kernel
//! without copying) or built in fixed buffers on the stack.

use std::ffi::{c_int, c_void, CStr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode as FsMode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mount::{
    self, MountFlags, MountPropagationFlags, MoveMountFlags, OpenTreeFlags, UnmountFlags,
};
use rustix::thread::CapabilitySet;

use crate::plan::{
    Message, Mode, Plan, RootMount, Step, MSG_EXEC_ERROR, MSG_MOUNT_STUBS, MSG_SETUP_ERROR,
    MSG_STUBS,
};
use crate::stubs::STUBS;

/// Docker's default capabilities, the one definition of the set: the sandbox keeps these bits
/// and the OCI runtime's `config.json` lists their names ([`capability_names`]).
pub(crate) const DEFAULT_CAPS: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::AUDIT_WRITE)
    .union(CapabilitySet::SETFCAP);

/// The OCI names (`CAP_CHOWN`, ...) of the capabilities in `set` that the kernel headers name,
/// in bit order.
pub(crate) fn capability_names(set: CapabilitySet) -> Vec<String> {
    set.iter_names()
        .map(|(name, _)| format!("CAP_{name}"))
        .collect()
}

/// Exit status of a child whose set-up failed (the parent reports the recorded error).
const EXIT_SETUP: c_int = 125;

type StepResult<T = ()> = Result<T, (Step, Errno)>;

trait At<T> {
    fn at(self, step: Step) -> StepResult<T>;
}

impl<T> At<T> for rustix::io::Result<T> {
    fn at(self, step: Step) -> StepResult<T> {
        self.map_err(|e| (step, e))
    }
}

/// The `clone` entry point. `arg` is the child's copy of the parent's `Plan`.
pub(crate) extern "C" fn entry(arg: *mut c_void) -> c_int {
    // SAFETY: the parent passes a pointer to a live `Plan`; without CLONE_VM the child owns a
    // private copy of the whole address space, so this exclusive borrow aliases nothing.
    let plan = unsafe { &mut *(arg as *mut Plan) };
    let err = match setup(plan) {
        Ok(never) => match never {},
        Err(err) => err,
    };
    let kind = if err.0 == Step::Exec {
        MSG_EXEC_ERROR
    } else {
        MSG_SETUP_ERROR
    };
    send(
        plan,
        Message {
            kind,
            step: err.0 as u32,
            errno: err.1.raw_os_error(),
            data: 0,
        },
    );
    let code = if kind == MSG_EXEC_ERROR {
        if err.1 == Errno::NOENT || err.1 == Errno::NOTDIR {
            127
        } else {
            126
        }
    } else {
        EXIT_SETUP
    };
    // SAFETY: _exit is async-signal-safe and skips the parent's atexit handlers and buffers,
    // which this copy of the process must not run.
    unsafe { libc::_exit(code) }
}

fn send(plan: &Plan, msg: Message) {
    let bytes = msg.to_bytes();
    let _ = rustix::io::write(&plan.report, &bytes);
}

fn setup(plan: &mut Plan) -> StepResult<std::convert::Infallible> {
    reset_signal_dispositions();
    rustix::process::setsid().at(Step::Session)?;
    rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .at(Step::DeathSignal)?;
    if let Mode::Exec { pidfd } = plan.mode {
        return join_container(plan, pidfd);
    }
    if plan.netns >= 0 {
        // SAFETY: `netns` is a descriptor the parent keeps open for the life of the process
        // (the shared private network); the child's copy of the table holds it too.
        let ns = unsafe { BorrowedFd::borrow_raw(plan.netns) };
        rustix::thread::move_into_link_name_space(
            ns,
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .at(Step::Network)?;
    }
    if let Mode::Container = plan.mode {
        join_session_keyring().at(Step::Keyring)?;
    }
    mount::mount_change(
        c"/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .at(Step::MakePrivate)?;

    match &plan.root {
        RootMount::Overlay { data, plain, chdir } => {
            if let Some(dir) = chdir {
                rustix::process::chdir(dir.as_c_str()).at(Step::MountRootfs)?;
            }
            let mount_with = |options: &CStr| {
                mount::mount(
                    c"overlay",
                    plan.merged.as_c_str(),
                    c"overlay",
                    MountFlags::NODEV,
                    Some(options),
                )
            };
            match mount_with(data.as_c_str()) {
                Err(Errno::INVAL) => mount_with(plain.as_c_str()),
                other => other,
            }
            .at(Step::MountRootfs)?;
        }
        RootMount::Bind => {
            mount::mount_bind_recursive(plan.merged.as_c_str(), plan.merged.as_c_str())
                .at(Step::MountRootfs)?;
            mount::mount_remount(
                plan.merged.as_c_str(),
                MountFlags::BIND | MountFlags::NODEV,
                c"",
            )
            .at(Step::MountRootfs)?;
        }
    }

    // Detached copies of the bind sources, taken while the host's tree is still visible;
    // they are attached after pivot_root, so targets resolve inside the new root.
    for (i, bind) in plan.binds.iter().enumerate() {
        if bind.tmpfs.is_some() {
            continue;
        }
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if bind.dir {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        match mount::open_tree(CWD, bind.source.as_c_str(), flags) {
            Ok(fd) => {
                set_tree_attributes(fd.as_fd(), bind.readonly).at(Step::Volume)?;
                plan.bind_fds[i] = into_raw(fd);
            }
            Err(_) if bind.optional => {}
            Err(e) => return Err((Step::OpenBind, e)),
        }
    }

    if plan.rootless {
        open_host_devices(plan)?;
    }

    rustix::process::chdir(plan.merged.as_c_str()).at(Step::PivotRoot)?;
    if let Mode::Runtime = plan.mode {
        if plan.unified_cgroup
            && rfs::statat(CWD, c"/sys/fs/cgroup/unified", AtFlags::empty()).is_ok()
        {
            // Rootless: the kernel mounts cgroup2 only for a cgroup namespace that tare's user
            // namespace owns; the container's cgroup root is then the one tare runs in.
            if plan.rootless {
                // SAFETY: CLONE_NEWCGROUP changes only this process's cgroup namespace; no
                // descriptor table or memory is unshared.
                unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
                    .at(Step::MountSys)?;
            }
            mount::mount(
                c"cgroup2",
                c"/sys/fs/cgroup",
                c"cgroup2",
                MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                None,
            )
            .at(Step::MountSys)?;
        }
        report_stubs(plan);
        return exec_direct(plan);
    }
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the
    // new root, without needing a put_old directory inside the image.
    if plan.rootless {
        mount_proc_and_sys(plan)?;
    }
    rustix::process::pivot_root(c".", c".").at(Step::PivotRoot)?;
    mount::unmount(c".", UnmountFlags::DETACH).at(Step::DetachOldRoot)?;
    rustix::process::chdir(c"/").at(Step::DetachOldRoot)?;
    if plan.trace_fd >= 0 {
        crate::trace::mark_root(plan.trace_fd).at(Step::Trace)?;
    }
    report_stubs(plan);

    let old_umask = rustix::process::umask(FsMode::empty());
    mount_kernel_filesystems(plan)?;
    if let Some(tty) = &plan.tty {
        open_terminal(tty.socket.as_fd(), tty.winsize)?;
    }
    for (i, bind) in plan.binds.iter().enumerate() {
        if let Some(data) = &bind.tmpfs {
            mkdir_all(bind.target.as_c_str(), 0o755).at(Step::Volume)?;
            mount::mount(
                c"tmpfs",
                bind.target.as_c_str(),
                c"tmpfs",
                MountFlags::NOSUID | MountFlags::NODEV,
                Some(data.as_c_str()),
            )
            .at(Step::Volume)?;
            continue;
        }
        let fd = plan.bind_fds[i];
        if fd < 0 {
            continue;
        }
        // SAFETY: `fd` came from open_tree above and is owned by this slot alone.
        let tree = unsafe { OwnedFd::from_raw_fd(fd) };
        match attach(bind, tree.as_fd()) {
            Ok(()) => {}
            Err(_) if bind.optional => {}
            Err(e) => return Err((Step::Volume, e)),
        }
    }
    if !plan.privileged {
        mask_paths();
    }
    if plan.readonly_rootfs {
        // A bind remount sets the mount's flags to exactly these: nodev must be repeated.
        mount::mount_remount(
            c"/",
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::NODEV,
            c"",
        )
        .at(Step::ReadonlyRoot)?;
    }
    rustix::system::sethostname(plan.hostname.to_bytes()).at(Step::Hostname)?;
    // While root with CAP_SYS_RESOURCE, so a hard limit may be raised as well as lowered.
    for (resource, limit) in &plan.rlimits {
        rustix::process::setrlimit(*resource, *limit).at(Step::Rlimits)?;
    }
    mkdir_all(plan.cwd.as_c_str(), 0o755).at(Step::WorkingDir)?;
    rustix::process::chdir(plan.cwd.as_c_str()).at(Step::WorkingDir)?;

    // While still root with every capability: a filter may be installed without
    // no_new_privs only with CAP_SYS_ADMIN. The calls made after it (setgroups, setresuid,
    // capset, dup2, close_range, execve) are all allowed by it.
    if let Some(program) = &plan.seccomp {
        install_seccomp(program).at(Step::Seccomp)?;
    }
    drop_capabilities(plan)?;
    if plan.no_new_privs {
        rustix::thread::set_no_new_privs(true).at(Step::NoNewPrivileges)?;
    }
    rustix::process::umask(old_umask);
    install_stdio(plan)?;
    mark_fds_cloexec();
    unblock_signals();
    exec_search(plan)
}

/// `tare exec`: the mount, UTS, IPC and network namespaces of a running container (the pid
/// namespace came with `clone`), then the same confinement as its first process.
fn join_container(plan: &Plan, pidfd: i32) -> StepResult<std::convert::Infallible> {
    // Not dumpable while tare's privileges and descriptors are still here: no process of the
    // container may ptrace this one or open its /proc files before `execve` (runc's
    // CVE-2016-9962). `execve` makes it dumpable again.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .at(Step::JoinContainer)?;
    // SAFETY: `pidfd` is the pidfd the parent keeps open until the child is reaped; the
    // child's copy of the descriptor table holds it too.
    let container = unsafe { BorrowedFd::borrow_raw(pidfd) };
    use rustix::thread::ThreadNameSpaceType as Ns;
    rustix::thread::move_into_thread_name_spaces(
        container,
        Ns::MOUNT
            | Ns::HOST_NAME_AND_NIS_DOMAIN_NAME
            | Ns::INTER_PROCESS_COMMUNICATION
            | Ns::NETWORK,
    )
    .at(Step::JoinContainer)?;
    // Joining a mount namespace moves the root and the working directory to its root, which
    // is the container's root after its pivot_root. Docker's exec does not create a missing
    // working directory.
    rustix::process::chdir(plan.cwd.as_c_str()).at(Step::WorkingDir)?;
    join_session_keyring().at(Step::Keyring)?;
    rustix::process::umask(FsMode::from_raw_mode(0o022));
    if let Some(tty) = &plan.tty {
        open_terminal(tty.socket.as_fd(), tty.winsize)?;
    }
    if let Some(program) = &plan.seccomp {
        install_seccomp(program).at(Step::Seccomp)?;
    }
    drop_capabilities(plan)?;
    if plan.no_new_privs {
        rustix::thread::set_no_new_privs(true).at(Step::NoNewPrivileges)?;
    }
    install_stdio(plan)?;
    mark_fds_cloexec();
    unblock_signals();
    exec_search(plan)
}

/// Records which mount-point stubs already exist, so the parent removes only what this run
/// (or the runtime) creates.
fn report_stubs(plan: &Plan) {
    let mut mask = 0u32;
    for (i, stub) in STUBS.iter().enumerate() {
        if rfs::statat(CWD, stub.path, AtFlags::SYMLINK_NOFOLLOW).is_ok() {
            mask |= 1 << i;
        }
    }
    send(
        plan,
        Message {
            kind: MSG_STUBS,
            step: 0,
            errno: 0,
            data: mask,
        },
    );
    for (chunk, stubs) in plan.mount_stubs.chunks(32).enumerate() {
        let mut mask = 0u32;
        for (i, stub) in stubs.iter().enumerate() {
            if rfs::statat(CWD, stub.path.as_c_str(), AtFlags::SYMLINK_NOFOLLOW).is_ok() {
                mask |= 1 << i;
            }
        }
        send(
            plan,
            Message {
                kind: MSG_MOUNT_STUBS,
                step: chunk as u32,
                errno: 0,
                data: mask,
            },
        );
    }
}

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
fn open_host_devices(plan: &mut Plan) -> StepResult {
    let flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    for (i, (path, _, _)) in DEVICES.iter().enumerate() {
        let fd = mount::open_tree(CWD, *path, flags).at(Step::Devices)?;
        plan.device_fds[i] = into_raw(fd);
    }
    if plan.bind_sys {
        let fd = mount::open_tree(CWD, c"/sys", flags | OpenTreeFlags::AT_RECURSIVE)
            .at(Step::MountSys)?;
        set_tree_attributes(fd.as_fd(), true).at(Step::MountSys)?;
        plan.sys_fd = into_raw(fd);
    }
    Ok(())
}

/// Attaches a detached tree taken by [`open_host_devices`] on `target`.
fn attach_fd(fd: i32, target: &CStr) -> rustix::io::Result<()> {
    // SAFETY: `fd` came from open_tree and is owned by its plan slot alone, used once.
    let tree = unsafe { OwnedFd::from_raw_fd(fd) };
    mount::move_mount(
        tree.as_fd(),
        c"",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// /proc and /sys, mounted on `proc` and `sys` relative to the working directory: the new
/// root before pivot_root (rootless, see [`mount_proc_and_sys`]) or `/` after it.
fn mount_proc_sys_at(plan: &Plan, proc: &CStr, sys: &CStr) -> StepResult {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    ensure_real_dir(proc).at(Step::MountProc)?;
    mount::mount(
        c"proc",
        proc,
        c"proc",
        nosuid_nodev_noexec | MountFlags::RDONLY,
        None,
    )
    .at(Step::MountProc)?;
    ensure_real_dir(sys).at(Step::MountSys)?;
    if plan.sys_fd >= 0 {
        attach_fd(plan.sys_fd, sys).at(Step::MountSys)?;
    } else {
        mount::mount(
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
fn mount_proc_and_sys(plan: &Plan) -> StepResult {
    mount_proc_sys_at(plan, c"proc", c"sys")
}

/// `mkdir` when missing; an existing non-directory (a symlink the image put there) is
/// refused, so that a mount never follows it.
fn ensure_real_dir(rel: &CStr) -> rustix::io::Result<()> {
    ensure_dir(rel)?;
    let st = rfs::statat(CWD, rel, AtFlags::SYMLINK_NOFOLLOW)?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(Errno::NOTDIR);
    }
    Ok(())
}

fn mount_kernel_filesystems(plan: &Plan) -> StepResult {
    let nosuid_nodev_noexec = MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    if !plan.rootless {
        mount_proc_sys_at(plan, c"/proc", c"/sys")?;
    }
    ensure_dir(c"dev").at(Step::MountDev)?;
    mount::mount(
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
            rfs::openat(
                CWD,
                path,
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
                FsMode::from_raw_mode(0o666),
            )
            .at(Step::Devices)?;
            attach_fd(plan.device_fds[i], path).at(Step::Devices)?;
            continue;
        }
        rfs::mknodat(
            CWD,
            path,
            FileType::CharacterDevice,
            FsMode::from_raw_mode(0o666),
            rfs::makedev(major, minor),
        )
        .at(Step::Devices)?;
        mount::mount_bind(path, path).at(Step::Devices)?;
    }
    for (target, link) in [
        (c"/proc/self/fd", c"/dev/fd"),
        (c"/proc/self/fd/0", c"/dev/stdin"),
        (c"/proc/self/fd/1", c"/dev/stdout"),
        (c"/proc/self/fd/2", c"/dev/stderr"),
        (c"pts/ptmx", c"/dev/ptmx"),
    ] {
        rfs::symlink(target, link).at(Step::Devices)?;
    }
    rfs::mkdir(c"/dev/pts", FsMode::from_raw_mode(0o755)).at(Step::MountDevpts)?;
    mount::mount_remount(
        c"/dev",
        MountFlags::BIND | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::STRICTATIME,
        c"",
    )
    .at(Step::MountDev)?;
    let devpts = |options: &CStr| {
        mount::mount(
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
    rfs::mkdir(c"/dev/shm", FsMode::from_raw_mode(0o1777)).at(Step::MountShm)?;
    mount::mount(
        c"shm",
        c"/dev/shm",
        c"tmpfs",
        nosuid_nodev_noexec,
        Some(plan.shm_data.as_c_str()),
    )
    .at(Step::MountShm)?;
    rfs::mkdir(c"/dev/mqueue", FsMode::from_raw_mode(0o755)).at(Step::MountShm)?;
    mount::mount(
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
fn mask_paths() {
    for file in [
        c"/proc/kcore",
        c"/proc/keys",
        c"/proc/latency_stats",
        c"/proc/timer_list",
        c"/proc/timer_stats",
        c"/proc/sched_debug",
    ] {
        let _ = mount::mount_bind(c"/dev/null", file);
    }
    for dir in [
        c"/proc/acpi",
        c"/proc/scsi",
        c"/sys/firmware",
        c"/sys/devices/virtual/powercap",
    ] {
        let _ = mount::mount(c"tmpfs", dir, c"tmpfs", MountFlags::RDONLY, None);
    }
}

/// Opens a pseudo-terminal from the container's own devpts (so that `tty` inside names a
/// device that exists there), makes it the controlling terminal and stdio, and sends the
/// master side to the parent.
fn open_terminal(socket: BorrowedFd<'_>, winsize: rustix::termios::Winsize) -> StepResult {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use rustix::pty::OpenptFlags;
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags).at(Step::Terminal)?;
    rustix::pty::unlockpt(&master).at(Step::Terminal)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).at(Step::Terminal)?;
    rustix::termios::tcsetwinsize(&master, winsize).at(Step::Terminal)?;
    rustix::process::ioctl_tiocsctty(&slave).at(Step::Terminal)?;

    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master.as_fd()];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[std::io::IoSlice::new(b"t")],
        &mut control,
        SendFlags::empty(),
    )
    .at(Step::Terminal)?;
    drop(master);
    for target in 0..3 {
        dup2(slave.as_raw_fd(), target).at(Step::Terminal)?;
    }
    Ok(())
}

fn attach(bind: &crate::plan::Bind, tree: BorrowedFd<'_>) -> rustix::io::Result<()> {
    if bind.create {
        if bind.dir {
            mkdir_all(bind.target.as_c_str(), 0o755)?;
        } else {
            if let Some(parent) = parent_of(bind.target.as_c_str(), &mut [0u8; PATH_BUF]) {
                mkdir_all(parent, 0o755)?;
            }
            match rfs::openat(
                CWD,
                bind.target.as_c_str(),
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
                FsMode::from_raw_mode(0o644),
            ) {
                Ok(_) => {}
                Err(Errno::EXIST) => {}
                Err(e) => return Err(e),
            }
        }
    }
    mount::move_mount(
        tree,
        c"",
        CWD,
        bind.target.as_c_str(),
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {MOUNT_ATTR_NODEV [| RDONLY]})` on a
/// detached tree: no device node on a volume can be opened (see the device note at
/// [`mount_kernel_filesystems`]), and a read-only volume is read-only all the way down.
fn set_tree_attributes(tree: BorrowedFd<'_>, readonly: bool) -> rustix::io::Result<()> {
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
    // SAFETY: mount_setattr reads `size` bytes from a valid, initialised `attr`, and the path
    // is a NUL-terminated empty string; a raw syscall is async-signal-safe.
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

fn drop_capabilities(plan: &Plan) -> StepResult {
    use rustix::thread::CapabilitySets;
    // Privileged: every capability tare itself holds (all that the kernel knows, for root on
    // a host; fewer inside a container that limits tare) stays in the bounding set and, for
    // root, in the effective and permitted sets.
    let keep = if plan.privileged {
        let known = u64::MAX >> (63 - plan.last_cap.min(63));
        rustix::thread::capabilities(None)
            .at(Step::Capabilities)?
            .permitted
            .bits()
            & known
    } else {
        DEFAULT_CAPS.bits()
    };
    for cap in 0..=plan.last_cap.min(63) {
        if keep & (1 << cap) == 0 {
            rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
                1 << cap,
            ))
            .at(Step::Capabilities)?;
        }
    }
    // Ambient capabilities may be unsupported; nothing to clear then.
    let _ = rustix::thread::clear_ambient_capability_set();
    if plan.setgroups {
        rustix::thread::set_thread_groups(&plan.groups).at(Step::Groups)?;
    }
    let gid = rustix::fs::Gid::from_raw(plan.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).at(Step::SetGid)?;
    let uid = rustix::fs::Uid::from_raw(plan.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).at(Step::SetUid)?;
    if plan.uid == 0 {
        let default = CapabilitySet::from_bits_retain(keep);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: default,
                permitted: default,
                inheritable: CapabilitySet::empty(),
            },
        )
        .at(Step::Capabilities)?;
    }
    Ok(())
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a new, empty, anonymous session keyring for
/// the container's process tree, so that it does not share tare's (and through it, possibly
/// the host user's keys). Done before the seccomp filter refuses keyctl.
fn join_session_keyring() -> rustix::io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a raw system call with a null name pointer, which the kernel accepts to mean
    // "anonymous"; async-signal-safe.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)` with the program the parent compiled.
fn install_seccomp(program: &[libc::sock_filter]) -> rustix::io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, which the plan keeps alive; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

fn install_stdio(plan: &Plan) -> StepResult {
    for (target, null) in plan.null_stdio.iter().enumerate() {
        if *null {
            let fd = rfs::open(c"/dev/null", OFlags::RDWR, FsMode::empty()).at(Step::Stdio)?;
            dup2(fd.as_raw_fd(), target as c_int).at(Step::Stdio)?;
        }
    }
    for (target, fd) in plan.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            dup2(fd.as_raw_fd(), target as c_int).at(Step::Stdio)?;
        }
    }
    Ok(())
}

/// Execs the prepared argv directly (runtime mode: argv[0] is an absolute path).
fn exec_direct(plan: &Plan) -> StepResult<std::convert::Infallible> {
    install_stdio(plan)?;
    unblock_signals();
    // SAFETY: both arrays are NULL-terminated and point into CStrings the plan keeps alive.
    unsafe {
        libc::execve(
            plan.argv_ptrs[0],
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        )
    };
    Err((Step::Exec, Errno::from_raw_os_error(errno())))
}

const PATH_BUF: usize = 4096;

/// execvpe with the container's PATH: ENOENT means not found anywhere, EACCES that a
/// candidate existed but could not be executed (Docker's 127 and 126).
fn exec_search(plan: &Plan) -> StepResult<std::convert::Infallible> {
    let name = plan.argv[0].to_bytes();
    if name.contains(&b'/') {
        return exec_direct_after_setup(plan);
    }
    let mut buf = [0u8; PATH_BUF];
    let mut denied = false;
    let mut last = Errno::NOENT;
    for dir in plan.path.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let len = dir.len() + 1 + name.len();
        if len + 1 > buf.len() {
            continue;
        }
        buf[..dir.len()].copy_from_slice(dir);
        buf[dir.len()] = b'/';
        buf[dir.len() + 1..len].copy_from_slice(name);
        buf[len] = 0;
        // SAFETY: `buf` holds a NUL-terminated path; the arrays are NULL-terminated.
        unsafe {
            libc::execve(
                buf.as_ptr().cast(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            )
        };
        let err = Errno::from_raw_os_error(errno());
        match err {
            Errno::ACCESS => denied = true,
            Errno::NOENT | Errno::NOTDIR => {}
            other => last = other,
        }
    }
    let err = if denied { Errno::ACCESS } else { last };
    Err((Step::Exec, err))
}

fn exec_direct_after_setup(plan: &Plan) -> StepResult<std::convert::Infallible> {
    // SAFETY: NULL-terminated arrays of pointers into CStrings the plan keeps alive.
    unsafe {
        libc::execve(
            plan.argv_ptrs[0],
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        )
    };
    Err((Step::Exec, Errno::from_raw_os_error(errno())))
}

fn ensure_dir(rel: &CStr) -> rustix::io::Result<()> {
    match rfs::mkdir(rel, FsMode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(e),
    }
}

/// `mkdir -p`, with the path copied into a stack buffer so components can be cut in place.
fn mkdir_all(path: &CStr, mode: u32) -> rustix::io::Result<()> {
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
                match rfs::mkdir(prefix, FsMode::from_raw_mode(mode)) {
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

fn dup2(from: c_int, to: c_int) -> rustix::io::Result<()> {
    // SAFETY: dup2 on descriptor numbers; async-signal-safe, no memory involved.
    if unsafe { libc::dup2(from, to) } < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

fn into_raw(fd: OwnedFd) -> i32 {
    use std::os::fd::IntoRawFd;
    fd.into_raw_fd()
}

fn errno() -> i32 {
    // SAFETY: __errno_location returns this thread's errno slot, always valid.
    unsafe { *libc::__errno_location() }
}

/// Signal handlers of the parent (tare's forwarding handlers among them) must not run in the
/// container: every signal goes back to its default action, as runc does.
fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: a zeroed sigaction with SIG_DFL is valid; invalid signal numbers only make
        // sigaction fail, which is ignored.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = libc::SIG_DFL;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

fn unblock_signals() {
    // SAFETY: sigemptyset initialises the set; sigprocmask with a valid set is
    // async-signal-safe.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigprocmask(libc::SIG_SETMASK, &set, std::ptr::null_mut());
    }
}

/// No descriptor of tare (a test harness's, a log file's) leaks into the container beyond
/// 0, 1 and 2.
fn mark_fds_cloexec() {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    // SAFETY: close_range only changes descriptor flags.
    unsafe {
        libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, CLOSE_RANGE_CLOEXEC);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_capabilities_are_dockers_fourteen_by_name_and_bit() {
        let mut names = capability_names(DEFAULT_CAPS);
        names.sort();
        let mut docker = [
            "CAP_AUDIT_WRITE",
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_MKNOD",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_RAW",
            "CAP_SETFCAP",
            "CAP_SETGID",
            "CAP_SETPCAP",
            "CAP_SETUID",
            "CAP_SYS_CHROOT",
        ];
        docker.sort();
        assert_eq!(names, docker);
        // The kernel's numbers (capability.h): CHOWN 0, SETUID 7, NET_RAW 13, SETFCAP 31.
        let bits = DEFAULT_CAPS.bits();
        assert_eq!(bits & 0xffff_ffff, bits, "{bits:#x}");
        assert!(
            bits & (1 << 0 | 1 << 7 | 1 << 13 | 1 << 31) == (1 << 0 | 1 << 7 | 1 << 13 | 1 << 31)
        );
        assert_eq!(bits.count_ones(), 14);
        // A privileged runtime config lists all 41 the headers name, CAP_CHECKPOINT_RESTORE (40) last.
        let all = capability_names(CapabilitySet::all());
        assert_eq!(all.len(), 41);
        assert_eq!(
            all.last().map(String::as_str),
            Some("CAP_CHECKPOINT_RESTORE")
        );
    }
}
