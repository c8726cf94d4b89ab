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
    /// Evaluate a Dockerfile: print its stages and their checked, expanded instructions
    /// (expanded without a base image environment).
    Stages {
        /// The Dockerfile to read (`-` for stdin).
        file: PathBuf,
        /// Set a build-time variable (`KEY=VALUE`, or `KEY` to take it from the environment).
        #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
        build_args: Vec<String>,
        /// Keep the stages up to this one.
        #[arg(long)]
        target: Option<String>,
    },
}

pub fn run(_ctx: &Context, command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Parse { file } => parse(&file),
        Command::Stages {
            file,
            build_args,
            target,
        } => stages(&file, &build_args, target.as_deref()),
    }
}

fn parse(file: &PathBuf) -> anyhow::Result<ExitCode> {
    let (text, name) = read(file)?;
    let ast = tare_dockerfile::parse(&text, &name)?;
    std::io::stdout().lock().write_all(ast.dump().as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

fn stages(file: &PathBuf, build_args: &[String], target: Option<&str>) -> anyhow::Result<ExitCode> {
    let (text, name) = read(file)?;
    let args = build_args
        .iter()
        .filter_map(|a| match a.split_once('=') {
            Some((k, v)) => Some((k.to_string(), v.to_string())),
            None => std::env::var(a).ok().map(|v| (a.clone(), v)),
        })
        .collect();
    let ast = tare_dockerfile::parse(&text, &name)?;
    let dockerfile = tare_dockerfile::evaluate(&ast, &args, target)?;
    for warning in &dockerfile.warnings {
        match warning.line {
            Some(line) => eprintln!("warning: {name}:{line}: {}", warning.message),
            None => eprintln!("warning: {}", warning.message),
        }
    }
    let mut out = std::io::stdout().lock();
    for (key, value) in &dockerfile.global_args {
        writeln!(out, "global ARG {key}={value:?}")?;
    }
    for stage in &dockerfile.stages {
        let name = stage
            .name
            .as_deref()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let platform = stage
            .platform
            .as_deref()
            .map(|p| format!(" platform={p}"))
            .unwrap_or_default();
        let base = match stage.base_stage {
            Some(i) => format!("stage {i}"),
            None => stage.base.clone(),
        };
        writeln!(
            out,
            "stage {}{name}: FROM {base}{platform} (line {})",
            stage.index, stage.line
        )?;
        for instruction in stage.expand(&[])? {
            writeln!(
                out,
                "  {}: {:?}",
                instruction.location.start_line, instruction.command
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads FILE (or stdin for `-`), returning its text and the name to use in messages.
fn read(file: &PathBuf) -> anyhow::Result<(String, String)> {
    let mut bytes = Vec::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_end(&mut bytes)
            .context("reading the Dockerfile from stdin")?;
    } else {
        bytes = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    }
    // BuildKit reads bytes; invalid UTF-8 is replaced rather than refused.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let name = if file.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        file.display().to_string()
    };
    Ok((text, name))
}
