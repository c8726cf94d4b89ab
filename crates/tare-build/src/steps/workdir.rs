//! WORKDIR: sets the working directory and creates it, owned by the stage's USER.

use crate::cache::key_of;
use crate::context::{StageOut, StepCtx};
use crate::error::{io_err, Error};
use crate::layer::{self, Upper};
use crate::steps::{apply_outcome, resolve_owner, with_cache, CacheInputs};
use crate::tree::SourceTree;

pub(crate) fn workdir(cx: &StepCtx<'_>, st: &mut StageOut, path: &str) -> Result<bool, Error> {
    let line = cx.line();
    let cur = st.workdir();
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
    let build = cx.build;
    let inputs = CacheInputs {
        key: &key,
        instruction: &created_by,
        args: &[],
        files: &[],
    };
    let outcome = with_cache(cx, st, inputs, |st| {
        let lower = st.tree("image");
        let owner = resolve_owner(&lower, &user)?;
        let scratch = build.scratch_dir()?;
        let upper = scratch.path().join("upper");
        std::fs::create_dir(&upper).map_err(io_err(&upper))?;
        let rel = lower.resolve(wd.trim_start_matches('/'), true)?;
        crate::copy::make_dirs(&upper, &lower, &rel, owner)?;
        layer::commit(build.store, &upper, Upper::Plain, &lower)
    })?;
    st.key = key;
    Ok(apply_outcome(st, outcome, created_by, line))
}
