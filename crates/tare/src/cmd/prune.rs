//! `tare prune`: remove blobs and snapshots no image uses.

use std::process::ExitCode;

use clap::Args as ClapArgs;

use super::images::human_size;
use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {}

pub fn run(ctx: &Context, _args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let report = store.prune()?;
    for (d, size) in &report.blobs {
        println!("deleted blob {d} ({})", human_size(*size));
    }
    for d in &report.snapshots {
        println!("deleted snapshot {d}");
    }
    println!(
        "Total reclaimed space: {} ({} blobs, {} snapshots)",
        human_size(report.freed),
        report.blobs.len(),
        report.snapshots.len()
    );
    Ok(ExitCode::SUCCESS)
}
