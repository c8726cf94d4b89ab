//! A multi-platform build (`--platform A,B`): every platform, then one OCI index, or the
//! `-o` files and archives of every platform.

use std::collections::{BTreeMap, BTreeSet};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tare_build::annotations::{Annotations, Kind};
use tare_build::output::Output;
use tare_build::{BuildOptions, Silent};
use tare_layer::archive::{Format, SaveImage};
use tare_layer::Compression;
use tare_store::Reference;

use super::outputs::{annotate, archive_keys, path, save_archive, Keep, DOCKER_MANIFEST_LIST};
use super::summary::finish;
use super::Args;
use crate::progress::Printer;

/// `--platform A,B,...`: every platform built at once (a step they share, like a
/// `FROM --platform=$BUILDPLATFORM` stage's, is made once), then one OCI index of the images, which the tags name (`tare run` and the other one-image
/// commands take this machine's platform from it).
pub(super) fn build_index(
    store: &tare_store::Store,
    args: &Args,
    opts: &BuildOptions,
    platforms: &[tare_build::Platform],
    files: Option<(&Output, &[Reference])>,
    push: bool,
    quiet: bool,
) -> anyhow::Result<ExitCode> {
    let images_before: BTreeSet<_> = store.image_ids()?.into_iter().collect();
    // Every platform at once; the summaries are printed after, in the order given.
    let results = if quiet {
        tare_build::build_platforms(store, opts, platforms, &Silent)
    } else {
        tare_build::build_platforms(store, opts, platforms, &Printer::new(args.progress))
    };
    let layout = matches!(files, Some((Output::Oci { .. }, _)));
    let annotations = Annotations::parse(&args.annotations, platforms.len(), layout)?;
    let mut images = Vec::new();
    let mut failed = false;
    for (platform, result) in platforms.iter().zip(results) {
        let result = result.with_context(|| format!("build for {platform} failed"))?;
        let done = finish(store, args, &result, &[])?;
        if !quiet {
            crate::outln!("{platform}: image {}", done.image.id);
        }
        for v in &done.summary.budgets.violations {
            eprintln!("error: budget exceeded ({platform}): {v}");
        }
        failed |= done.summary.failed();
        images.push(annotate(
            store,
            &done.image,
            &annotations,
            Some(platform),
            Keep::Stored,
        )?);
    }
    if let Some((output, archive_names)) = files {
        if failed {
            return Ok(ExitCode::from(1));
        }
        let index_annotations = index_annotations(&annotations, platforms);
        let saved = write_platforms(
            store,
            platforms,
            &images,
            output,
            archive_names,
            &index_annotations,
            &annotations.layout_descriptor(platforms.len(), &platforms[0]),
        )?;
        for image in &images {
            if !images_before.contains(&image.id) && store.image_by_id(&image.id).is_ok() {
                store
                    .remove_image(&image.id)
                    .with_context(|| format!("removing the intermediate image {}", image.id))?;
            }
        }
        if let Some(path) = &args.metadata_file {
            // As buildx: no image keys for files; the names and the index as the layout
            // holds it for an archive (no config: there is one per platform).
            let mut m = serde_json::Map::new();
            if !archive_names.is_empty() {
                let names: Vec<String> = archive_names.iter().map(Reference::to_string).collect();
                m.insert("image.name".into(), names.join(",").into());
            }
            if let Some(saved) = &saved {
                archive_keys(&mut m, saved);
            }
            std::fs::write(path, serde_json::to_vec_pretty(&m)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let host = tare_build::Platform::host();
    let host_index = platforms
        .iter()
        .position(|p| host.matches(&p.os, &p.architecture, p.variant.as_deref()))
        .unwrap_or(0);
    let index = store
        .commit_index(
            &images,
            host_index,
            &opts.tags,
            &index_annotations(&annotations, platforms),
        )
        .context("storing the image index")?;
    let digest = index.digest.to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &digest).with_context(|| format!("writing {}", path.display()))?;
    }
    if quiet {
        crate::outln!("{digest}");
    } else {
        let names: Vec<String> = platforms.iter().map(ToString::to_string).collect();
        crate::outln!("index    {digest} ({})", names.join(", "));
        if !opts.tags.is_empty() {
            let tags: Vec<String> = opts.tags.iter().map(Reference::familiar).collect();
            crate::outln!("tags     {}", tags.join(", "));
        }
    }
    if failed {
        return Ok(ExitCode::from(1));
    }
    if push {
        anyhow::ensure!(
            !opts.tags.is_empty(),
            "--push needs a name: give one with -t"
        );
        let options = tare_registry::Options::from_env();
        for tag in &opts.tags {
            let printer = crate::cmd::pull::TransferPrinter::new("pushing", quiet);
            tare_registry::push_index(store, &index, tag, &options, &printer)
                .with_context(|| format!("pushing {}", tag.familiar()))?;
            printer.finish();
            if !quiet {
                crate::outln!("pushed {} ({digest})", tag.familiar());
            }
        }
    }
    if let Some(path) = &args.metadata_file {
        // buildx's keys for a multi-platform result: the index, no single config.
        let mut m = serde_json::json!({
            "containerimage.digest": digest,
            "containerimage.descriptor": {
                "mediaType": tare_store::MEDIA_TYPE_INDEX,
                "digest": digest,
                "size": index.bytes.len(),
            },
        });
        if !opts.tags.is_empty() {
            let names: Vec<String> = opts.tags.iter().map(Reference::to_string).collect();
            m["image.name"] = names.join(",").into();
        }
        std::fs::write(path, serde_json::to_vec_pretty(&m)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `-o` other than `type=image` for a multi-platform build, as BuildKit 0.25 writes them:
/// `type=local` and `type=tar` put each platform's files under `OS_ARCH[_VARIANT]/`, and
/// `type=oci` writes one OCI layout whose index lists every platform's manifest (named by
/// the `name=` and `-t` names; returned is its `index.json` entry). `type=docker` is refused
/// before the build.
pub(super) fn write_platforms(
    store: &tare_store::Store,
    platforms: &[tare_build::Platform],
    images: &[tare_store::Image],
    output: &Output,
    names: &[Reference],
    index_annotations: &tare_store::IndexAnnotations,
    descriptor: &BTreeMap<String, String>,
) -> anyhow::Result<Option<serde_json::Value>> {
    match output {
        Output::Image { .. } => Ok(None),
        Output::Local { dest } => {
            for (platform, image) in platforms.iter().zip(images) {
                let dir = dest.join(tare_build::output::platform_dir(platform));
                tare_build::output::write_local(store, image, &dir).with_context(|| {
                    format!("writing the files of {platform} to {}", dir.display())
                })?;
            }
            Ok(None)
        }
        Output::Tar { dest } => {
            let pairs: Vec<_> = platforms.iter().zip(images).collect();
            crate::cmd::save::write_file_or_stdout(&path(dest), |w| {
                tare_build::output::write_tar_platforms(store, &pairs, w)?;
                Ok(())
            })?;
            Ok(None)
        }
        Output::Oci { dest, .. } => {
            // The index the archive's `index.json` names: stored untagged (gc drops it), its
            // manifests as the archive re-encodes them.
            let index = store
                .commit_index(images, 0, &[], index_annotations)
                .context("making the image index")?;
            let item = SaveImage {
                image: images[0].clone(),
                tags: names.to_vec(),
                index: Some(index),
                descriptor: descriptor.clone(),
            };
            save_archive(store, item, Format::Oci, Some(Compression::Gzip), dest).map(Some)
        }
        Output::Docker { .. } => bail!("{}", DOCKER_MANIFEST_LIST),
    }
}

/// `--annotation index:` and `manifest-descriptor:` values, for the index of `platforms`.
pub(super) fn index_annotations(
    annotations: &Annotations,
    platforms: &[tare_build::Platform],
) -> tare_store::IndexAnnotations {
    tare_store::IndexAnnotations {
        index: annotations.of(Kind::Index, None),
        descriptors: platforms
            .iter()
            .map(|p| annotations.of(Kind::ManifestDescriptor, Some(p)))
            .collect(),
    }
}
