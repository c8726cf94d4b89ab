//! RUN: a command in the sandbox over an overlay of the stage's snapshots, or over a merged
//! copy of them where overlayfs is refused ([`Snapshotter`]).

use std::io::{BufRead, BufReader};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::SystemTime;

use tare_sandbox::{
    BindMount, EtcFiles, Network, OnSignal, Rootfs, RunSpec, Security, Stdio, TmpfsMount,
};

use tare_layer::copy_snapshot::CopySnapshot;

use crate::error::{io_err, Error};
use crate::report::{Event, Reporter, StepId, Stream};
use crate::tree::Layers;

/// What a RUN needs besides its snapshots.
pub struct RunInput<'a> {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub user: Option<String>,
    pub network: Network,
    /// An OCI runtime binary (`runc`, `crun`) to use instead of the built-in sandbox.
    pub runtime: Option<&'a Path>,
    pub lower: &'a Layers,
    /// A scratch directory for this step: `upper/` and `work/` are made in it.
    pub scratch: &'a Path,
    /// Files and sockets mounted for the step (secrets, ssh agents); their mount points are
    /// removed from the upper directory after the run.
    pub mounts: Vec<BindMount>,
    /// `RUN --mount=type=tmpfs`.
    pub tmpfs: Vec<TmpfsMount>,
    pub security: Security,
    /// `--add-host`, `--shm-size`, `--ulimit`.
    pub extra_hosts: Vec<tare_sandbox::ExtraHost>,
    pub shm_size: Option<u64>,
    pub ulimits: Vec<tare_sandbox::Ulimit>,
    /// `--cgroup-parent`.
    pub cgroup_parent: Option<tare_sandbox::CgroupParent>,
}

/// Runs the command; returns its exit code. The step's changes are left in
/// `scratch/upper`; `scratch/work` is removed.
pub fn run(input: RunInput<'_>, reporter: &dyn Reporter, step: &StepId) -> Result<i32, Error> {
    let upper = input.scratch.join("upper");
    let work = input.scratch.join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d).map_err(io_err(d))?;
    }
    // Two steps with the same diff share one snapshot; overlayfs refuses a directory twice
    // in lowerdir, and the upper copy of identical content shadows the lower one anyway.
    let mut lower: Vec<std::path::PathBuf> = Vec::new();
    for dir in input.lower.dirs().iter().rev() {
        if !lower.contains(dir) {
            lower.push(dir.clone());
        }
    }
    if lower.is_empty() {
        // overlayfs needs one lower directory; FROM scratch has none.
        let empty = input.scratch.join("empty");
        std::fs::create_dir_all(&empty).map_err(io_err(&empty))?;
        lower.push(empty);
    }
    // The copy fallback: the snapshots merged into a plain directory (see
    // tare_layer::copy_snapshot), turned into the upper directory after the run.
    let copy = match snapshotter(input.scratch)? {
        Snapshotter::Overlay => None,
        Snapshotter::Copy => {
            let dir = input.scratch.join("rootfs");
            std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
            Some(CopySnapshot::make(&lower, &dir)?)
        }
    };
    let rootfs = match &copy {
        None => Rootfs::Overlay {
            lower,
            upper: upper.clone(),
            work: work.clone(),
        },
        Some(snap) => Rootfs::Dir(snap.path().to_path_buf()),
    };
    let mut spec = RunSpec::new(rootfs, input.args);
    spec.env = input.env;
    spec.cwd = input.cwd;
    spec.user = input.user;
    spec.network = input.network;
    spec.mounts = input.mounts;
    spec.tmpfs = input.tmpfs;
    spec.remove_mount_points = true;
    spec.security = input.security;
    spec.extra_hosts = input.extra_hosts;
    spec.shm_size = input.shm_size;
    spec.ulimits = input.ulimits;
    spec.cgroup_parent = input.cgroup_parent;
    spec.hostname = "buildkitsandbox".to_string();
    spec.etc_files = EtcFiles::BuildStep;
    spec.on_signal = OnSignal::Kill;
    // A step reads an empty pipe, as BuildKit gives it: end of input at once, and
    // `[ -p /dev/stdin ]` holds as there.
    let (in_r, in_w) = std::io::pipe().map_err(io_err(input.scratch))?;
    drop(in_w);
    spec.stdin = Stdio::Fd(OwnedFd::from(in_r));
    let (out_r, out_w) = std::io::pipe().map_err(io_err(input.scratch))?;
    let (err_r, err_w) = std::io::pipe().map_err(io_err(input.scratch))?;
    spec.stdout = Stdio::Fd(OwnedFd::from(out_w));
    spec.stderr = Stdio::Fd(OwnedFd::from(err_w));
    let code = std::thread::scope(|s| {
        for (reader, stream) in [(out_r, Stream::Stdout), (err_r, Stream::Stderr)] {
            s.spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut line = Vec::new();
                loop {
                    line.clear();
                    match reader.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            let text = String::from_utf8_lossy(&line);
                            reporter.report(
                                SystemTime::now(),
                                Event::Log {
                                    step: step.clone(),
                                    stream,
                                    line: text.trim_end_matches(['\n', '\r']).to_string(),
                                },
                            );
                        }
                    }
                }
            });
        }
        // `spec` (and the write ends it holds) is dropped when run returns: the readers end.
        match input.runtime {
            Some(runtime) => tare_sandbox::oci::run_with_runtime(spec, runtime),
            None => tare_sandbox::run(spec),
        }
    });
    let _ = std::fs::remove_dir_all(&work);
    if let Some(snap) = copy {
        snap.into_upper(&upper)?;
    }
    match code {
        Ok(code) => Ok(code),
        Err(tare_sandbox::Error::Interrupted(_)) => Err(Error::Interrupted),
        Err(e) => Err(e.into()),
    }
}

/// How RUN steps get their root filesystem.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Snapshotter {
    /// overlayfs over the snapshots (with `userxattr` when rootless): nothing is copied.
    Overlay,
    /// The snapshots merged into a plain directory, the changes moved out after the run: every
    /// RUN step copies its whole root filesystem.
    Copy,
}

/// The snapshotter of this process, chosen at its first RUN step: `TARE_SNAPSHOTTER`
/// (`overlay`, `copy`, or `auto`, the default) or, for `auto`, overlayfs unless a probe mount
/// of it on the store's filesystem (in `scratch`) is refused with `EPERM`, `EINVAL` or `ENODEV`
/// (a kernel without overlayfs in user namespaces, a filesystem it cannot use as upper). `-v`
/// names the choice.
pub fn snapshotter(scratch: &Path) -> Result<Snapshotter, Error> {
    static CHOSEN: std::sync::OnceLock<Snapshotter> = std::sync::OnceLock::new();
    if let Some(chosen) = CHOSEN.get() {
        return Ok(*chosen);
    }
    let forced = std::env::var("TARE_SNAPSHOTTER").unwrap_or_default();
    let chosen = match forced.as_str() {
        "overlay" => {
            tracing::info!("snapshots: overlayfs (TARE_SNAPSHOTTER=overlay)");
            Snapshotter::Overlay
        }
        "copy" => {
            tracing::info!("snapshots: copies (TARE_SNAPSHOTTER=copy)");
            Snapshotter::Copy
        }
        "" | "auto" => match tare_sandbox::userns::probe_overlay(&scratch.join("overlay-probe")) {
            Ok(mode) => {
                tracing::info!("snapshots: {mode}");
                Snapshotter::Overlay
            }
            Err(tare_sandbox::Error::Sys { action, source })
                if [
                    rustix::io::Errno::PERM,
                    rustix::io::Errno::INVAL,
                    rustix::io::Errno::NODEV,
                ]
                .iter()
                .any(|e| source.raw_os_error() == Some(e.raw_os_error())) =>
            {
                tracing::info!(
                    "snapshots: copies, since overlayfs is refused here ({action}: {source}); \
                     each RUN step copies its root filesystem"
                );
                Snapshotter::Copy
            }
            Err(e) => return Err(e.into()),
        },
        other => {
            return Err(Error::BadVariable {
                name: "TARE_SNAPSHOTTER",
                value: other.to_string(),
                reason: "use overlay, copy or auto",
            })
        }
    };
    Ok(*CHOSEN.get_or_init(|| chosen))
}
