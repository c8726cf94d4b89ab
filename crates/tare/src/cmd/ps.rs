//! `tare ps`: the containers of the store, as docker lists them.

use std::io::Write;
use std::process::ExitCode;

use tare_sandbox::containers::{Container, Containers, Status};

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Show all containers (default: running ones).
    #[arg(short = 'a', long)]
    all: bool,
    /// Only print container ids.
    #[arg(short = 'q', long)]
    quiet: bool,
    /// Do not truncate ids and commands.
    #[arg(long)]
    no_trunc: bool,
    /// Output format: table or json (one object per line).
    #[arg(long, default_value = "table", value_name = "table|json")]
    format: String,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let containers = Containers::open(&ctx.root)?;
    let now = now();
    let list: Vec<Container> = containers
        .list()?
        .into_iter()
        .filter(|c| args.all || c.status() == Status::Running)
        .collect();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &list {
            writeln!(out, "{}", id(c, args.no_trunc))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_str() {
        "json" => {
            for c in &list {
                let value = serde_json::json!({
                    "ID": id(c, args.no_trunc),
                    "Image": c.image,
                    "ImageID": c.image_id,
                    "Command": command(c, true),
                    "CreatedAt": c.created,
                    "RunningFor": format!("{} ago", human_duration(now.saturating_sub(c.created))),
                    "Status": status(c, now),
                    "ExitCode": c.exit_code,
                    "Names": c.name,
                });
                writeln!(out, "{value}")?;
            }
        }
        "table" => {
            let rows: Vec<[String; 6]> = list
                .iter()
                .map(|c| {
                    [
                        id(c, args.no_trunc).to_string(),
                        c.image.clone(),
                        command(c, args.no_trunc),
                        format!("{} ago", human_duration(now.saturating_sub(c.created))),
                        status(c, now),
                        c.name.clone(),
                    ]
                })
                .collect();
            let header = [
                "CONTAINER ID",
                "IMAGE",
                "COMMAND",
                "CREATED",
                "STATUS",
                "NAMES",
            ];
            let mut widths = header.map(str::len);
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            write_row(&mut out, &header.map(String::from), &widths)?;
            for row in &rows {
                write_row(&mut out, row, &widths)?;
            }
        }
        other => anyhow::bail!("unknown format {other:?}: use table or json"),
    }
    Ok(ExitCode::SUCCESS)
}

fn write_row(out: &mut impl Write, row: &[String; 6], widths: &[usize; 6]) -> std::io::Result<()> {
    let mut line = String::new();
    for (i, cell) in row.iter().enumerate() {
        if i + 1 == row.len() {
            line.push_str(cell);
        } else {
            let pad = widths[i] - cell.chars().count() + 3;
            line.push_str(cell);
            line.extend(std::iter::repeat_n(' ', pad));
        }
    }
    writeln!(out, "{}", line.trim_end())
}

fn id(c: &Container, full: bool) -> &str {
    if full {
        &c.id
    } else {
        c.short_id()
    }
}

/// Docker's COMMAND column: the command line quoted, cut to 20 characters with an ellipsis.
fn command(c: &Container, full: bool) -> String {
    let text = c.command.join(" ");
    if full || text.chars().count() <= 20 {
        return format!("\"{text}\"");
    }
    let cut: String = text.chars().take(19).collect();
    format!("\"{cut}…\"")
}

fn status(c: &Container, now: u64) -> String {
    match c.status() {
        Status::Created => "Created".to_string(),
        Status::Running => format!("Up {}", human_duration(now.saturating_sub(c.created))),
        Status::Exited { code, finished } => format!(
            "Exited ({code}) {} ago",
            human_duration(now.saturating_sub(finished))
        ),
    }
}

/// Docker's `units.HumanDuration`.
fn human_duration(secs: u64) -> String {
    let minutes = secs / 60;
    let hours = minutes / 60;
    match secs {
        0 => "Less than a second".into(),
        1 => "1 second".into(),
        s if s < 60 => format!("{s} seconds"),
        _ if minutes == 1 => "About a minute".into(),
        _ if minutes < 60 => format!("{minutes} minutes"),
        _ if hours == 1 => "About an hour".into(),
        _ if hours < 48 => format!("{hours} hours"),
        _ if hours < 24 * 7 * 2 => format!("{} days", hours / 24),
        _ if hours < 24 * 30 * 2 => format!("{} weeks", hours / 24 / 7),
        _ if hours < 24 * 365 * 2 => format!("{} months", hours / 24 / 30),
        _ => format!("{} years", hours / 24 / 365),
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_docker() {
        assert_eq!(human_duration(0), "Less than a second");
        assert_eq!(human_duration(5), "5 seconds");
        assert_eq!(human_duration(70), "About a minute");
        assert_eq!(human_duration(600), "10 minutes");
        assert_eq!(human_duration(3 * 3600), "3 hours");
        assert_eq!(human_duration(3 * 86400), "3 days");
    }
}
