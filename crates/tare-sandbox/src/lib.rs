//! tare-sandbox: runs one process in a container, for `RUN` steps and `tare run`.
//!
//! # What it owns
//!
//! - [`run`]: a process in new mount, pid, uts and ipc namespaces and a network namespace
//!   ([`Network`]: the shared private network by default, a new empty one for `None`, the
//!   host's on request), on an overlay of read-only lower directories with a writable upper
//!   directory, or on a plain directory ([`Rootfs`]). `/proc` and `/sys` are mounted read-only,
//!   `/dev` is a fresh tmpfs with the usual devices, a private devpts and `/dev/shm`;
//!   `/etc/resolv.conf`, `/etc/hosts` and `/etc/hostname` are bind-mounted for the run and never
//!   left in the writable directory (a build step gets the first two read-only and no
//!   `/etc/hostname`: [`EtcFiles`]). Docker's default capability set, nothing more; the user is
//!   resolved through the rootfs's `/etc/passwd` and `/etc/group` ([`resolve_user`]), read with
//!   bounded, non-blocking, link-free opens.
//! - Confinement ([`Security`]): Docker's default seccomp profile (the `seccomp` module), a
//!   fresh session keyring per container, `no_new_privs` on request, and only the default
//!   devices can be opened: every writable mount is `nodev`, and /dev's own nodes are bind
//!   mounts of their own.
//! - The container records kept under the store root ([`containers`]).
//! - [`oci`]: the same run through an OCI runtime (`runc`, `crun`) from a generated bundle.
//!
//! It does not own images, layers or the store: callers pass directories. It never prints;
//! the caller chooses where the process's output goes ([`Stdio`]).
//!
//! # Design: why `clone` with a prepared plan
//!
//! The process must be pid 1 of its own pid namespace, so that every process of a step ends
//! with it (the kernel kills the rest of the namespace when pid 1 exits). `unshare(CLONE_NEWPID)`
//! only affects children, so the child is created by `clone(2)` with the namespace flags; the
//! host process stays outside, waits for it, and forwards signals.
//!
//! Callers are multi-threaded (the test harness, the builder's progress display), and after a
//! fork-like `clone` only async-signal-safe work is allowed in the child: another thread may
//! hold the allocator's lock. So every string, path, argument vector and decision is prepared
//! in the parent as a `Plan` (C strings, pointer arrays, fixed buffers), and the child
//! only issues system calls on it (mount, pivot_root, mknod, setuid, capset, execve). The
//! child reports a failure as a fixed-size record on a close-on-exec pipe; end of file on that
//! pipe means `execve` succeeded. Re-executing `/proc/self/exe` in an init mode was the other
//! option; it costs an extra exec per run and needs the binary's cooperation (tests, the
//! builder), so it was not taken.
//!
//! All mounts happen inside the child's private mount namespace: when the container's last
//! process exits, the kernel takes them down, so an interrupted or killed tare leaves no mount
//! behind. The parent removes what it created itself (a temporary directory, the mount-point
//! stubs in the writable directory) after the child is reaped.
//!
//! The overlay is mounted `volatile` (no sync of the upper filesystem when it goes away):
//! upper directories are read back (diff, export, commit) but never mounted again after a
//! crash. After a clean run the marker overlayfs leaves in `work` is removed, so the same
//! upper and work directories can be mounted again.
//!
//! # Use
//!
//! ```no_run
//! use tare_sandbox::{OnSignal, Rootfs, RunSpec, Stdio};
//! # fn main() -> Result<(), tare_sandbox::Error> {
//! let mut spec = RunSpec::new(
//!     Rootfs::Overlay {
//!         lower: vec!["/store/snapshots/top".into(), "/store/snapshots/base".into()],
//!         upper: "/tmp/step/upper".into(),
//!         work: "/tmp/step/work".into(),
//!     },
//!     vec!["/bin/sh".into(), "-c".into(), "echo hi > /greeting".into()],
//! );
//! spec.env = vec!["A=1".into()];
//! spec.user = Some("app".into());
//! spec.on_signal = OnSignal::Kill; // a build step: Ctrl-C ends it
//! spec.stdout = Stdio::Inherit; // or Stdio::Fd(pipe_writer) to stream the log
//! let code = tare_sandbox::run(spec)?; // the step's exit code
//! # let _ = code; Ok(()) }
//! ```
//!
//! Signals: while a container runs, SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2
//! received by tare are forwarded to it ([`OnSignal::Forward`], `tare run`) or end it
//! ([`OnSignal::Kill`], build steps: Ctrl-C stops the build). Like Docker without `--init`,
//! a pid 1 that does not handle a signal ignores it.

#![deny(missing_docs)]

pub mod binfmt;
mod caps;
mod cgroup;
mod child;
pub mod containers;
mod error;
mod etc;
mod exec;
mod fanotify;
mod layers;
mod limits;
mod net;
pub mod oci;
mod overlay;
mod plan;
mod process;
mod scratch;
mod seccomp;
mod signals;
mod spawn;
mod streams;
mod stubs;
mod syscall;
pub mod trace;
mod tty;
mod user;
pub mod userns;

use std::os::fd::OwnedFd;
use std::path::PathBuf;

pub use cgroup::CgroupParent;
pub use error::Error;
pub use exec::{exec, join_user_namespace, ExecSpec};
pub use limits::{ExtraHost, Ulimit};
pub use spawn::run;
pub use user::{resolve_user, User};

/// The PATH a process gets when its environment has none (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// The root filesystem of a run.
#[derive(Debug, Clone)]
pub enum Rootfs {
    /// An overlay: `lower` directories top first (read-only, e.g. extracted layers), `upper`
    /// receives the changes, `work` is overlayfs's scratch directory on the same filesystem as
    /// `upper`. Both must exist; `upper` is normally empty.
    Overlay {
        /// The read-only layers, top first.
        lower: Vec<PathBuf>,
        /// The directory that receives the run's changes.
        upper: PathBuf,
        /// overlayfs's work directory, beside `upper`.
        work: PathBuf,
    },
    /// A plain directory used as the root, written in place.
    Dir(PathBuf),
}

impl Rootfs {
    /// The directories that make up the filesystem, top first: for reading files such as
    /// `/etc/passwd` without mounting ([`resolve_user`]).
    pub fn layers(&self) -> Vec<PathBuf> {
        match self {
            Rootfs::Overlay { lower, upper, .. } => {
                let mut all = Vec::with_capacity(lower.len() + 1);
                all.push(upper.clone());
                all.extend(lower.iter().cloned());
                all
            }
            Rootfs::Dir(dir) => vec![dir.clone()],
        }
    }

    /// The directory that receives the run's changes.
    pub fn writable(&self) -> &std::path::Path {
        match self {
            Rootfs::Overlay { upper, .. } => upper,
            Rootfs::Dir(dir) => dir,
        }
    }
}

/// The network of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Network {
    /// A network namespace of its own, connected to the outside through pasta (see the `net`
    /// module): the host's interfaces, loopback services and abstract unix sockets are out of
    /// reach, the internet is not. One namespace is shared by all the runs of a tare process.
    /// The default, for `RUN` (`--network=default`) and `tare run`.
    #[default]
    Private,
    /// The host's network namespace (Docker's `--network host`).
    Host,
    /// A new network namespace with only the loopback interface, down.
    None,
}

/// The confinement of a run beyond namespaces and capabilities.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Security {
    /// The seccomp filter of Docker's default profile (`seccomp=unconfined` turns it off).
    pub seccomp: bool,
    /// `no_new_privs`: setuid files and file capabilities stop granting privileges. Off by
    /// default, as in Docker (`--security-opt no-new-privileges`).
    pub no_new_privileges: bool,
    /// `RUN --security=insecure` (`docker run --privileged`'s process confinement): every
    /// capability in all sets for root, no seccomp filter whatever `seccomp` says, and /proc's
    /// sensitive files not masked. The namespaces, the nodev mounts and the default devices
    /// stay.
    pub privileged: bool,
}

impl Default for Security {
    fn default() -> Self {
        Security {
            seccomp: true,
            no_new_privileges: false,
            privileged: false,
        }
    }
}

/// A host file or directory bind-mounted into the container (`-v HOST:CTR[:ro]`).
#[derive(Debug, Clone)]
pub struct BindMount {
    /// An absolute host path; it must exist.
    pub source: PathBuf,
    /// An absolute path inside the container; created (as a directory, or an empty file when
    /// `source` is a file) when missing.
    pub target: String,
    /// Mount it read-only (and read-only all the way down, for a directory's sub-mounts).
    pub readonly: bool,
}

/// A tmpfs mounted in the container (`RUN --mount=type=tmpfs`): mode 1777, `nosuid` and
/// `nodev`, as BuildKit mounts it. The target is created when missing.
#[derive(Debug, Clone)]
pub struct TmpfsMount {
    /// An absolute path inside the container.
    pub target: String,
    /// The size limit in bytes (`size=`); `None` is the kernel's default (half of RAM).
    pub size: Option<u64>,
}

/// How a run gets `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname`: files tare writes for
/// the run and bind-mounts over the image's (which stay as they are in the layer).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EtcFiles {
    /// As `docker run` gives them: all three mounted writable; what the process writes to them
    /// is lost with the run (`tare run`).
    #[default]
    Container,
    /// As BuildKit 0.25 gives them to a `RUN` step: `/etc/hosts` and `/etc/resolv.conf`
    /// mounted read-only, and no `/etc/hostname` mount, so the image's own file (or the one
    /// the step writes) is what the step sees and what its layer keeps.
    BuildStep,
}

/// Where a standard stream of the process goes.
#[derive(Debug, Default)]
pub enum Stdio {
    /// The caller's own stream.
    #[default]
    Inherit,
    /// `/dev/null`.
    Null,
    /// A file descriptor, e.g. the write end of a pipe the caller reads log lines from.
    Fd(OwnedFd),
}

/// What a signal received by tare does to the running container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnSignal {
    /// Forward it to the container's pid 1 (`tare run`, like `docker run`'s signal proxy).
    #[default]
    Forward,
    /// Kill the container, and make [`run`] return [`Error::Interrupted`] (build steps).
    Kill,
}

/// Everything a run needs. See [`run`].
#[derive(Debug)]
pub struct RunSpec {
    /// The root filesystem the command runs on.
    pub rootfs: Rootfs,
    /// The command: `args[0]` is looked up in the environment's PATH inside the rootfs unless
    /// it contains a `/`. Must not be empty.
    pub args: Vec<String>,
    /// `KEY=VALUE` entries. PATH defaults to [`DEFAULT_PATH`] and HOME to the user's home
    /// directory when missing.
    pub env: Vec<String>,
    /// The working directory (absolute), created when missing. Empty means `/`.
    pub cwd: String,
    /// `user`, `uid`, `user:group`, `uid:gid`, resolved inside the rootfs ([`resolve_user`]).
    /// `None` is root.
    pub user: Option<String>,
    /// Which network namespace the run gets.
    pub network: Network,
    /// Seccomp, `no_new_privs` and `--security=insecure`.
    pub security: Security,
    /// The container's host name (also in its /etc/hosts, and its /etc/hostname with
    /// [`EtcFiles::Container`]).
    pub hostname: String,
    /// How `/etc/hosts`, `/etc/resolv.conf` and `/etc/hostname` are mounted.
    pub etc_files: EtcFiles,
    /// Host files and directories bind-mounted in (volumes, RUN's bind, cache and secret
    /// mounts); see `tmpfs` for the order.
    pub mounts: Vec<BindMount>,
    /// Tmpfs mounts. With `mounts`, they are mounted parents first (sorted by the depth of
    /// their target), so a bind inside a tmpfs or a tmpfs inside a bind both work.
    pub tmpfs: Vec<TmpfsMount>,
    /// Mount the root filesystem read-only (`--read-only`).
    pub readonly_rootfs: bool,
    /// Give the process a pseudo-terminal (`-t`): its stdin, stdout and stderr are the
    /// terminal, which tare relays to `stdin` and `stdout` (the host terminal is put in raw
    /// mode and its window size is copied).
    pub tty: bool,
    /// The process's standard input ([`Stdio::Null`] by default).
    pub stdin: Stdio,
    /// The process's standard output.
    pub stdout: Stdio,
    /// The process's standard error.
    pub stderr: Stdio,
    /// What a signal that tare receives does to the container.
    pub on_signal: OnSignal,
    /// Remove after the run the mount points of `mounts` it created in the writable directory
    /// (the target and its missing parents, when still empty), as BuildKit does for a RUN's
    /// mounts, so that they are not part of the step's layer. `tare run` keeps them, as
    /// Docker keeps them in a container's layer.
    pub remove_mount_points: bool,
    /// Write the container's pid (as the host sees it) to this file once it is started, as
    /// runc's `--pid-file` does: `tare exec` finds the container by it.
    pub pid_file: Option<PathBuf>,
    // --- buildx's --add-host, --shm-size and --ulimit (the `limits` module) ---
    /// Entries appended to the run's `/etc/hosts`.
    pub extra_hosts: Vec<ExtraHost>,
    /// The size of `/dev/shm` in bytes; `None` is Docker's 64 MiB.
    pub shm_size: Option<u64>,
    /// Resource limits set before the command starts (the others are inherited from tare).
    pub ulimits: Vec<Ulimit>,
    /// `--cgroup-parent`: the run goes into a new cgroup under this one (the `cgroup` module).
    pub cgroup_parent: Option<CgroupParent>,
}

impl RunSpec {
    /// A spec with the defaults: private network, seccomp on, root user, `/` as working directory, inherited
    /// stdout and stderr, no stdin, signals forwarded.
    pub fn new(rootfs: Rootfs, args: Vec<String>) -> Self {
        RunSpec {
            rootfs,
            args,
            env: Vec::new(),
            cwd: "/".to_string(),
            user: None,
            network: Network::Private,
            security: Security::default(),
            hostname: "tare".to_string(),
            etc_files: EtcFiles::Container,
            mounts: Vec::new(),
            tmpfs: Vec::new(),
            readonly_rootfs: false,
            tty: false,
            stdin: Stdio::Null,
            stdout: Stdio::Inherit,
            stderr: Stdio::Inherit,
            on_signal: OnSignal::Forward,
            remove_mount_points: false,
            pid_file: None,
            extra_hosts: Vec::new(),
            shm_size: None,
            ulimits: Vec::new(),
            cgroup_parent: None,
        }
    }
}
