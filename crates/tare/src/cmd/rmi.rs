//! `tare rmi IMAGE...`: untag images; an image whose last tag goes (or named by ID) is removed.
//! Blobs stay until `tare prune`.
//!
//! A multi-platform image's tag takes its index with it, and every platform's image that
//! nothing else names. An image an index holds is not removed by ID alone (that would leave
//! the index naming a missing image) without `--force`, which drops the index's tag entry.
//! An unnamed multi-platform image (`tare load` of an archive without names) is removed by
//! its ID, the index's digest, with its images.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Images: name[:tag], name@digest, or ID.
    #[arg(required = true)]
    images: Vec<String>,
    /// Remove an image named by ID even when several tags point at it.
    #[arg(short, long)]
    force: bool,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let mut failed = false;
    for what in &args.images {
        if let Err(e) = remove(&store, what, args.force) {
            eprintln!("error: {e:#}");
            failed = true;
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn remove(store: &tare_store::Store, what: &str, force: bool) -> anyhow::Result<()> {
    // An unnamed multi-platform image, by its ID (its index's digest): the index, then its
    // images nothing else names.
    if let Some(index) = store
        .unnamed_index(what)
        .with_context(|| format!("looking up {what}"))?
    {
        store.remove_unnamed_index(&index.digest)?;
        crate::outln!("Deleted: {}", index.digest);
        return remove_unheld(store, &index.images, None);
    }
    let img = store
        .resolve(what)
        .with_context(|| format!("looking up {what}"))?;
    let by_tag = tare_store::Reference::parse(what)
        .ok()
        .filter(|r| r.digest().is_none() && img.repo_tags.contains(r));
    if let Some(r) = by_tag {
        let index = store
            .index_of(&r)
            .with_context(|| format!("reading the index of {what}"))?;
        store.untag(&r)?;
        crate::outln!("Untagged: {}", r.familiar());
        // The other platforms' images go with the index, unless still named otherwise.
        if let Some(index) = index {
            remove_unheld(store, &index.images, Some(&img.id))?;
        }
        if img.repo_tags.len() > 1 || store.index_holders()?.contains_key(&img.id) {
            return Ok(());
        }
    } else if let Some(names) = store.index_holders()?.get(&img.id).filter(|_| !force) {
        anyhow::bail!(
            "image {} ({}) is part of the multi-platform image {}: remove that or use --force",
            img.id.short(),
            tare_store::platform_name(&img),
            names.join(", ")
        );
    } else if img.repo_tags.len() > 1 && !force {
        anyhow::bail!(
            "image {} is tagged {}: remove the tags or use --force",
            img.id.short(),
            img.repo_tags
                .iter()
                .map(|r| r.familiar())
                .collect::<Vec<_>>()
                .join(", ")
        );
    } else {
        for r in &img.repo_tags {
            crate::outln!("Untagged: {}", r.familiar());
        }
    }
    store.remove_image(&img.id)?;
    crate::outln!("Deleted: {}", img.id);
    Ok(())
}

/// Removes the images of a removed index (but `except`) that no tag or other index names.
fn remove_unheld(
    store: &tare_store::Store,
    images: &[tare_store::Image],
    except: Option<&tare_store::Digest>,
) -> anyhow::Result<()> {
    let held = store.index_holders()?;
    for other in images.iter().filter(|i| Some(&i.id) != except) {
        let now = store.image_by_id(&other.id)?;
        if now.repo_tags.is_empty() && !held.contains_key(&other.id) {
            store.remove_image(&other.id)?;
            crate::outln!("Deleted: {}", other.id);
        }
    }
    Ok(())
}
