//! `tare import FILE|- [NAME[:TAG]]`: a rootfs tar (plain, gzip or zstd) becomes a one-layer
//! image, like `docker import`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_layer::Compression;
use tare_store::config::{History, ImageConfig, RootFs};
use tare_store::Reference;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The tar file, or `-` for standard input.
    file: PathBuf,
    /// Name for the image.
    reference: Option<String>,
    /// Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), as docker does.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// Commit message, stored as the history comment.
    #[arg(short, long)]
    message: Option<String>,
    /// Store the layer recompressed (gzip, zstd, none) instead of as given.
    #[arg(long)]
    compression: Option<Compression>,
    /// The platform the image's config names (os/arch[/variant]; default this machine's),
    /// as `docker import --platform`.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<tare_registry::Platform>,
    /// `created` as seconds since 1970 (default $SOURCE_DATE_EPOCH, else now): the same tar
    /// then gives the same image ID on any store.
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let mut config = ImageConfig::new_for_host();
    if let Some(p) = &args.platform {
        config.os = p.os.clone();
        config.architecture = p.architecture.clone();
        config.variant = p.variant.clone();
    }
    tare_build::config::apply_changes(&mut config, &args.changes)?;
    let store = ctx.store()?;
    let name = args.file.display().to_string();
    let input: Box<dyn Read> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.file).with_context(|| format!("opening {name}"))?)
    };
    let layer = match args.compression {
        Some(c) => tare_layer::ingest_layer_as(&store, input, c, &name),
        None => tare_layer::ingest_layer(&store, input, None, &name),
    }
    .with_context(|| format!("importing {name}"))?;
    let now = crate::epoch::created(args.source_date_epoch.as_deref())?;
    config.created = Some(now.clone());
    config.rootfs = RootFs {
        diff_ids: vec![layer.diff_id],
        ..RootFs::default()
    };
    config.history = vec![History {
        created: Some(now),
        created_by: Some(String::new()),
        comment: Some(
            args.message
                .unwrap_or_else(|| format!("Imported from {name}")),
        ),
        ..History::default()
    }];
    let tags: Vec<Reference> = reference.into_iter().collect();
    let img = store
        .commit_image(&config, &[layer], &tags, None)
        .context("storing the image")?;
    crate::outln!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}
