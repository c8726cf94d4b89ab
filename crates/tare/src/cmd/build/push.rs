//! `--push` of a one-platform build: to every `-t` name, or from the registry that already
//! holds the cached layers.

use std::process::ExitCode;

use anyhow::Context as _;
use tare_build::output::Output;
use tare_build::BuildResult;
use tare_store::Reference;

use super::outputs::{annotate, metadata_json, Keep};
use super::summary::print_summary;
use super::Args;
use crate::progress::Printer;
use tare_build::annotations::Annotations;

/// The registry a `--push` sends the image to, when the image need not be stored here: the
/// build then leaves the layers of lazy `--cache-from` hits there (`BuildOptions::push_only`).
/// Not when the layers are read after the build: `--squash`, the size budgets, `--baseline`,
/// an archive output, several platforms, or tags on several registries.
pub(super) fn push_only(
    args: &Args,
    output: Option<&Output>,
    push: bool,
    platforms: &[tare_build::Platform],
    tags: &[Reference],
) -> Option<String> {
    let reads_layers = args.squash.is_some()
        || args.max_size.is_some()
        || args.max_waste.is_some()
        || args.max_layers.is_some()
        || args.baseline.is_some()
        || output.is_some_and(|o| !o.stores_image())
        || platforms.len() > 1
        || args.cache_from.is_empty();
    let domain = tags.first()?.domain().to_string();
    (push && !reads_layers && tags.iter().all(|t| t.domain() == domain)).then_some(domain)
}

/// `--push` of an image whose cached layers stayed in the registry: the summary from what the
/// build knows (no layer is read), then the push, which finds or mounts those layers. The
/// image is not stored here.
pub(super) fn push_remote(
    store: &tare_store::Store,
    args: &Args,
    result: &BuildResult,
    opts: &tare_build::BuildOptions,
    annotations: &Annotations,
    printer: Option<&Printer>,
) -> anyhow::Result<ExitCode> {
    let tags = &opts.tags;
    let image = &annotate(
        store,
        &result.image,
        annotations,
        opts.platform.as_ref(),
        Keep::BlobOnly,
    )?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, image.id.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if args.quiet {
        crate::outln!("{}", image.id);
    } else {
        print_summary(result, image, result.image_size)?;
    }
    push_tags(
        store,
        image,
        tags,
        printer.filter(|_| !args.quiet),
        &args.registry.options(),
    )?;
    if !args.quiet {
        crate::outln!(
            "{} cached layers stayed in the registry: the image was pushed, not stored here",
            result.remote_layers.len()
        );
    }
    if let Some(path) = &args.metadata_file {
        let metadata = metadata_json(store, image, None, tags, None)?;
        let text = serde_json::to_vec_pretty(&metadata)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--push`: every `-t` name goes to its registry, as `tare push NAME` would send it, each
/// push one more step of the build's progress (`#N pushing NAME`, with a bar per layer).
pub(super) fn push_tags(
    store: &tare_store::Store,
    image: &tare_store::Image,
    tags: &[Reference],
    printer: Option<&Printer>,
    options: &tare_registry::Options,
) -> anyhow::Result<()> {
    anyhow::ensure!(!tags.is_empty(), "--push needs a name: give one with -t");
    for tag in tags {
        let digest = match printer {
            Some(printer) => {
                let step = tare_build::TransferStep::new(
                    printer,
                    format!("pushing {}", tag.familiar()),
                    || printer.next_step(),
                );
                let digest = tare_registry::push(store, image, tag, options, &step);
                if digest.is_ok() {
                    step.finish(image.layers.iter().map(|l| l.size).sum());
                }
                digest
            }
            None => tare_registry::push(store, image, tag, options, &tare_registry::NoReporter),
        }
        .with_context(|| format!("pushing {}", tag.familiar()))?;
        if printer.is_some() {
            crate::outln!("pushed {} ({digest})", tag.familiar());
        }
    }
    Ok(())
}
