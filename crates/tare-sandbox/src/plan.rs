//! The plan: everything the child needs, prepared by the parent before `clone`.
//!
//! After `clone` the child may not allocate (another thread of the parent may have held the
//! allocator's lock at that instant), so the plan holds only ready-made C strings, pointer
//! arrays and file descriptors; the child reads it and issues system calls.

use std::ffi::{c_char, CString};
use std::os::fd::OwnedFd;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use crate::{BindMount, Error, TmpfsMount};

/// How the child reports progress and failure to the parent: fixed-size records on a
/// close-on-exec pipe. End of file without an error record means `execve` succeeded.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Message {
    pub kind: u32,
    pub step: u32,
    pub errno: i32,
    pub data: u32,
}

impl Message {
    pub const SIZE: usize = std::mem::size_of::<Message>();

    pub fn to_bytes(self) -> [u8; Message::SIZE] {
        let mut out = [0u8; Message::SIZE];
        out[0..4].copy_from_slice(&self.kind.to_ne_bytes());
        out[4..8].copy_from_slice(&self.step.to_ne_bytes());
        out[8..12].copy_from_slice(&self.errno.to_ne_bytes());
        out[12..16].copy_from_slice(&self.data.to_ne_bytes());
        out
    }

    pub fn from_bytes(b: &[u8; Message::SIZE]) -> Message {
        let word = |i: usize| [b[i], b[i + 1], b[i + 2], b[i + 3]];
        Message {
            kind: u32::from_ne_bytes(word(0)),
            step: u32::from_ne_bytes(word(4)),
            errno: i32::from_ne_bytes(word(8)),
            data: u32::from_ne_bytes(word(12)),
        }
    }
}

/// `data` is the bit mask of [`crate::stubs::STUBS`] that existed in the rootfs before the
/// child created anything.
pub(crate) const MSG_STUBS: u32 = 1;
/// `data` is bit mask number `step` (32 per record) of [`Plan::mount_stubs`] that existed in
/// the rootfs before the child created anything.
pub(crate) const MSG_MOUNT_STUBS: u32 = 4;
/// `step` failed with `errno`.
pub(crate) const MSG_SETUP_ERROR: u32 = 2;
/// `execve` failed with `errno`.
pub(crate) const MSG_EXEC_ERROR: u32 = 3;

/// The set-up steps, numbered for [`Message::step`].
#[repr(u32)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    Session,
    DeathSignal,
    Network,
    Keyring,
    MakePrivate,
    MountRootfs,
    OpenBind,
    PivotRoot,
    DetachOldRoot,
    MountProc,
    MountSys,
    MountDev,
    Devices,
    MountDevpts,
    MountShm,
    Terminal,
    Volume,
    ReadonlyRoot,
    Hostname,
    Rlimits,
    WorkingDir,
    Capabilities,
    Seccomp,
    NoNewPrivileges,
    Groups,
    SetGid,
    SetUid,
    Stdio,
    Exec,
    JoinContainer,
    Trace,
    Cgroup,
}

impl Step {
    pub const ALL: [Step; 32] = [
        Step::Session,
        Step::DeathSignal,
        Step::Network,
        Step::Keyring,
        Step::MakePrivate,
        Step::MountRootfs,
        Step::OpenBind,
        Step::PivotRoot,
        Step::DetachOldRoot,
        Step::MountProc,
        Step::MountSys,
        Step::MountDev,
        Step::Devices,
        Step::MountDevpts,
        Step::MountShm,
        Step::Terminal,
        Step::Volume,
        Step::ReadonlyRoot,
        Step::Hostname,
        Step::Rlimits,
        Step::WorkingDir,
        Step::Capabilities,
        Step::Seccomp,
        Step::NoNewPrivileges,
        Step::Groups,
        Step::SetGid,
        Step::SetUid,
        Step::Stdio,
        Step::Exec,
        Step::JoinContainer,
        Step::Trace,
        Step::Cgroup,
    ];

    pub fn from_u32(n: u32) -> Option<Step> {
        Step::ALL.get(n as usize).copied()
    }

    pub fn describe(self) -> &'static str {
        match self {
            Step::Session => "starting a session",
            Step::DeathSignal => "setting the parent-death signal",
            Step::Network => "joining the private network",
            Step::Keyring => "creating a session keyring",
            Step::MakePrivate => "making mounts private",
            Step::MountRootfs => "mounting the root filesystem",
            Step::OpenBind => "opening a bind-mount source",
            Step::PivotRoot => "pivot_root",
            Step::DetachOldRoot => "detaching the old root",
            Step::MountProc => "mounting /proc",
            Step::MountSys => "mounting /sys",
            Step::MountDev => "mounting /dev",
            Step::Devices => "creating device nodes",
            Step::MountDevpts => "mounting /dev/pts",
            Step::MountShm => "mounting /dev/shm",
            Step::Terminal => "creating the terminal",
            Step::Volume => "mounting a volume",
            Step::ReadonlyRoot => "making the root filesystem read-only",
            Step::Hostname => "setting the host name",
            Step::Rlimits => "setting resource limits (--ulimit)",
            Step::WorkingDir => "entering the working directory",
            Step::Capabilities => "dropping capabilities",
            Step::Seccomp => "installing the seccomp filter",
            Step::NoNewPrivileges => "setting no_new_privs",
            Step::Groups => "setting supplementary groups",
            Step::SetGid => "setting the group id",
            Step::SetUid => "setting the user id",
            Step::Stdio => "setting up standard streams",
            Step::Exec => "executing the command",
            Step::JoinContainer => "joining the container's namespaces",
            Step::Trace => "marking the root filesystem for the tracer (fanotify)",
            Step::Cgroup => "joining the --cgroup-parent cgroups",
        }
    }
}

/// How the root filesystem is mounted on [`Plan::merged`].
pub(crate) enum RootMount {
    /// `mount -t overlay overlay -o DATA MERGED`, from `chdir` when the options use paths
    /// relative to it (to stay under the kernel's one-page limit). `data` has the `volatile`
    /// option, `plain` is the same without it for kernels older than 5.10.
    Overlay {
        data: CString,
        plain: CString,
        chdir: Option<CString>,
    },
    /// `mount --rbind DIR DIR`: a plain directory becomes a mount point for pivot_root.
    Bind,
}

/// A bind mount: `source` on the host, `target` absolute in the container.
pub(crate) struct Bind {
    pub source: CString,
    pub target: CString,
    pub dir: bool,
    pub readonly: bool,
    /// Failure is not fatal (the /etc files over a dangling symbolic link, say).
    pub optional: bool,
    /// Create the target when missing.
    pub create: bool,
    /// A tmpfs instead of a bind: its mount data (`source` is unused).
    pub tmpfs: Option<CString>,
}

/// The pseudo-terminal request: the child opens it from its own devpts and sends the master
/// side back over `socket`.
pub(crate) struct TtyPlan {
    pub socket: OwnedFd,
    pub winsize: rustix::termios::Winsize,
}

/// What the child does after mounting the root filesystem.
pub(crate) enum Mode {
    /// Become the container: pivot_root, /proc, /dev, the user, execve the command.
    Container,
    /// Exec an OCI runtime (argv/envp) inside the mount namespace that holds the rootfs mount.
    Runtime,
    /// `tare exec`: join the namespaces of a running container (the pidfd of its pid 1; the
    /// parent has already put its own thread's children into that pid namespace), then the
    /// same user, capability, seccomp and stdio steps as a container's first process.
    Exec { pidfd: i32 },
}

pub(crate) struct Plan {
    pub mode: Mode,
    pub merged: CString,
    pub root: RootMount,
    pub binds: Vec<Bind>,
    /// One slot per bind, filled by the child with `open_tree` descriptors.
    pub bind_fds: Vec<i32>,
    pub hostname: CString,
    pub cwd: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub argv_ptrs: Vec<*const c_char>,
    pub envp_ptrs: Vec<*const c_char>,
    /// The PATH to search for `argv[0]`.
    pub path: Vec<u8>,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<rustix::fs::Gid>,
    /// The highest capability number the kernel knows.
    pub last_cap: u32,
    /// Descriptors to install as 0, 1, 2 (duplicated above 2 so that `dup2` never clobbers
    /// one with another).
    pub stdio: [Option<OwnedFd>; 3],
    /// Streams to connect to the container's own /dev/null (created by the child, so a host
    /// whose /dev/null was replaced by a file cannot leak that file into the container).
    pub null_stdio: [bool; 3],
    pub tty: Option<TtyPlan>,
    pub readonly_rootfs: bool,
    /// A network namespace to join (setns) before anything else, or -1.
    pub netns: i32,
    /// The seccomp program to install before dropping to the user, when confined.
    pub seccomp: Option<Vec<libc::sock_filter>>,
    /// Set no_new_privs before execve (`--security-opt no-new-privileges`).
    pub no_new_privs: bool,
    /// All capabilities, no masked paths (`RUN --security=insecure`); seccomp is decided by
    /// [`Plan::seccomp`].
    pub privileged: bool,
    /// The mount points of the volumes whose existence the child reports (see
    /// [`crate::stubs`]), relative to the root.
    pub mount_stubs: Vec<crate::stubs::MountStub>,
    /// Runtime mode: mount a cgroup2 hierarchy over /sys/fs/cgroup in the private mount
    /// namespace, for runtimes (crun) that refuse a hybrid v1/v2 layout.
    pub unified_cgroup: bool,
    /// The mount data of /dev/shm (its size: `--shm-size`).
    pub shm_data: CString,
    /// `--ulimit`: set in the child while it is still root, before the command starts.
    pub rlimits: Vec<(rustix::process::Resource, rustix::process::Rlimit)>,
    /// `--cgroup-parent`: the new cgroups' `cgroup.procs`, which the child joins first.
    pub cgroup_procs: Vec<OwnedFd>,
    pub report: OwnedFd,
    // Rootless (tare runs in a user namespace of its own: see the `userns` module).
    /// Device nodes cannot be made: bind the host's instead (detached copies, one per
    /// `child::mounts::DEVICES` entry, taken before pivot_root; -1 until then).
    pub rootless: bool,
    pub device_fds: [i32; 6],
    /// sysfs cannot be mounted for a network namespace the user namespace does not own (the
    /// host's): bind the host's /sys read-only instead.
    pub bind_sys: bool,
    pub sys_fd: i32,
    /// `setgroups` is denied in a single-ID mapping.
    pub setgroups: bool,
    /// `tare slim`'s tracer: a fanotify descriptor the child marks its root filesystem with
    /// right after pivot_root (the `trace` module), or -1.
    pub trace_fd: i32,
    /// File-handle tracing (`fanotify`'s handle mode): after pivot_root the child writes a byte
    /// to `trace_ready` and waits for one on `trace_go` while the parent marks the tree; -1
    /// otherwise (then `trace_fd` is marked by the child).
    pub trace_ready: i32,
    pub trace_go: i32,
}

impl Plan {
    /// Replaces the command line and environment (the OCI runtime mode runs the runtime).
    pub fn set_command(&mut self, argv: Vec<Vec<u8>>, envp: Vec<Vec<u8>>) -> Result<(), Error> {
        let c = |v: Vec<u8>| {
            CString::new(v).map_err(|e| Error::Invalid {
                what: "runtime argument",
                value: String::from_utf8_lossy(&e.into_vec()).into_owned(),
                reason: "contains a NUL byte",
            })
        };
        self.argv = argv.into_iter().map(c).collect::<Result<_, _>>()?;
        self.envp = envp.into_iter().map(c).collect::<Result<_, _>>()?;
        self.seal();
        Ok(())
    }

    /// Builds the NULL-terminated pointer arrays. Call once the strings are final: the
    /// pointers borrow the heap buffers of `argv` and `envp`, which do not move when the plan
    /// itself moves.
    pub fn seal(&mut self) {
        self.argv_ptrs = self.argv.iter().map(|a| a.as_ptr()).collect();
        self.argv_ptrs.push(std::ptr::null());
        self.envp_ptrs = self.envp.iter().map(|a| a.as_ptr()).collect();
        self.envp_ptrs.push(std::ptr::null());
        self.bind_fds = vec![-1; self.binds.len()];
    }
}

/// The bind and tmpfs mounts of a container, in the order the child attaches them: the
/// `/etc` files tare wrote (`(file, name, readonly)`: optional, since the image may have a
/// dangling link there), then the volumes and tmpfs mounts parents first (sorted by the depth
/// of their target, stable), so that a mount inside another one's target goes on top of it.
/// A volume source must exist: whether it is a directory decides how it is attached.
pub(crate) fn binds(
    etc: &[(PathBuf, &str, bool)],
    mounts: &[BindMount],
    tmpfs: &[TmpfsMount],
) -> Result<Vec<Bind>, Error> {
    let mut binds = Vec::new();
    for (file, name, readonly) in etc {
        binds.push(Bind {
            source: cstring(file.as_os_str().as_bytes(), "path")?,
            target: cstring(format!("/etc/{name}").as_bytes(), "path")?,
            dir: false,
            readonly: *readonly,
            optional: true,
            create: true,
            tmpfs: None,
        });
    }
    let mut user_mounts = Vec::new();
    for m in mounts {
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
    for t in tmpfs {
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
    user_mounts.sort_by_key(|b| {
        b.target
            .to_bytes()
            .split(|c| *c == b'/')
            .filter(|c| !c.is_empty())
            .count()
    });
    binds.extend(user_mounts);
    Ok(binds)
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

pub(crate) fn check_container_path(what: &'static str, path: &str) -> Result<(), Error> {
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
