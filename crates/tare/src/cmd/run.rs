//! `tare run`: a container from an image, in the sandbox of `tare-sandbox`, with docker's
//! flags and rules (CMD/ENTRYPOINT combination, environment, volumes, exit codes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tare_sandbox::containers::{Container, Containers, ExecDefaults};
use tare_sandbox::{BindMount, EtcFiles, Network, Rootfs, RunSpec, Security, Stdio};

use super::detach;
use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Remove the container (and everything it wrote) when it exits.
    #[arg(long)]
    rm: bool,
    /// Run in the background and print the container's ID: a supervising `tare` process
    /// owns it, and its output goes to a log file in the store (`tare logs`, `stop`, `wait`).
    #[arg(short = 'd', long)]
    detach: bool,
    /// docker's restart policy: only `no` (tare has no daemon to restart a container).
    #[arg(long, value_name = "no")]
    restart: Option<String>,
    /// Name the container (for `tare ps`, `rm`, `export`, `commit`).
    #[arg(long)]
    name: Option<String>,
    /// Set an environment variable (`K=V`, or `K` to pass tare's own value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read environment variables from a file (`K=V` lines, `#` comments).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Working directory inside the container (created when missing).
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// User as name or uid, with an optional group: USER[:GROUP].
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Override the image's ENTRYPOINT (also drops its CMD, like docker).
    #[arg(long, value_name = "CMD")]
    entrypoint: Option<String>,
    /// Network: default (a private network namespace with outside access through pasta; the
    /// host's interfaces and abstract sockets are out of reach), host, or none (loopback only).
    #[arg(long, value_name = "default|host|none", default_value = "default")]
    network: String,
    /// Security options: `seccomp=unconfined` (no seccomp filter), `no-new-privileges`.
    #[arg(long = "security-opt", value_name = "OPT")]
    security_opt: Vec<String>,
    /// Bind-mount a host path: HOST:CTR[:ro|rw].
    // docker's `-v` short form needs the global `-v` (verbose) to stop being global.
    #[arg(short = 'v', long = "volume", value_name = "HOST:CTR[:ro]")]
    volume: Vec<String>,
    /// The container's host name (default: its short id).
    #[arg(long, value_name = "NAME")]
    hostname: Option<String>,
    /// Keep stdin open and pass it to the container.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give the container a pseudo-terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    read_only: bool,
    /// Run through an OCI runtime instead of the embedded sandbox: runc, crun or a path.
    #[arg(long, value_name = "runc|crun|PATH")]
    runtime: Option<String>,
    /// The image: name[:tag], id or id prefix.
    image: String,
    /// The command and its arguments (default: the image's CMD).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    // Set only for the supervisor `tare run -d` starts: it adopts the container made for it.
    let supervise = std::env::var(detach::SUPERVISE_ENV).ok();
    if supervise.is_some() {
        tare_sandbox::containers::new_session()?;
    }
    if let Some(policy) = args.restart.as_deref().filter(|p| *p != "no") {
        bail!(
            "--restart {policy}: tare has no daemon to restart containers; run `tare run` under \
             systemd or another supervisor instead"
        );
    }
    if args.detach && (args.tty || args.interactive) {
        bail!("-d cannot be combined with -t or -i: tare has no attach; use `tare logs -f`");
    }
    let network = match args.network.as_str() {
        "default" | "private" | "bridge" => Network::Private,
        "host" => Network::Host,
        "none" => Network::None,
        other => bail!("unsupported network {other:?}: use default, host or none"),
    };
    let security = parse_security_opts(&args.security_opt)?;
    let mounts = args
        .volume
        .iter()
        .map(|v| parse_volume(v))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = tare_store::Store::open(&ctx.root)
        .with_context(|| format!("opening the store {}", ctx.root.display()))?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("unable to find image {:?}", args.image))?;
    let config = &image.config.config;

    let command = combine_command(
        config.entrypoint.as_deref(),
        config.cmd.as_deref(),
        args.entrypoint.as_deref(),
        &args.command,
    )?;
    let mut env = config.env.clone().unwrap_or_default();
    for file in &args.env_file {
        read_env_file(&mut env, file)?;
    }
    for e in &args.env {
        set_env(&mut env, e);
    }

    let mut lower = Vec::new();
    for diff_id in image.config.rootfs.diff_ids.iter().rev() {
        let dir = tare_layer::snapshot(&store, diff_id)
            .with_context(|| format!("extracting layer {diff_id}"))?;
        lower.push(dir);
    }

    let containers = Containers::open(&ctx.root)?;
    let record = match &supervise {
        Some(id) => detach::adopt(&containers, id)?,
        None => containers
            .create(
                Container {
                    id: String::new(),
                    name: String::new(),
                    image: args.image.clone(),
                    image_id: image.id.to_string(),
                    image_layers: image
                        .config
                        .rootfs
                        .diff_ids
                        .iter()
                        .map(|d| d.to_string())
                        .collect(),
                    command: command.clone(),
                    created: now(),
                    // A detached container is owned by its supervisor, once it starts.
                    owner_pid: (!args.detach).then(std::process::id),
                    exit_code: None,
                    finished: None,
                    exec: Default::default(),
                },
                args.name.as_deref(),
            )
            .context("creating the container")?,
    };
    if args.detach && supervise.is_none() {
        return detach::start(&containers, &record);
    }
    if lower.is_empty() {
        // An image without layers: overlayfs needs one lower directory.
        let empty = containers.dir(&record.id).join("empty");
        std::fs::create_dir_all(&empty).with_context(|| format!("creating {}", empty.display()))?;
        lower.push(empty);
    }
    // Where overlayfs is refused (or TARE_SNAPSHOTTER=copy), the container runs on a merged
    // copy of its layers, as RUN steps do; the copy's changes become its writable layer when
    // it ends, so `tare diff`, `commit` and `export` read them as overlay's.
    let copy = match tare_build::snapshotter(&containers.dir(&record.id))? {
        tare_build::Snapshotter::Overlay => None,
        tare_build::Snapshotter::Copy => {
            let dir = containers.copy_root_dir(&record.id);
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let mut snap = tare_layer::copy_snapshot::CopySnapshot::make(&lower, &dir)
                .context("copying the image's layers (copy-based snapshots)")?;
            // For `tare ps -s`, `commit` and `export` while the container runs.
            snap.save_stamps(&containers.stamps_path(&record.id))
                .context("saving the copy's stamps")?;
            Some(snap)
        }
    };
    if !args
        .env
        .iter()
        .chain(env.iter())
        .any(|e| e.starts_with("HOSTNAME="))
    {
        env.push(format!(
            "HOSTNAME={}",
            args.hostname.as_deref().unwrap_or(record.short_id())
        ));
    }

    let cwd = args
        .workdir
        .clone()
        .or_else(|| config.working_dir.clone().filter(|w| !w.is_empty()))
        .unwrap_or_else(|| "/".into());
    let user = args
        .user
        .clone()
        .or_else(|| config.user.clone().filter(|u| !u.is_empty()));
    // What `tare exec` starts from: this process's environment, user and directory.
    let mut record = record;
    record.exec = ExecDefaults {
        env: env.clone(),
        user: user.clone(),
        workdir: Some(cwd.clone()),
        seccomp_unconfined: !security.seccomp,
        no_new_privileges: security.no_new_privileges,
        runtime: args.runtime.clone(),
    };
    containers
        .save(&record)
        .with_context(|| format!("recording container {}", record.name))?;
    let rootfs = match &copy {
        None => Rootfs::Overlay {
            lower,
            upper: containers.upper_dir(&record.id),
            work: containers.work_dir(&record.id),
        },
        Some(snap) => Rootfs::Dir(snap.path().to_path_buf()),
    };
    let spec = RunSpec {
        rootfs,
        args: command,
        env,
        cwd,
        user,
        network,
        security,
        hostname: args
            .hostname
            .clone()
            .unwrap_or_else(|| record.short_id().to_string()),
        etc_files: EtcFiles::Container,
        mounts,
        tmpfs: Vec::new(),
        readonly_rootfs: args.read_only,
        // Docker keeps a volume's mount point in the container's layer.
        remove_mount_points: false,
        tty: args.tty,
        stdin: if args.interactive {
            Stdio::Inherit
        } else {
            Stdio::Null
        },
        stdout: Stdio::Inherit,
        stderr: Stdio::Inherit,
        on_signal: tare_sandbox::OnSignal::Forward,
        pid_file: Some(containers.pid_path(&record.id)),
        // docker run's --add-host, --shm-size and --ulimit are not offered yet.
        extra_hosts: Vec::new(),
        shm_size: None,
        ulimits: Vec::new(),
        cgroup_parent: None,
    };
    let result = match &args.runtime {
        Some(name) => tare_sandbox::oci::find_runtime(name)
            .and_then(|runtime| tare_sandbox::oci::run_with_runtime(spec, &runtime)),
        None => tare_sandbox::run(spec),
    };

    let code = match &result {
        Ok(code) => *code,
        Err(e) => e.exit_code(),
    };
    if args.rm {
        containers
            .remove(&record)
            .with_context(|| format!("removing container {}", record.name))?;
    } else {
        // The copy's changes move into the writable layer before the container is recorded
        // as exited (a failure still records the exit, then is reported).
        let moved = copy.map_or(Ok(()), |snap| {
            snap.into_upper(&containers.upper_dir(&record.id))
                .with_context(|| format!("keeping the changes of container {}", record.name))
        });
        let mut done = record.clone();
        done.exit_code = Some(code);
        done.finished = Some(now());
        done.owner_pid = None;
        containers
            .save(&done)
            .with_context(|| format!("recording container {}", record.name))?;
        moved?;
    }
    match result {
        Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        // A command that cannot run is reported like docker, with its exit code.
        Err(e @ tare_sandbox::Error::Exec { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(code as u8))
        }
        Err(e) => Err(e).context("running the container"),
    }
}

/// Docker's rules: `--entrypoint` replaces the image's ENTRYPOINT and drops its CMD; a command
/// on the command line replaces CMD; the process is ENTRYPOINT followed by CMD.
pub(crate) fn combine_command(
    image_entrypoint: Option<&[String]>,
    image_cmd: Option<&[String]>,
    entrypoint: Option<&str>,
    command: &[String],
) -> anyhow::Result<Vec<String>> {
    let (entry, default_cmd): (Vec<String>, Vec<String>) = match entrypoint {
        Some("") => (Vec::new(), Vec::new()),
        Some(e) => (vec![e.to_string()], Vec::new()),
        None => (
            image_entrypoint.map(<[String]>::to_vec).unwrap_or_default(),
            image_cmd.map(<[String]>::to_vec).unwrap_or_default(),
        ),
    };
    let cmd = if command.is_empty() {
        default_cmd
    } else {
        command.to_vec()
    };
    let all: Vec<String> = entry.into_iter().chain(cmd).collect();
    if all.is_empty() {
        bail!("no command specified: the image has no CMD or ENTRYPOINT and none was given");
    }
    Ok(all)
}

/// Applies the `K=V` lines of an env file (`#` comments and blank lines skipped).
pub(crate) fn read_env_file(env: &mut Vec<String>, file: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(file)
        .with_context(|| format!("reading env file {}", file.display()))?;
    for line in text.lines() {
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        set_env(env, line);
    }
    Ok(())
}

/// Adds or replaces `K=V`; a bare `K` takes tare's own value, or is dropped when unset.
pub(crate) fn set_env(env: &mut Vec<String>, entry: &str) {
    let (key, value) = match entry.split_once('=') {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => match std::env::var(entry) {
            Ok(v) => (entry.to_string(), v),
            Err(_) => return,
        },
    };
    let prefix = format!("{key}=");
    env.retain(|e| !e.starts_with(&prefix) && e != &key);
    env.push(format!("{key}={value}"));
}

/// docker's `--security-opt` values that tare knows: `seccomp=unconfined`, and
/// `no-new-privileges` (also `no-new-privileges=true|false`, `no-new-privileges:true`).
fn parse_security_opts(opts: &[String]) -> anyhow::Result<Security> {
    let mut security = Security::default();
    for opt in opts {
        let (key, value) = match opt.split_once(['=', ':']) {
            Some((k, v)) => (k, Some(v)),
            None => (opt.as_str(), None),
        };
        match (key, value) {
            ("seccomp", Some("unconfined")) => security.seccomp = false,
            ("seccomp", Some(profile)) => bail!(
                "--security-opt seccomp={profile}: custom seccomp profiles are not supported (only unconfined)"
            ),
            ("no-new-privileges", None | Some("true")) => security.no_new_privileges = true,
            ("no-new-privileges", Some("false")) => security.no_new_privileges = false,
            _ => bail!(
                "--security-opt {opt}: unsupported (use seccomp=unconfined or no-new-privileges)"
            ),
        }
    }
    Ok(security)
}

/// `HOST:CTR[:ro|rw]`; a missing host directory is created, as docker does.
fn parse_volume(spec: &str) -> anyhow::Result<BindMount> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, target, mode) = match parts.as_slice() {
        [h, c] => (*h, *c, ""),
        [h, c, m] => (*h, *c, *m),
        _ => bail!("invalid volume {spec:?}: expected HOST:CTR[:ro]"),
    };
    let readonly = match mode {
        "" | "rw" => false,
        "ro" => true,
        other => bail!("invalid volume {spec:?}: unknown mode {other:?} (ro or rw)"),
    };
    if !host.starts_with('/') {
        bail!("invalid volume {spec:?}: the host path {host:?} must be absolute (named volumes are not supported)");
    }
    if !target.starts_with('/') || target.split('/').any(|c| c == "..") {
        bail!(
            "invalid volume {spec:?}: the container path {target:?} must be absolute, without .."
        );
    }
    let host = Path::new(host);
    if !host.exists() {
        std::fs::create_dir_all(host)
            .with_context(|| format!("creating volume source {}", host.display()))?;
    }
    Ok(BindMount {
        source: host.to_path_buf(),
        target: target.to_string(),
        readonly,
    })
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn command_combines_like_docker() {
        let ep = v(&["/entry", "-x"]);
        let cmd = v(&["default"]);
        assert_eq!(
            combine_command(Some(&ep), Some(&cmd), None, &[]).unwrap(),
            v(&["/entry", "-x", "default"])
        );
        assert_eq!(
            combine_command(Some(&ep), Some(&cmd), None, &v(&["given"])).unwrap(),
            v(&["/entry", "-x", "given"])
        );
        assert_eq!(
            combine_command(Some(&ep), Some(&cmd), Some("/other"), &[]).unwrap(),
            v(&["/other"])
        );
        assert_eq!(
            combine_command(Some(&ep), Some(&cmd), Some(""), &v(&["ls"])).unwrap(),
            v(&["ls"])
        );
        assert!(combine_command(None, None, None, &[]).is_err());
    }

    #[test]
    fn env_entries_replace_by_key() {
        let mut env = v(&["A=1", "B=2"]);
        set_env(&mut env, "A=3");
        set_env(&mut env, "TARE_SURELY_UNSET_VARIABLE");
        assert_eq!(env, v(&["B=2", "A=3"]));
    }

    #[test]
    fn security_options_parse_like_docker() {
        let s = |o: &[&str]| parse_security_opts(&v(o));
        assert_eq!(s(&[]).unwrap(), Security::default());
        assert!(!s(&["seccomp=unconfined"]).unwrap().seccomp);
        assert!(s(&["no-new-privileges"]).unwrap().no_new_privileges);
        assert!(s(&["no-new-privileges:true"]).unwrap().no_new_privileges);
        assert!(!s(&["no-new-privileges=false"]).unwrap().no_new_privileges);
        assert!(s(&["seccomp=/some/profile.json"]).is_err());
        assert!(s(&["apparmor=unconfined"]).is_err());
    }

    #[test]
    fn volumes_parse_with_modes() {
        let m = parse_volume("/tmp:/data:ro").unwrap();
        assert_eq!((m.target.as_str(), m.readonly), ("/data", true));
        assert!(parse_volume("rel:/data").is_err());
        assert!(parse_volume("/tmp:data").is_err());
        assert!(parse_volume("/tmp:/data:xx").is_err());
    }
}
