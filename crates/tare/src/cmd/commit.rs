//! `tare commit CONTAINER [NAME[:TAG]]`: a container's changes as one more layer on its image,
//! like `docker commit` (`tare_build::commit` does the work). The run's command line does not
//! become the image's CMD; `--change 'CMD ...'` sets it when wanted.

use std::process::ExitCode;

use clap::Args as ClapArgs;
use tare_build::commit::{self, CommitOptions};
use tare_sandbox::containers::Containers;
use tare_store::Reference;

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
    /// Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, EXPOSE,
    /// HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR), as `tare import
    /// --change`.
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
    let image = commit::container_image(&store, &record)?;
    let mut config = image.config.clone();
    tare_build::config::apply_changes(&mut config, &args.changes)?;
    let options = CommitOptions {
        author: args.author,
        message: args.message,
        created: crate::epoch::created(args.source_date_epoch.as_deref())?,
        tags: reference.into_iter().collect(),
    };
    let img = commit::commit_container(&store, &containers, &record, &image, config, options)?;
    crate::outln!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}
