//! The instructions that only change the image config (ENV, LABEL, USER, CMD, ...): no
//! layer, no cache lookup, but they chain into the key of the steps after them.

use tare_dockerfile::Command;

use crate::config::{self, StageFlags};
use crate::context::{StageOut, StepCtx};
use crate::error::Error;
use crate::key::{config_key, ConfigEffect};

pub(crate) fn config(
    cx: &StepCtx<'_>,
    st: &mut StageOut,
    flags: &mut StageFlags,
    command: &Command,
) -> Result<bool, Error> {
    let effect = config_key(&st.key, command);
    let text = config::apply(command, &mut st.config, flags).ok_or_else(|| {
        Error::Invalid(format!("{} is not a config instruction", cx.ins.original))
    })?;
    match effect {
        ConfigEffect::Chain(key) => st.key = key.digest()?,
        ConfigEffect::Keep => {}
        ConfigEffect::NotConfig => {
            return Err(Error::Invalid(format!(
                "{} is not a config instruction",
                cx.ins.original
            )))
        }
    }
    st.push_history(text, false, cx.line());
    Ok(false)
}
