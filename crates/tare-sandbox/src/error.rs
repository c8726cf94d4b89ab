//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong around a sandboxed process (not the process's own exit code,
/// which [`crate::run`] returns as `Ok`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The spec's argument vector is empty.
    #[error("no command given")]
    NoCommand,

    /// A value of the spec that cannot be used (a relative container path, a NUL byte).
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which field of the spec, in words ("working directory").
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is refused.
        reason: &'static str,
    },

    /// A file operation of the host side failed on `path`.
    #[error("{path}: {source}")]
    Io {
        /// The host path the operation was on.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A system call of the host side failed (creating a pipe, cloning the child...).
    #[error("{action}: {source}")]
    Sys {
        /// What tare was doing, in words.
        action: &'static str,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },

    /// A user name that the rootfs's `/etc/passwd` does not list (Docker's wording).
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),

    /// A group name that the rootfs's `/etc/group` does not list (Docker's wording).
    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),

    /// A step of the container's set-up failed (mounting, pivot_root, setuid...).
    #[error("setting up the container: {step}: {source}")]
    Setup {
        /// The failed step, in words ("mounting /proc").
        step: &'static str,
        /// The child's errno.
        #[source]
        source: std::io::Error,
    },

    /// The command could not be executed; [`Error::exit_code`] gives Docker's 127 or 126.
    #[error("exec: {command:?}: {}", exec_reason(source, command))]
    Exec {
        /// `args[0]` as given.
        command: String,
        /// `execve`'s errno.
        #[source]
        source: std::io::Error,
    },

    /// The run was stopped by a signal received by tare ([`crate::OnSignal::Kill`]).
    #[error("interrupted by signal {0}")]
    Interrupted(i32),

    /// No container record has that id, id prefix or name (the `containers` module).
    #[error("container {0}: no such container")]
    NoSuchContainer(String),

    /// `--name` of a container that another record already has.
    #[error("container name {0:?} is already in use")]
    NameInUse(String),

    /// The shared private network could not be set up (pasta missing or failing).
    #[error("private network: {reason}")]
    Network {
        /// What failed.
        reason: String,
    },

    /// An OCI runtime (`--runtime`) that cannot be found or used (the `oci` module).
    #[error("runtime {runtime}: {reason}")]
    Runtime {
        /// The runtime's name or path.
        runtime: String,
        /// What failed.
        reason: String,
    },

    /// Registering or reading a binfmt_misc handler (the `binfmt` module).
    #[error("binfmt_misc: {reason}")]
    Binfmt {
        /// What failed.
        reason: String,
    },

    /// `tare slim`'s tracer (the `trace` module).
    #[error("tracing: {reason}")]
    Trace {
        /// What failed.
        reason: String,
    },

    /// `--cgroup-parent` (the `cgroup` module).
    #[error("cgroup parent {parent:?}: {reason}")]
    CgroupParent {
        /// The `--cgroup-parent` value as given.
        parent: String,
        /// Why it is refused or failed.
        reason: String,
    },

    /// Rootless tare (the `userns` module) cannot enter or use its user namespace.
    #[error("rootless: {reason}")]
    Rootless {
        /// What failed, with the fix when there is one.
        reason: String,
    },

    /// A container ID that the rootless user namespace does not map.
    #[error("rootless: {kind} {id} is not mapped in tare's user namespace (only {mapped}): {fix}")]
    Unmapped {
        /// `uid` or `gid`.
        kind: &'static str,
        /// The ID the run asked for.
        id: u32,
        /// The IDs the namespace maps, for the message.
        mapped: String,
        /// How to get a larger range (`usermod --add-subuids ...`).
        fix: String,
    },
}

fn exec_reason(source: &std::io::Error, command: &str) -> String {
    match source.raw_os_error() {
        Some(libc::ENOENT) if !command.contains('/') => "executable file not found in $PATH".into(),
        Some(libc::ENOENT) => "no such file or directory".into(),
        Some(libc::EACCES) => "permission denied".into(),
        _ => source.to_string(),
    }
}

impl Error {
    /// The exit code Docker uses for this error: 127 for a command that does not exist, 126
    /// for one that cannot be executed, 130/143 for an interruption, 125 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => 127,
                _ => 126,
            },
            Error::Interrupted(sig) => 128 + sig,
            _ => 125,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn sys(action: &'static str, source: impl Into<std::io::Error>) -> Self {
        Error::Sys {
            action,
            source: source.into(),
        }
    }
}
