//! `tare prune`: remove blobs and snapshots that neither an image nor the build cache uses;
//! with `--cache`, the build cache first (least recently used records first, down to
//! `--keep-storage`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::images::human_size;
use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Also remove build cache records (then the layers only they kept) and the cache
    /// mounts (`RUN --mount=type=cache`) no build holds.
    #[arg(long)]
    cache: bool,
    /// With --cache: keep the most recently used records up to SIZE (`500MB`, `2GiB`).
    #[arg(long, value_name = "SIZE", requires = "cache", value_parser = tare_size::parse_size)]
    keep_storage: Option<u64>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    if args.cache {
        let cache = tare_build::prune_cache(&store, args.keep_storage)
            .context("pruning the build cache")?;
        crate::outln!(
            "deleted {} build cache records ({})",
            cache.records,
            human_size(cache.bytes)
        );
        let (mounts, bytes) = store
            .remove_cache_mounts()
            .context("removing cache mounts")?;
        crate::outln!("deleted {mounts} cache mounts ({})", human_size(bytes));
    }
    // Like `docker image prune`, a plain prune leaves the build cache alone.
    let cached = tare_build::cache_layers(&store).context("reading the build cache")?;
    let report = store.prune_keeping(&cached)?;
    for (d, size) in &report.blobs {
        crate::outln!("deleted blob {d} ({})", human_size(*size));
    }
    for d in &report.snapshots {
        crate::outln!("deleted snapshot {d}");
    }
    crate::outln!(
        "Total reclaimed space: {} ({} blobs, {} snapshots)",
        human_size(report.freed),
        report.blobs.len(),
        report.snapshots.len()
    );
    Ok(ExitCode::SUCCESS)
}
