//! `tare ps`: the containers of the store, as docker lists them.

use std::io::Write;
use std::process::ExitCode;

use tare_sandbox::containers::{Container, Containers, Status};

use anyhow::Context as _;

use super::images::{human_size, print_table};
use crate::format::{print_template, Format};
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
    /// Output format: `table`, `json` (one object per line), or a Go template
    /// (`{{.ID}} {{.Status}}`, `table {{.Names}}\t{{.Image}}`). Fields: ID, Image, ImageID,
    /// Command, CreatedAt, RunningFor, State, Status, ExitCode, Names, Size.
    #[arg(long)]
    format: Option<String>,
    /// Filter: `id=`, `name=`, `status=created|running|exited`, `exited=CODE`,
    /// `ancestor=IMAGE` (repeatable; the same key ORs, different keys AND).
    #[arg(short, long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
    /// Show the N most recently created containers (all states).
    #[arg(short = 'n', long, value_name = "N")]
    last: Option<usize>,
    /// Show the latest created container (all states).
    #[arg(short = 'l', long)]
    latest: bool,
    /// Show each container's size: its own changes, and the image's size under it.
    #[arg(short, long)]
    size: bool,
}

/// Column titles for `--format 'table ...'`, as docker names them.
const HEADER: &[(&str, &str)] = &[
    ("ID", "CONTAINER ID"),
    ("Image", "IMAGE"),
    ("ImageID", "IMAGE ID"),
    ("Command", "COMMAND"),
    ("CreatedAt", "CREATED AT"),
    ("RunningFor", "CREATED"),
    ("State", "STATE"),
    ("Status", "STATUS"),
    ("ExitCode", "EXIT CODE"),
    ("Names", "NAMES"),
    ("Size", "SIZE"),
];

/// Refuses an unknown filter or value before any container is looked at.
fn check_filters(filters: &[(String, String)]) -> anyhow::Result<()> {
    for (key, value) in filters {
        match key.as_str() {
            "id" | "name" | "ancestor" => {}
            "status" => anyhow::ensure!(
                matches!(value.as_str(), "created" | "running" | "exited"),
                "bad --filter status={value:?}: tare's containers are created, running or exited"
            ),
            "exited" => {
                value
                    .parse::<i32>()
                    .with_context(|| format!("bad --filter exited={value:?}: not a number"))?;
            }
            other => {
                anyhow::bail!("bad --filter {other:?}: use id, name, status, exited or ancestor")
            }
        }
    }
    Ok(())
}

/// `--filter` of `ps`: each key's values OR, keys AND.
fn keep(c: &Container, filters: &[(String, String)]) -> anyhow::Result<bool> {
    let mut keys: Vec<&str> = filters.iter().map(|(k, _)| k.as_str()).collect();
    keys.dedup();
    for key in keys {
        let mut any = false;
        for (_, value) in filters.iter().filter(|(k, _)| k == key) {
            any |= match key {
                "id" => c.id.starts_with(value.as_str()),
                "name" => c.name.contains(value.as_str()),
                "status" => match value.as_str() {
                    "created" => c.status() == Status::Created,
                    "running" => c.status() == Status::Running,
                    "exited" => matches!(c.status(), Status::Exited { .. }),
                    other => anyhow::bail!(
                        "bad --filter status={other:?}: tare's containers are created, running \
                         or exited"
                    ),
                },
                "exited" => {
                    let code: i32 = value
                        .parse()
                        .with_context(|| format!("bad --filter exited={value:?}: not a number"))?;
                    matches!(c.status(), Status::Exited { code: got, .. } if got == code)
                }
                "ancestor" => {
                    c.image == *value
                        || c.image.strip_suffix(":latest") == Some(value.as_str())
                        || c.image_id == *value
                        || c.image_id
                            .strip_prefix("sha256:")
                            .is_some_and(|h| h.starts_with(value.trim_start_matches("sha256:")))
                }
                other => anyhow::bail!(
                    "bad --filter {other:?}: use id, name, status, exited or ancestor"
                ),
            };
        }
        if !any {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let format = Format::parse(args.format.as_deref())?;
    let filters = args
        .filter
        .iter()
        .map(|f| {
            f.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("bad --filter {f:?}: use KEY=VALUE"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    check_filters(&filters)?;
    let containers = Containers::open(&ctx.root)?;
    let now = now();
    let last = if args.latest { Some(1) } else { args.last };
    let mut list: Vec<Container> = Vec::new();
    for c in containers.list()? {
        if (args.all || last.is_some() || c.status() == Status::Running) && keep(&c, &filters)? {
            list.push(c);
        }
    }
    // Newest first, as docker lists them.
    list.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    if let Some(n) = last {
        list.truncate(n);
    }
    // Sizing walks every container's writable layer: only with -s, as docker (whose
    // `{{.Size}}` is 0B without it).
    let sizes = if args.size {
        let store = ctx.store()?;
        list.iter()
            .map(|c| container_size(&store, &containers, c))
            .collect::<anyhow::Result<Vec<_>>>()?
    } else {
        vec!["0B".to_string(); list.len()]
    };
    let mut out = std::io::stdout().lock();
    if args.quiet {
        for c in &list {
            writeln!(out, "{}", id(c, args.no_trunc))?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        Format::Template { .. } => {
            let rows: Vec<serde_json::Value> = list
                .iter()
                .zip(&sizes)
                .map(|(c, size)| {
                    serde_json::json!({
                        "ID": id(c, args.no_trunc),
                        "Image": c.image,
                        "ImageID": c.image_id,
                        "Command": command(c, args.no_trunc),
                        "CreatedAt": created_at(c.created),
                        "RunningFor": format!("{} ago", human_duration(now.saturating_sub(c.created))),
                        "State": state(c),
                        "Status": status(c, now),
                        "ExitCode": c.exit_code.map_or(String::new(), |e| e.to_string()),
                        "Names": c.name,
                        "Size": size,
                    })
                })
                .collect();
            drop(out);
            print_template(&format, &rows, HEADER)?;
        }
        Format::Json => {
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
        Format::Table => {
            let mut header = vec!["CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS"];
            header.extend(["PORTS", "NAMES"]);
            if args.size {
                header.push("SIZE");
            }
            let mut rows = vec![header.into_iter().map(String::from).collect::<Vec<_>>()];
            for (i, c) in list.iter().enumerate() {
                let mut row = vec![
                    id(c, args.no_trunc).to_string(),
                    c.image.clone(),
                    command(c, args.no_trunc),
                    format!("{} ago", human_duration(now.saturating_sub(c.created))),
                    status(c, now),
                    String::new(),
                    c.name.clone(),
                ];
                if args.size {
                    row.push(sizes[i].clone());
                }
                rows.push(row);
            }
            drop(out);
            print_table(&rows)?;
        }
    }
    Ok(ExitCode::SUCCESS)
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

/// Docker's State: created, running or exited.
fn state(c: &Container) -> &'static str {
    match c.status() {
        Status::Created => "created",
        Status::Running => "running",
        Status::Exited { .. } => "exited",
    }
}

/// Docker's CreatedAt text: `2026-11-30 01:02:03 +0000 UTC`.
fn created_at(secs: u64) -> String {
    chrono::DateTime::from_timestamp(secs as i64, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S +0000 UTC").to_string())
        .unwrap_or_default()
}

/// Docker's SIZE column: the container's own changes, and the image under them.
fn container_size(
    store: &tare_store::Store,
    containers: &Containers,
    c: &Container,
) -> anyhow::Result<String> {
    let changes = tare_build::commit::container_changes(containers, c)?;
    let upper = changes.path();
    let own = dir_size(upper).with_context(|| format!("sizing {}", upper.display()))?;
    let image = match store.resolve(&c.image_id) {
        Ok(img) => {
            let mut total = 0u64;
            for l in &img.layers {
                total = total.saturating_add(
                    tare_layer::content_size(store, l)
                        .with_context(|| format!("sizing layer {}", l.digest))?,
                );
            }
            total
        }
        Err(_) => 0,
    };
    Ok(format!(
        "{} (virtual {})",
        human_size(own),
        human_size(own.saturating_add(image))
    ))
}

/// File bytes and symlink target lengths under `dir`, never following a link (a missing
/// directory is 0: the container never wrote).
pub(crate) fn dir_size(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0u64;
    walk_files(dir, |meta| total = total.saturating_add(meta.len()))?;
    Ok(total)
}

/// What removing `dir` frees, counted as [`dir_size`] counts: each inode once, and only when
/// every link to it is under `dir` (a file also linked from elsewhere stays on disk).
pub(crate) fn freed_by_removing(dir: &std::path::Path) -> std::io::Result<u64> {
    use std::os::unix::fs::MetadataExt;
    // (device, inode) -> (links it has, links seen under `dir`, bytes)
    let mut inodes = std::collections::HashMap::<(u64, u64), (u64, u64, u64)>::new();
    walk_files(dir, |meta| {
        let seen = inodes
            .entry((meta.dev(), meta.ino()))
            .or_insert((meta.nlink(), 0, meta.len()));
        seen.1 += 1;
    })?;
    Ok(inodes
        .values()
        .filter(|(links, seen, _)| seen >= links)
        .fold(0u64, |total, (_, _, bytes)| total.saturating_add(*bytes)))
}

/// Calls `each` with the metadata of every regular file and symbolic link under `dir`,
/// without following links (a missing directory has none).
fn walk_files(
    dir: &std::path::Path,
    mut each: impl FnMut(&std::fs::Metadata),
) -> std::io::Result<()> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() || meta.is_symlink() {
                each(&meta);
            }
        }
    }
    Ok(())
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
