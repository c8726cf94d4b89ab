//! `tare inspect IMAGE`: the image as one JSON object.
//!
//! A multi-platform image (a tag naming an index) shows this machine's platform's image (or
//! `--platform`'s) with an `index` object: the index's digest and each platform's image. So
//! does an unnamed one, named by its index's digest (its ID).
//!
//! Sizes: the top-level `size` is what docker's `docker image inspect` calls `Size`, the
//! content size (file bytes, symlink targets; no tar headers, padding or directories), and
//! `tar_size` the sum of the layer tars. Each layer keeps `size` as its tar's length (the
//! diff as registries and the OCI spec see it) and adds `content_size`, docker's size for it.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use crate::format::{print_documents, Format};
use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The image: name[:tag], name@digest, or ID.
    image: String,
    /// Render with a Go template over docker's shape of the image (`{{.Id}}`,
    /// `{{.Config.Env}}`, `{{index .RepoTags 0}}`, `{{json .RootFS}}`, `{{.Size}}`), as
    /// `docker image inspect --format` does. Without it, tare's own JSON.
    #[arg(short, long)]
    format: Option<String>,
    /// Of a multi-platform image, the image of this platform (os/arch[/variant]) instead of
    /// this machine's.
    #[arg(long)]
    platform: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let mut img = store
        .resolve(&args.image)
        .with_context(|| format!("looking up {}", args.image))?;
    let index = store
        .find_index(&args.image)
        .with_context(|| format!("reading the index of {}", args.image))?;
    if let Some(want) = &args.platform {
        let want: tare_build::Platform =
            want.parse().with_context(|| format!("--platform {want}"))?;
        let images = index
            .as_ref()
            .map_or(std::slice::from_ref(&img), |i| &i.images[..]);
        img = images
            .iter()
            .find(|i| {
                want.matches(
                    &i.config.os,
                    &i.config.architecture,
                    i.config.variant.as_deref(),
                )
            })
            .cloned()
            .with_context(|| {
                let have: Vec<String> = images.iter().map(tare_store::platform_name).collect();
                format!(
                    "{} has no image for {want} (it has {})",
                    args.image,
                    have.join(", ")
                )
            })?;
    }
    // The config exactly as stored, not as tare's types would re-serialise it.
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&img.id)?)
        .with_context(|| format!("reading config blob {}", img.id))?;
    let mut layers = Vec::new();
    let mut size = 0u64;
    for l in &img.layers {
        let content = tare_layer::content_size(&store, l)
            .with_context(|| format!("sizing layer {}", l.digest))?;
        size = size.saturating_add(content);
        let mut value = serde_json::to_value(l)?;
        value["content_size"] = content.into();
        layers.push(value);
    }
    let mut out = json!({
        "id": img.id.to_string(),
        "repo_tags": img.repo_tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
        "manifest_digest": img.manifest_digest.to_string(),
        "size": size,
        "tar_size": img.size(),
        "config": config,
        "layers": layers,
        "build_info": img.build_info,
    });
    if let Some(index) = &index {
        // The index the tag names and its platforms (`id` above is one of them).
        out["index"] = json!({
            "digest": index.digest.to_string(),
            "media_type": tare_store::MEDIA_TYPE_INDEX,
            "size": index.bytes.len(),
            "platforms": index.images.iter().map(|i| json!({
                "platform": tare_store::platform_name(i),
                "id": i.id.to_string(),
                "manifest_digest": i.manifest_digest.to_string(),
            })).collect::<Vec<_>>(),
        });
    }
    match Format::parse(args.format.as_deref())? {
        Format::Table | Format::Json => {
            crate::outln!("{}", serde_json::to_string_pretty(&out)?);
        }
        format @ Format::Template { .. } => {
            print_documents(&format, &[docker_shape(&img, &config, size)])?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The fields of docker's `ImageInspect` that come from the image itself.
fn docker_shape(
    img: &tare_store::Image,
    config: &serde_json::Value,
    size: u64,
) -> serde_json::Value {
    let field = |name: &str| config.get(name).cloned().unwrap_or(serde_json::Value::Null);
    let mut digests: Vec<String> = img
        .repo_tags
        .iter()
        .map(|r| format!("{}@{}", r.familiar_name(), img.manifest_digest))
        .collect();
    digests.dedup();
    json!({
        "Id": img.id.to_string(),
        "RepoTags": img.repo_tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
        "RepoDigests": digests,
        "Parent": "",
        "Comment": field("comment").as_str().unwrap_or_default(),
        "Created": field("created"),
        "DockerVersion": field("docker_version").as_str().unwrap_or_default(),
        "Author": field("author").as_str().unwrap_or_default(),
        "Config": field("config"),
        "Architecture": field("architecture"),
        "Variant": field("variant"),
        "Os": field("os"),
        "Size": size,
        "VirtualSize": size,
        "RootFS": {
            "Type": field("rootfs").get("type").cloned().unwrap_or_default(),
            "Layers": field("rootfs").get("diff_ids").cloned().unwrap_or_default(),
        },
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    })
}
