//! RUN: the command in the sandbox over the stage's snapshots; the upper directory becomes
//! the step's layer.

use std::time::Instant;

use tare_dockerfile::{Run, ShellOrExec};

use tare_sandbox::{BindMount, Network, Security};

use crate::config;
use crate::context::{BuildOptions, Entitlement, StageOut, StepCtx};
use crate::error::{io_err, Error};
use crate::key::{RunKey, RunState, StepKey};
use crate::layer::{self, Upper};
use crate::run::{self as sandbox, RunInput};
use crate::secrets;
use crate::steps::mounts;
use crate::steps::{apply_outcome, with_cache};

/// `RUN --security=sandbox|insecure`: insecure (every capability, no seccomp filter) only
/// with `--allow security.insecure`, as BuildKit's entitlement.
fn security(run: &Run, opts: &BuildOptions, line: usize) -> Result<Security, Error> {
    match run.security.as_deref() {
        None | Some("sandbox") => Ok(Security::default()),
        Some("insecure") if opts.allow.contains(&Entitlement::SecurityInsecure) => Ok(Security {
            privileged: true,
            ..Security::default()
        }),
        Some("insecure") => Err(Error::NotAllowed {
            flag: "security",
            value: "insecure",
            entitlement: "security.insecure",
            line,
        }),
        Some(other) => Err(Error::Unsupported {
            flag: "security",
            value: other.to_string(),
            choices: "sandbox or insecure",
            line,
        }),
    }
}

/// The network of this RUN: `--network=host|none` for this step, else (`default` or no
/// flag) the build's `--network`. `host` for one step needs the `network.host` entitlement
/// (`--allow network.host`) or the build's own `--network host`, as in BuildKit.
fn network(run: &Run, opts: &BuildOptions, line: usize) -> Result<Network, Error> {
    let build_network = opts.network;
    match run.network.as_deref() {
        None | Some("default") => Ok(build_network),
        Some("host")
            if build_network == Network::Host || opts.allow.contains(&Entitlement::NetworkHost) =>
        {
            Ok(Network::Host)
        }
        Some("host") => Err(Error::NotAllowed {
            flag: "network",
            value: "host",
            entitlement: "network.host",
            line,
        }),
        Some("none") => Ok(Network::None),
        Some(other) => Err(Error::Unsupported {
            flag: "network",
            value: other.to_string(),
            choices: "default, none or host",
            line,
        }),
    }
}

/// Where a `#!` heredoc script is mounted, as in BuildKit.
const SHEBANG_DIR: &str = "/dev/pipes";

/// Whether a RUN's heredoc runs as a file: its body starts with `#!` (and its name can be one).
fn runs_as_file(doc: &tare_dockerfile::Heredoc) -> bool {
    doc.content.starts_with("#!") && !doc.name.is_empty() && !doc.name.contains('/')
}

/// For a heredoc RUN whose body starts with `#!`: the body as an executable file in the
/// step's scratch directory, bind-mounted read-only at `/dev/pipes/NAME`.
fn shebang_mount(run: &Run, scratch: &std::path::Path) -> Result<Option<BindMount>, Error> {
    let Some(doc) = run.heredoc_script() else {
        return Ok(None);
    };
    if !runs_as_file(doc) {
        return Ok(None);
    }
    let dir = scratch.join("pipes");
    std::fs::create_dir(&dir).map_err(io_err(&dir))?;
    let file = dir.join(&doc.name);
    std::fs::write(&file, doc.content.as_bytes()).map_err(io_err(&file))?;
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .map_err(io_err(&file))?;
    Ok(Some(BindMount {
        source: file,
        target: format!("{SHEBANG_DIR}/{}", doc.name),
        readonly: true,
    }))
}

/// The argument vector: a heredoc script or a shell form goes to the stage's SHELL.
fn argv(run: &Run, st: &StageOut) -> Vec<String> {
    match (run.heredoc_script(), &run.cmd) {
        // A heredoc starting with `#!` runs as a file, with that interpreter, as BuildKit
        // does: mounted read-only at /dev/pipes/NAME (see [`shebang_mount`]), which the
        // stage's SHELL is given to run.
        (Some(doc), _) => {
            let mut a = st
                .config
                .config
                .shell
                .clone()
                .unwrap_or_else(config::default_shell);
            a.push(if runs_as_file(doc) {
                format!("{SHEBANG_DIR}/{}", doc.name)
            } else {
                doc.content.clone()
            });
            a
        }
        (None, ShellOrExec::Exec(a)) => a.clone(),
        (None, ShellOrExec::Shell(_)) => {
            let script = run.shell_script().unwrap_or_default();
            config::command_args(&ShellOrExec::Shell(script), &st.config)
        }
    }
}

pub(crate) fn run(cx: &StepCtx<'_>, st: &mut StageOut, run: &Run) -> Result<bool, Error> {
    mounts::check(run, &st.workdir())?;
    let build = cx.build;
    let line = cx.line();
    let args = argv(run, st);
    let created_by = config::run_created_by(&args, &run.history_args);
    let network = network(run, build.opts, line)?;
    let security = security(run, build.opts, line)?;
    let image_env: Vec<String> = st.config.config.env.clone().unwrap_or_default();
    let user = st.config.config.user.clone().filter(|u| !u.is_empty());
    let key = StepKey::Run(RunKey::new(
        run,
        RunState {
            parent: st.key.clone(),
            argv: args.clone(),
            env: image_env.clone(),
            user: user.clone().unwrap_or_default(),
            workdir: st.workdir(),
            shell: st
                .config
                .config
                .shell
                .clone()
                .unwrap_or_else(config::default_shell),
            network,
            mount_files: mounts::key_files(cx, run)?,
            settings: settings_key(build.opts),
        },
    ));
    let outcome = with_cache(cx, st, &key, |st| {
        crate::platform::check_runnable(&st.config)?;
        let started = Instant::now();
        let scratch = build.scratch_dir()?;
        let mut env = image_env;
        env.extend(run.build_args.iter().map(|(k, v)| format!("{k}={v}")));
        // Secret values reach the step only here: files in the scratch directory (removed
        // with it) and environment entries of this run.
        let step_secrets = secrets::prepare(
            &secrets::Sources {
                secrets: &build.opts.secrets,
                agents: &build.agents,
            },
            &run.mounts,
            &scratch.path().join("secrets"),
            &st.workdir(),
            &env,
        )?;
        env.extend(step_secrets.env.iter().cloned());
        let mut mounts = step_secrets.binds.clone();
        mounts.extend(shebang_mount(run, scratch.path())?);
        let lower = st.tree(build, "image")?;
        let prepared = mounts::prepare(cx, st, run, &lower, scratch.path())?;
        let mut binds = mounts;
        binds.extend(prepared.binds.iter().cloned());
        let code = sandbox::run(
            RunInput {
                args: args.clone(),
                env,
                cwd: st.workdir(),
                user,
                network,
                runtime: build.opts.runtime.as_deref(),
                lower: &lower,
                scratch: scratch.path(),
                mounts: binds,
                tmpfs: prepared.tmpfs.clone(),
                security,
                extra_hosts: build.opts.extra_hosts.clone(),
                shm_size: build.opts.shm_size,
                ulimits: build.opts.ulimits.clone(),
                cgroup_parent: build.opts.cgroup_parent.clone(),
            },
            build.reporter,
            cx.step,
        )?;
        tracing::debug!(
            step = cx.step.number,
            ms = started.elapsed().as_millis() as u64,
            "RUN process ended"
        );
        prepared.remove_stubs(&scratch.path().join("upper"));
        drop(prepared);
        if code != 0 {
            return Err(Error::RunFailed {
                file: build.opts.dockerfile_name.clone(),
                line,
                command: shell_words(&args),
                code,
            });
        }
        layer::commit(
            build.store,
            &scratch.path().join("upper"),
            Upper::Overlay,
            &lower,
            build.mtime_clamp(),
        )
    })?;
    Ok(apply_outcome(st, outcome, created_by, cx.origin()))
}

/// `--add-host`, `--ulimit` and `--shm-size` as the cache key sees them: a step run with
/// other settings may have seen other hosts or hit other limits.
fn settings_key(opts: &BuildOptions) -> Vec<String> {
    let mut out: Vec<String> = opts
        .extra_hosts
        .iter()
        .map(|h| format!("add-host {}={}", h.host, h.ip))
        .collect();
    let limit = |v: Option<u64>| v.map_or_else(|| "-1".to_string(), |v| v.to_string());
    out.extend(
        opts.ulimits
            .iter()
            .map(|u| format!("ulimit {}={}:{}", u.name, limit(u.soft), limit(u.hard))),
    );
    out.extend(opts.shm_size.map(|size| format!("shm-size {size}")));
    out
}

/// The command for an error message, quoted like a shell would need it.
fn shell_words(args: &[String]) -> String {
    args.iter()
        .map(|a| {
            if a.is_empty() || a.contains(|c: char| c.is_whitespace() || "\"'\\$`".contains(c)) {
                tare_dockerfile::go_quote(a)
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
