//! Running through an OCI runtime (`--runtime runc|crun|PATH`) instead of the embedded sandbox.
//!
//! The root filesystem is mounted exactly as for [`crate::run`], in a private mount namespace
//! of a child process; that child then execs `RUNTIME --root STATE run --bundle DIR ID` with a
//! `config.json` written from the same [`RunSpec`]. The runtime sees the overlay mount; when it
//! exits the namespace and its mounts go away. The runtime's state directory and the bundle are
//! temporary, and the mount-point stubs the runtime creates are removed like the sandbox's.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxDeviceCgroupBuilder,
    LinuxDeviceType, LinuxNamespaceBuilder, LinuxNamespaceType, LinuxResourcesBuilder,
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

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
    let input = ConfigInput {
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
    let cgroup_parent = spec.cgroup_parent.clone();
    // The argv is completed once the scratch directory (bundle and state) is known.
    let mut prepared = prepare(spec, Mode::Runtime)?;
    let bundle = prepared.scratch.path.clone();
    let rootfs = PathBuf::from(std::ffi::OsStr::from_bytes(prepared.plan.merged.to_bytes()));
    // crun runs without a cgroup here (see below), so without the device cgroup: its
    // containers lose CAP_MKNOD instead, and every mount they get is nodev.
    let is_crun = runtime
        .file_name()
        .is_some_and(|n| n.as_bytes().starts_with(b"crun"));
    let config_error = |e: String| Error::Runtime {
        runtime: runtime.display().to_string(),
        reason: format!("writing config.json: {e}"),
    };
    let bind_sys = prepared.plan.bind_sys;
    let mut config =
        config_spec(&input, &rootfs, &bundle, !is_crun, bind_sys).map_err(config_error)?;
    // --cgroup-parent: the runtime starts in PARENT/tare-ID of every hierarchy (joined before
    // its exec) and puts the container in a cgroup inside it (crun, which runs without a
    // cgroup manager, leaves it there).
    if let (Some(parent), Some(joined), Some(linux)) =
        (&cgroup_parent, &prepared.cgroups, config.linux_mut())
    {
        linux.set_cgroups_path(Some(joined.runtime_path(parent).into()));
    }
    let config_path = bundle.join("config.json");
    let text = serde_json::to_vec_pretty(&config).map_err(|e| config_error(e.to_string()))?;
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

/// The runtime's `config.json` for a run: the same mounts, namespaces, devices, capabilities,
/// confinement and limits as the built-in sandbox. `bind_sys`: rootless on the host's network,
/// that namespace belongs to the host's user namespace, so sysfs cannot be mounted (runc and
/// crun both fail); the host's /sys is bound read-only instead, as the built-in sandbox does.
fn config_spec(
    c: &ConfigInput,
    rootfs: &Path,
    bundle: &Path,
    device_cgroup: bool,
    bind_sys: bool,
) -> Result<Spec, String> {
    let env = crate::plan::complete_env(c.env.clone(), &c.user.home);
    let mount = |destination: &str, typ: &str, source: &Path, options: &[&str]| {
        MountBuilder::default()
            .destination(destination)
            .typ(typ)
            .source(source)
            .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
            .build()
    };
    let nosuid = ["nosuid", "noexec", "nodev"];
    let shm_size = format!("size={}", c.shm_size);
    let sys = if bind_sys {
        mount(
            "/sys",
            "bind",
            Path::new("/sys"),
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )
    } else {
        mount(
            "/sys",
            "sysfs",
            Path::new("sysfs"),
            &["nosuid", "noexec", "nodev", "ro"],
        )
    };
    let mut mounts = vec![
        mount("/proc", "proc", Path::new("proc"), &nosuid),
        mount(
            "/dev",
            "tmpfs",
            Path::new("tmpfs"),
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        ),
        mount(
            "/dev/pts",
            "devpts",
            Path::new("devpts"),
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        ),
        mount(
            "/dev/shm",
            "tmpfs",
            Path::new("shm"),
            &["nosuid", "noexec", "nodev", "mode=1777", &shm_size],
        ),
        mount("/dev/mqueue", "mqueue", Path::new("mqueue"), &nosuid),
        sys,
    ];
    // The files `prepare` wrote into the bundle (see the `etc` module).
    let (etc_names, readonly) = crate::etc::mounted(c.etc_files);
    let etc_options: &[&str] = if readonly {
        &["rbind", "rprivate", "ro"]
    } else {
        &["rbind", "rprivate"]
    };
    for name in etc_names {
        let target = format!("/etc/{name}");
        mounts.push(mount(&target, "bind", &bundle.join(name), etc_options));
    }
    for (source, target, readonly) in &c.mounts {
        let mut options = vec!["rbind", "rprivate", "nodev"];
        if *readonly {
            options.push("ro");
        }
        mounts.push(mount(target, "bind", source, &options));
    }
    for (target, size) in &c.tmpfs {
        let size = size.map(|size| format!("size={size}"));
        let mut options = vec!["nosuid", "nodev", "mode=1777"];
        options.extend(size.as_deref());
        mounts.push(mount(target, "tmpfs", Path::new("tmpfs"), &options));
    }
    let mounts = mounts
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;

    let mut namespaces = vec![
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
    ];
    // Network::Private: the runtime is started inside the shared private namespace and
    // inherits it (no "network" entry means "the runtime's own").
    if c.network == Network::None {
        namespaces.push(LinuxNamespaceType::Network);
    }
    let namespaces = namespaces
        .into_iter()
        .map(|typ| LinuxNamespaceBuilder::default().typ(typ).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;

    // The device rules of the built-in sandbox: deny all, allow the default nodes (Docker's
    // list: null, zero, full, random, urandom, tty, console, ptmx and the ptys).
    let mut devices = vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()];
    let char_device = |major: i64, minor: Option<i64>| {
        let rule = LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .typ(LinuxDeviceType::C)
            .major(major)
            .access("rwm");
        match minor {
            Some(minor) => rule.minor(minor).build(),
            None => rule.build(),
        }
    };
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
        devices.push(char_device(major, Some(minor)));
    }
    devices.push(char_device(136, None));
    let devices = devices
        .into_iter()
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let resources = LinuxResourcesBuilder::default()
        .devices(devices)
        .build()
        .map_err(|e| e.to_string())?;

    let strings = |items: &[&str]| items.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let (masked, readonly_paths) = if c.security.privileged {
        (Vec::new(), Vec::new())
    } else {
        (
            strings(&[
                "/proc/acpi",
                "/proc/kcore",
                "/proc/keys",
                "/proc/latency_stats",
                "/proc/timer_list",
                "/proc/timer_stats",
                "/proc/sched_debug",
                "/proc/scsi",
                "/sys/firmware",
                "/sys/devices/virtual/powercap",
            ]),
            strings(&[
                "/proc/bus",
                "/proc/fs",
                "/proc/irq",
                "/proc/sys",
                "/proc/sysrq-trigger",
            ]),
        )
    };
    let mut linux = LinuxBuilder::default()
        .namespaces(namespaces)
        .resources(resources)
        .masked_paths(masked)
        .readonly_paths(readonly_paths)
        .build()
        .map_err(|e| e.to_string())?;
    if c.security.seccomp && !c.security.privileged {
        linux.set_seccomp(Some(crate::seccomp::oci_profile()?));
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
    let bounding: Capabilities = crate::caps::capability_names(caps)
        .into_iter()
        .map(|name| from_name::<Capability>(&name))
        .collect::<Result<_, _>>()?;
    let caps = if c.user.uid == 0 {
        bounding.clone()
    } else {
        Capabilities::new()
    };
    let mut capabilities = LinuxCapabilitiesBuilder::default()
        .bounding(bounding)
        .effective(caps.clone())
        .permitted(caps)
        .build()
        .map_err(|e| e.to_string())?;
    capabilities.set_inheritable(None);
    capabilities.set_ambient(None);

    // RLIM_INFINITY for -1, as runc reads it.
    let rlimits = c
        .ulimits
        .iter()
        .map(|u| {
            let typ: PosixRlimitType =
                from_name(&format!("RLIMIT_{}", u.name.to_ascii_uppercase()))?;
            PosixRlimitBuilder::default()
                .typ(typ)
                .soft(u.soft.unwrap_or(u64::MAX))
                .hard(u.hard.unwrap_or(u64::MAX))
                .build()
                .map_err(|e| e.to_string())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let user = UserBuilder::default()
        .uid(c.user.uid)
        .gid(c.user.gid)
        .additional_gids(c.user.groups.clone())
        .build()
        .map_err(|e| e.to_string())?;
    let process = ProcessBuilder::default()
        .terminal(c.tty)
        .user(user)
        .args(c.args.clone())
        .env(env)
        .cwd(&c.cwd)
        .capabilities(capabilities)
        .no_new_privileges(c.security.no_new_privileges)
        .rlimits(rlimits)
        .build()
        .map_err(|e| e.to_string())?;

    let root = RootBuilder::default()
        .path(rootfs)
        .readonly(c.readonly)
        .build()
        .map_err(|e| e.to_string())?;
    let mut spec = SpecBuilder::default()
        .version("1.0.2")
        .root(root)
        .hostname(c.hostname.clone())
        .mounts(mounts)
        .process(process)
        .linux(linux)
        .build()
        .map_err(|e| e.to_string())?;
    spec.set_annotations(None);
    Ok(spec)
}

/// An oci-spec enum from its name in `config.json` (`CAP_CHOWN`, `RLIMIT_NOFILE`).
pub(crate) fn from_name<T: serde::de::DeserializeOwned>(name: &str) -> Result<T, String> {
    serde_json::from_value(serde_json::Value::String(name.to_string()))
        .map_err(|_| format!("{name} has no OCI name"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    /// Three runs: a root build step with bind, cache, secret and tmpfs mounts, two ulimits
    /// and no network; a non-root container with a terminal, a read-only root and
    /// no-new-privileges, rootless on the host's network (`bind_sys`) through crun (no device
    /// cgroup); a privileged step. With the device cgroup and `bind_sys` flags.
    fn inputs() -> Vec<(ConfigInput, bool, bool)> {
        let user = |uid, groups: Vec<u32>| crate::User {
            uid,
            gid: uid,
            groups,
            home: if uid == 0 {
                "/root".into()
            } else {
                "/home/app".into()
            },
        };
        vec![
            (
                ConfigInput {
                    args: vec!["/bin/sh".into(), "-c".into(), "make".into()],
                    env: vec!["A=1".into(), "PATH=/usr/bin".into()],
                    cwd: "/src".into(),
                    hostname: "buildkitsandbox".into(),
                    etc_files: EtcFiles::BuildStep,
                    network: Network::None,
                    security: crate::Security::default(),
                    readonly: false,
                    tty: false,
                    mounts: vec![
                        ("/ctx".into(), "/src".into(), true),
                        ("/cache/go".into(), "/root/.cache".into(), false),
                        ("/run/tare/secret".into(), "/run/secrets/token".into(), true),
                    ],
                    tmpfs: vec![("/tmp/x".into(), Some(1 << 20)), ("/tmp/y".into(), None)],
                    user: user(0, vec![0, 10]),
                    shm_size: 64 << 20,
                    ulimits: vec![
                        crate::Ulimit::parse("nofile=1024:2048").unwrap(),
                        crate::Ulimit::parse("core=-1").unwrap(),
                    ],
                },
                true,
                false,
            ),
            (
                ConfigInput {
                    args: vec!["top".into()],
                    env: vec![],
                    cwd: "/".into(),
                    hostname: "c0ffee".into(),
                    etc_files: EtcFiles::Container,
                    network: Network::Private,
                    security: crate::Security {
                        seccomp: true,
                        no_new_privileges: true,
                        privileged: false,
                    },
                    readonly: true,
                    tty: true,
                    mounts: vec![],
                    tmpfs: vec![],
                    user: user(1000, vec![1000]),
                    shm_size: 1 << 30,
                    ulimits: vec![],
                },
                false,
                true,
            ),
            (
                ConfigInput {
                    args: vec!["id".into()],
                    env: vec!["HOME=/x".into()],
                    cwd: "/".into(),
                    hostname: "p".into(),
                    etc_files: EtcFiles::BuildStep,
                    network: Network::Host,
                    security: crate::Security {
                        seccomp: true,
                        no_new_privileges: false,
                        privileged: true,
                    },
                    readonly: false,
                    tty: false,
                    mounts: vec![],
                    tmpfs: vec![],
                    user: user(0, vec![]),
                    shm_size: 64 << 20,
                    ulimits: vec![],
                },
                true,
                false,
            ),
        ]
    }

    /// The capability lists in a fixed order: oci-spec keeps them in a set.
    fn sort_capabilities(config: &mut Value) {
        let Some(caps) = config["process"]["capabilities"].as_object_mut() else {
            return;
        };
        for list in caps.values_mut() {
            if let Some(names) = list.as_array_mut() {
                names.sort_by(|a, b| a.as_str().cmp(&b.as_str()));
            }
        }
    }

    /// The document is what the `json!` version wrote for the same runs (kept in
    /// testdata/oci_config_before.json): process args, env, cwd, user, terminal,
    /// capabilities, rlimits and no_new_privileges, the root, the hostname, every mount with
    /// its options, the namespaces, the device rules, the seccomp profile, the masked and
    /// read-only paths, and no field more (no cgroupsPath, no annotations).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn config_json_is_the_same_document_as_before() {
        let before: Vec<Value> =
            serde_json::from_str(include_str!("testdata/oci_config_before.json")).unwrap();
        let inputs = inputs();
        assert_eq!(before.len(), inputs.len());
        for (i, ((input, device_cgroup, bind_sys), mut old)) in
            inputs.into_iter().zip(before).enumerate()
        {
            let spec = config_spec(
                &input,
                Path::new("/b/rootfs"),
                Path::new("/b"),
                device_cgroup,
                bind_sys,
            )
            .unwrap();
            let mut new = serde_json::to_value(&spec).unwrap();
            sort_capabilities(&mut old);
            sort_capabilities(&mut new);
            for key in [
                "process",
                "root",
                "hostname",
                "mounts",
                "linux",
                "ociVersion",
            ] {
                assert_eq!(new[key], old[key], "run {i}: {key}");
            }
            assert_eq!(new, old, "run {i}");
            assert!(new["linux"].get("cgroupsPath").is_none());
        }
    }

    #[test]
    fn every_docker_ulimit_and_default_capability_has_an_oci_name() {
        for name in crate::caps::capability_names(rustix::thread::CapabilitySet::all()) {
            from_name::<Capability>(&name).unwrap();
        }
        for (name, _) in crate::limits::RESOURCES {
            let rlimit = format!("RLIMIT_{}", name.to_ascii_uppercase());
            from_name::<oci_spec::runtime::PosixRlimitType>(&rlimit).unwrap();
        }
        assert!(from_name::<Capability>("CAP_NOT_ONE").is_err());
    }
}
