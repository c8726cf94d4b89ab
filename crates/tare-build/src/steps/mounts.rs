//! `RUN --mount`: what each kind of mount becomes in the sandbox, one function per kind.
//!
//! - `bind`: the source (a path of the context, a stage or an image) is copied into the
//!   step's scratch directory through the same safe tree walk as COPY, and that private copy
//!   is bind-mounted (read-only unless `rw`). A copy rather than a bind of the context or of
//!   a snapshot: the context's `.dockerignore` applies, a symlink in the source resolves
//!   inside its own tree (never on the host), and the writes of an `rw` bind are discarded
//!   with the scratch directory, as BuildKit discards them. The bound files are part of the
//!   step's key, by content ([`key_files`]).
//! - `tmpfs`: a tmpfs of the given size, mode 1777.
//! - `cache`: a directory of the store that outlives the build (see [`super::cache_mounts`]).
//! - `secret`, `ssh`: [`crate::secrets`].
//!
//! The mount points a run creates in the image (a target missing from the image, and its
//! missing parents) are removed from the step's upper directory afterwards: BuildKit leaves
//! none in the layer.

use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use tare_dockerfile::{Mount, MountKind, Run};
use tare_sandbox::{BindMount, TmpfsMount};

use crate::context::{StageOut, StepCtx};
use crate::copy::{self, CopyOptions, Select, Source};
use crate::error::{io_err, Error};
use crate::key::FromKey;
use crate::steps::from_tree;
use crate::tree::{Layers, SourceTree};

/// What the sandbox mounts for one RUN, and what must stay alive while it runs.
#[derive(Default)]
pub(crate) struct Prepared {
    pub binds: Vec<BindMount>,
    pub tmpfs: Vec<TmpfsMount>,
    /// Mount points absent from the image before the run (relative, parents first).
    stubs: Vec<String>,
    /// Cache mounts in use (their locks are held until the run is over).
    pub(crate) held: Vec<tare_store::cache_mounts::CacheMountGuard>,
}

/// The absolute, cleaned target of `m` (a relative one is below the working directory, as in
/// BuildKit), refused where a mount would hide the root or the kernel's /proc.
pub(crate) fn target(m: &Mount, workdir: &str) -> Result<String, Error> {
    let cleaned = tare_layer::path::clean_in(workdir, &m.target);
    if cleaned == "/" || cleaned == "/proc" || cleaned.starts_with("/proc/") {
        return Err(Error::MountTarget {
            target: m.target.clone(),
        });
    }
    Ok(cleaned)
}

/// Checks every mount of `run` before anything runs: the kinds tare handles and the targets.
pub(crate) fn check(run: &Run, workdir: &str) -> Result<(), Error> {
    for m in &run.mounts {
        match m.kind {
            MountKind::Bind | MountKind::Tmpfs | MountKind::Cache => {
                target(m, workdir)?;
            }
            // Checked by crate::secrets.
            MountKind::Secret | MountKind::Ssh => {}
        }
    }
    Ok(())
}

/// The tree a bind or cache mount reads `source` from: `from` (a stage or an image), else the
/// build context.
fn with_source_tree<T>(
    cx: &StepCtx<'_>,
    m: &Mount,
    f: impl FnOnce(&dyn SourceTree, Option<FromKey>) -> Result<T, Error>,
) -> Result<T, Error> {
    match &m.from {
        Some(from) => {
            let (tree, key) = from_tree(cx, from)?;
            f(&tree, Some(key))
        }
        None => f(&cx.build.context, None),
    }
}

fn source_of(m: &Mount) -> String {
    m.source.clone().unwrap_or_else(|| "/".to_string())
}

/// The files every bind mount shows, `(N:path, digest)` for mount number N: the part of the
/// step's key that the mounts add. Computed with `--no-cache` too (the record needs it).
pub(crate) fn key_files(cx: &StepCtx<'_>, run: &Run) -> Result<Vec<(String, String)>, Error> {
    let mut out = Vec::new();
    for (i, m) in run.mounts.iter().enumerate() {
        if m.kind != MountKind::Bind {
            continue;
        }
        let files = with_source_tree(cx, m, |tree, _| {
            let sources = [Source::Tree {
                tree,
                path: source_of(m),
            }];
            copy::source_digests(&sources, &Select::default(), &|node| {
                cx.build.cache.file_digest(node)
            })
        })?;
        out.extend(files.into_iter().map(|(p, d)| (format!("{i}:{p}"), d)));
    }
    Ok(out)
}

/// Makes every mount of `run` ready: copies, directories, locks. `lower` is the image the
/// step runs on, `scratch` the step's scratch directory (private copies go there).
pub(crate) fn prepare(
    cx: &StepCtx<'_>,
    st: &StageOut,
    run: &Run,
    lower: &Layers,
    scratch: &Path,
) -> Result<Prepared, Error> {
    let workdir = st.workdir();
    let mut out = Prepared::default();
    for (i, m) in run.mounts.iter().enumerate() {
        if matches!(m.kind, MountKind::Secret | MountKind::Ssh) {
            continue;
        }
        let target = target(m, &workdir)?;
        out.stubs.extend(missing_in(lower, &target)?);
        match m.kind {
            MountKind::Bind => {
                out.binds
                    .push(bind(cx, m, target, &scratch.join(format!("mount-{i}")))?)
            }
            MountKind::Tmpfs => out.tmpfs.push(tmpfs(m, target)),
            MountKind::Cache => {
                let (mount, guard) =
                    super::cache_mounts::mount(cx, m, target, &scratch.join(format!("mount-{i}")))?;
                out.binds.push(mount);
                out.held.push(guard);
            }
            // crate::secrets makes these.
            MountKind::Secret | MountKind::Ssh => {}
        }
    }
    out.stubs.sort();
    out.stubs.dedup();
    Ok(out)
}

/// `type=bind`: a private copy of the source, mounted read-only unless `rw`.
fn bind(cx: &StepCtx<'_>, m: &Mount, target: String, dir: &Path) -> Result<BindMount, Error> {
    std::fs::create_dir(dir).map_err(io_err(dir))?;
    let (source, _) = copy_source(cx, m, dir)?;
    Ok(BindMount {
        source,
        target,
        readonly: m.read_only,
    })
}

/// Copies `source` of `m`'s tree to `dir/src` (a file or a directory, as the source is);
/// returns that path, and what `from` named, by content.
pub(crate) fn copy_source(
    cx: &StepCtx<'_>,
    m: &Mount,
    dir: &Path,
) -> Result<(PathBuf, Option<FromKey>), Error> {
    with_source_tree(cx, m, |tree, from| {
        let sources = [Source::Tree {
            tree,
            path: source_of(m),
        }];
        let opts = CopyOptions {
            dest: "/src".to_string(),
            workdir: "/".to_string(),
            chown: None,
            chmod: None,
            keep_owner: m.from.is_some(),
            extract_archives: false,
            select: Select::default(),
        };
        copy::copy_into(dir, &Layers::default(), &sources, &opts)?;
        Ok((dir.join("src"), from))
    })
}

/// `type=tmpfs`.
fn tmpfs(m: &Mount, target: String) -> TmpfsMount {
    TmpfsMount {
        target,
        size: m.size,
    }
}

/// The components of `target` (and its parents) that the image lacks: the sandbox creates
/// them as mount points. Stops at a symlink (where the run may create them is then not known,
/// and they are left as they are).
fn missing_in(lower: &Layers, target: &str) -> Result<Vec<String>, Error> {
    let mut missing = Vec::new();
    let mut rel = String::new();
    let mut absent = false;
    for comp in target.split('/').filter(|c| !c.is_empty()) {
        if !rel.is_empty() {
            rel.push('/');
        }
        rel.push_str(comp);
        if !absent {
            match lower.lstat(&rel)? {
                None => absent = true,
                Some(node) if node.meta.is_dir() => continue,
                Some(_) => return Ok(missing),
            }
        }
        missing.push(rel.clone());
    }
    Ok(missing)
}

impl Prepared {
    /// Removes from `upper` the mount points the run created: an empty directory, or the empty
    /// file a file bind was mounted on. Reached without following symlinks, so a run that put
    /// a link where a mount point was cannot send the removal anywhere else.
    pub(crate) fn remove_stubs(&self, upper: &Path) {
        let Ok(root) = rfs::open(
            upper,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        // Children first.
        for rel in self.stubs.iter().rev() {
            let (parent, name) = crate::fsops::split_last(rel);
            let parent = if parent.is_empty() { "." } else { parent };
            let Ok(dir) = rfs::openat2(
                &root,
                parent,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) else {
                continue;
            };
            let Ok(stat) = rfs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW) else {
                continue;
            };
            match FileType::from_raw_mode(stat.st_mode) {
                // Fails, and so keeps the directory, when the run put something in it.
                FileType::Directory => {
                    let _ = rfs::unlinkat(&dir, name, AtFlags::REMOVEDIR);
                }
                FileType::RegularFile if stat.st_size == 0 => {
                    let _ = rfs::unlinkat(&dir, name, AtFlags::empty());
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mount(target: &str) -> Mount {
        Mount {
            kind: MountKind::Tmpfs,
            target: target.to_string(),
            source: None,
            from: None,
            read_only: false,
            id: None,
            sharing: tare_dockerfile::Sharing::Shared,
            mode: None,
            uid: None,
            gid: None,
            required: false,
            size: None,
            env: None,
        }
    }

    #[test]
    fn targets_are_cleaned_and_relative_ones_follow_the_workdir() {
        assert_eq!(target(&mount("/a/./b/"), "/").unwrap(), "/a/b");
        assert_eq!(target(&mount("."), "/src").unwrap(), "/src");
        assert_eq!(target(&mount("x/../y"), "/w/").unwrap(), "/w/y");
    }

    #[test]
    fn root_and_proc_targets_are_refused() {
        for t in ["/", "/..", "/proc", "/proc/sys", "/a/../proc", "."] {
            let err = target(&mount(t), "/").unwrap_err().to_string();
            assert!(err.contains("cannot cover / or /proc"), "{t}: {err}");
        }
        assert!(target(&mount("/procfs"), "/").is_ok());
    }
}
