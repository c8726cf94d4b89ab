//! `tare squash`: an image's layers (above its base, from layer N, or all) become one layer,
//! committed as a new image with the same config and the dead files gone.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use tare_layer::Compression;
use tare_size::budget::human;
use tare_size::SquashFrom;
use tare_store::Reference;

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image to squash: a reference, an ID or an ID prefix.
    image: String,
    /// Name of the new image (repeat for more tags).
    #[arg(short = 't', long = "tag", required = true, value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// One layer for the whole image (like `export | import`, but keeping the config).
    #[arg(long, conflicts_with = "from")]
    all: bool,
    /// Squash from this layer on (0 = the bottom layer; `tare analyze` lists them).
    /// Default: the layers above the base image it was built from, or all when unknown.
    #[arg(long, value_name = "N")]
    from: Option<usize>,
    /// Compression of the new layer: gzip, zstd or none.
    #[arg(long, default_value = "gzip")]
    compression: String,
    /// The new history entry's date as seconds since 1970 (default $SOURCE_DATE_EPOCH, else
    /// now): squashing the same image twice then gives the same image ID.
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let compression: Compression = args.compression.parse()?;
    let tags = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = ctx.store()?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("finding image {}", args.image))?;
    let from = match (args.all, args.from) {
        (true, _) => SquashFrom::All,
        (false, Some(n)) => SquashFrom::Layer(n),
        (false, None) => SquashFrom::Base,
    };
    let created = crate::epoch::created(args.source_date_epoch.as_deref())?;
    let result = tare_size::squash(&store, &image, from, compression, &tags, created)
        .with_context(|| format!("squashing image {}", image.id))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Squashed layers {} to {} of {} into one{}: {} -> {} ({} layers -> {})",
        result.from,
        result.from + result.squashed - 1,
        args.image,
        if result.cached { " (cached)" } else { "" },
        human(image.size()),
        human(result.image.size()),
        image.layers.len(),
        result.image.layers.len(),
    )?;
    for t in &tags {
        writeln!(out, "Tagged {}", t.familiar())?;
    }
    writeln!(out, "{}", result.image.id)?;
    Ok(ExitCode::SUCCESS)
}
