//! `tare push`: an image from the store to a registry.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use tare_store::Reference;

use super::pull::{RegistryArgs, TransferPrinter};
use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print only the manifest digest.
    #[arg(short, long)]
    quiet: bool,
    /// The image to push: name[:tag] (also the destination unless DEST is given), or an ID.
    image: String,
    /// Where to push it, when not to IMAGE's own name: registry/name[:tag].
    dest: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("finding the image {}", args.image))?;
    let dest_text = args.dest.as_deref().unwrap_or(&args.image);
    let dest = Reference::parse(dest_text)
        .with_context(|| format!("reading the destination {dest_text:?}"))?;
    let options = args.registry.options();
    let printer = TransferPrinter::new("pushing", args.quiet);
    // A tag of a multi-platform build (or an unnamed one's ID) names an index: all of it goes.
    let index = store.find_index(&args.image)?;
    let digest = match &index {
        Some(index) => tare_registry::push_index(&store, index, &dest, &options, &printer),
        None => tare_registry::push(&store, &image, &dest, &options, &printer),
    }
    .with_context(|| format!("pushing {}", dest.familiar()))?;
    printer.finish();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        writeln!(out, "{digest}")?;
    } else {
        writeln!(out, "{}@{digest}", dest.name())?;
    }
    Ok(ExitCode::SUCCESS)
}
