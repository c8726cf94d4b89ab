//! `tare save IMAGE... [-o FILE|-] [--format docker|oci]`: images to an archive that
//! `docker load` (docker format) or skopeo/umoci (OCI layout tar) accept.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_layer::archive::{Format, SaveImage};
use tare_layer::Compression;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Images: name[:tag], name@digest, or ID.
    #[arg(required = true)]
    images: Vec<String>,
    /// Output file, or `-` for standard output.
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
    /// Archive format: docker (for `docker load`) or oci (OCI image layout).
    #[arg(long, default_value = "docker")]
    format: String,
    /// Layer compression: gzip, zstd or none. Default: gzip for oci, as stored for docker.
    #[arg(long)]
    compression: Option<Compression>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let format = match args.format.as_str() {
        "docker" => Format::Docker,
        "oci" => Format::Oci,
        other => anyhow::bail!("unknown --format {other:?}: use docker or oci"),
    };
    let compression = args
        .compression
        .or((format == Format::Oci).then_some(Compression::Gzip));
    let store = ctx.store()?;
    let mut items = Vec::new();
    for what in &args.images {
        let image = store
            .resolve(what)
            .with_context(|| format!("looking up {what}"))?;
        // Named by tag: record that tag; by ID or digest: every tag the image has.
        let tags = match tare_store::Reference::parse(what) {
            Ok(r) if r.digest().is_none() && image.repo_tags.contains(&r) => vec![r],
            _ => image.repo_tags.clone(),
        };
        items.push(SaveImage { image, tags });
    }
    if args.output.as_os_str() == "-" {
        use std::io::IsTerminal as _;
        anyhow::ensure!(
            !std::io::stdout().is_terminal(),
            "refusing to write a tar to a terminal: use -o FILE or redirect standard output"
        );
        let stdout = std::io::stdout().lock();
        let mut out = tare_layer::archive::save(
            &store,
            &items,
            format,
            compression,
            std::io::BufWriter::new(stdout),
        )?;
        out.flush()?;
    } else {
        let path = &args.output;
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)
            .with_context(|| format!("creating a file in {}", dir.display()))?;
        let w = std::io::BufWriter::with_capacity(1 << 20, tmp);
        let w = tare_layer::archive::save(&store, &items, format, compression, w)
            .with_context(|| format!("writing {}", path.display()))?;
        let tmp = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
