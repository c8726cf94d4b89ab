//! `RUN --mount=type=cache`: a directory of the store that outlives the build
//! ([`tare_store::cache_mounts`]), bind-mounted read-write (or read-only with `readonly`).
//!
//! As in BuildKit: the id defaults to the target; a new cache is empty with mode 0755 owned
//! by 0:0 unless `mode`/`uid`/`gid` say otherwise, or starts as a copy of `source` in `from`;
//! a cache is its id and what it starts from, so `uid`/`gid`/`mode` or `from` on a mount make
//! another cache than the plain one of the same id; its contents are never in the layer nor in the step's key. `--no-cache` starts every cache
//! the build uses empty (once per build, so two steps of one build share what the first
//! wrote); `--keep-cache-mounts` keeps them.

use std::path::Path;

use tare_dockerfile::{Mount, Sharing};
use tare_sandbox::BindMount;
use tare_store::cache_mounts::{self as store, CacheMountGuard, NewCache};

use crate::context::StepCtx;
use crate::error::{io_err, Error};
use crate::key::FromKey;

/// The cache of `m`, ready to mount at `target`; the guard holds its lock. `dir` is a
/// scratch directory for a `from` seed.
pub(crate) fn mount(
    cx: &StepCtx<'_>,
    m: &Mount,
    target: String,
    dir: &Path,
) -> Result<(BindMount, CacheMountGuard), Error> {
    let build = cx.build;
    let id =
        m.id.clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| target.clone());
    let (seed, from) = match &m.from {
        Some(_) => {
            std::fs::create_dir(dir).map_err(io_err(dir))?;
            let (seed, from) = super::mounts::copy_source(cx, m, dir)?;
            (Some(seed), from)
        }
        None => (None, None),
    };
    let base = cache_base(m, from.as_ref());
    let reset = build.opts.no_cache
        && !build.opts.keep_cache_mounts
        && build
            .cache_mounts_reset
            .lock()
            .map(|mut done| done.insert((id.clone(), base.clone())))
            .unwrap_or(false);
    let new = NewCache {
        mode: m.mode.unwrap_or(0o755),
        uid: m.uid.unwrap_or(0),
        gid: m.gid.unwrap_or(0),
        seed,
        reset,
        base,
    };
    let sharing = match m.sharing {
        Sharing::Shared => store::Sharing::Shared,
        Sharing::Private => store::Sharing::Private,
        Sharing::Locked => store::Sharing::Locked,
    };
    let guard = build.store.cache_mount(&id, sharing, &new)?;
    Ok((
        BindMount {
            source: guard.path().to_path_buf(),
            target,
            readonly: m.read_only,
        },
        guard,
    ))
}

/// What the cache of `m` starts from besides its id, as BuildKit tells caches apart: a `from`
/// (the stage or image by content, and the source path in it), or else the owner and mode
/// when any of `uid`, `gid`, `mode` is given; none for a plain cache.
fn cache_base(m: &Mount, from: Option<&FromKey>) -> Option<String> {
    if let Some(from) = from {
        return Some(format!(
            "from {from:?} source {}",
            m.source.as_deref().unwrap_or("/")
        ));
    }
    if m.uid.is_none() && m.gid.is_none() && m.mode.is_none() {
        return None;
    }
    Some(format!(
        "mkdir mode {:o} uid {} gid {}",
        m.mode.unwrap_or(0o755),
        m.uid.unwrap_or(0),
        m.gid.unwrap_or(0)
    ))
}
