//! `tare check`: verify every blob's digest and every reference; exit 1 listing each problem.

use std::process::ExitCode;

use clap::Args as ClapArgs;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let report = store.check()?;
    for p in &report.problems {
        crate::outln!("{p}");
    }
    if report.problems.is_empty() {
        crate::outln!(
            "ok: {} blobs, {} images",
            report.blobs_checked,
            report.images_checked
        );
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} problems in the store at {}",
            report.problems.len(),
            ctx.root.display()
        );
        Ok(ExitCode::from(1))
    }
}
