//! `tare exec`: a new process in a running container.
//!
//! The process joins the container's namespaces instead of making new ones: the parent
//! clones it into the container's pid namespace, and the child enters the mount, UTS, IPC and
//! network namespaces through a pidfd of the container's pid 1, then takes the same steps as
//! the container's first process (user, capabilities, seccomp, `no_new_privs`, streams). It
//! ends with the container: when pid 1 exits, the kernel kills the rest of its pid namespace.
//!
//! The container is named by a pid read from the store, and a pid can be reused. So the
//! pidfd is opened first and the process it names is checked after: it must still be a child
//! of the container's owner (the `tare run` that started it) and live in a mount namespace
//! other than ours. A pidfd keeps naming the same process, so what was checked is what is
//! joined.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use crate::plan::{
    complete_env, cstring, cstrings, gids, last_cap, search_path, Mode, Plan, RootMount,
};
use crate::scratch::Scratch;
use crate::spawn::{execute, Prepared};
use crate::streams::Streams;
use crate::{Error, OnSignal, Security, Stdio};

/// A process to start in a running container. See [`exec`].
#[derive(Debug)]
pub struct ExecSpec {
    /// The container's pid 1, as the host sees it.
    pub pid: u32,
    /// The process that started the container (its `tare run`): `pid` must be its child.
    pub owner: u32,
    /// The container's filesystem as directories, top first (its writable layer, then the
    /// image's), to resolve `user` the same way [`crate::run`] does.
    pub layers: Vec<PathBuf>,
    /// The command; `args[0]` is looked up in the environment's PATH unless it has a `/`.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries; PATH and HOME are added when missing.
    pub env: Vec<String>,
    /// The working directory; it must exist (docker's exec does not create it).
    pub cwd: String,
    /// `user`, `uid`, `user:group`, `uid:gid`; `None` is root.
    pub user: Option<String>,
    /// The container's confinement (`privileged` gives the process every capability, like
    /// `docker exec --privileged`).
    pub security: Security,
    /// Give the process a pseudo-terminal (`-t`), as [`crate::RunSpec::tty`].
    pub tty: bool,
    /// The process's standard input.
    pub stdin: Stdio,
    /// The process's standard output.
    pub stdout: Stdio,
    /// The process's standard error.
    pub stderr: Stdio,
}

/// Starts `spec.args` in the running container and waits for it. Returns its exit code (128
/// plus the signal number when a signal killed it); signals tare receives meanwhile are
/// forwarded to it. A command that cannot be executed is [`Error::Exec`].
pub fn exec(spec: ExecSpec) -> Result<i32, Error> {
    if spec.args.is_empty() {
        return Err(Error::NoCommand);
    }
    let container = open_container(spec.pid, spec.owner)?;
    let rootless = join_checked(&container)?;
    let user = crate::resolve_user(&spec.layers, spec.user.as_deref().unwrap_or(""))?;
    if let Some(r) = rootless {
        crate::userns::check_mapped(r, &user)?;
    }
    let env = complete_env(spec.env, &user.home);
    let path = search_path(&env);
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    if !cwd.starts_with('/') {
        return Err(Error::Invalid {
            what: "working directory",
            value: cwd.to_string(),
            reason: "must be an absolute path",
        });
    }
    let seccomp = if spec.security.seccomp && !spec.security.privileged {
        Some(crate::seccomp::filter()?.program)
    } else {
        None
    };
    // The container's own /dev/null is opened by the child; a terminal comes from the
    // container's devpts.
    let streams = Streams::new(spec.tty, true, [spec.stdin, spec.stdout, spec.stderr])?;
    let (report_read, report_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating a pipe", e))?;
    let raw_pidfd = std::os::fd::AsRawFd::as_raw_fd(&container);
    let mut plan = Plan {
        mode: Mode::Exec { pidfd: raw_pidfd },
        merged: cstring(b"/", "path")?,
        root: RootMount::Bind,
        binds: Vec::new(),
        bind_fds: Vec::new(),
        hostname: cstring(b"", "hostname")?,
        cwd: cstring(cwd.as_bytes(), "working directory")?,
        argv: cstrings(&spec.args, "argument")?,
        envp: cstrings(&env, "environment variable")?,
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        path,
        uid: user.uid,
        gid: user.gid,
        groups: gids(&user),
        last_cap: last_cap(),
        stdio: streams.stdio,
        null_stdio: streams.null_stdio,
        tty: streams.tty_plan,
        readonly_rootfs: false,
        netns: -1,
        seccomp,
        no_new_privs: spec.security.no_new_privileges,
        privileged: spec.security.privileged,
        mount_stubs: Vec::new(),
        unified_cgroup: false,
        // Unused by an exec: /dev/shm is the container's, and `tare run` sets no limits.
        shm_data: cstring(b"", "shm size")?,
        rlimits: Vec::new(),
        cgroup_procs: Vec::new(),
        report: report_write,
        rootless: rootless.is_some(),
        device_fds: [-1; 6],
        bind_sys: false,
        sys_fd: -1,
        setgroups: crate::userns::setgroups_allowed(),
        trace_fd: -1,
        trace_ready: -1,
        trace_go: -1,
    };
    plan.seal();
    execute(Prepared {
        cgroups: None,
        plan,
        scratch: Scratch::new()?,
        rootfs: None,
        flags: libc::SIGCHLD,
        on_signal: OnSignal::Forward,
        tty: streams.tty_parent,
        in_writable: 0,
        mount_stubs: Vec::new(),
        mount_stubs_in_writable: Vec::new(),
        _none_net: None,
        report: report_read,
        join_pid_ns: Some(container),
        pid_file: None,
    })
}

/// For a user other than root (a rootless tare, which `main` does not move into a user
/// namespace of its own for `exec`): joins the user namespace of the running container
/// `pid`, checked to be `owner`'s as [`exec`] checks it. Call it while the process has one
/// thread, before the store is used, so that files are read and written as the container's
/// root. Nothing to do for root.
pub fn join_user_namespace(pid: u32, owner: u32) -> Result<(), Error> {
    if rustix::process::geteuid().is_root() {
        return Ok(());
    }
    join_checked(&open_container(pid, owner)?).map(drop)
}

/// Joins the user namespace of `container` unless this process is already root where it
/// runs (root on the host, or a rootless tare that joined it); the mapping when rootless.
fn join_checked(container: &OwnedFd) -> Result<Option<&'static crate::userns::Rootless>, Error> {
    if rustix::process::geteuid().is_root() {
        return Ok(crate::userns::rootless());
    }
    crate::userns::join(std::os::fd::AsFd::as_fd(container)).map(Some)
}

/// A pidfd of `pid`, checked to be a container started by `owner` (see the module notes).
fn open_container(pid: u32, owner: u32) -> Result<OwnedFd, Error> {
    let not_running = |reason: &'static str| Error::Invalid {
        what: "container process",
        value: pid.to_string(),
        reason,
    };
    let raw = rustix::process::Pid::from_raw(pid as i32)
        .ok_or_else(|| not_running("not a process id"))?;
    let pidfd = rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty())
        .map_err(|_| not_running("the container is not running"))?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|_| not_running("the container is not running"))?;
    if parent_of(&stat) != Some(owner) {
        return Err(not_running(
            "this process is not the container's (it has exited and its pid was reused)",
        ));
    }
    let ns = |who: &str| {
        std::fs::metadata(format!("/proc/{who}/ns/mnt")).map(|m| {
            use std::os::unix::fs::MetadataExt;
            (m.dev(), m.ino())
        })
    };
    match (ns("self"), ns(&pid.to_string())) {
        (Ok(ours), Ok(theirs)) if ours != theirs => {}
        (Ok(_), Ok(_)) => return Err(not_running("the process shares tare's mount namespace")),
        // Its namespaces are readable by root, by its own user, and by the user of the user
        // namespace it runs in: for a rootless tare, another user's process.
        (_, Err(e)) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            return Err(not_running(
                "the process is not this user's (its namespaces cannot be read)",
            ))
        }
        _ => return Err(not_running("the container is not running")),
    }
    // Still alive after the checks: the pid still names the process of the pidfd, so the
    // /proc files read above were its own.
    let mut poll = [rustix::event::PollFd::new(
        &pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut poll, Some(&zero)) {
        // A pidfd is readable once its process has exited.
        Ok(0) => Ok(pidfd),
        _ => Err(not_running("the container is not running")),
    }
}

/// The parent pid in a `/proc/PID/stat` line. The command name in parentheses may hold any
/// byte, spaces and `)` included, so the fields are read after its last `)`.
fn parent_of(stat: &str) -> Option<u32> {
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::parent_of;

    #[test]
    fn parent_pid_is_read_after_the_last_parenthesis() {
        assert_eq!(parent_of("42 (sh) S 7 42 42 0"), Some(7));
        assert_eq!(parent_of("42 (a) b) S 9 1 1"), Some(9));
        assert_eq!(parent_of("42 (x"), None);
    }
}
