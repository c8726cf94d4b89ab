//! COPY and ADD: the sources (context, stage, image, URL or heredoc) into a fresh directory
//! that becomes the step's layer. The copying itself is [`crate::copy`].

use tare_dockerfile::{Copy, CopySource};

use crate::cache::Record;
use crate::chmod::Chmod;
use crate::config;
use crate::context::{StageOut, StepCtx};
use crate::copy::{self, CopyOptions, Select, Source};
use crate::dockerignore::DockerIgnore;
use crate::error::Error;
use crate::fetch;
use crate::key::{CopyKey, CopyState, FromKey, StepKey};
use crate::layer;
use crate::plan::Streamed;
use crate::report::Event;
use crate::steps::{
    apply_outcome, commit_fresh_upper, from, now_rfc3339, resolve_owner, with_cache,
};
use crate::tree::{Layers, SourceTree};

/// `--chown=USER[:GROUP]` to numbers, as BuildKit's file operation reads them: a number is
/// used for both ids unless a group follows; a name missing from the image's /etc/passwd
/// gives 0:0, and a group name missing from /etc/group keeps the user's group (BuildKit
/// 0.25 builds these, where a RUN as that user fails); a name in a stage that is still an
/// empty `FROM scratch` is an error.
fn chown_ids(lower: &Layers, spec: &str) -> Result<(u32, u32), Error> {
    let unknown = |e: &Error| {
        matches!(
            e,
            Error::Sandbox(
                tare_sandbox::Error::UnknownUser(_) | tare_sandbox::Error::UnknownGroup(_)
            )
        )
    };
    let (user, group) = match spec.split_once(':') {
        Some((user, group)) => (user, Some(group)),
        None => (spec, None),
    };
    // A stage still empty from `FROM scratch` has no tree to read names from: BuildKit 0.25
    // fails the step ("invalid user index: -1"), where an image without the files gives 0.
    let named = |part: &str| !part.is_empty() && part.parse::<u32>().is_err();
    if lower.dirs().is_empty() && (named(user) || group.is_some_and(named)) {
        return Err(Error::ChownNameOnScratch {
            spec: spec.to_string(),
        });
    }
    let mut ids = match resolve_owner(lower, user) {
        Err(e) if unknown(&e) => (0, 0),
        other => other?,
    };
    // `user:` names an empty group, which BuildKit 0.25 takes as gid 0; `user` alone takes
    // the user's primary group.
    let Some(group) = group else {
        return Ok(ids);
    };
    if group.is_empty() {
        ids.1 = 0;
    } else {
        match group.parse::<u32>() {
            Ok(gid) => ids.1 = gid,
            Err(_) => match resolve_owner(lower, &format!("0:{group}")) {
                Err(e) if unknown(&e) => {}
                other => ids.1 = other?.1,
            },
        }
    }
    Ok(ids)
}

/// What making a COPY's layer needs besides its step context, resolved once.
struct Setup<'a> {
    c: &'a Copy,
    st: &'a StageOut,
    select: &'a Select,
    sources: &'a [Source<'a>],
    workdir: &'a str,
    chmod: Option<Chmod>,
    /// `--link` without `--chmod`: copied into an empty tree.
    link: bool,
    /// The owner a `--chown` gives with `--link`, resolved before the key.
    link_chown: Option<(u32, u32)>,
    add: bool,
}

impl Setup<'_> {
    /// The tree the copy reads of the image, and how it copies.
    fn lower_and_options(
        &self,
        cx: &StepCtx<'_>,
        st: &StageOut,
    ) -> Result<(Layers, CopyOptions), Error> {
        let c = self.c;
        let image = st.tree(cx.build, "image")?;
        let lower = if self.link {
            Layers::new(Vec::new(), "scratch")
        } else {
            image.clone()
        };
        let chown = match (&c.chown, self.link_chown) {
            (_, Some(ids)) => Some(ids),
            (Some(spec), None) => Some(chown_ids(&image, spec)?),
            (None, None) => None,
        };
        let opts = CopyOptions {
            dest: c.dest.clone(),
            workdir: self.workdir.to_string(),
            chown,
            chmod: self.chmod.clone(),
            keep_owner: c.from.is_some(),
            extract_archives: self.add && c.unpack != Some(false),
            select: self.select.clone(),
        };
        Ok((lower, opts))
    }
}

/// A COPY whose sources have files the cache knows no digest for: the layer is streamed now,
/// each source file hashed as it is read (into `streamed` and the cache's file table), so the
/// key made afterwards costs no second read. `None` when the copy extracts an archive (made
/// on disk later, its files hashed first as before).
///
/// When the step then turns out to be cached (a file touched, its content the same), the
/// record's layer is used, as BuildKit does, and the blob written here is left for `tare
/// prune` to reclaim.
fn cold_copy(
    cx: &StepCtx<'_>,
    setup: &Setup<'_>,
    streamed: &mut Streamed,
) -> Result<Option<(tare_store::LayerInfo, std::path::PathBuf)>, Error> {
    let build = cx.build;
    let (lower, opts) = setup.lower_and_options(cx, setup.st)?;
    let Some(plan) = copy::plan(&lower, setup.sources, &opts)? else {
        return Ok(None);
    };
    let made = layer::commit_plan(
        build.store,
        &plan,
        build.mtime_clamp(),
        Some(streamed),
        &copy_progress(cx, &plan),
    )?;
    for (host, meta, digest) in streamed.files() {
        build.cache.remember(host, meta, digest.to_string());
    }
    Ok(Some(made))
}

/// The progress of a COPY streaming `plan` into its layer, as [`Event::Progress`] of the
/// step against the size of its files; nothing for COPYs under [`LARGE_COPY`].
fn copy_progress<'a>(cx: &'a StepCtx<'a>, plan: &crate::plan::Plan) -> impl Fn(u64) + 'a {
    let total = plan.content_size();
    move |done| {
        if total >= LARGE_COPY {
            cx.report(Event::Progress {
                step: cx.step.clone(),
                done: done.min(total),
                total: Some(total),
            });
        }
    }
}

/// The size from which a COPY reports its progress (a bar on a terminal).
const LARGE_COPY: u64 = 8 << 20;

pub(crate) fn copy(
    cx: &StepCtx<'_>,
    st: &mut StageOut,
    c: &Copy,
    add: bool,
) -> Result<bool, Error> {
    let select = Select {
        exclude: DockerIgnore::from_patterns(c.exclude.iter().map(String::as_str))
            .map_err(|source| Error::Exclude { source })?,
        parents: c.parents,
    };
    let build = cx.build;
    // Where sources come from: a stage, an image, a directory build context, or the context.
    let mut dir_context = None;
    // A stage is read only when the step runs: its key is enough for a cache hit, and its
    // lazy `--cache-from` layers then stay in the registry.
    let mut from_stage = None;
    let (from_tree, from_state): (Option<Layers>, Option<FromKey>) = match &c.from {
        Some(f) => match build.stage_index(f, cx.stage.index) {
            Some(si) => {
                let out = build.slots.wait(si)?;
                let key = FromKey::Stage {
                    key: out.key.clone(),
                    layers: out.layers.iter().map(|l| l.diff_id.to_string()).collect(),
                };
                let tree = out.tree_unread(&format!("stage {f}"));
                from_stage = Some(out);
                (Some(tree), Some(key))
            }
            None => match build.named_dir(f) {
                Some(dir) => {
                    dir_context = Some(crate::tree::ContextTree::open(&dir, None)?);
                    let name = f.to_ascii_lowercase();
                    (None, Some(FromKey::Context { name }))
                }
                None => {
                    let img = from::image(build, f, build.opts.platform.as_ref())?;
                    let key = FromKey::Image {
                        key: img.key.clone(),
                    };
                    (Some(img.tree(build, &format!("image {f}"))?), Some(key))
                }
            },
        },
        None => (None, None),
    };
    let context: &dyn SourceTree = match &dir_context {
        Some(dir) => dir,
        None => &build.context,
    };
    let tree: &dyn SourceTree = match &from_tree {
        Some(t) => t,
        None => context,
    };
    // Git repositories (ADD only) are fetched first: `sources` borrows their checkouts.
    let git = crate::git::add_sources(cx, c, add)?;
    // BuildKit 0.25 checks `--checksum` only against what it can verify: a download or a
    // git checkout. A local source with a checksum fails the step, as there.
    if let Some(sum) = &c.checksum {
        for (i, src) in c.sources.iter().enumerate() {
            let remote = git.trees[i].is_some()
                || matches!(src, CopySource::Path(p) if c.from.is_none() && fetch::is_url(p));
            if !remote {
                let name = match src {
                    CopySource::Path(p) => p.clone(),
                    CopySource::Heredoc(h) => format!("<<{}", h.name),
                };
                return Err(Error::ChecksumSource {
                    checksum: sum.clone(),
                    name,
                });
            }
        }
    }
    let mut sources: Vec<Source<'_>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    // Downloads stream into the store's temporary area (reclaimed even after a crash) and
    // stay there until the step is done.
    let mut downloads: Option<tare_store::TempDir> = None;
    let mut fetched = Vec::new();
    for (i, src) in c.sources.iter().enumerate() {
        match src {
            CopySource::Path(p) if git.trees[i].is_some() => {
                names.push(p.clone());
                if let Some(tree) = &git.trees[i] {
                    sources.push(Source::Tree {
                        tree,
                        path: ".".into(),
                    });
                }
            }
            CopySource::Path(p) if add && c.from.is_none() && fetch::is_url(p) => {
                let dir = match &downloads {
                    Some(d) => d,
                    None => downloads.insert(build.scratch_dir()?),
                };
                let download = fetch::download(
                    p,
                    c.checksum.as_deref(),
                    build.opts.max_download_size,
                    dir.path(),
                    &|done, total| {
                        cx.report(Event::Progress {
                            step: cx.step.clone(),
                            done,
                            total,
                        })
                    },
                )?;
                names.push(p.clone());
                sources.push(Source::File {
                    name: download.name.clone(),
                    path: download.file.path().to_path_buf(),
                    mode: 0o600,
                    mtime: download.mtime,
                });
                fetched.push(download);
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
        Some(m) => Some(Chmod::parse(m).map_err(|e| Error::Chmod {
            value: m.clone(),
            reason: e.to_string(),
        })?),
        None => None,
    };
    let created_by = config::copy_created_by(add, c, &names);
    let workdir = st.workdir();
    // Context files (the main one's or a directory build context's) are keyed by content; a
    // stage or image by its own key.
    // Computed with --no-cache too: the record written afterwards must carry the right key.
    // A file whose stat data changed since its digest was taken (or never seen) is read once:
    // the step streams its sources into the layer first, hashing each file as it goes, and
    // the key is made afterwards from those digests (see `cold_copy`).
    let by_content = c.from.is_none() || dir_context.is_some();
    let unknown = std::cell::Cell::new(false);
    if by_content {
        copy::source_digests(&sources, &select, &|node| {
            Ok(build.cache.known_digest(node).unwrap_or_else(|| {
                unknown.set(true);
                String::new()
            }))
        })?;
    }
    let link = c.link && c.chmod.is_none();
    let link_chown = match (&c.chown, link) {
        (Some(spec), true) => Some(chown_ids(&st.tree(build, "image")?, spec)?),
        _ => None,
    };
    let setup = Setup {
        c,
        st,
        select: &select,
        sources: &sources,
        workdir: &workdir,
        chmod,
        link,
        link_chown,
        add,
    };
    let mut made_early = None;
    let mut streamed = Streamed::default();
    // Not on lazy `--cache-from` layers: that would fetch them before the key is known.
    let extract_from = || match &from_stage {
        Some(out) => out.extract(build),
        None => Ok(()),
    };
    if unknown.get() && !build.remote.any_lazy(build.store, &st.layers) {
        extract_from()?;
        made_early = cold_copy(cx, &setup, &mut streamed)?;
    }
    let mut files = if by_content {
        copy::source_digests(&sources, &select, &|node| match streamed.digest(node)? {
            Some(d) => Ok(d),
            None => build.cache.file_digest(node),
        })?
    } else {
        Vec::new()
    };
    files.extend(
        git.commits
            .iter()
            .map(|(s, commit)| (format!("git:{s}"), commit.clone())),
    );
    // `--link` (BuildKit merges such a layer only without --chmod): the copy is made into an
    // empty tree, so it reads nothing of the image (no destination directory, symlink or
    // metadata of it), and its layer is also cached under a key without the parent: a
    // changed base reuses it. The owner a --chown name gives still comes from the image,
    // so it is part of that key.
    let link_key = link.then(|| {
        StepKey::Copy(CopyKey::new(
            c,
            CopyState {
                parent: format!("link {link_chown:?}"),
                add,
                workdir: workdir.clone(),
                from_state: from_state.clone(),
                files: files.clone(),
            },
        ))
    });
    let key = StepKey::Copy(CopyKey::new(
        c,
        CopyState {
            parent: st.key.clone(),
            add,
            workdir: workdir.clone(),
            from_state,
            files,
        },
    ));
    let outcome = with_cache(cx, st, &key, |st| {
        let link_key = match &link_key {
            Some(k) => {
                let inputs = build.layer_inputs(k)?;
                let digest = crate::key::digest_of(&inputs);
                Some((inputs, digest))
            }
            None => None,
        };
        if let (Some((_, digest)), true) = (&link_key, cx.cache_on) {
            if let Some(info) = build.cache.get(build.store, digest).and_then(|r| r.layer) {
                let snapshot = build.store.snapshot_path(&info.diff_id);
                cx.report(Event::Cached {
                    step: cx.step.clone(),
                });
                return Ok((info, snapshot));
            }
        }
        let made = match made_early {
            Some(made) => made,
            None => {
                extract_from()?;
                let (lower, opts) = setup.lower_and_options(cx, st)?;
                // Streamed from the sources into the layer, without writing them to disk,
                // unless an archive is to be extracted.
                match copy::plan(&lower, &sources, &opts)? {
                    Some(plan) => layer::commit_plan(
                        build.store,
                        &plan,
                        build.mtime_clamp(),
                        None,
                        &copy_progress(cx, &plan),
                    )?,
                    None => commit_fresh_upper(build, &lower, |upper| {
                        copy::copy_into(upper, &lower, &sources, &opts)
                    })?,
                }
            }
        };
        if let Some((inputs, digest)) = link_key {
            build.cache.put(&Record {
                format: crate::key::CACHE_FORMAT,
                key: digest,
                parent: "link".into(),
                inputs,
                layer: Some(made.0.clone()),
                created: now_rfc3339(),
                used: 0,
            })?;
        }
        Ok(made)
    })?;
    Ok(apply_outcome(st, outcome, created_by, cx.origin()))
}
