//! `tare system df` (`tare system ...` itself is in `manage.rs`): what the store holds, in docker's shape (TYPE, TOTAL, ACTIVE, SIZE,
//! RECLAIMABLE) for images, the build cache and cache mounts; `-v` lists each cache mount.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use super::images::{human_size, print_table};
use crate::{outln, Context};

#[derive(ClapArgs, Debug)]
pub struct DfArgs {
    /// Also list every cache mount (id, size, in use).
    #[arg(short, long)]
    verbose: bool,
}

/// Sizes are the layers' uncompressed sizes, each layer counted once however many images or
/// cache records share it. Images: ACTIVE are the tagged ones; RECLAIMABLE what only untagged
/// images hold. Build cache: the layers its records hold; RECLAIMABLE what no image holds
/// (`tare prune --cache` frees it). Cache mounts: ACTIVE are those a build holds now;
/// RECLAIMABLE the others (`tare prune --cache` removes them).
pub fn df(ctx: &Context, args: DfArgs) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let images = store.images().context("listing images")?;
    let mut all: BTreeMap<String, u64> = BTreeMap::new();
    let mut tagged: BTreeSet<String> = BTreeSet::new();
    for image in &images {
        for l in &image.layers {
            all.insert(l.diff_id.to_string(), l.size);
            if !image.repo_tags.is_empty() {
                tagged.insert(l.diff_id.to_string());
            }
        }
    }
    let images_size: u64 = all.values().sum();
    let images_reclaimable: u64 = all
        .iter()
        .filter(|(d, _)| !tagged.contains(*d))
        .map(|(_, s)| s)
        .sum();
    let active_images = images.iter().filter(|i| !i.repo_tags.is_empty()).count();

    let cached = tare_build::cache_layers(&store).context("reading the build cache")?;
    let mut cache_layers: BTreeMap<String, u64> = BTreeMap::new();
    for l in &cached {
        cache_layers.insert(l.diff_id.to_string(), l.size);
    }
    let cache_size: u64 = cache_layers.values().sum();
    let cache_reclaimable: u64 = cache_layers
        .iter()
        .filter(|(d, _)| !all.contains_key(*d))
        .map(|(_, s)| s)
        .sum();

    let mounts = store.cache_mounts().context("listing cache mounts")?;
    let mounts_size: u64 = mounts.iter().map(|m| m.size).sum();
    let mounts_reclaimable: u64 = mounts.iter().filter(|m| !m.in_use).map(|m| m.size).sum();

    let percent = |part: u64, whole: u64| {
        (part * 100)
            .checked_div(whole)
            .map(|p| format!(" ({p}%)"))
            .unwrap_or_default()
    };
    let mut table = vec![["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
        .map(String::from)
        .to_vec()];
    for (kind, total, active, size, reclaimable) in [
        (
            "Images",
            images.len(),
            active_images,
            images_size,
            images_reclaimable,
        ),
        (
            "Build Cache",
            cached.len(),
            0,
            cache_size,
            cache_reclaimable,
        ),
        (
            "Cache mounts",
            mounts.len(),
            mounts.iter().filter(|m| m.in_use).count(),
            mounts_size,
            mounts_reclaimable,
        ),
    ] {
        table.push(vec![
            kind.to_string(),
            total.to_string(),
            active.to_string(),
            human_size(size),
            format!("{}{}", human_size(reclaimable), percent(reclaimable, size)),
        ]);
    }
    print_table(&table)?;
    if args.verbose {
        outln!();
        outln!("Cache mounts space usage:");
        outln!();
        let mut table = vec![["CACHE ID", "SIZE", "IN USE"].map(String::from).to_vec()];
        for m in &mounts {
            table.push(vec![
                m.id.clone(),
                human_size(m.size),
                if m.in_use { "true" } else { "false" }.to_string(),
            ]);
        }
        print_table(&table)?;
    }
    Ok(ExitCode::SUCCESS)
}
