//! `tare export IMAGE -o FILE|-`: the image's filesystem as one rootfs tar.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The image: name[:tag], name@digest, or ID.
    image: String,
    /// Output file, or `-` for standard output.
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let img = store
        .resolve(&args.image)
        .with_context(|| format!("looking up {}", args.image))?;
    if args.output.as_os_str() == "-" {
        use std::io::IsTerminal as _;
        anyhow::ensure!(
            !std::io::stdout().is_terminal(),
            "refusing to write a tar to a terminal: use -o FILE or redirect standard output"
        );
        let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let mut out = tare_layer::export(&store, &img.layers, out)
            .with_context(|| format!("exporting {}", args.image))?;
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
        let w = tare_layer::export(&store, &img.layers, w)
            .with_context(|| format!("exporting {}", args.image))?;
        let tmp = w
            .into_inner()
            .map_err(|e| e.into_error())
            .with_context(|| format!("writing {}", path.display()))?;
        tmp.persist(path)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
