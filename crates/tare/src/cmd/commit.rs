//! `tare commit CONTAINER [NAME[:TAG]]`: a container's changes as one more layer on its image,
//! like `docker commit`.
//!
//! The new image's config is the image's own, changed by `--change`, with one more history
//! entry (created by the container's command, as docker writes it). Unlike docker, the run's
//! command line and `-e` values do not become the image's CMD and ENV: tare's container
//! records keep only the command, and a commit that silently swaps the image's CMD is a
//! common surprise; `--change 'CMD ...'` sets it when wanted.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_layer::diff::{self, DiffOptions};
use tare_layer::{Compression, LayerSink};
use tare_sandbox::containers::{Container, Containers};
use tare_store::config::History;
use tare_store::{Digest, LayerInfo, Reference, Store};

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The container: name, ID or unique ID prefix.
    container: String,
    /// Name for the new image (`:latest` when no tag is given); without one, the image is
    /// known by the ID printed.
    #[arg(value_name = "NAME[:TAG]")]
    reference: Option<String>,
    /// Commit message, stored as the history comment.
    #[arg(short, long)]
    message: Option<String>,
    /// Author, stored in the config and the history entry.
    #[arg(short, long)]
    author: Option<String>,
    /// Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// EXPOSE, LABEL, STOPSIGNAL, VOLUME, ONBUILD), as `tare import --change`.
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// `created` of the image and its new history entry, as seconds since 1970 (default
    /// $SOURCE_DATE_EPOCH, else now).
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let store = ctx.store()?;
    let containers = Containers::open(&ctx.root)?;
    let record = containers.find(&args.container)?;
    let image_id: Digest = record
        .image_id
        .parse()
        .with_context(|| format!("container {}: bad image id", record.name))?;
    let image = store.image_by_id(&image_id).with_context(|| {
        format!(
            "container {}: its image {} ({}) is no longer in the store",
            record.name, record.image, record.image_id
        )
    })?;
    let mut config = image.config.clone();
    anyhow::ensure!(
        config
            .rootfs
            .diff_ids
            .iter()
            .map(|d| d.to_string())
            .eq(record.image_layers.iter().cloned()),
        "container {}: its image {} no longer has the layers it was started from",
        record.name,
        record.image_id
    );
    for change in &args.changes {
        crate::cmd::import::apply_change(&mut config, change)
            .with_context(|| format!("--change {change:?}"))?;
    }

    let upper = containers.upper_dir(&record.id);
    let mut layers = image.layers.clone();
    // An unchanged container adds a history entry and no layer, as docker does.
    let empty = diff::overlay_diff_is_empty(&upper, DiffOptions::default())
        .with_context(|| format!("reading the changes of container {}", record.name))?;
    if !empty {
        let layer = store_diff(&store, &record, &upper)?;
        config.rootfs.diff_ids.push(layer.diff_id);
        layers.push(layer);
    }
    let now = crate::epoch::created(args.source_date_epoch.as_deref())?;
    config.created = Some(now.clone());
    if args.author.is_some() {
        config.author.clone_from(&args.author);
    }
    config.history.push(History {
        created: Some(now),
        created_by: Some(record.command.join(" ")),
        author: args.author,
        comment: args.message,
        empty_layer: empty,
        ..History::default()
    });
    let tags: Vec<Reference> = reference.into_iter().collect();
    let img = store
        .commit_image(&config, &layers, &tags, None)
        .context("storing the image")?;
    crate::outln!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

/// Writes a container's writable layer into the store as an uncompressed layer (as build
/// layers are stored: exporters and pushes compress once).
pub(crate) fn store_diff(
    store: &Store,
    record: &Container,
    upper: &Path,
) -> anyhow::Result<LayerInfo> {
    let what = || {
        format!(
            "writing the changes of container {} as a layer",
            record.name
        )
    };
    let mut sink = LayerSink::new(store, Compression::None).with_context(what)?;
    diff::write_overlay_diff(upper, &mut sink, DiffOptions::default()).with_context(what)?;
    sink.finish().with_context(what)
}
