//! `tare export CONTAINER|IMAGE -o FILE|-`: a container's or an image's filesystem as one rootfs
//! tar (`tare import` turns it back into a one-layer image: the seed's export | import).
//!
//! The argument names a container when one matches (name, ID or unique ID prefix), as
//! `docker export` takes containers; otherwise an image. A container's writable layer is
//! written into the store as a layer so that `tare_layer::export` flattens it over the image's
//! layers like any other (whiteouts honoured), and removed afterwards unless an image uses it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_sandbox::containers::{Container, Containers};
use tare_store::{Digest, LayerInfo, Store};

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The container (name, ID or ID prefix) or, when no container matches, the image
    /// (name[:tag], name@digest, or ID).
    #[arg(value_name = "CONTAINER|IMAGE")]
    target: String,
    /// Output file, or `-` for standard output.
    #[arg(short, long, default_value = "-")]
    output: PathBuf,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let to_stdout = args.output.as_os_str() == "-";
    if to_stdout {
        use std::io::IsTerminal as _;
        anyhow::ensure!(
            !std::io::stdout().is_terminal(),
            "refusing to write a tar to a terminal: use -o FILE or redirect standard output"
        );
    }
    let store = ctx.store()?;
    let containers = Containers::open(&ctx.root)?;
    let (layers, _scratch) = match containers.find(&args.target) {
        Ok(record) => {
            let mut layers = image_layers(&store, &record)?;
            let changes = tare_build::commit::container_changes(&containers, &record)?;
            let diff = tare_build::commit::store_diff(&store, &record, changes.path())?;
            let scratch = Scratch {
                store: store.clone(),
                blob: diff.digest,
            };
            layers.push(diff);
            (layers, Some(scratch))
        }
        Err(tare_sandbox::Error::NoSuchContainer(_)) => {
            let img = store
                .resolve(&args.target)
                .with_context(|| format!("no container or image named {:?}", args.target))?;
            (img.layers, None)
        }
        Err(e) => return Err(e).context("reading the container records"),
    };
    let what = || format!("exporting {}", args.target);
    if to_stdout {
        let out = std::io::BufWriter::with_capacity(1 << 20, std::io::stdout().lock());
        let mut out = tare_layer::export(&store, &layers, out).with_context(what)?;
        out.flush()?;
    } else {
        write_file(&store, &layers, &args.output).with_context(what)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the flattened layers to `path`, through a temporary file renamed into place, so a
/// failed export leaves no half-written tar.
fn write_file(store: &Store, layers: &[LayerInfo], path: &Path) -> anyhow::Result<()> {
    let tmp = tare_store::AtomicFile::create(path)?;
    let w = std::io::BufWriter::with_capacity(1 << 20, tmp);
    let w = tare_layer::export(store, layers, w)?;
    let tmp = w
        .into_inner()
        .map_err(|e| e.into_error())
        .with_context(|| format!("writing {}", path.display()))?;
    tmp.commit()?;
    Ok(())
}

/// The stored layers of the image a container was started from, bottom first.
fn image_layers(store: &Store, record: &Container) -> anyhow::Result<Vec<LayerInfo>> {
    record
        .image_layers
        .iter()
        .map(|d| {
            let diff_id: Digest = d
                .parse()
                .with_context(|| format!("container {}: bad layer {d}", record.name))?;
            store.layer(&diff_id).with_context(|| {
                format!(
                    "container {}: a layer of its image {} is no longer in the store",
                    record.name, record.image
                )
            })
        })
        .collect()
}

/// A layer blob written only for this export: removed when the export ends (whether it
/// succeeded or not), unless an image references it by then.
struct Scratch {
    store: Store,
    blob: Digest,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Err(e) = self.store.discard_blobs(&[self.blob]) {
            // `tare prune` removes it later; the export itself is not affected.
            tracing::warn!("removing the scratch layer {}: {e}", self.blob);
        }
    }
}
