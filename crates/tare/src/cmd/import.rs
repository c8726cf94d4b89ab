//! `tare import FILE|- [NAME[:TAG]]`: a rootfs tar (plain, gzip or zstd) becomes a one-layer
//! image, like `docker import`.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_layer::Compression;
use tare_store::config::{History, ImageConfig, RootFs};
use tare_store::Reference;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The tar file, or `-` for standard input.
    file: PathBuf,
    /// Name for the image.
    reference: Option<String>,
    /// Apply a Dockerfile instruction to the config (CMD, ENTRYPOINT, ENV, WORKDIR, USER,
    /// EXPOSE, LABEL, STOPSIGNAL, VOLUME, ONBUILD).
    #[arg(short, long = "change", value_name = "INSTRUCTION")]
    changes: Vec<String>,
    /// Commit message, stored as the history comment.
    #[arg(short, long)]
    message: Option<String>,
    /// Store the layer recompressed (gzip, zstd, none) instead of as given.
    #[arg(long)]
    compression: Option<Compression>,
    /// The platform the image's config names (os/arch[/variant]; default this machine's),
    /// as `docker import --platform`.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]")]
    platform: Option<tare_registry::Platform>,
    /// `created` as seconds since 1970 (default $SOURCE_DATE_EPOCH, else now): the same tar
    /// then gives the same image ID on any store.
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let reference = args
        .reference
        .as_deref()
        .map(Reference::parse)
        .transpose()?;
    let mut config = ImageConfig::new_for_host();
    if let Some(p) = &args.platform {
        config.os = p.os.clone();
        config.architecture = p.architecture.clone();
        config.variant = p.variant.clone();
    }
    for change in &args.changes {
        apply_change(&mut config, change).with_context(|| format!("--change {change:?}"))?;
    }
    let store = ctx.store()?;
    let name = args.file.display().to_string();
    let input: Box<dyn Read> = if name == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(&args.file).with_context(|| format!("opening {name}"))?)
    };
    let layer = match args.compression {
        Some(c) => tare_layer::ingest_layer_as(&store, input, c, &name),
        None => tare_layer::ingest_layer(&store, input, None, &name),
    }
    .with_context(|| format!("importing {name}"))?;
    let now = crate::epoch::created(args.source_date_epoch.as_deref())?;
    config.created = Some(now.clone());
    config.rootfs = RootFs {
        diff_ids: vec![layer.diff_id],
        ..RootFs::default()
    };
    config.history = vec![History {
        created: Some(now),
        created_by: Some(String::new()),
        comment: Some(
            args.message
                .unwrap_or_else(|| format!("Imported from {name}")),
        ),
        ..History::default()
    }];
    let tags: Vec<Reference> = reference.into_iter().collect();
    let img = store
        .commit_image(&config, &[layer], &tags, None)
        .context("storing the image")?;
    crate::outln!("{}", img.id);
    Ok(ExitCode::SUCCESS)
}

/// Applies one `--change` instruction, with Dockerfile syntax (also `tare commit --change`).
pub(crate) fn apply_change(config: &mut ImageConfig, change: &str) -> anyhow::Result<()> {
    let (word, rest) = change
        .trim()
        .split_once(char::is_whitespace)
        .unwrap_or((change.trim(), ""));
    let rest = rest.trim();
    let c = &mut config.config;
    match word.to_ascii_uppercase().as_str() {
        "CMD" => c.cmd = Some(command(rest)?),
        "ENTRYPOINT" => c.entrypoint = Some(command(rest)?),
        "SHELL" => c.shell = Some(serde_json::from_str(rest).context("SHELL needs a JSON array")?),
        "WORKDIR" => c.working_dir = Some(rest.to_string()),
        "USER" => c.user = Some(rest.to_string()),
        "STOPSIGNAL" => c.stop_signal = Some(rest.to_string()),
        "ONBUILD" => c
            .on_build
            .get_or_insert_with(Vec::new)
            .push(rest.to_string()),
        "ENV" => {
            for (k, v) in pairs(rest)? {
                let env = c.env.get_or_insert_with(Vec::new);
                env.retain(|e| e.split('=').next() != Some(k.as_str()));
                env.push(format!("{k}={v}"));
            }
        }
        "LABEL" => {
            for (k, v) in pairs(rest)? {
                c.labels.get_or_insert_with(Default::default).insert(k, v);
            }
        }
        "EXPOSE" => {
            for p in rest.split_whitespace() {
                let p = if p.contains('/') {
                    p.to_string()
                } else {
                    format!("{p}/tcp")
                };
                c.exposed_ports
                    .get_or_insert_with(Default::default)
                    .insert(p, serde_json::json!({}));
            }
        }
        "VOLUME" => {
            let vols: Vec<String> = if rest.starts_with('[') {
                serde_json::from_str(rest).context("VOLUME JSON array")?
            } else {
                rest.split_whitespace().map(String::from).collect()
            };
            for v in vols {
                c.volumes
                    .get_or_insert_with(Default::default)
                    .insert(v, serde_json::json!({}));
            }
        }
        other => anyhow::bail!("{other} cannot be used with --change"),
    }
    Ok(())
}

/// Exec form (`["a","b"]`) or shell form (`a b`, run by `/bin/sh -c`).
fn command(text: &str) -> anyhow::Result<Vec<String>> {
    if text.starts_with('[') {
        if let Ok(v) = serde_json::from_str::<Vec<String>>(text) {
            return Ok(v);
        }
    }
    anyhow::ensure!(!text.is_empty(), "a command is needed");
    Ok(vec!["/bin/sh".into(), "-c".into(), text.to_string()])
}

/// `k=v k2="v 2"` or the legacy `k v`.
fn pairs(text: &str) -> anyhow::Result<Vec<(String, String)>> {
    if !text.contains('=') {
        let (k, v) = text
            .split_once(char::is_whitespace)
            .context("expected KEY VALUE or KEY=VALUE")?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote = None;
        while let Some(&ch) = chars.peek() {
            chars.next();
            match (quote, ch) {
                (None, '"' | '\'') => quote = Some(ch),
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => break,
                (_, '\\') => {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
                (_, c) => word.push(c),
            }
        }
        let (k, v) = word.split_once('=').context("expected KEY=VALUE")?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}
