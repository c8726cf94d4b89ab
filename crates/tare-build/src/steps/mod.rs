//! The steps: one function per instruction kind, each in its own file, taking the step's
//! context ([`StepCtx`]) and the stage state it changes. [`dispatch`] only picks the function.
//!
//! Layer steps (RUN, COPY/ADD, WORKDIR) go through [`with_cache`]: answered from the cache
//! when their key has a record, otherwise run and recorded.

mod cache_mounts;
pub(crate) mod config;
pub(crate) mod copy;
pub(crate) mod from;
mod mounts;
pub(crate) mod run;
pub(crate) mod workdir;

use std::path::{Path, PathBuf};

use tare_dockerfile::Command;
use tare_store::{LayerInfo, StepOrigin};

use crate::cache::Record;
use crate::config::StageFlags;
use crate::context::{Build, StageOut, StepCtx};
use crate::error::{io_err, Error};
use crate::key::{FromKey, StepKey};
use crate::layer::{self, Upper};
use crate::report::Event;
use crate::tree::Layers;

/// Runs one instruction; returns whether the cache answered it.
pub(crate) fn dispatch(
    cx: &StepCtx<'_>,
    st: &mut StageOut,
    flags: &mut StageFlags,
) -> Result<bool, Error> {
    match &cx.ins.command {
        Command::Run(r) => run::run(cx, st, r),
        Command::Copy(c) => copy::copy(cx, st, c, false),
        Command::Add(c) => copy::copy(cx, st, c, true),
        Command::Workdir(path) => workdir::workdir(cx, st, path),
        other => config::config(cx, st, flags, other),
    }
}

/// A layer step's result: the layer and when it was made, and whether it was cached.
pub(crate) struct Outcome {
    /// The step's cache key: the state key after it.
    key: String,
    /// The layer and its snapshot. A step that runs always makes one (`layer::commit`, even
    /// when it changed nothing); `None` only when a cached record names no layer.
    layer: Option<(LayerInfo, PathBuf)>,
    created: String,
    cached: bool,
}

/// Adds a layer step's outcome to the stage; returns whether it was cached.
pub(crate) fn apply_outcome(
    st: &mut StageOut,
    outcome: Outcome,
    created_by: String,
    origin: StepOrigin,
) -> bool {
    st.key = outcome.key;
    st.created = Some(outcome.created);
    let has_layer = outcome.layer.is_some();
    if let Some((info, snap)) = outcome.layer {
        st.layers.push(info);
        st.snapshots.push(snap);
    }
    st.push_history(created_by, has_layer, origin);
    outcome.cached
}

pub(crate) fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true)
}

/// Answers a layer step from the cache when allowed and present, else runs `make` and
/// records its result.
pub(crate) fn with_cache(
    cx: &StepCtx<'_>,
    st: &StageOut,
    key: &StepKey,
    make: impl FnOnce(&StageOut) -> Result<(LayerInfo, PathBuf), Error>,
) -> Result<Outcome, Error> {
    let build = cx.build;
    let inputs = build.layer_inputs(key)?;
    let key = crate::key::digest_of(&inputs);
    // Another platform's build making this same step finishes it first (then it is cached).
    let _claim = crate::cache::Claim::take(&key);
    if cx.cache_on {
        let found = build.cache.get(build.store, &key).or_else(|| {
            build
                .remote
                .lookup(&build.remote_env(), &key, &st.key, &st.layers)
        });
        if let Some(record) = found {
            build.remote.note(cx.stage.index, &record, st.base());
            // The snapshot is extracted only when a later step reads the tree.
            let layer = record
                .layer
                .as_ref()
                .map(|info| (info.clone(), build.store.snapshot_path(&info.diff_id)));
            cx.report(Event::Cached {
                step: cx.step.clone(),
            });
            return Ok(Outcome {
                key,
                layer,
                created: record.created,
                cached: true,
            });
        }
        if build.opts.explain_cache {
            let reason = build
                .remote
                .explain(&build.remote_env(), &st.key, &inputs)
                .unwrap_or_else(|| build.cache.explain(&st.key, &inputs));
            cx.report(Event::CacheMiss {
                step: cx.step.clone(),
                reason,
            });
        }
    } else if build.opts.explain_cache {
        cx.report(Event::CacheMiss {
            step: cx.step.clone(),
            reason: "the cache is disabled for this step (--no-cache or --no-cache-filter)".into(),
        });
    }
    let layer = make(st)?;
    let created = now_rfc3339();
    let record = Record {
        format: crate::key::CACHE_FORMAT,
        key: key.clone(),
        parent: st.key.clone(),
        inputs,
        layer: Some(layer.0.clone()),
        created: created.clone(),
        used: 0,
    };
    build.cache.put(&record)?;
    build.remote.note(cx.stage.index, &record, st.base());
    Ok(Outcome {
        key,
        layer: Some(layer),
        created,
        cached: false,
    })
}

/// A `--from` value (COPY, RUN --mount): a stage of this build (waited for) by name or
/// index, else an image; the tree to read and the key of its state.
pub(crate) fn from_tree(cx: &StepCtx<'_>, f: &str) -> Result<(Layers, FromKey), Error> {
    let build = cx.build;
    match build.stage_index(f, cx.stage.index) {
        Some(si) => {
            let out = build.slots.wait(si)?;
            let key = FromKey::Stage {
                key: out.key.clone(),
                layers: out.layers.iter().map(|l| l.diff_id.to_string()).collect(),
            };
            Ok((out.tree(build, &format!("stage {f}"))?, key))
        }
        None => {
            let img = from::image(build, f, build.opts.platform.as_ref())?;
            let key = FromKey::Image {
                key: img.key.clone(),
            };
            Ok((img.tree(build, &format!("image {f}"))?, key))
        }
    }
}

/// A layer over `lower` from a fresh upper directory in the build's scratch, which `fill`
/// writes into (WORKDIR's directories, COPY/ADD when an archive is extracted).
pub(crate) fn commit_fresh_upper(
    build: &Build<'_>,
    lower: &Layers,
    fill: impl FnOnce(&Path) -> Result<(), Error>,
) -> Result<(LayerInfo, PathBuf), Error> {
    let scratch = build.scratch_dir()?;
    let upper = scratch.path().join("upper");
    std::fs::create_dir(&upper).map_err(io_err(&upper))?;
    fill(&upper)?;
    layer::commit(
        build.store,
        &upper,
        Upper::Plain,
        lower,
        build.mtime_clamp(),
    )
}

/// `--chown` or USER to numbers, through the image's /etc/passwd and /etc/group. A lone
/// number is used for both uid and gid, as BuildKit does.
pub(crate) fn resolve_owner(lower: &Layers, spec: &str) -> Result<(u32, u32), Error> {
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
