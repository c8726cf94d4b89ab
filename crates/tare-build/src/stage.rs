//! One stage: its base, then its steps in order, each handed to [`crate::steps::dispatch`].

use std::sync::atomic::Ordering;
use std::time::Instant;

use tare_dockerfile::Instruction;

use crate::config::{self, StageFlags};
use crate::context::{Build, StageOut, StepCtx, StepSummary};
use crate::error::Error;
use crate::report::{Event, StepId};
use crate::steps;

/// Builds stage `index` (its dependencies are awaited through `build.slots`).
pub(crate) fn build_stage(build: &Build<'_>, index: usize) -> Result<StageOut, Error> {
    let stage = &build.dockerfile.stages[index];
    let label = stage.name.clone().unwrap_or_else(|| index.to_string());
    let platform = crate::platform::stage_platform(build, stage)?;
    let mut st = match stage.base_stage {
        Some(b) => (*build.slots.wait(b)?).clone(),
        None if stage.base.eq_ignore_ascii_case("scratch") => {
            steps::from::scratch(platform.as_ref())?
        }
        None => {
            steps::from::image(build, &stage.base, platform.as_ref()).map_err(|e| Error::Step {
                file: build.opts.dockerfile_name.clone(),
                line: stage.line,
                instruction: stage.original.clone(),
                source: Box::new(e),
            })?
        }
    };
    config::ensure_path(&mut st.config);
    // ONBUILD triggers of the base run first, and are not inherited.
    let mut stage = stage.clone();
    if let Some(triggers) = st.config.config.on_build.take() {
        if !triggers.is_empty() {
            let mut instructions = tare_dockerfile::parse_triggers(&triggers, '\\')?;
            instructions.append(&mut stage.instructions);
            stage.instructions = instructions;
        }
    }
    let instructions = stage.expand(&config::env_pairs(&st.config))?;
    let total = instructions.len();
    let cache_on = build.cache_enabled(&stage);
    let mut flags = StageFlags::default();
    for (i, ins) in instructions.iter().enumerate() {
        build.check_interrupt()?;
        let step = StepId {
            number: build.counter.fetch_add(1, Ordering::SeqCst) + 1,
            stage: label.clone(),
            index: i + 1,
            total,
        };
        build.report(Event::Started {
            step: step.clone(),
            text: ins.original.clone(),
        });
        let started = Instant::now();
        let layers_before = st.layers.len();
        let cx = StepCtx {
            build,
            stage: &stage,
            ins,
            step: &step,
            cache_on,
        };
        let cached =
            steps::dispatch(&cx, &mut st, &mut flags).map_err(|e| locate(build, ins, e))?;
        // Sizes as docker counts them: file bytes, not tar bytes (recorded when the layer
        // was written, so this reads no layer).
        let layer_size = match st.layers.last() {
            Some(l) if st.layers.len() > layers_before => {
                Some(build.remote.content_size(build.store, l)?)
            }
            _ => None,
        };
        let image_size = build.remote.layers_content_size(build.store, &st.layers)?;
        st.steps.push(StepSummary {
            stage: label.clone(),
            text: ins.original.clone(),
            line: ins.location.start_line,
            cached,
            layer_size,
            image_size,
        });
        build.report(Event::Finished {
            step,
            layer_size,
            image_size,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok(st)
}

/// Puts the file and line of `ins` on an error that does not carry them yet.
fn locate(build: &Build<'_>, ins: &Instruction, e: Error) -> Error {
    match e {
        Error::RunFailed { .. } | Error::Interrupted | Error::Step { .. } => e,
        e => Error::Step {
            file: build.opts.dockerfile_name.clone(),
            line: ins.location.start_line,
            instruction: ins.original.clone(),
            source: Box::new(e),
        },
    }
}
