//! `tare debug ...`: developer tools.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;

use crate::Context;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print a Dockerfile's parse tree in BuildKit's test notation.
    Parse {
        /// The Dockerfile to read (`-` for stdin).
        file: PathBuf,
    },
}

pub fn run(_ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Parse { file } => {
            let text = std::fs::read_to_string(&file)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", file.display()))?;
            print!("{text}");
            Ok(ExitCode::SUCCESS)
        }
    }
}
