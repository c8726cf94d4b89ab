//! WORKDIR: sets the working directory and creates it, owned by the stage's USER.

use crate::config;
use crate::context::{StageOut, StepCtx};
use crate::error::Error;
use crate::key::{StepKey, WorkdirKey};
use crate::steps::{apply_outcome, commit_fresh_upper, resolve_owner, with_cache};
use crate::tree::{Layers, SourceTree};

/// The owner of the created directory: the stage's USER. A user the image does not know
/// gives 0:0, as BuildKit does (the RUN steps that run as that user fail instead).
fn owner(lower: &Layers, user: &str) -> Result<(u32, u32), Error> {
    match resolve_owner(lower, user) {
        Err(Error::Sandbox(
            tare_sandbox::Error::UnknownUser(_) | tare_sandbox::Error::UnknownGroup(_),
        )) => Ok((0, 0)),
        other => other,
    }
}

pub(crate) fn workdir(cx: &StepCtx<'_>, st: &mut StageOut, path: &str) -> Result<bool, Error> {
    let wd = config::working_dir(&st.workdir(), path);
    st.config.config.working_dir = Some(wd.clone());
    let created_by = format!("WORKDIR {wd}");
    let user = st.config.config.user.clone().unwrap_or_default();
    let key = StepKey::Workdir(WorkdirKey {
        parent: st.key.clone(),
        path: path.to_string(),
        resolved: wd.clone(),
        user: user.clone(),
    });
    let rel = crate::dockerignore::clean(&wd)
        .trim_matches('/')
        .to_string();
    if rel.is_empty() {
        // `/` exists in every image: no layer, as in BuildKit, and the filesystem state key
        // stays (the working directory is in the keys of the steps that read it).
        st.push_history(created_by, false, cx.origin());
        return Ok(false);
    }
    let build = cx.build;
    let outcome = with_cache(cx, st, &key, |st| {
        let lower = st.tree(build, "image")?;
        let owner = owner(&lower, &user)?;
        let rel = lower.resolve(&rel, true)?;
        commit_fresh_upper(build, &lower, |upper| {
            crate::copy::make_dirs(upper, &lower, &rel, owner)
        })
    })?;
    Ok(apply_outcome(st, outcome, created_by, cx.origin()))
}
