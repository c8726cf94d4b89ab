//! The instructions that only change the image config (ENV, LABEL, USER, CMD, ...): no
//! layer, no cache lookup, and the state key stays. A later step's key holds the parts of the
//! config it reads (RUN: environment, user, working directory, shell; COPY/ADD: the working
//! directory; WORKDIR: the user and the directory), so a changed LABEL keeps the steps after
//! it cached, as in BuildKit, while a changed ENV misses the RUN that sees it.

use tare_dockerfile::Command;

use crate::config::{self, StageFlags};
use crate::context::{StageOut, StepCtx};
use crate::error::Error;

pub(crate) fn config(
    cx: &StepCtx<'_>,
    st: &mut StageOut,
    flags: &mut StageFlags,
    command: &Command,
) -> Result<bool, Error> {
    let text = config::apply(command, &mut st.config, flags).ok_or(Error::NotConfig {
        keyword: command.keyword(),
    })?;
    match command {
        // BuildKit records no history entry for ONBUILD: the trigger is only in the config.
        Command::Onbuild(_) => return Ok(false),
        // BuildKit 0.25 marks a Dockerfile's CMD, either form, as escaped (probed: ENTRYPOINT,
        // RUN and SHELL leave the flag as it was; docker's `--change CMD` does not set it).
        Command::Cmd(_) => st.config.config.args_escaped = Some(true),
        _ => {}
    }
    st.push_history(text, false, cx.origin());
    Ok(false)
}
