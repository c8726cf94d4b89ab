//! The instructions that only change the image config (ENV, LABEL, USER, CMD, ...): no
//! layer, no cache lookup, but they chain into the key of the steps after them.

use tare_dockerfile::Command;

use crate::cache::key_of;
use crate::config::{self, StageFlags};
use crate::context::{StageOut, StepCtx};
use crate::error::Error;

pub(crate) fn config(
    cx: &StepCtx<'_>,
    st: &mut StageOut,
    flags: &mut StageFlags,
    command: &Command,
) -> Result<bool, Error> {
    let text = config::apply(command, &mut st.config, flags).ok_or_else(|| {
        Error::Invalid(format!("{} is not a config instruction", cx.ins.original))
    })?;
    // An ARG reaches later steps only through what they expand or see (a RUN's
    // build args are in its key), so it does not change the key by itself.
    if !matches!(command, Command::Arg(_)) {
        st.key = key_of(&["CFG", &st.key, &text]);
    }
    st.push_history(text, false, cx.line());
    Ok(false)
}
