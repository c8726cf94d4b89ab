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
    for loaded in images {
        for skipped in &loaded.skipped {
            eprintln!("warning: {name}: platform {skipped} is not in the archive: left out");
        }
        let img = &loaded.image;
        // An unnamed multi-platform image's ID is its index's digest (docker's containerd
        // store prints the same), which `run`, `inspect` and `rmi` take.
        let index = loaded.index.as_ref().filter(|_| img.repo_tags.is_empty());
        let id = index.map_or(img.id, |i| i.digest);
        if args.quiet {
            crate::outln!("{id}");
        } else if img.repo_tags.is_empty() {
            crate::outln!("Loaded image ID: {id}");
        } else {
            for t in &img.repo_tags {
                crate::outln!("Loaded image: {}", t.familiar());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
