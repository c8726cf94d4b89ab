//! The crate's error type.

use std::path::PathBuf;

/// Everything that can go wrong around a sandboxed process (not the process's own exit code,
/// which [`crate::run`] returns as `Ok`).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no command given")]
    NoCommand,

    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        what: &'static str,
        value: String,
        reason: &'static str,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{action}: {source}")]
    Sys {
        action: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error("unable to find user {0}: no matching entries in passwd file")]
    UnknownUser(String),

    #[error("unable to find group {0}: no matching entries in group file")]
    UnknownGroup(String),

    /// A step of the container's set-up failed (mounting, pivot_root, setuid...).
    #[error("setting up the container: {step}: {source}")]
    Setup {
        step: &'static str,
        #[source]
        source: std::io::Error,
    },

    /// The command could not be executed; [`Error::exit_code`] gives Docker's 127 or 126.
    #[error("exec: {command:?}: {}", exec_reason(source, command))]
    Exec {
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// The run was stopped by a signal received by tare ([`crate::OnSignal::Kill`]).
    #[error("interrupted by signal {0}")]
    Interrupted(i32),

    #[error("container {0}: no such container")]
    NoSuchContainer(String),

    #[error("container name {0:?} is already in use")]
    NameInUse(String),

    #[error("private network: {reason}")]
    Network { reason: String },

    #[error("runtime {runtime}: {reason}")]
    Runtime { runtime: String, reason: String },

    /// Registering or reading a binfmt_misc handler (the `binfmt` module).
    #[error("binfmt_misc: {reason}")]
    Binfmt { reason: String },

    /// `tare slim`'s tracer (the `trace` module).
    #[error("tracing: {reason}")]
    Trace { reason: String },

    /// `--cgroup-parent` (the `cgroup` module).
    #[error("cgroup parent {parent:?}: {reason}")]
    CgroupParent { parent: String, reason: String },

    // Rootless tare (the `userns` module).
    #[error("rootless: {reason}")]
    Rootless { reason: String },

    /// A container ID that the rootless user namespace does not map.
    #[error("rootless: {kind} {id} is not mapped in tare's user namespace (only {mapped}): {fix}")]
    Unmapped {
        kind: &'static str,
        id: u32,
        mapped: String,
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
