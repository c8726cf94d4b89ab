//! `tare cache ls|prune --registry REF|--dir DIR`: the entries of a build cache in a
//! registry (`tare build --cache-to type=registry,ref=REF`), listed and removed through the
//! registry's API, or in a directory (`--cache-to type=local,dest=DIR`).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args as ClapArgs, Subcommand};
use tare_store::Reference;

use super::images::human_size;
use super::pull::RegistryArgs;

#[derive(Subcommand, Debug)]
pub enum CacheCommand {
    /// List the entries of a cache in a registry or a directory: key, age, layer size.
    Ls(LsArgs),
    /// Delete the entries older than --keep-duration (a registry must allow deletes; in a
    /// directory, their blobs no other entry names go too).
    Prune(PruneArgs),
}

/// Where the cache is: a registry repository or a directory.
#[derive(ClapArgs, Debug)]
#[group(required = true, multiple = false)]
struct Cache {
    /// The cache: the repository given to --cache-to type=registry,ref=...
    #[arg(long, value_name = "REF")]
    registry: Option<String>,
    /// The cache: the directory given to --cache-to type=local,dest=...
    #[arg(long, value_name = "DIR")]
    dir: Option<std::path::PathBuf>,
}

#[derive(ClapArgs, Debug)]
pub struct LsArgs {
    #[command(flatten)]
    cache: Cache,
    /// `table` or `json` (one object per line).
    #[arg(long, default_value = "table", value_parser = ["table", "json"])]
    format: String,
    #[command(flatten)]
    options: RegistryArgs,
}

#[derive(ClapArgs, Debug)]
pub struct PruneArgs {
    #[command(flatten)]
    cache: Cache,
    /// Keep the entries made within this long (`168h`, `7d`, `90m`, `1h30m`).
    #[arg(long, value_name = "DURATION", default_value = "168h", value_parser = parse_duration)]
    keep_duration: chrono::Duration,
    #[command(flatten)]
    options: RegistryArgs,
}

/// `168h`, `7d`, `1h30m`, `45s`: numbers each followed by s, m, h or d.
fn parse_duration(text: &str) -> Result<chrono::Duration, String> {
    let mut total = chrono::Duration::zero();
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let n: i64 = number
            .parse()
            .map_err(|_| format!("{text:?}: expected a number before {c:?}"))?;
        number.clear();
        let part = match c {
            's' => chrono::Duration::try_seconds(n),
            'm' => chrono::Duration::try_minutes(n),
            'h' => chrono::Duration::try_hours(n),
            'd' => chrono::Duration::try_days(n),
            other => return Err(format!("{text:?}: unknown unit {other:?} (s, m, h or d)")),
        };
        total = part
            .and_then(|p| total.checked_add(&p))
            .ok_or_else(|| format!("{text:?} is too long"))?;
    }
    if !number.is_empty() || text.trim().is_empty() {
        return Err(format!(
            "{text:?}: give a unit after each number (168h, 7d, 90m)"
        ));
    }
    Ok(total)
}

fn reference(text: &str) -> anyhow::Result<Reference> {
    Reference::parse(text).with_context(|| format!("reading the cache reference {text:?}"))
}

pub fn run(command: CacheCommand) -> anyhow::Result<ExitCode> {
    match command {
        CacheCommand::Ls(args) => ls(args),
        CacheCommand::Prune(args) => prune(args),
    }
}

fn ls(args: LsArgs) -> anyhow::Result<ExitCode> {
    let entries = match (&args.cache.registry, &args.cache.dir) {
        (_, Some(dir)) => tare_build::remote_cache::list_dir(dir)
            .with_context(|| format!("listing the cache {}", dir.display()))?,
        (Some(registry), None) => {
            let reference = reference(registry)?;
            tare_build::remote_cache::list(&reference, &args.options.options())
                .with_context(|| format!("listing the cache {}", reference.name()))?
        }
        (None, None) => anyhow::bail!("give --registry REF or --dir DIR"),
    };
    if args.format == "json" {
        for e in &entries {
            crate::outln!("{}", serde_json::to_string(e)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    crate::outln!(
        "{:<14} {:<14} {:<24} {:>10}",
        "KEY",
        "PARENT",
        "CREATED",
        "SIZE"
    );
    for e in &entries {
        let created = e
            .created
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_else(|| "-".into());
        crate::outln!(
            "{:<14} {:<14} {:<24} {:>10}",
            short(&e.key),
            short(&e.parent),
            created,
            human_size(e.size)
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn short(key: &str) -> &str {
    key.get(..12).unwrap_or(key)
}

fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    let before = chrono::Utc::now() - args.keep_duration;
    let removed = match (&args.cache.registry, &args.cache.dir) {
        (_, Some(dir)) => tare_build::remote_cache::prune_dir(dir, before)
            .with_context(|| format!("pruning the cache {}", dir.display()))?,
        (Some(registry), None) => {
            let reference = reference(registry)?;
            tare_build::remote_cache::prune(&reference, &args.options.options(), before)
                .with_context(|| format!("pruning the cache {}", reference.name()))?
        }
        (None, None) => anyhow::bail!("give --registry REF or --dir DIR"),
    };
    for e in &removed {
        crate::outln!("deleted {}", e.tag);
    }
    let bytes: u64 = removed.iter().map(|e| e.size).sum();
    crate::outln!(
        "deleted {} cache entries (their layers: {})",
        removed.len(),
        human_size(bytes)
    );
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::parse_duration;

    #[test]
    fn durations_read_like_go_and_docker() {
        assert_eq!(parse_duration("168h"), Ok(chrono::Duration::hours(168)));
        assert_eq!(parse_duration("1h30m"), Ok(chrono::Duration::minutes(90)));
        assert_eq!(parse_duration("7d"), Ok(chrono::Duration::days(7)));
        for bad in ["", "10", "h", "5w", "-1h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
