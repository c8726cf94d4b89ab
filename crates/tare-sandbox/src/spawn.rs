//! The parent's side of a run: prepare the plan, clone, wait, clean up.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::io::Errno;

use crate::plan::{
    Bind, Message, Mode, Plan, RootMount, Step, TtyPlan, MSG_EXEC_ERROR, MSG_MOUNT_STUBS,
    MSG_SETUP_ERROR, MSG_STUBS,
};
use crate::signals::Forwarding;
use crate::{child, stubs, tty, Error, Network, OnSignal, Rootfs, RunSpec, Stdio};

/// Stack for the cloned child: it only runs the set-up code and execve.
const CHILD_STACK: usize = 256 * 1024;

/// The kernel refuses mount options longer than a page.
const MAX_MOUNT_DATA: usize = 4000;

const VOLATILE: &str = ",volatile";

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
}

pub(crate) struct TtyParent {
    socket: OwnedFd,
    input: Option<OwnedFd>,
    output: Option<OwnedFd>,
    /// The input is tare's own stdin: put it in raw mode when it is a terminal.
    raw_stdin: bool,
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
            overlay_data(lower, upper, work, rootless.is_some())?
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

    let mut binds = Vec::new();
    for (name, content) in etc_files(&spec.hostname, spec.network, &spec.extra_hosts) {
        let file = scratch.path.join(name);
        std::fs::write(&file, content).map_err(|e| Error::io(&file, e))?;
        if !container {
            continue;
        }
        binds.push(Bind {
            source: cstring(file.as_os_str().as_bytes(), "path")?,
            target: cstring(format!("/etc/{name}").as_bytes(), "path")?,
            dir: false,
            readonly: false,
            optional: true,
            create: true,
            tmpfs: None,
        });
    }
    let mut user_mounts = Vec::new();
    for m in &spec.mounts {
        let meta = std::fs::metadata(&m.source).map_err(|e| Error::io(&m.source, e))?;
        user_mounts.push(Bind {
            source: cstring(m.source.as_os_str().as_bytes(), "volume source")?,
            target: cstring(m.target.as_bytes(), "volume target")?,
            dir: meta.is_dir(),
            readonly: m.readonly,
            optional: false,
            create: true,
            tmpfs: None,
        });
    }
    for t in &spec.tmpfs {
        let mut data = "mode=1777".to_string();
        if let Some(size) = t.size {
            data.push_str(&format!(",size={size}"));
        }
        user_mounts.push(Bind {
            source: cstring(b"tmpfs", "tmpfs source")?,
            target: cstring(t.target.as_bytes(), "tmpfs target")?,
            dir: true,
            readonly: false,
            optional: false,
            create: true,
            tmpfs: Some(cstring(data.as_bytes(), "tmpfs options")?),
        });
    }
    // Parents first: a mount inside another one's target goes on top of it.
    user_mounts.sort_by_key(|b| {
        b.target
            .to_bytes()
            .split(|c| *c == b'/')
            .filter(|c| !c.is_empty())
            .count()
    });
    if container {
        binds.extend(user_mounts);
    }

    let (argv, envp) = (spec.args.clone(), env);
    let on_signal = spec.on_signal;
    let streams = Streams::new(
        spec.tty && container,
        container,
        [spec.stdin, spec.stdout, spec.stderr],
    )?;
    let (report_read, report_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating a pipe", e))?;
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
        report: report_write,
        rootless: rootless.is_some(),
        device_fds: [-1; 6],
        bind_sys: rootless.is_some() && spec.network == Network::Host,
        sys_fd: -1,
        setgroups: setgroups_allowed(),
        trace_fd: -1,
    };
    plan.seal();
    let mut flags = libc::CLONE_NEWNS | libc::SIGCHLD;
    if container {
        flags |= libc::CLONE_NEWPID | libc::CLONE_NEWUTS | libc::CLONE_NEWIPC;
    }
    let in_writable = stubs::present_in(spec.rootfs.writable());
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
    })
}

/// The child's standard streams, or the terminal relay that stands for them.
pub(crate) struct Streams {
    pub stdio: [Option<OwnedFd>; 3],
    pub null_stdio: [bool; 3],
    pub tty_plan: Option<TtyPlan>,
    pub tty_parent: Option<TtyParent>,
}

impl Streams {
    /// With `tty`, the child opens a terminal and sends its master side through a socket pair
    /// to the parent, which relays it to `stdin` and `stdout`. Otherwise each stream is
    /// duplicated for the child; `/dev/null` is opened by the child itself when `in_container`
    /// (the container's own node).
    pub fn new(tty: bool, in_container: bool, streams: [Stdio; 3]) -> Result<Streams, Error> {
        let mut out = Streams {
            stdio: [None, None, None],
            null_stdio: [false; 3],
            tty_plan: None,
            tty_parent: None,
        };
        let [stdin, stdout, stderr] = streams;
        if tty {
            let (ours, theirs) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| Error::sys("creating a socket pair", e))?;
            out.tty_plan = Some(TtyPlan {
                socket: theirs,
                winsize: tty::initial_winsize(),
            });
            out.tty_parent = Some(TtyParent {
                socket: ours,
                raw_stdin: matches!(stdin, Stdio::Inherit),
                input: stream_for_relay(stdin, 0)?,
                output: stream_for_relay(stdout, 1)?,
            });
            return Ok(out);
        }
        for (i, s) in [stdin, stdout, stderr].into_iter().enumerate() {
            if in_container && matches!(s, Stdio::Null) {
                out.null_stdio[i] = true;
            } else {
                out.stdio[i] = child_stream(s)?;
            }
        }
        Ok(out)
    }
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

fn relay_terminal(t: &TtyParent) -> Result<(), Error> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        &t.socket,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receiving the terminal", e))?;
    let mut master = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            master = fds.into_iter().next();
        }
    }
    let Some(master) = master else {
        return Err(Error::sys(
            "receiving the terminal",
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        ));
    };
    let raw = if t.raw_stdin {
        tty::RawMode::enable(rustix::stdio::stdin())
    } else {
        None
    };
    let result = tty::relay(
        &master,
        t.input.as_ref().map(|f| f.as_fd()),
        t.output.as_ref().map(|f| f.as_fd()),
    );
    drop(raw);
    result.map_err(|e| Error::sys("relaying the terminal", e))
}

/// `clone(2)` into the new namespaces with all signals blocked, so that no handler of the
/// parent runs in the child before it resets them.
fn clone_child(plan: &mut Plan, flags: i32) -> Result<i32, Error> {
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: the sets are initialised by sigfillset / pthread_sigmask before use; clone gets
    // the top of a live, 16-byte aligned stack (the child only runs `child::entry` on it and
    // has its own copy of the memory, as CLONE_VM is not set) and a pointer to the plan,
    // which outlives the call in the parent.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(child::entry, top.cast(), flags, (plan as *mut Plan).cast());
        let err = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(Error::sys("clone", err));
        }
        pid
    };
    drop(stack);
    Ok(pid)
}

/// Writes `pid` to `path` whole or not at all (a temporary file renamed over it).
fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{pid}\n")).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `clone` into the pid namespace of the process behind `container` (a pidfd): `setns` of a
/// pid namespace only sets where this thread's next children go, so it is set for the one
/// `clone` and set back to the thread's own pid namespace right after.
fn clone_into_pid_ns(container: &OwnedFd, plan: &mut Plan, flags: i32) -> Result<i32, Error> {
    use rustix::thread::{LinkNameSpaceType, ThreadNameSpaceType};
    let own = std::fs::File::open("/proc/thread-self/ns/pid")
        .map_err(|e| Error::io("/proc/thread-self/ns/pid", e))?;
    rustix::thread::move_into_thread_name_spaces(
        container.as_fd(),
        ThreadNameSpaceType::PROCESS_ID,
    )
    .map_err(|e| Error::sys("joining the container's pid namespace", e))?;
    let cloned = clone_child(plan, flags);
    let back = match rustix::thread::move_into_link_name_space(
        own.as_fd(),
        Some(LinkNameSpaceType::ProcessID),
    ) {
        // Rootless: the host's pid namespace belongs to the host's user namespace, where this
        // process has no capability, so it cannot go back. The process starts no other
        // child or thread after this one (`exec` only waits for it and returns), so there is
        // nothing its setting could misplace.
        Err(rustix::io::Errno::PERM) if plan.rootless => Ok(()),
        other => other,
    };
    let pid = cloned?;
    if let Err(e) = back {
        // This thread's next children would be born in the container: end here instead.
        if let Some(child) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
        }
        let _ = wait(pid);
        return Err(Error::sys("leaving the container's pid namespace", e));
    }
    Ok(pid)
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

pub(crate) fn wait(pid: i32) -> Result<i32, Error> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(Error::Invalid {
        what: "pid",
        value: pid.to_string(),
        reason: "not a process id",
    })?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::sys("waiting for the container", e)),
        }
    }
}

/// The environment with PATH and HOME added when missing (runc adds HOME; Docker adds PATH).
pub(crate) fn complete_env(mut env: Vec<String>, home: &str) -> Vec<String> {
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", crate::DEFAULT_PATH));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={home}"));
    }
    env
}

/// The contents of /etc/hostname, /etc/hosts and /etc/resolv.conf for a run.
fn etc_files(
    hostname: &str,
    network: Network,
    extra_hosts: &[crate::ExtraHost],
) -> Vec<(&'static str, Vec<u8>)> {
    let mut hosts =
        format!("127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\n");
    // `--add-host` entries after the defaults, as BuildKit writes them.
    for h in extra_hosts {
        hosts.push_str(&h.line());
    }
    let host = std::fs::read("/etc/resolv.conf").unwrap_or_default();
    let resolv = match network {
        Network::Host | Network::None => host,
        Network::Private => private_resolv_conf(&host),
    };
    vec![
        ("resolv.conf", resolv),
        ("hosts", hosts.into_bytes()),
        ("hostname", format!("{hostname}\n").into_bytes()),
    ]
}

/// The host's resolv.conf for the private network: every nameserver line becomes one line
/// naming pasta's DNS forwarder, which asks the host's first resolver through a host socket.
/// A loopback resolver (systemd-resolved's 127.0.0.53, a local dnsmasq) is not reachable from
/// the namespace's own loopback, and neither is a resolver that only the host's own routing
/// reaches (seen here: 10.255.255.53 answered the host and timed out from the namespace, so
/// `apt-get update` failed). Search and option lines are kept.
fn private_resolv_conf(host: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(host);
    let mut out = String::new();
    let mut forwarded = false;
    for line in text.lines() {
        if line.split_whitespace().next() == Some("nameserver") {
            if !forwarded {
                out.push_str(&format!("nameserver {}\n", crate::net::DNS_FORWARD));
                forwarded = true;
            }
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out.into_bytes()
}

/// False in a user namespace whose `setgroups` is denied (a single-ID mapping).
pub(crate) fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// A rootless run can only switch to IDs its user namespace maps: refuse the others here, with
/// the fix, rather than fail with EINVAL in the child.
pub(crate) fn check_mapped(r: &crate::userns::Rootless, user: &crate::User) -> Result<(), Error> {
    let unmapped = |kind: &'static str, id: u32, map: &[crate::userns::IdRange]| {
        let mapped = map
            .iter()
            .map(|m| match m.count {
                1 => m.inside.to_string(),
                n => format!("{}-{}", m.inside, m.inside + (n - 1)),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Error::Unmapped {
            kind,
            id,
            mapped,
            fix: r.range_fix(),
        }
    };
    if !r.maps_uid(user.uid) {
        return Err(unmapped("uid", user.uid, &r.uid_map));
    }
    if let Some(g) = std::iter::once(&user.gid)
        .chain(&user.groups)
        .find(|g| !r.maps_gid(**g))
    {
        return Err(unmapped("gid", *g, &r.gid_map));
    }
    Ok(())
}

/// The overlay's options; `userxattr` in a user namespace, where overlayfs keeps its
/// whiteouts' and opaque directories' marks in `user.overlay.*` (the `trusted.*` namespace
/// needs CAP_SYS_ADMIN in the host's user namespace).
fn overlay_data(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    userxattr: bool,
) -> Result<RootMount, Error> {
    if lower.is_empty() {
        return Err(Error::Invalid {
            what: "overlay",
            value: upper.display().to_string(),
            reason: "needs at least one lower directory",
        });
    }
    let build = |paths: &dyn Fn(&Path) -> String| {
        let lowers: Vec<String> = lower.iter().map(|l| paths(l)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}{}",
            lowers.join(":"),
            paths(upper),
            paths(work),
            if userxattr { ",userxattr" } else { "" }
        )
    };
    // `volatile`: no sync of the upper filesystem at unmount. A run's upper directory is
    // read back (diff, export) but never mounted again, so crash consistency buys nothing, and
    // syncing a busy disk at every step's end dominated the run time.
    let with_volatile = |plain: String, chdir: Option<CString>| -> Result<RootMount, Error> {
        Ok(RootMount::Overlay {
            data: cstring(format!("{plain},volatile").as_bytes(), "overlay options")?,
            plain: cstring(plain.as_bytes(), "overlay options")?,
            chdir,
        })
    };
    let absolute = build(&|p| escape(&p.display().to_string()));
    if absolute.len() + VOLATILE.len() <= MAX_MOUNT_DATA {
        return with_volatile(absolute, None);
    }
    // Long layer lists: paths relative to their common ancestor, which the child enters.
    let mut all: Vec<&Path> = lower.iter().map(|p| p.as_path()).collect();
    all.push(upper);
    all.push(work);
    let common = common_ancestor(&all);
    let relative = build(&|p| escape(&p.strip_prefix(&common).unwrap_or(p).display().to_string()));
    if relative.len() + VOLATILE.len() > MAX_MOUNT_DATA {
        return Err(Error::Invalid {
            what: "overlay",
            value: format!("{} lower directories", lower.len()),
            reason: "too many layers for one overlay mount",
        });
    }
    with_volatile(
        relative,
        Some(cstring(common.as_os_str().as_bytes(), "path")?),
    )
}

/// Overlay options separate with `,` and lower directories with `:`; both are escaped.
fn escape(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

fn common_ancestor(paths: &[&Path]) -> PathBuf {
    let mut common: PathBuf = paths.first().map(|p| p.to_path_buf()).unwrap_or_default();
    for p in paths.iter().skip(1) {
        while !p.starts_with(&common) {
            if !common.pop() {
                return PathBuf::from("/");
            }
        }
    }
    common
}

fn check_container_path(what: &'static str, path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::Invalid {
            what,
            value: path.to_string(),
            reason: "must be an absolute path",
        });
    }
    if path.split('/').any(|c| c == "..") {
        return Err(Error::Invalid {
            what,
            value: path.to_string(),
            reason: "must not contain ..",
        });
    }
    Ok(())
}

/// The PATH that `argv[0]` is searched in: the environment's, or [`crate::DEFAULT_PATH`].
pub(crate) fn search_path(env: &[String]) -> Vec<u8> {
    env.iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(crate::DEFAULT_PATH)
        .as_bytes()
        .to_vec()
}

pub(crate) fn cstrings(items: &[String], what: &'static str) -> Result<Vec<CString>, Error> {
    items.iter().map(|a| cstring(a.as_bytes(), what)).collect()
}

/// The user's supplementary groups for `setgroups`.
pub(crate) fn gids(user: &crate::User) -> Vec<rustix::fs::Gid> {
    user.groups
        .iter()
        .map(|g| rustix::fs::Gid::from_raw(*g))
        .collect()
}

pub(crate) fn cstring(bytes: &[u8], what: &'static str) -> Result<CString, Error> {
    CString::new(bytes).map_err(|_| Error::Invalid {
        what,
        value: String::from_utf8_lossy(bytes).into_owned(),
        reason: "contains a NUL byte",
    })
}

pub(crate) fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// A descriptor for the child's stream `s`, duplicated above 2 (None: inherit).
fn child_stream(s: Stdio) -> Result<Option<OwnedFd>, Error> {
    let fd = match s {
        Stdio::Inherit => return Ok(None),
        Stdio::Null => rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::io("/dev/null", e.into()))?,
        Stdio::Fd(fd) => fd,
    };
    let dup = rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(|e| Error::sys("dup", e))?;
    Ok(Some(dup))
}

/// The parent's end of a terminal relay for stream `s` (`own` is tare's 0 or 1 for Inherit).
fn stream_for_relay(s: Stdio, own: i32) -> Result<Option<OwnedFd>, Error> {
    match s {
        Stdio::Null => Ok(None),
        Stdio::Fd(fd) => Ok(Some(fd)),
        Stdio::Inherit => {
            // SAFETY: tare's stdin and stdout stay open for the life of the process; only a
            // duplicate is owned.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(own) };
            rustix::io::fcntl_dupfd_cloexec(borrowed, 3)
                .map(Some)
                .map_err(|e| Error::sys("dup", e))
        }
    }
}

/// The run's temporary directory (the overlay's mount point and the /etc files), removed on
/// drop. It lives in the host's temporary directory, outside any image.
pub(crate) struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub(crate) fn new() -> Result<Scratch, Error> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!("tare-run-{}-{n}-{nanos:x}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(Scratch { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Err(Error::io(
            base,
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod resolv_tests {
    use super::private_resolv_conf;

    #[test]
    fn every_nameserver_becomes_the_forwarder_once_and_the_rest_is_kept() {
        let host = b"# comment\nsearch example\nnameserver 10.255.255.53\nnameserver 127.0.0.53\noptions ndots:2\n";
        let out = String::from_utf8(private_resolv_conf(host)).unwrap();
        assert_eq!(
            out,
            "# comment\nsearch example\nnameserver 169.254.1.1\noptions ndots:2\n"
        );
    }
}
