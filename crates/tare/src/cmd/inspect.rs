//! `tare inspect IMAGE`: the image as one JSON object.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The image: name[:tag], name@digest, or ID.
    image: String,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let img = store
        .resolve(&args.image)
        .with_context(|| format!("looking up {}", args.image))?;
    // The config exactly as stored, not as tare's types would re-serialise it.
    let config: serde_json::Value = serde_json::from_slice(&store.read_blob(&img.id)?)
        .with_context(|| format!("reading config blob {}", img.id))?;
    let out = json!({
        "id": img.id.to_string(),
        "repo_tags": img.repo_tags.iter().map(|r| r.familiar()).collect::<Vec<_>>(),
        "manifest_digest": img.manifest_digest.to_string(),
        "size": img.size(),
        "config": config,
        "layers": img.layers,
        "build_info": img.build_info,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(ExitCode::SUCCESS)
}
