//! `tare load -i FILE|-`: docker archives, OCI layouts and OCI archives into the store.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The archive (tar, optionally compressed), an OCI layout directory, or `-` for stdin.
    #[arg(short, long, default_value = "-")]
    input: PathBuf,
    /// Print only the image IDs.
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let name = args.input.display().to_string();
    let images = if name == "-" {
        tare_layer::archive::load(&store, std::io::stdin().lock(), "standard input")
    } else if args.input.is_dir() {
        tare_layer::layout::load_dir(&store, &args.input, &name)
    } else {
        let file = std::fs::File::open(&args.input).with_context(|| format!("opening {name}"))?;
        tare_layer::archive::load(&store, file, &name)
    }
    .with_context(|| format!("loading {name}"))?;
    for img in images {
        if args.quiet {
            crate::outln!("{}", img.id);
        } else if img.repo_tags.is_empty() {
            crate::outln!("Loaded image ID: {}", img.id);
        } else {
            for t in &img.repo_tags {
                crate::outln!("Loaded image: {}", t.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
