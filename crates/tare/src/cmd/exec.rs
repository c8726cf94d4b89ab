//! `tare exec`: run a command in a running container, as `docker exec` does: in its
//! namespaces, with its environment, user and working directory unless given, and with its
//! confinement.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tare_sandbox::containers::{Containers, Status};
use tare_sandbox::{ExecSpec, Security, Stdio};

use super::run::{read_env_file, set_env};
use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// docker's detached exec; refused: the process would have no owner once tare returns.
    #[arg(short = 'd', long)]
    detach: bool,
    /// Set an environment variable (`K=V`, or `K` to pass tare's own value).
    #[arg(short = 'e', long = "env", value_name = "K=V")]
    env: Vec<String>,
    /// Read environment variables from a file (`K=V` lines, `#` comments).
    #[arg(long, value_name = "FILE")]
    env_file: Vec<PathBuf>,
    /// Keep stdin open and pass it to the process.
    #[arg(short = 'i', long)]
    interactive: bool,
    /// Give the process a pseudo-terminal.
    #[arg(short = 't', long)]
    tty: bool,
    /// User as name or uid, with an optional group: USER[:GROUP] (default: the container's).
    #[arg(short = 'u', long, value_name = "USER[:GROUP]")]
    user: Option<String>,
    /// Working directory inside the container (default: the container's); it must exist.
    #[arg(short = 'w', long = "workdir", value_name = "DIR")]
    workdir: Option<String>,
    /// Give the process every capability and no seccomp filter.
    #[arg(long)]
    privileged: bool,
    /// The container: name, ID or unique ID prefix.
    container: String,
    /// The command and its arguments.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required = true,
        num_args = 1..
    )]
    command: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if args.detach {
        bail!(
            "exec -d: tare has no daemon to own a detached process; run it in the background \
             with the shell (`tare exec C CMD &`), or start it with the container"
        );
    }
    let containers = Containers::open(&ctx.root)?;
    let record = containers.find(&args.container)?;
    if record.status() != Status::Running {
        bail!("container {} is not running", args.container);
    }
    if let Some(runtime) = &record.exec.runtime {
        bail!(
            "container {} runs under the OCI runtime {runtime}: use `{runtime} exec` (tare \
             joins only the containers of its own sandbox)",
            args.container
        );
    }
    let owner = record
        .owner_pid
        .context("the running container has no owner process")?;
    let pid = containers.init_pid(&record).with_context(|| {
        format!(
            "container {} was started before tare exec existed, or has not started yet",
            args.container
        )
    })?;
    // Rootless: into the container's user namespace while tare has one thread, before the
    // store is read (see main).
    tare_sandbox::join_user_namespace(pid, owner)
        .with_context(|| format!("container {}", args.container))?;

    let store = tare_store::Store::open(&ctx.root)
        .with_context(|| format!("opening the store {}", ctx.root.display()))?;
    let mut layers = vec![containers.upper_dir(&record.id)];
    // A container on copy-based snapshots (`tare run` where overlayfs is refused) has its
    // whole filesystem in one directory while it runs.
    let copy_root = containers.copy_root_dir(&record.id);
    if copy_root.is_dir() {
        layers = vec![copy_root];
    } else {
        for diff_id in record.image_layers.iter().rev() {
            let digest: tare_store::Digest = diff_id
                .parse()
                .with_context(|| format!("container {}: bad layer {diff_id}", record.name))?;
            layers.push(
                tare_layer::snapshot(&store, &digest)
                    .with_context(|| format!("extracting layer {diff_id}"))?,
            );
        }
    }

    let mut env = record.exec.env.clone();
    for file in &args.env_file {
        read_env_file(&mut env, file)?;
    }
    for e in &args.env {
        set_env(&mut env, e);
    }
    let security = Security {
        seccomp: !record.exec.seccomp_unconfined,
        no_new_privileges: record.exec.no_new_privileges,
        privileged: args.privileged,
    };
    let spec = ExecSpec {
        pid,
        owner,
        layers,
        args: args.command,
        env,
        cwd: args
            .workdir
            .or_else(|| record.exec.workdir.clone())
            .unwrap_or_else(|| "/".into()),
        user: args.user.or_else(|| record.exec.user.clone()),
        security,
        tty: args.tty,
        stdin: if args.interactive {
            Stdio::Inherit
        } else {
            Stdio::Null
        },
        stdout: Stdio::Inherit,
        stderr: Stdio::Inherit,
    };
    match tare_sandbox::exec(spec) {
        Ok(code) => Ok(ExitCode::from(code.clamp(0, 255) as u8)),
        // As docker: a command that cannot run is reported, with its exit code (126, 127).
        Err(e @ tare_sandbox::Error::Exec { .. }) => {
            eprintln!("error: {e}");
            Ok(ExitCode::from(e.exit_code() as u8))
        }
        Err(e) => Err(e).with_context(|| format!("exec in container {}", args.container)),
    }
}
