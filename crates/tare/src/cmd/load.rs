//! `tare load -i FILE|-`: docker archives, OCI layouts and OCI archives into the store.

use std::io::Read;
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
        load_dir(&store, &args.input, &name)
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

/// An OCI layout directory: streamed as a tar built on the fly, so the same loader checks it.
fn load_dir(
    store: &tare_store::Store,
    dir: &std::path::Path,
    name: &str,
) -> tare_layer::Result<Vec<tare_store::Image>> {
    let (reader, writer) = std::io::pipe().map_err(|e| tare_layer::Error::Stream {
        what: "making a pipe".into(),
        source: e,
    })?;
    let dir = dir.to_path_buf();
    let producer = std::thread::spawn(move || -> std::io::Result<()> {
        let mut tar = tar::Builder::new(writer);
        tar.follow_symlinks(false);
        tar.append_dir_all(".", &dir)?;
        tar.finish()
    });
    let result = tare_layer::archive::load(store, Box::new(reader) as Box<dyn Read>, name);
    let produced = producer
        .join()
        .unwrap_or_else(|_| Err(std::io::Error::other("tar thread panicked")));
    let images = result?;
    produced.map_err(|e| tare_layer::Error::Stream {
        what: format!("reading {name}"),
        source: e,
    })?;
    Ok(images)
}
