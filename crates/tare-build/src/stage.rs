//! One stage: its base, then its steps in order, each answered from the cache or run.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use tare_dockerfile::{Command, CopySource, Instruction, ShellOrExec, Stage};
use tare_store::config::{History, ImageConfig};
use tare_store::LayerInfo;

use crate::cache::{key_of, Record};
use crate::config::{self, StageFlags};
use crate::copy::{self, CopyOptions, Source};
use crate::engine::{Build, StepSummary};
use crate::error::{io_err, Error};
use crate::fetch;
use crate::layer::{self, Upper};
use crate::report::{Event, StepId};
use crate::run::{self, RunInput};
use crate::tree::{Layers, SourceTree};

/// A built stage: what the next stage, a `COPY --from` or the final commit needs.
#[derive(Debug, Clone)]
pub(crate) struct StageOut {
    pub config: ImageConfig,
    pub layers: Vec<LayerInfo>,
    /// Snapshot directories, bottom first, one per layer.
    pub snapshots: Vec<PathBuf>,
    /// The cache key of the state after the last step.
    pub key: String,
    /// How many of `layers` came from the base image.
    pub base_layers: usize,
    /// The steps of this stage and of the stages it is built FROM.
    pub steps: Vec<StepSummary>,
    /// The Dockerfile line of each history entry (`None` for the base image's entries).
    pub history_lines: Vec<Option<usize>>,
    /// When the last layer was made (the image's `created`).
    pub created: Option<String>,
}

impl StageOut {
    fn tree(&self, name: &str) -> Layers {
        Layers::new(self.snapshots.clone(), name)
    }

    fn push_history(&mut self, created_by: String, layer: bool, line: usize) {
        self.config.history.push(History {
            created: self.created.clone(),
            created_by: Some(created_by),
            comment: Some(HISTORY_COMMENT.to_string()),
            empty_layer: !layer,
            ..History::default()
        });
        self.history_lines.push(Some(line));
    }
}

/// What BuildKit's Dockerfile frontend writes in every history entry it makes.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// The image `name` from the store, as a stage state.
fn from_image(build: &Build<'_>, name: &str) -> Result<StageOut, Error> {
    // Like FROM in docker: the store first, then the registry.
    let image = tare_registry::resolve_or_pull(build.store, name, None, &tare_registry::NoReporter)
        .map_err(|source| Error::BaseImage {
            name: name.to_string(),
            source: Box::new(source),
        })?;
    let snapshots = image
        .layers
        .iter()
        .map(|l| layer::snapshot_of(build.store, &l.diff_id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StageOut {
        history_lines: vec![None; image.config.history.len()],
        created: image.config.created.clone(),
        base_layers: image.layers.len(),
        key: key_of(&["image", &image.id.to_string()]),
        config: image.config,
        layers: image.layers,
        snapshots,
        steps: Vec::new(),
    })
}

fn scratch() -> StageOut {
    // BuildKit's empty image: `/` as working directory (PATH is added for every stage).
    let mut config = ImageConfig::new_for_host();
    config.config.working_dir = Some("/".to_string());
    StageOut {
        config,
        layers: Vec::new(),
        snapshots: Vec::new(),
        key: key_of(&["scratch"]),
        base_layers: 0,
        steps: Vec::new(),
        history_lines: Vec::new(),
        created: None,
    }
}

/// Builds stage `index` (its dependencies are awaited through `build.slots`).
pub(crate) fn build_stage(build: &Build<'_>, index: usize) -> Result<StageOut, Error> {
    let stage = &build.dockerfile.stages[index];
    let label = stage.name.clone().unwrap_or_else(|| index.to_string());
    let mut st = match stage.base_stage {
        Some(b) => (*build.slots.wait(b)?).clone(),
        None if stage.base.eq_ignore_ascii_case("scratch") => scratch(),
        None => from_image(build, &stage.base).map_err(|e| Error::Step {
            file: build.opts.dockerfile_name.clone(),
            line: stage.line,
            instruction: stage.original.clone(),
            source: Box::new(e),
        })?,
    };
    config::ensure_path(&mut st.config);
    // ONBUILD triggers of the base run first, and are not inherited.
    let mut stage = stage.clone();
    if let Some(triggers) = st.config.config.on_build.take() {
        if !triggers.is_empty() {
            let mut instructions = tare_dockerfile::parse_triggers(&triggers, '\\')?;
            instructions.append(&mut stage.instructions);
            stage.instructions = instructions;
        }
    }
    let instructions = stage.expand(&config::env_pairs(&st.config))?;
    let total = instructions.len();
    let cache_on = build.cache_enabled(&stage);
    let mut flags = StageFlags::default();
    for (i, ins) in instructions.iter().enumerate() {
        build.check_interrupt()?;
        let step = StepId {
            number: build.counter.fetch_add(1, Ordering::SeqCst) + 1,
            stage: label.clone(),
            index: i + 1,
            total,
        };
        build.report(Event::Started {
            step: step.clone(),
            text: ins.original.clone(),
        });
        let started = Instant::now();
        let layers_before = st.layers.len();
        let cached = step_once(build, &stage, &mut st, &mut flags, ins, &step, cache_on)
            .map_err(|e| locate(build, ins, e))?;
        // Sizes as docker counts them: file bytes, not tar bytes (recorded when the layer
        // was written, so this reads no layer).
        let layer_size = match st.layers.last() {
            Some(l) if st.layers.len() > layers_before => {
                Some(tare_layer::content_size(build.store, l)?)
            }
            _ => None,
        };
        let image_size = tare_layer::layers_content_size(build.store, &st.layers)?;
        st.steps.push(StepSummary {
            stage: label.clone(),
            text: ins.original.clone(),
            line: ins.location.start_line,
            cached,
            layer_size,
            image_size,
        });
        build.report(Event::Finished {
            step,
            layer_size,
            image_size,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(st)
}

fn locate(build: &Build<'_>, ins: &Instruction, e: Error) -> Error {
    match e {
        Error::RunFailed { .. } | Error::Interrupted | Error::Step { .. } => e,
        e => Error::Step {
            file: build.opts.dockerfile_name.clone(),
            line: ins.location.start_line,
            instruction: ins.original.clone(),
            source: Box::new(e),
        },
    }
}

/// RUN flags whose effect tare does not implement yet: refused with the step's location rather
/// than silently ignored, since each changes what the step sees or produces.
fn unsupported_run_flags(run: &tare_dockerfile::Run) -> Result<(), Error> {
    if !run.mounts.is_empty() {
        return Err(Error::Invalid(
            "RUN --mount is not supported by tare yet".into(),
        ));
    }
    if run.security.as_deref().is_some_and(|s| s != "sandbox") {
        return Err(Error::Invalid(
            "RUN --security=insecure is not supported by tare".into(),
        ));
    }
    if run.network.as_deref().is_some_and(|n| n != "default") {
        return Err(Error::Invalid(
            "RUN --network is not supported by tare yet: use tare build --network".into(),
        ));
    }
    Ok(())
}

/// Runs one instruction; returns whether the cache answered it.
fn step_once(
    build: &Build<'_>,
    stage: &Stage,
    st: &mut StageOut,
    flags: &mut StageFlags,
    ins: &Instruction,
    step: &StepId,
    cache_on: bool,
) -> Result<bool, Error> {
    let line = ins.location.start_line;
    match &ins.command {
        Command::Run(run) => {
            unsupported_run_flags(run)?;
            let args = match (run.heredoc_script(), &run.cmd) {
                (Some(doc), _) => {
                    let mut a = st
                        .config
                        .config
                        .shell
                        .clone()
                        .unwrap_or_else(config::default_shell);
                    a.push(doc.content.clone());
                    a
                }
                (None, ShellOrExec::Exec(a)) => a.clone(),
                (None, ShellOrExec::Shell(_)) => {
                    let script = run.shell_script().unwrap_or_default();
                    config::command_args(&ShellOrExec::Shell(script), &st.config)
                }
            };
            let created_by = config::run_created_by(&args, &run.build_args);
            let net = format!("{:?}", build.opts.network);
            let key = key_of(&["RUN", &st.key, &created_by, &net]);
            let arg_list: Vec<String> = run
                .build_args
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let outcome = with_cache(
                build,
                st,
                step,
                cache_on,
                &key,
                &created_by,
                &arg_list,
                &[],
                |st| {
                    let started = Instant::now();
                    let scratch = scratch_dir(build)?;
                    let mut env: Vec<String> = st.config.config.env.clone().unwrap_or_default();
                    env.extend(arg_list.iter().cloned());
                    let lower = st.tree("image");
                    let user = st.config.config.user.clone().filter(|u| !u.is_empty());
                    let code = run::run(
                        RunInput {
                            args: args.clone(),
                            env,
                            cwd: st
                                .config
                                .config
                                .working_dir
                                .clone()
                                .filter(|w| !w.is_empty())
                                .unwrap_or_else(|| "/".into()),
                            user,
                            network: build.opts.network,
                            runtime: build.opts.runtime.as_deref(),
                            lower: &lower,
                            scratch: scratch.path(),
                        },
                        build.reporter,
                        step,
                    )?;
                    tracing::debug!(
                        step = step.number,
                        ms = started.elapsed().as_millis() as u64,
                        "RUN process ended"
                    );
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
                    )
                },
            )?;
            st.key = key;
            Ok(apply_outcome(st, outcome, created_by, line))
        }
        Command::Copy(c) | Command::Add(c) => {
            let add = matches!(ins.command, Command::Add(_));
            // `--link` only changes how BuildKit stacks the layer, not the files it holds, so
            // it is accepted; these two change which files are copied and are refused rather
            // than ignored.
            if !c.exclude.is_empty() {
                return Err(Error::Invalid(
                    "--exclude is not supported by tare yet".into(),
                ));
            }
            if c.parents {
                return Err(Error::Invalid(
                    "--parents is not supported by tare yet".into(),
                ));
            }
            copy_step(build, stage, st, ins, c, add, step, cache_on)
        }
        Command::Workdir(path) => {
            let cur = st
                .config
                .config
                .working_dir
                .clone()
                .filter(|w| !w.is_empty())
                .unwrap_or_else(|| "/".into());
            let wd = if path.starts_with('/') {
                crate::dockerignore::clean(path)
            } else {
                crate::dockerignore::clean(&format!("{cur}/{path}"))
            };
            st.config.config.working_dir = Some(wd.clone());
            let created_by = format!("WORKDIR {wd}");
            if wd == "/" {
                st.key = key_of(&["CFG", &st.key, &created_by]);
                st.push_history(created_by, false, line);
                return Ok(false);
            }
            let user = st.config.config.user.clone().unwrap_or_default();
            let key = key_of(&["WORKDIR", &st.key, &wd, &user]);
            let outcome = with_cache(
                build,
                st,
                step,
                cache_on,
                &key,
                &created_by,
                &[],
                &[],
                |st| {
                    let lower = st.tree("image");
                    let owner = resolve_owner(&lower, &user)?;
                    let scratch = scratch_dir(build)?;
                    let upper = scratch.path().join("upper");
                    std::fs::create_dir(&upper).map_err(io_err(&upper))?;
                    let rel = lower.resolve(wd.trim_start_matches('/'), true)?;
                    copy::make_dirs(&upper, &lower, &rel, owner)?;
                    layer::commit(build.store, &upper, Upper::Plain, &lower)
                },
            )?;
            st.key = key;
            Ok(apply_outcome(st, outcome, created_by, line))
        }
        other => {
            let text = config::apply(other, &mut st.config, flags).ok_or_else(|| {
                Error::Invalid(format!("{} is not a config instruction", ins.original))
            })?;
            // An ARG reaches later steps only through what they expand or see (a RUN's
            // build args are in its key), so it does not change the key by itself.
            if !matches!(other, Command::Arg(_)) {
                st.key = key_of(&["CFG", &st.key, &text]);
            }
            st.push_history(text, false, line);
            Ok(false)
        }
    }
}

/// A layer step's result: the layer (if any) and when it was made, and whether it was cached.
struct Outcome {
    layer: Option<(LayerInfo, PathBuf)>,
    created: String,
    cached: bool,
}

fn apply_outcome(st: &mut StageOut, outcome: Outcome, created_by: String, line: usize) -> bool {
    st.created = Some(outcome.created);
    let has_layer = outcome.layer.is_some();
    if let Some((info, snap)) = outcome.layer {
        st.layers.push(info);
        st.snapshots.push(snap);
    }
    st.push_history(created_by, has_layer, line);
    outcome.cached
}

/// Answers a layer step from the cache when allowed and present, else runs `make` and
/// records its result.
#[allow(clippy::too_many_arguments)]
fn with_cache(
    build: &Build<'_>,
    st: &StageOut,
    step: &StepId,
    cache_on: bool,
    key: &str,
    instruction: &str,
    args: &[String],
    files: &[(String, String)],
    make: impl FnOnce(&StageOut) -> Result<Option<(LayerInfo, PathBuf)>, Error>,
) -> Result<Outcome, Error> {
    if cache_on {
        if let Some(record) = build.cache.get(build.store, key) {
            let layer = match &record.layer {
                Some(info) => Some((
                    info.clone(),
                    layer::snapshot_of(build.store, &info.diff_id)?,
                )),
                None => None,
            };
            build.report(Event::Cached { step: step.clone() });
            return Ok(Outcome {
                layer,
                created: record.created,
                cached: true,
            });
        }
        if build.opts.explain_cache {
            let reason = build.cache.explain(&st.key, instruction, args, files);
            build.report(Event::CacheMiss {
                step: step.clone(),
                reason,
            });
        }
    } else if build.opts.explain_cache {
        build.report(Event::CacheMiss {
            step: step.clone(),
            reason: "the cache is disabled for this step (--no-cache or --no-cache-filter)".into(),
        });
    }
    let layer = make(st)?;
    let created = now_rfc3339();
    build.cache.put(&Record {
        key: key.to_string(),
        parent: st.key.clone(),
        instruction: instruction.to_string(),
        args: args.to_vec(),
        files: files.to_vec(),
        layer: layer.as_ref().map(|(l, _)| l.clone()),
        created: created.clone(),
        used: 0,
    })?;
    Ok(Outcome {
        layer,
        created,
        cached: false,
    })
}

fn scratch_dir(build: &Build<'_>) -> Result<tempfile::TempDir, Error> {
    let tmp = build.store.root().join("tmp");
    tempfile::Builder::new()
        .prefix("step-")
        .tempdir_in(&tmp)
        .map_err(io_err(&tmp))
}

/// `--chown` or USER to numbers, through the image's /etc/passwd and /etc/group. A lone
/// number is used for both uid and gid, as BuildKit does.
fn resolve_owner(lower: &Layers, spec: &str) -> Result<(u32, u32), Error> {
    if spec.is_empty() {
        return Ok((0, 0));
    }
    if let Ok(n) = spec.parse::<u32>() {
        return Ok((n, n));
    }
    let top_first: Vec<PathBuf> = lower.dirs().iter().rev().cloned().collect();
    let user = tare_sandbox::resolve_user(&top_first, spec)?;
    Ok((user.uid, user.gid))
}

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

#[allow(clippy::too_many_arguments)]
fn copy_step(
    build: &Build<'_>,
    stage: &Stage,
    st: &mut StageOut,
    ins: &Instruction,
    c: &tare_dockerfile::Copy,
    add: bool,
    step: &StepId,
    cache_on: bool,
) -> Result<bool, Error> {
    let line = ins.location.start_line;
    // Where sources come from: a stage, an image, or the context.
    let (from_tree, from_key): (Option<Layers>, String) = match &c.from {
        Some(f) => match build.stage_index(f, stage.index) {
            Some(si) => {
                let out = build.slots.wait(si)?;
                // By content: a stage that ran again (--no-cache-filter) and made other
                // layers must not answer from the old copy.
                let layers: Vec<String> =
                    out.layers.iter().map(|l| l.diff_id.to_string()).collect();
                let key = key_of(&[&out.key, &layers.join(",")]);
                (Some(out.tree(&format!("stage {f}"))), key)
            }
            None => {
                let img = from_image(build, f)?;
                (Some(img.tree(&format!("image {f}"))), img.key.clone())
            }
        },
        None => (None, String::new()),
    };
    let context: &dyn SourceTree = &build.context;
    let tree: &dyn SourceTree = match &from_tree {
        Some(t) => t,
        None => context,
    };
    let mut sources: Vec<Source<'_>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for src in &c.sources {
        match src {
            CopySource::Path(p) if add && c.from.is_none() && fetch::is_url(p) => {
                let fetched = fetch::fetch(p, c.checksum.as_deref(), &|done, total| {
                    build.report(Event::Progress {
                        step: step.clone(),
                        done,
                        total,
                    })
                })?;
                names.push(p.clone());
                sources.push(Source::Bytes {
                    name: fetched.name,
                    content: fetched.content,
                    mode: 0o600,
                    mtime: fetched.mtime,
                });
            }
            CopySource::Path(p) => {
                names.push(p.clone());
                sources.push(Source::Tree {
                    tree,
                    path: p.clone(),
                });
            }
            CopySource::Heredoc(h) => {
                names.push(format!("<<{}", h.name));
                sources.push(Source::Bytes {
                    name: h.name.clone(),
                    content: h.content.clone().into_bytes(),
                    mode: 0o644,
                    mtime: 0,
                });
            }
        }
    }
    let chmod = match &c.chmod {
        Some(m) => Some(config::parse_chmod(m).ok_or_else(|| {
            Error::Invalid(format!("invalid --chmod={m}: expected an octal mode"))
        })?),
        None => None,
    };
    let created_by = config::copy_created_by(add, &names, &c.dest);
    let workdir = st
        .config
        .config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    // Context files are keyed by content; a stage or image by its own key.
    // Computed with --no-cache too: the record written afterwards must carry the right key.
    let files = if c.from.is_none() {
        copy::source_digests(&sources, &|p, m| build.cache.file_digest(p, m))?
    } else {
        Vec::new()
    };
    let files_key: String = files.iter().map(|(p, d)| format!("{p}\0{d}\n")).collect();
    let key = key_of(&[
        if add { "ADD" } else { "COPY" },
        &st.key,
        &created_by,
        &workdir,
        &from_key,
        &files_key,
        &format!("{:?}", c.unpack),
    ]);
    let outcome = with_cache(
        build,
        st,
        step,
        cache_on,
        &key,
        &created_by,
        &[],
        &files,
        |st| {
            let lower = st.tree("image");
            let chown = match &c.chown {
                Some(spec) => Some(resolve_owner(&lower, spec)?),
                None => None,
            };
            let opts = CopyOptions {
                dest: c.dest.clone(),
                workdir: workdir.clone(),
                chown,
                chmod,
                keep_owner: c.from.is_some(),
                extract_archives: add && c.unpack != Some(false),
            };
            let scratch = scratch_dir(build)?;
            let upper = scratch.path().join("upper");
            std::fs::create_dir(&upper).map_err(io_err(&upper))?;
            copy::copy_into(&upper, &lower, &sources, &opts)?;
            layer::commit(build.store, &upper, Upper::Plain, &lower)
        },
    )?;
    st.key = key;
    Ok(apply_outcome(st, outcome, created_by, line))
}
