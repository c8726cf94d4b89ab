//! docker's management commands (`tare image ls`, `tare container rm`, `tare builder prune`,
//! `tare system prune`): the same subcommands under docker's names, so scripts written for
//! docker run unchanged, plus the prunes that only exist in that form.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use tare_sandbox::containers::{Containers, Status};

use super::images::human_size;
use crate::{outln, Context};

/// `tare image ...`
#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// List images (`tare images`).
    #[command(visible_alias = "list")]
    Ls(super::images::Args),
    /// Remove images (`tare rmi`).
    #[command(visible_alias = "remove")]
    Rm(super::rmi::Args),
    /// Remove images no tag names (with -a: every image no container uses).
    Prune(ImagePruneArgs),
    /// Show an image as JSON (`tare inspect`).
    Inspect(super::inspect::Args),
    /// Show an image's history (`tare history`).
    History(super::history::Args),
    /// Give an image another name (`tare tag`).
    Tag(super::tag::Args),
    /// Save images to an archive (`tare save`).
    Save(super::save::Args),
    /// Load images from an archive (`tare load`).
    Load(super::load::Args),
    /// Import a rootfs tar as an image (`tare import`).
    Import(super::import::Args),
    /// Push an image (`tare push`).
    Push(super::push::Args),
    /// Pull an image (`tare pull`).
    Pull(super::pull::Args),
    /// Build an image (`tare build`).
    Build(Box<super::build::Args>),
}

/// `tare container ...`
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers (`tare ps`).
    #[command(visible_aliases = ["list", "ps"])]
    Ls(super::ps::Args),
    /// Remove containers (`tare rm`).
    #[command(visible_alias = "remove")]
    Rm(super::rm::Args),
    /// Run a command in a new container (`tare run`).
    Run(Box<super::run::Args>),
    /// Write a container's filesystem as a tar (`tare export`).
    Export(super::export::Args),
    /// Make an image from a container's changes (`tare commit`).
    Commit(super::commit::Args),
    /// Remove every container that is not running.
    Prune(ContainerPruneArgs),
    /// Print a detached container's output (`tare logs`).
    Logs(super::detach::LogsArgs),
    /// Stop running containers (`tare stop`).
    Stop(super::detach::StopArgs),
    /// Wait for containers to exit (`tare wait`).
    Wait(super::detach::WaitArgs),
    /// Run a command in a running container (`tare exec`).
    Exec(super::exec::Args),
}

/// `tare system ...`
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Remove stopped containers, images without a tag and the build cache.
    Prune(SystemPruneArgs),
    /// Show the space images, the build cache and cache mounts use.
    Df(super::system::DfArgs),
}

/// `tare builder ...`
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove the build cache (`tare prune --cache`).
    Prune(BuilderPruneArgs),
}

#[derive(ClapArgs, Debug)]
pub struct Confirm {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    force: bool,
}

#[derive(ClapArgs, Debug)]
pub struct ImagePruneArgs {
    /// Remove all images no container uses, not only those without a tag.
    #[arg(short, long)]
    all: bool,
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(ClapArgs, Debug)]
pub struct ContainerPruneArgs {
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(ClapArgs, Debug)]
pub struct BuilderPruneArgs {
    /// Remove all of the build cache (tare's cache has no "internal" records: the same as
    /// without -a unless --keep-storage is given).
    #[arg(short, long)]
    all: bool,
    /// Keep the most recently used records up to SIZE (`500MB`, `2GiB`).
    #[arg(long, value_name = "SIZE", value_parser = tare_size::parse_size)]
    keep_storage: Option<u64>,
    #[command(flatten)]
    confirm: Confirm,
}

#[derive(ClapArgs, Debug)]
pub struct SystemPruneArgs {
    /// Also remove every image no container uses, not only those without a tag.
    #[arg(short, long)]
    all: bool,
    /// Accepted for docker's scripts: tare keeps no volumes, so nothing more is removed.
    #[arg(long)]
    volumes: bool,
    #[command(flatten)]
    confirm: Confirm,
}

pub fn image(ctx: &Context, cmd: ImageCommand) -> anyhow::Result<ExitCode> {
    use super::*;
    match cmd {
        ImageCommand::Ls(a) => images::run(ctx, a),
        ImageCommand::Rm(a) => rmi::run(ctx, a),
        ImageCommand::Prune(a) => {
            ask(
                &a.confirm,
                if a.all {
                    "This will remove all images without at least one container associated to them."
                } else {
                    "This will remove all dangling images."
                },
            )?;
            let freed = prune_images(ctx, a.all)?;
            outln!("Total reclaimed space: {}", human_size(freed));
            Ok(ExitCode::SUCCESS)
        }
        ImageCommand::Inspect(a) => inspect::run(ctx, a),
        ImageCommand::History(a) => history::run(ctx, a),
        ImageCommand::Tag(a) => tag::run(ctx, a),
        ImageCommand::Save(a) => save::run(ctx, a),
        ImageCommand::Load(a) => load::run(ctx, a),
        ImageCommand::Import(a) => import::run(ctx, a),
        ImageCommand::Push(a) => push::run(ctx, a),
        ImageCommand::Pull(a) => pull::run(ctx, a),
        ImageCommand::Build(a) => build::run(ctx, *a),
    }
}

pub fn container(ctx: &Context, cmd: ContainerCommand) -> anyhow::Result<ExitCode> {
    use super::*;
    match cmd {
        ContainerCommand::Ls(a) => ps::run(ctx, a),
        ContainerCommand::Rm(a) => rm::run(ctx, a),
        ContainerCommand::Run(a) => run::run(ctx, *a),
        ContainerCommand::Export(a) => export::run(ctx, a),
        ContainerCommand::Commit(a) => commit::run(ctx, a),
        ContainerCommand::Logs(a) => detach::logs(ctx, a),
        ContainerCommand::Stop(a) => detach::stop(ctx, a),
        ContainerCommand::Wait(a) => detach::wait(ctx, a),
        ContainerCommand::Exec(a) => super::exec::run(ctx, a),
        ContainerCommand::Prune(a) => {
            ask(&a.confirm, "This will remove all stopped containers.")?;
            let freed = prune_containers(ctx)?;
            outln!("Total reclaimed space: {}", human_size(freed));
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub fn builder(ctx: &Context, cmd: BuilderCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        BuilderCommand::Prune(a) => {
            ask(&a.confirm, "This will remove all dangling build cache.")?;
            let freed = prune_build_cache(ctx, a.keep_storage)?;
            outln!("Total:\t{}", human_size(freed));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `tare system prune`: stopped containers, images without a tag (-a: without a
/// container), the build cache, then the blobs and snapshots nothing uses any more.
pub fn system(ctx: &Context, cmd: SystemCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SystemCommand::Prune(a) => system_prune(ctx, a),
        SystemCommand::Df(a) => super::system::df(ctx, a),
    }
}

fn system_prune(ctx: &Context, a: SystemPruneArgs) -> anyhow::Result<ExitCode> {
    ask(
        &a.confirm,
        &format!(
            "This will remove:\n  - all stopped containers\n  - {}\n  - all build cache",
            if a.all {
                "all images without at least one container associated to them"
            } else {
                "all dangling images"
            }
        ),
    )?;
    let mut freed = prune_containers(ctx)?;
    freed += prune_images(ctx, a.all)?;
    freed += prune_build_cache(ctx, None)?;
    outln!("Total reclaimed space: {}", human_size(freed));
    Ok(ExitCode::SUCCESS)
}

/// Asks docker's question on a terminal; without one, `-f` is required (docker would read
/// "no" from a closed stdin and do nothing).
fn ask(confirm: &Confirm, what: &str) -> anyhow::Result<()> {
    if confirm.force {
        return Ok(());
    }
    let stdin = std::io::stdin();
    anyhow::ensure!(
        stdin.is_terminal(),
        "refusing to prune without confirmation: stdin is not a terminal (use -f)"
    );
    let mut err = std::io::stderr().lock();
    write!(
        err,
        "WARNING! {what}\nAre you sure you want to continue? [y/N] "
    )?;
    err.flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    anyhow::ensure!(
        matches!(answer.trim(), "y" | "Y" | "yes"),
        "not confirmed: nothing removed"
    );
    Ok(())
}

/// Removes containers that are not running; returns the bytes that frees: their whole
/// directories (the writable layer, and the merged copy of a container on copy-based
/// snapshots whose `tare run` was killed before it moved the changes out), each file once.
fn prune_containers(ctx: &Context) -> anyhow::Result<u64> {
    let containers = Containers::open(&ctx.root)?;
    let mut freed = 0u64;
    let mut first = true;
    for c in containers.list()? {
        if c.status() == Status::Running {
            continue;
        }
        freed += super::ps::freed_by_removing(&containers.dir(&c.id)).unwrap_or(0);
        containers
            .remove(&c)
            .with_context(|| format!("removing container {}", c.short_id()))?;
        if first {
            outln!("Deleted Containers:");
            first = false;
        }
        outln!("{}", c.id);
    }
    if !first {
        outln!();
    }
    Ok(freed)
}

/// Removes untagged images (with `all`, every image no container was made from), then the
/// blobs and snapshots nothing uses; returns the bytes freed.
fn prune_images(ctx: &Context, all: bool) -> anyhow::Result<u64> {
    let store = ctx.store()?;
    let used: Vec<String> = Containers::open(&ctx.root)?
        .list()?
        .into_iter()
        .map(|c| c.image_id)
        .collect();
    let mut first = true;
    // An unnamed multi-platform image is dangling: its index goes first (unless a container
    // was made from one of its images), then its images with the other untagged ones.
    for index in store
        .unnamed_indexes()
        .context("reading the image indexes")?
    {
        if index
            .images
            .iter()
            .any(|i| used.contains(&i.id.to_string()))
        {
            continue;
        }
        if first {
            outln!("Deleted Images:");
            first = false;
        }
        store.remove_unnamed_index(&index.digest)?;
        outln!("deleted: {}", index.digest);
    }
    // The platforms of a multi-platform image are not dangling: its index holds them.
    let held = store.index_holders().context("reading the image indexes")?;
    for img in store.images().context("listing images")? {
        let named = !img.repo_tags.is_empty() || held.contains_key(&img.id);
        if used.contains(&img.id.to_string()) || (!all && named) {
            continue;
        }
        if first {
            outln!("Deleted Images:");
            first = false;
        }
        for r in &img.repo_tags {
            store.untag(r)?;
            outln!("untagged: {}", r.familiar());
        }
        store
            .remove_image(&img.id)
            .with_context(|| format!("removing image {}", img.id))?;
        outln!("deleted: {}", img.id);
    }
    if !first {
        outln!();
    }
    let cached = tare_build::cache_layers(&store).context("reading the build cache")?;
    let report = store.prune_keeping(&cached)?;
    Ok(report.freed)
}

/// Removes build cache records (down to `keep` bytes), then the layers only they kept.
fn prune_build_cache(ctx: &Context, keep: Option<u64>) -> anyhow::Result<u64> {
    let store = ctx.store()?;
    let cache = tare_build::prune_cache(&store, keep).context("pruning the build cache")?;
    let cached = tare_build::cache_layers(&store).context("reading the build cache")?;
    let report = store.prune_keeping(&cached)?;
    outln!(
        "Deleted build cache records: {} ({})",
        cache.records,
        human_size(cache.bytes)
    );
    // BuildKit's builder prune removes cache mounts with the rest of the build cache.
    let (mounts, bytes) = store
        .remove_cache_mounts()
        .context("removing cache mounts")?;
    outln!("Deleted cache mounts: {mounts} ({})", human_size(bytes));
    Ok(report.freed + bytes)
}
