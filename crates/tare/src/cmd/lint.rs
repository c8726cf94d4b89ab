//! `tare lint`: size rules over a Dockerfile, no build needed. Exit 1 when something is found.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The Dockerfile.
    #[arg(
        short = 'f',
        long = "file",
        default_value = "Dockerfile",
        value_name = "FILE"
    )]
    file: PathBuf,
    /// Output format: text (`FILE:LINE RULE message`) or json.
    #[arg(long, value_enum, default_value = "text")]
    format: super::ReportFormat,
    /// List the rules and exit.
    #[arg(long)]
    rules: bool,
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    if args.rules {
        for (id, what) in tare_size::lint::RULES {
            writeln!(out, "{id:<28} {what}")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let name = args.file.display().to_string();
    let findings = tare_size::lint::lint(&text, &name)
        .with_context(|| format!("reading the Dockerfile {name}"))?;
    if args.format == super::ReportFormat::Json {
        let rows: Vec<serde_json::Value> = findings
            .iter()
            .map(|f| {
                serde_json::json!({
                    "file": name,
                    "rule": f.rule,
                    "line": f.line,
                    "message": f.message,
                    "remedy": f.remedy,
                })
            })
            .collect();
        serde_json::to_writer_pretty(&mut out, &rows)?;
        writeln!(out)?;
    } else {
        for f in &findings {
            writeln!(
                out,
                "{name}:{} {} {}; fix: {}",
                f.line, f.rule, f.message, f.remedy
            )?;
        }
    }
    Ok(if findings.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
