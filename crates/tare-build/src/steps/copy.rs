//! COPY and ADD: the sources (context, stage, image, URL or heredoc) into a fresh directory
//! that becomes the step's layer. The copying itself is [`crate::copy`].

use tare_dockerfile::{Copy, CopySource};

use crate::config;
use crate::context::{StageOut, StepCtx};
use crate::copy::{self, CopyOptions, Source};
use crate::error::{io_err, Error};
use crate::fetch;
use crate::key::{CopyKey, CopyState, FromKey, StepKey};
use crate::layer::{self, Upper};
use crate::report::Event;
use crate::steps::{apply_outcome, from, resolve_owner, with_cache};
use crate::tree::{Layers, SourceTree};

pub(crate) fn copy(
    cx: &StepCtx<'_>,
    st: &mut StageOut,
    c: &Copy,
    add: bool,
) -> Result<bool, Error> {
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
    let build = cx.build;
    let line = cx.line();
    // Where sources come from: a stage, an image, or the context.
    let (from_tree, from_state): (Option<Layers>, Option<FromKey>) = match &c.from {
        Some(f) => match build.stage_index(f, cx.stage.index) {
            Some(si) => {
                let out = build.slots.wait(si)?;
                let key = FromKey::Stage {
                    key: out.key.clone(),
                    layers: out.layers.iter().map(|l| l.diff_id.to_string()).collect(),
                };
                (Some(out.tree(&format!("stage {f}"))), Some(key))
            }
            None => {
                let img = from::image(build, f)?;
                let key = FromKey::Image {
                    key: img.key.clone(),
                };
                (Some(img.tree(&format!("image {f}"))), Some(key))
            }
        },
        None => (None, None),
    };
    let context: &dyn SourceTree = &build.context;
    let tree: &dyn SourceTree = match &from_tree {
        Some(t) => t,
        None => context,
    };
    let mut sources: Vec<Source<'_>> = Vec::new();
    let mut names: Vec<String> = Vec::new();
    // Downloads stream into the store's temporary area (reclaimed even after a crash) and
    // stay there until the step is done.
    let mut downloads: Option<tare_store::TempDir> = None;
    let mut fetched = Vec::new();
    for src in &c.sources {
        match src {
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
        Some(m) => Some(config::parse_chmod(m).ok_or_else(|| {
            Error::Invalid(format!("invalid --chmod={m}: expected an octal mode"))
        })?),
        None => None,
    };
    let created_by = config::copy_created_by(add, &names, &c.dest);
    let workdir = st.workdir();
    // Context files are keyed by content; a stage or image by its own key.
    // Computed with --no-cache too: the record written afterwards must carry the right key.
    let files = if c.from.is_none() {
        copy::source_digests(&sources, &|node| build.cache.file_digest(node))?
    } else {
        Vec::new()
    };
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
        let scratch = build.scratch_dir()?;
        let upper = scratch.path().join("upper");
        std::fs::create_dir(&upper).map_err(io_err(&upper))?;
        copy::copy_into(&upper, &lower, &sources, &opts)?;
        layer::commit(build.store, &upper, Upper::Plain, &lower)
    })?;
    Ok(apply_outcome(st, outcome, created_by, line))
}
