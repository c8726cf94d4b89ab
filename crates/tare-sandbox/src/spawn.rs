//! The parent's side of a run: prepare the plan, clone, wait, clean up.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use rustix::io::Errno;

use crate::plan::{
    self, check_container_path, complete_env, cstring, cstrings, gids, last_cap, search_path,
    Message, Mode, Plan, RootMount, Step, MSG_EXEC_ERROR, MSG_MOUNT_STUBS, MSG_SETUP_ERROR,
    MSG_STUBS,
};
use crate::process::{clone_child, clone_into_pid_ns, wait, write_pid_file};
use crate::scratch::Scratch;
use crate::signals::Forwarding;
use crate::streams::{relay_terminal, Streams, TtyParent};
use crate::userns::{check_mapped, setgroups_allowed};
use crate::{etc, overlay, stubs, Error, Network, OnSignal, Rootfs, RunSpec};

/// Runs `spec.args` in a new container and waits for it. Returns its exit code (128 + the
/// signal number when killed by a signal).
///
/// A command that cannot be found or executed is [`Error::Exec`] (see [`Error::exit_code`]
/// for Docker's 127/126). On return no process of the container is left, its mounts are gone
/// with its mount namespace, and the mount-point stubs it needed are removed from the
/// writable directory.
pub fn run(spec: RunSpec) -> Result<i32, Error> {
    let prepared = prepare(spec, Mode::Container)?;
    execute(prepared)
}

/// A plan plus what the parent keeps for itself.
pub(crate) struct Prepared {
    pub plan: Plan,
    pub scratch: Scratch,
    /// The root filesystem the run set up (`None` for `tare exec`, which joins one).
    pub rootfs: Option<Rootfs>,
    pub flags: i32,
    pub on_signal: OnSignal,
    pub tty: Option<TtyParent>,
    pub in_writable: u32,
    /// The mount points of `spec.mounts` to remove after the run when it created them
    /// ([`RunSpec::remove_mount_points`]), parents first, and which of them were in the
    /// writable directory before.
    pub mount_stubs: Vec<stubs::MountStub>,
    pub mount_stubs_in_writable: Vec<bool>,
    /// The loopback-only namespace of a [`Network::None`] run, kept open until it ends.
    pub _none_net: Option<OwnedFd>,
    /// The read end of the child's report pipe.
    pub report: OwnedFd,
    /// `tare exec`: the pidfd of the container's pid 1. The child is cloned into its pid
    /// namespace (see [`execute`]).
    pub join_pid_ns: Option<OwnedFd>,
    /// [`RunSpec::pid_file`].
    pub pid_file: Option<PathBuf>,
    /// `--cgroup-parent`: the run's cgroups, removed when this drops (after the wait).
    pub cgroups: Option<crate::cgroup::Joined>,
}

/// Checks and converts a spec. In [`Mode::Runtime`] the child only mounts the root
/// filesystem and execs the runtime, whose command line the caller sets afterwards
/// ([`Plan::set_command`]); the bind mounts are the runtime's job then.
pub(crate) fn prepare(spec: RunSpec, mode: Mode) -> Result<Prepared, Error> {
    let container = matches!(mode, Mode::Container);
    if spec.args.is_empty() {
        return Err(Error::NoCommand);
    }
    let cwd = if spec.cwd.is_empty() {
        "/".to_string()
    } else {
        spec.cwd.clone()
    };
    check_container_path("working directory", &cwd)?;
    for m in &spec.mounts {
        check_container_path("volume target", &m.target)?;
        if !m.source.is_absolute() {
            return Err(Error::Invalid {
                what: "volume source",
                value: m.source.display().to_string(),
                reason: "must be an absolute path",
            });
        }
    }
    let layers = spec.rootfs.layers();
    let user = crate::resolve_user(&layers, spec.user.as_deref().unwrap_or(""))?;
    let rootless = crate::userns::rootless();
    if let Some(r) = rootless {
        check_mapped(r, &user)?;
    }
    let env = complete_env(spec.env, &user.home);
    let path = search_path(&env);

    let scratch = Scratch::new()?;
    let merged = match &spec.rootfs {
        Rootfs::Overlay { .. } => {
            let dir = scratch.path.join("rootfs");
            std::fs::create_dir(&dir).map_err(|e| Error::io(&dir, e))?;
            dir
        }
        Rootfs::Dir(dir) => std::fs::canonicalize(dir).map_err(|e| Error::io(dir, e))?,
    };
    let root = match &spec.rootfs {
        Rootfs::Overlay { lower, upper, work } => {
            overlay::overlay_data(lower, upper, work, rootless.is_some())?
        }
        Rootfs::Dir(_) => RootMount::Bind,
    };

    // The shared namespace is made (and pasta started) before anything else of the run.
    let private_net = match spec.network {
        Network::Private => Some(crate::net::private()?),
        Network::Host | Network::None => None,
    };
    let none_net = match spec.network {
        Network::None if container => Some(crate::net::loopback_only()?),
        _ => None,
    };
    let seccomp = if spec.security.seccomp && !spec.security.privileged && container {
        Some(crate::seccomp::filter()?.program)
    } else {
        None
    };

    let mut etc_binds = Vec::new();
    let etc_files = etc::etc_files(
        &spec.hostname,
        spec.network,
        &spec.extra_hosts,
        spec.etc_files,
    );
    for etc::EtcFile {
        name,
        content,
        readonly,
    } in etc_files
    {
        let file = scratch.path.join(name);
        std::fs::write(&file, content).map_err(|e| Error::io(&file, e))?;
        etc_binds.push((file, name, readonly));
    }
    // Checked in every mode (a missing volume source is an error here); a runtime gets them
    // through config.json instead.
    let binds = plan::binds(&etc_binds, &spec.mounts, &spec.tmpfs)?;
    let binds = if container { binds } else { Vec::new() };

    let (argv, envp) = (spec.args.clone(), env);
    let on_signal = spec.on_signal;
    let streams = Streams::new(
        spec.tty && container,
        container,
        [spec.stdin, spec.stdout, spec.stderr],
    )?;
    let (report_read, report_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating a pipe", e))?;
    let mut cgroups = spec
        .cgroup_parent
        .as_ref()
        .map(crate::cgroup::create)
        .transpose()?;
    let mut plan = Plan {
        mode,
        merged: cstring(merged.as_os_str().as_bytes(), "rootfs path")?,
        root,
        binds,
        bind_fds: Vec::new(),
        hostname: cstring(spec.hostname.as_bytes(), "hostname")?,
        cwd: cstring(cwd.as_bytes(), "working directory")?,
        argv: cstrings(&argv, "argument")?,
        envp: cstrings(&envp, "environment variable")?,
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
        readonly_rootfs: spec.readonly_rootfs,
        netns: private_net
            .map(|n| n.ns.as_raw_fd())
            .or(none_net.as_ref().map(|fd| fd.as_raw_fd()))
            .unwrap_or(-1),
        seccomp,
        no_new_privs: spec.security.no_new_privileges,
        privileged: spec.security.privileged,
        mount_stubs: if spec.remove_mount_points {
            stubs::for_targets(&spec.mounts)?
        } else {
            Vec::new()
        },
        unified_cgroup: false,
        shm_data: cstring(
            format!("mode=1777,size={}", spec.shm_size.unwrap_or(64 << 20)).as_bytes(),
            "shm size",
        )?,
        rlimits: spec
            .ulimits
            .iter()
            .map(|u| {
                (
                    u.resource,
                    rustix::process::Rlimit {
                        current: u.soft,
                        maximum: u.hard,
                    },
                )
            })
            .collect(),
        cgroup_procs: cgroups
            .as_mut()
            .map(|c| std::mem::take(&mut c.procs))
            .unwrap_or_default(),
        report: report_write,
        rootless: rootless.is_some(),
        device_fds: [-1; 6],
        bind_sys: rootless.is_some() && spec.network == Network::Host,
        sys_fd: -1,
        setgroups: setgroups_allowed(),
        trace_fd: -1,
        trace_ready: -1,
        trace_go: -1,
    };
    plan.seal();
    let mut flags = libc::CLONE_NEWNS | libc::SIGCHLD;
    if container {
        flags |= libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    }
    let in_writable =
        stubs::present_in(spec.rootfs.writable()) | stubs::not_mount_points(spec.etc_files);
    let mount_stubs_in_writable = stubs::present(spec.rootfs.writable(), &plan.mount_stubs);
    let mount_stubs = plan.mount_stubs.clone();
    Ok(Prepared {
        mount_stubs,
        mount_stubs_in_writable,
        _none_net: none_net,
        plan,
        scratch,
        report: report_read,
        rootfs: Some(spec.rootfs),
        flags,
        on_signal,
        tty: streams.tty_parent,
        in_writable,
        join_pid_ns: None,
        // With a runtime, the child is the runtime, not the container.
        pid_file: if container { spec.pid_file } else { None },
        cgroups,
    })
}

/// Clones the child, waits for it and cleans up.
pub(crate) fn execute(p: Prepared) -> Result<i32, Error> {
    execute_with(p, |_| {})
}

/// [`execute`], calling `started` with the child's pid right after the clone (before it is
/// waited for, so the pid cannot be reused meanwhile).
pub(crate) fn execute_with(mut p: Prepared, started: impl FnOnce(i32)) -> Result<i32, Error> {
    let mut forwarding = Forwarding::install();
    let pid = match &p.join_pid_ns {
        Some(container) => clone_into_pid_ns(container, &mut p.plan, p.flags)?,
        None => clone_child(&mut p.plan, p.flags)?,
    };
    if let Some(path) = &p.pid_file {
        if let Err(e) = write_pid_file(path, pid) {
            if let Some(child) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
            }
            let _ = wait(pid);
            return Err(e);
        }
    }
    started(pid);
    forwarding.register(pid, p.on_signal == OnSignal::Kill);
    // The child holds its own copies; the parent's must close so that end of file on the
    // report pipe means exec.
    let command = p.plan.argv[0].to_string_lossy().into_owned();
    let Plan {
        report, stdio, tty, ..
    } = p.plan;
    drop((report, stdio, tty));

    let (mask, mount_mask, failure) = read_reports(&p.report, &command);
    let result = match failure {
        Some(err) => {
            let _ = wait(pid);
            Err(err)
        }
        None => {
            let relayed = match p.tty.as_ref() {
                Some(t) => relay_terminal(t),
                None => Ok(()),
            };
            let status = wait(pid);
            relayed.and(status)
        }
    };
    let interrupted = forwarding.received();
    drop(forwarding);

    if let Some(rootfs) = &p.rootfs {
        let stubs = (
            p.in_writable,
            &p.mount_stubs[..],
            &p.mount_stubs_in_writable[..],
        );
        clean_up_rootfs(rootfs, stubs, mask, &mount_mask);
    }
    drop(p.scratch);
    drop(p.cgroups);
    if let Some(sig) = interrupted {
        return Err(Error::Interrupted(sig));
    }
    result
}

/// Removes what the run left in its root filesystem: overlayfs's `volatile` marker and the
/// mount-point stubs it created (`mask`, `mount_mask`: what the child reported).
/// `stubs` are [`Prepared`]'s `in_writable`, `mount_stubs` and `mount_stubs_in_writable`.
fn clean_up_rootfs(
    rootfs: &Rootfs,
    stubs: (u32, &[stubs::MountStub], &[bool]),
    mask: Option<u32>,
    mount_mask: &[u32],
) {
    let (in_writable, mount_stubs, mount_stubs_in_writable) = stubs;
    let lower: Vec<PathBuf> = match rootfs {
        Rootfs::Overlay { lower, .. } => lower.clone(),
        Rootfs::Dir(_) => Vec::new(),
    };
    if let Rootfs::Overlay { work, .. } = rootfs {
        // The overlay is unmounted (the container's mount namespace died with it), so its
        // upper directory is consistent in the page cache: withdraw the `volatile` marker
        // that would forbid mounting it again (it stays only after a crash, as intended).
        let _ = std::fs::remove_dir_all(work.join("work/incompat"));
    }
    // Without a report the child failed before looking: nothing was created.
    if let Some(mask) = mask {
        stubs::remove_created(rootfs.writable(), in_writable, mask, &lower);
        let in_view: Vec<bool> = (0..mount_stubs.len())
            .map(|i| {
                mount_mask
                    .get(i / 32)
                    .is_some_and(|m| m & (1 << (i % 32)) != 0)
            })
            .collect();
        stubs::remove_created_list(
            rootfs.writable(),
            mount_stubs,
            mount_stubs_in_writable,
            &in_view,
            &lower,
        );
    }
}

/// Reads the child's records until end of file: the stub mask, the mount-point stub masks (32
/// per record), and the failure if any.
fn read_reports(fd: &OwnedFd, command: &str) -> (Option<u32>, Vec<u32>, Option<Error>) {
    let mut mask = None;
    let mut mount_mask = Vec::new();
    let mut failure = None;
    let mut buf = [0u8; Message::SIZE];
    loop {
        let mut got = 0;
        while got < buf.len() {
            match rustix::io::read(fd, &mut buf[got..]) {
                Ok(0) => return (mask, mount_mask, failure),
                Ok(n) => got += n,
                Err(Errno::INTR) => {}
                Err(_) => return (mask, mount_mask, failure),
            }
        }
        let msg = Message::from_bytes(&buf);
        let source = std::io::Error::from_raw_os_error(msg.errno);
        match msg.kind {
            MSG_STUBS => mask = Some(msg.data),
            MSG_MOUNT_STUBS => {
                let i = msg.step as usize;
                if mount_mask.len() <= i {
                    mount_mask.resize(i + 1, 0);
                }
                mount_mask[i] = msg.data;
            }
            MSG_EXEC_ERROR => {
                failure = Some(Error::Exec {
                    command: command.to_string(),
                    source,
                })
            }
            MSG_SETUP_ERROR => {
                let step = Step::from_u32(msg.step).map_or("unknown step", Step::describe);
                failure = Some(Error::Setup { step, source });
            }
            _ => {}
        }
    }
}
