//! `tare save IMAGE... [-o FILE|-] [--format docker|oci]`: images to an archive that
//! `docker load` (docker format) or skopeo/umoci (OCI layout tar) accept.
//!
//! A multi-platform image (a tag naming an index) is saved whole in the OCI format: every
//! platform's image and the index, which `index.json` names with the tag. The docker format
//! holds this machine's platform of it, the image `docker load` would take.

use std::io::Write;
use std::path::{Path, PathBuf};
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
    #[arg(long, value_enum, default_value = "docker")]
    format: SaveFormat,
    /// Layer compression: gzip, zstd or none. Default: gzip for oci, as stored for docker.
    #[arg(long)]
    compression: Option<Compression>,
}

/// `--format` of `tare save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum SaveFormat {
    Docker,
    Oci,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let format = match args.format {
        SaveFormat::Docker => Format::Docker,
        SaveFormat::Oci => Format::Oci,
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
        // A multi-platform image named by its tag (or, unnamed, by its ID) is saved whole
        // (OCI format).
        let index = store
            .find_index(what)
            .with_context(|| format!("reading the index of {what}"))?;
        items.push(SaveImage {
            image,
            tags,
            index,
            descriptor: Default::default(),
        });
    }
    write_file_or_stdout(&args.output, |w| {
        tare_layer::archive::save(&store, &items, format, compression, w)?;
        Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Writes an archive through `write` to the file `path`, atomically (a temporary file beside
/// it, renamed when complete), or to standard output for `-` (never to a terminal).
pub(crate) fn write_file_or_stdout(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    if path.as_os_str() == "-" {
        use std::io::IsTerminal as _;
        anyhow::ensure!(
            !std::io::stdout().is_terminal(),
            "refusing to write a tar to a terminal: write to a file or redirect standard output"
        );
        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        write(&mut out)?;
        out.flush()?;
    } else {
        let tmp = tare_store::AtomicFile::create(path)?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, tmp);
        write(&mut w).with_context(|| format!("writing {}", path.display()))?;
        let tmp = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.commit()?;
    }
    Ok(())
}
