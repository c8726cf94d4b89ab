//! `tare tag SRC DST`: another name for an image.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The image to name: name[:tag], name@digest, or ID.
    source: String,
    /// The new name: name[:tag].
    target: String,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let img = store
        .resolve(&args.source)
        .with_context(|| format!("looking up {}", args.source))?;
    let target = tare_store::Reference::parse(&args.target)?;
    anyhow::ensure!(
        target.digest().is_none(),
        "cannot tag with a digest: {}",
        args.target
    );
    store
        .tag(&img.id, &target)
        .with_context(|| format!("tagging {} as {}", img.id, target.familiar()))?;
    Ok(ExitCode::SUCCESS)
}
