//! `tare logout`: forget the credentials `tare login` saved for a registry.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context as _;
use tare_registry::Options;

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The registry: host[:port] (default: docker.io).
    server: Option<String>,
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let registry = tare_registry::registry_name(args.server.as_deref().unwrap_or("docker.io"));
    let options = Options::from_env();
    let removed = tare_registry::logout(&registry, &options)
        .with_context(|| format!("logging out of {registry}"))?;
    let mut out = std::io::stdout().lock();
    if removed {
        writeln!(out, "Removed login credentials for {registry}")?;
    } else {
        writeln!(out, "Not logged in to {registry}")?;
    }
    Ok(ExitCode::SUCCESS)
}
