//! `tare debug ...`: developer tools.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
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
        Command::Parse { file } => parse(&file),
    }
}

fn parse(file: &PathBuf) -> anyhow::Result<ExitCode> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from stdin")?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    // BuildKit reads bytes; invalid UTF-8 is replaced rather than refused.
    let text = String::from_utf8_lossy(&bytes);
    let name = if file.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    };
    let ast = tare_dockerfile::parse(&text, &name).map_err(located)?;
    std::io::stdout().lock().write_all(ast.dump().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// A Dockerfile error as `FILE:LINE:COL: message`, followed by the offending line drawn
/// with a label.
pub fn located(e: tare_dockerfile::Error) -> anyhow::Error {
    match e.snippet() {
        Some(snippet) => anyhow::anyhow!("{e}\n{snippet}"),
        None => anyhow::Error::new(e),
    }
}
