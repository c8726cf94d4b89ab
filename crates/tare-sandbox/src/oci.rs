//! Running through an OCI runtime (`--runtime runc|crun|PATH`) instead of the embedded sandbox.
//!
//! The root filesystem is mounted exactly as for [`crate::run`], in a private mount namespace
//! of a child process; that child then execs `RUNTIME --root STATE run --bundle DIR ID` with a
//! `config.json` written from the same [`RunSpec`]. The runtime sees the overlay mount; when it
//! exits the namespace and its mounts go away. The runtime's state directory and the bundle are
//! temporary, and the mount-point stubs the runtime creates are removed like the sandbox's.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::plan::Mode;
use crate::spawn::{execute, prepare};
use crate::{Error, EtcFiles, Network, RunSpec};

/// Finds a runtime: `runc`, `crun` (or any name) in PATH, or a path to an executable.
pub fn find_runtime(name: &str) -> Result<PathBuf, Error> {
    let not_found = || Error::Runtime {
        runtime: name.to_string(),
        reason: "not found (install it or give its path)".into(),
    };
    if name.contains('/') {
        let path = PathBuf::from(name);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(not_found())
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(not_found)
}

/// Like [`crate::run`], through the OCI runtime at `runtime`. Returns the runtime's exit code,
/// which is the container's.
pub fn run_with_runtime(spec: RunSpec, runtime: &Path) -> Result<i32, Error> {
    let layers = spec.rootfs.layers();
    let user = crate::resolve_user(&layers, spec.user.as_deref().unwrap_or(""))?;
    let config_spec = ConfigInput {
        args: spec.args.clone(),
        env: spec.env.clone(),
        cwd: if spec.cwd.is_empty() {
            "/".into()
        } else {
            spec.cwd.clone()
        },
        hostname: spec.hostname.clone(),
        etc_files: spec.etc_files,
        network: spec.network,
        security: spec.security,
        readonly: spec.readonly_rootfs,
        tty: spec.tty,
        mounts: spec
            .mounts
            .iter()
            .map(|m| (m.source.clone(), m.target.clone(), m.readonly))
            .collect(),
        tmpfs: spec
            .tmpfs
            .iter()
            .map(|t| (t.target.clone(), t.size))
            .collect(),
        user,
        shm_size: spec.shm_size.unwrap_or(64 << 20),
        ulimits: spec.ulimits.clone(),
    };
    let id = format!(
        "tare-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
    );
    // The argv is completed once the scratch directory (bundle and state) is known.
    let mut prepared = prepare(spec, Mode::Runtime)?;
    let bundle = prepared.scratch.path.clone();
    let rootfs = PathBuf::from(std::ffi::OsStr::from_bytes(prepared.plan.merged.to_bytes()));
    // crun runs without a cgroup here (see below), so without the device cgroup: its
    // containers lose CAP_MKNOD instead, and every mount they get is nodev.
    let is_crun = runtime
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"crun"));
    let mut config = config_json(&config_spec, &rootfs, &bundle, !is_crun);
    // Rootless on the host's network: that namespace belongs to the host's user namespace, so
    // sysfs cannot be mounted (runc and crun both fail); the host's /sys is bound read-only, as
    // the built-in sandbox does.
    if prepared.plan.bind_sys {
        if let Some(sys) = config["mounts"]
            .as_array_mut()
            .and_then(|m| m.iter_mut().find(|m| m["destination"] == "/sys"))
        {
            *sys = json!({"destination": "/sys", "type": "bind", "source": "/sys",
                          "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
    let config_path = bundle.join("config.json");
    let text = serde_json::to_vec_pretty(&config).map_err(|e| Error::Runtime {
        runtime: runtime.display().to_string(),
        reason: format!("writing config.json: {e}"),
    })?;
    std::fs::write(&config_path, text).map_err(|e| Error::io(&config_path, e))?;
    let state = bundle.join("state");
    std::fs::create_dir(&state).map_err(|e| Error::io(&state, e))?;
    let mut argv = vec![
        runtime.as_os_str().as_bytes().to_vec(),
        b"--root".to_vec(),
        state.as_os_str().as_bytes().to_vec(),
    ];
    // crun refuses hybrid cgroup hierarchies: it gets a unified view in the private mount
    // namespace, and no cgroup of its own (a run needs no limits).
    if is_crun {
        argv.push(b"--cgroup-manager=disabled".to_vec());
        prepared.plan.unified_cgroup = true;
    }
    argv.extend([
        b"run".to_vec(),
        b"--bundle".to_vec(),
        bundle.as_os_str().as_bytes().to_vec(),
        id.into_bytes(),
    ]);
    let envp: Vec<Vec<u8>> = std::env::vars_os()
        .map(|(k, v)| {
            let mut e = k.as_bytes().to_vec();
            e.push(b'=');
            e.extend_from_slice(v.as_bytes());
            e
        })
        .collect();
    prepared.plan.set_command(argv, envp)?;
    execute(prepared)
}

struct ConfigInput {
    args: Vec<String>,
    env: Vec<String>,
    cwd: String,
    hostname: String,
    etc_files: EtcFiles,
    network: Network,
    security: crate::Security,
    readonly: bool,
    tty: bool,
    mounts: Vec<(PathBuf, String, bool)>,
    /// Target and size of each tmpfs.
    tmpfs: Vec<(String, Option<u64>)>,
    user: crate::User,
    /// `--shm-size` in bytes.
    shm_size: u64,
    ulimits: Vec<crate::Ulimit>,
}

fn config_json(c: &ConfigInput, rootfs: &Path, bundle: &Path, device_cgroup: bool) -> Value {
    let mut env = c.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={}", crate::DEFAULT_PATH));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", c.user.home));
    }
    let nosuid = ["nosuid", "noexec", "nodev"];
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": nosuid}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
               "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
               "options": ["nosuid", "noexec", "nodev", "mode=1777",
                           format!("size={}", c.shm_size)]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
               "options": nosuid}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs",
               "options": ["nosuid", "noexec", "nodev", "ro"]}),
    ];
    // The files `prepare` wrote into the bundle (see the `etc` module).
    let (etc_names, readonly) = crate::etc::mounted(c.etc_files);
    let etc_options: &[&str] = if readonly {
        &["rbind", "rprivate", "ro"]
    } else {
        &["rbind", "rprivate"]
    };
    for name in etc_names {
        mounts.push(json!({
            "destination": format!("/etc/{name}"),
            "type": "bind",
            "source": bundle.join(name),
            "options": etc_options,
        }));
    }
    for (source, target, readonly) in &c.mounts {
        let mut options = vec!["rbind", "rprivate", "nodev"];
        if *readonly {
            options.push("ro");
        }
        mounts.push(
            json!({"destination": target, "type": "bind", "source": source,
                           "options": options}),
        );
    }
    for (target, size) in &c.tmpfs {
        let mut options = vec!["nosuid".to_string(), "nodev".into(), "mode=1777".into()];
        if let Some(size) = size {
            options.push(format!("size={size}"));
        }
        mounts.push(
            json!({"destination": target, "type": "tmpfs", "source": "tmpfs",
                           "options": options}),
        );
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    // Network::Private: the runtime is started inside the shared private namespace and
    // inherits it (no "network" entry means "the runtime's own").
    if c.network == Network::None {
        namespaces.push(json!({"type": "network"}));
    }
    // The device rules of the built-in sandbox: deny all, allow the default nodes (Docker's
    // list: null, zero, full, random, urandom, tty, console, ptmx and the ptys).
    let mut devices = vec![json!({"allow": false, "access": "rwm"})];
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        devices.push(
            json!({"allow": true, "type": "c", "major": major, "minor": minor,
                            "access": "rwm"}),
        );
    }
    devices.push(json!({"allow": true, "type": "c", "major": 136, "access": "rwm"}));
    let mut linux = json!({
        "namespaces": namespaces,
        "resources": {"devices": devices},
        "maskedPaths": ["/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                        "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                        "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap"],
        "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys",
                          "/proc/sysrq-trigger"],
    });
    if c.security.privileged {
        linux["maskedPaths"] = json!([]);
        linux["readonlyPaths"] = json!([]);
    } else if c.security.seccomp {
        linux["seccomp"] = crate::seccomp::oci_profile();
    }
    // Privileged: every capability the kernel headers name (up to CAP_CHECKPOINT_RESTORE).
    let mut caps = if c.security.privileged {
        rustix::thread::CapabilitySet::all()
    } else {
        crate::caps::DEFAULT_CAPS
    };
    if !device_cgroup {
        caps.remove(rustix::thread::CapabilitySet::MKNOD);
    }
    let bounding = crate::caps::capability_names(caps);
    let caps: Vec<String> = if c.user.uid == 0 {
        bounding.clone()
    } else {
        Vec::new()
    };
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": c.tty,
            "user": {"uid": c.user.uid, "gid": c.user.gid, "additionalGids": c.user.groups},
            "args": c.args,
            "env": env,
            "cwd": c.cwd,
            "capabilities": {
                "bounding": bounding,
                "effective": caps,
                "permitted": caps,
            },
            "noNewPrivileges": c.security.no_new_privileges,
            // RLIM_INFINITY for -1, as runc reads it.
            "rlimits": c.ulimits.iter().map(|u| json!({
                "type": format!("RLIMIT_{}", u.name.to_ascii_uppercase()),
                "soft": u.soft.unwrap_or(u64::MAX),
                "hard": u.hard.unwrap_or(u64::MAX),
            })).collect::<Vec<_>>(),
        },
        "root": {"path": rootfs, "readonly": c.readonly},
        "hostname": c.hostname,
        "mounts": mounts,
        "linux": linux,
    })
}
