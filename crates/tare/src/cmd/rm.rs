//! `tare rm`: removes containers and their writable layers.

use std::process::ExitCode;

use anyhow::{bail, Context as _};
use tare_sandbox::containers::{Containers, Status};

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Kill a running container first.
    #[arg(short = 'f', long)]
    force: bool,
    /// Containers by name, id or id prefix.
    #[arg(required = true)]
    containers: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let containers = Containers::open(&ctx.root)?;
    if let [key] = args.containers.as_slice() {
        remove(&containers, key, args.force)?;
        crate::outln!("{key}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut failed = 0;
    for key in &args.containers {
        match remove(&containers, key, args.force) {
            Ok(()) => crate::outln!("{key}"),
            Err(e) => {
                eprintln!("error: {e:#}");
                failed += 1;
            }
        }
    }
    if failed > 0 {
        bail!(
            "{failed} of {} containers could not be removed",
            args.containers.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn remove(containers: &Containers, key: &str, force: bool) -> anyhow::Result<()> {
    let record = containers.find(key)?;
    if record.status() == Status::Running {
        if !force {
            bail!("cannot remove container {key}: it is running (use -f to kill and remove it)");
        }
        containers.kill(&record)?;
    }
    containers
        .remove(&record)
        .with_context(|| format!("removing container {key}"))
}
