//! The child side of a run: from `clone` to `execve`.
//!
//! Everything here runs in a copy of a possibly multi-threaded parent, so it must be
//! async-signal-safe: no allocation, no locks, no panics on expected errors; only system
//! calls on the prepared [`Plan`]. Paths are `&CStr` (rustix passes those to the kernel
//! without copying) or built in fixed buffers on the stack.

mod confine;
mod mounts;
mod start;
#[cfg(test)]
mod tests;

use std::ffi::{c_int, c_void, CStr};
use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, Mode as FsMode, CWD};
use rustix::io::Errno;
use rustix::mount::{MountFlags, MountPropagationFlags, OpenTreeFlags, UnmountFlags};

use confine::{drop_capabilities, install_seccomp, join_session_keyring};
use mounts::{
    attach, mask_paths, mkdir_all, mount_kernel_filesystems, mount_proc_and_sys, open_host_devices,
};
use start::{exec_direct, exec_search, install_stdio, open_terminal};

use crate::plan::{
    Message, Mode, Plan, RootMount, Step, MSG_EXEC_ERROR, MSG_MOUNT_STUBS, MSG_SETUP_ERROR,
    MSG_STUBS,
};
use crate::stubs::STUBS;
use crate::syscall::{errno, Linux, Syscall};

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
    // `--cgroup-parent`: `0` is this process; its children will inherit the cgroups.
    for procs in &plan.cgroup_procs {
        rustix::io::write(procs, b"0").at(Step::Cgroup)?;
    }
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
    let sys = Linux;
    mount_root(&sys, plan)?;
    if let Mode::Runtime = plan.mode {
        if plan.unified_cgroup {
            mount_unified_cgroup(&sys, plan)?;
        }
        report_stubs(plan);
        return exec_direct(plan);
    }
    let mut old_umask = FsMode::empty();
    let after_pivot = |plan: &Plan| {
        if plan.trace_go >= 0 {
            wait_for_trace_marks(plan).at(Step::Trace)?;
        } else if plan.trace_fd >= 0 {
            let bound = matches!(plan.root, RootMount::Bind);
            crate::fanotify::mark_root(plan.trace_fd, bound).at(Step::Trace)?;
        }
        report_stubs(plan);
        old_umask = rustix::process::umask(FsMode::empty());
        Ok(())
    };
    let terminal = |plan: &Plan| match &plan.tty {
        Some(tty) => open_terminal(tty.socket.as_fd(), tty.winsize),
        None => Ok(()),
    };
    build_container_fs(&sys, plan, after_pivot, terminal)?;
    rustix::system::sethostname(plan.hostname.to_bytes()).at(Step::Hostname)?;
    // While root with CAP_SYS_RESOURCE, so a hard limit may be raised as well as lowered.
    for (resource, limit) in &plan.rlimits {
        rustix::process::setrlimit(*resource, *limit).at(Step::Rlimits)?;
    }
    mkdir_all(&sys, plan.cwd.as_c_str(), 0o755).at(Step::WorkingDir)?;
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

/// The root filesystem on [`Plan::merged`], from the host's view: mounts made private, the
/// overlay (or the directory bound on itself), detached copies of the bind sources (taken
/// while the host's tree is still visible, attached after pivot_root so that their targets
/// resolve inside the new root) and, rootless, of the host's devices. Ends with the new root
/// as the working directory.
fn mount_root(sys: &impl Syscall, plan: &mut Plan) -> StepResult {
    sys.mount_change(
        c"/",
        MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
    )
    .at(Step::MakePrivate)?;

    match &plan.root {
        RootMount::Overlay { data, plain, chdir } => {
            if let Some(dir) = chdir {
                sys.chdir(dir.as_c_str()).at(Step::MountRootfs)?;
            }
            let mount_with = |options: &CStr| {
                sys.mount(
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
            sys.mount_bind_recursive(plan.merged.as_c_str(), plan.merged.as_c_str())
                .at(Step::MountRootfs)?;
            sys.mount_remount(
                plan.merged.as_c_str(),
                MountFlags::BIND | MountFlags::NODEV,
                c"",
            )
            .at(Step::MountRootfs)?;
        }
    }

    for (i, bind) in plan.binds.iter().enumerate() {
        if bind.tmpfs.is_some() {
            continue;
        }
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if bind.dir {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        match sys.open_tree(bind.source.as_c_str(), flags) {
            Ok(fd) => {
                sys.set_tree_attributes(fd.as_fd(), bind.readonly)
                    .at(Step::Volume)?;
                plan.bind_fds[i] = into_raw(fd);
            }
            Err(_) if bind.optional => {}
            Err(e) => return Err((Step::OpenBind, e)),
        }
    }

    if plan.rootless {
        open_host_devices(sys, plan)?;
    }
    sys.chdir(plan.merged.as_c_str()).at(Step::PivotRoot)
}

/// Runtime mode: a cgroup2 hierarchy over /sys/fs/cgroup in the private mount namespace, for
/// runtimes (crun) that refuse a hybrid v1/v2 layout.
fn mount_unified_cgroup(sys: &impl Syscall, plan: &Plan) -> StepResult {
    if !sys.exists(c"/sys/fs/cgroup/unified") {
        return Ok(());
    }
    // Rootless: the kernel mounts cgroup2 only for a cgroup namespace that tare's user
    // namespace owns; the container's cgroup root is then the one tare runs in.
    if plan.rootless {
        // SAFETY: CLONE_NEWCGROUP changes only this process's cgroup namespace; no
        // descriptor table or memory is unshared.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
            .at(Step::MountSys)?;
    }
    sys.mount(
        c"cgroup2",
        c"/sys/fs/cgroup",
        c"cgroup2",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        None,
    )
    .at(Step::MountSys)
}

/// From the new root as working directory to the container's whole file system, in this
/// order: (rootless: /proc and /sys, from inside the new root) pivot_root and the old root
/// detached, `after_pivot`, /proc, /sys, /dev and its devices, devpts, /dev/shm and
/// /dev/mqueue, `before_volumes` (the terminal, which needs devpts), the binds and tmpfs
/// mounts in plan order, the masked paths, and the root made read-only when asked.
fn build_container_fs(
    sys: &impl Syscall,
    plan: &mut Plan,
    after_pivot: impl FnOnce(&Plan) -> StepResult,
    before_volumes: impl FnOnce(&Plan) -> StepResult,
) -> StepResult {
    // pivot_root(".", ".") stacks the old root on the new one; detaching it leaves only the
    // new root, without needing a put_old directory inside the image.
    if plan.rootless {
        mount_proc_and_sys(sys, plan)?;
    }
    sys.pivot_root(c".", c".").at(Step::PivotRoot)?;
    sys.unmount(c".", UnmountFlags::DETACH)
        .at(Step::DetachOldRoot)?;
    sys.chdir(c"/").at(Step::DetachOldRoot)?;
    after_pivot(plan)?;

    mount_kernel_filesystems(sys, plan)?;
    before_volumes(plan)?;
    for (i, bind) in plan.binds.iter().enumerate() {
        if let Some(data) = &bind.tmpfs {
            mkdir_all(sys, bind.target.as_c_str(), 0o755).at(Step::Volume)?;
            sys.mount(
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
        // SAFETY: `fd` came from `Syscall::open_tree` in `mount_root` (an owned descriptor
        // given up with `into_raw`) and is owned by this slot alone.
        let tree = unsafe { OwnedFd::from_raw_fd(fd) };
        match attach(sys, bind, tree.as_fd()) {
            Ok(()) => {}
            Err(_) if bind.optional => {}
            Err(e) => return Err((Step::Volume, e)),
        }
    }
    if !plan.privileged {
        mask_paths(sys);
    }
    if plan.readonly_rootfs {
        // A bind remount sets the mount's flags to exactly these: nodev must be repeated.
        sys.mount_remount(
            c"/",
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::NODEV,
            c"",
        )
        .at(Step::ReadonlyRoot)?;
    }
    Ok(())
}

/// File-handle tracing: tells the parent the container's root is in place and waits until
/// it has marked the tree (end of file instead: the parent failed, and the run must not start
/// untraced).
fn wait_for_trace_marks(plan: &Plan) -> rustix::io::Result<()> {
    // SAFETY: both are the pipe ends the parent put in the plan; the child's copy of the
    // descriptor table holds them until execve (close-on-exec).
    let (ready, go) = unsafe {
        (
            BorrowedFd::borrow_raw(plan.trace_ready),
            BorrowedFd::borrow_raw(plan.trace_go),
        )
    };
    loop {
        match rustix::io::write(ready, b"r") {
            Err(Errno::INTR) => {}
            other => break other.map(drop)?,
        }
    }
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(go, &mut byte) {
            Ok(1) => return Ok(()),
            Ok(_) => return Err(Errno::PIPE),
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
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
