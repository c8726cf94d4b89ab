//! `tare images`: the image list, with sizes as `docker system df -v` counts them: content
//! sizes (file bytes, as docker measures a layer), not tar sizes.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Output format: `table` (default) or `json`.
    #[arg(long, default_value = "table")]
    format: String,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let images = store.images().context("listing images")?;
    // A layer counts as shared when more than one image uses it.
    let mut users: HashMap<tare_store::Digest, usize> = HashMap::new();
    for img in &images {
        let mut seen = std::collections::HashSet::new();
        for l in &img.layers {
            if seen.insert(l.diff_id) {
                *users.entry(l.diff_id).or_default() += 1;
            }
        }
    }
    let mut rows = Vec::new();
    for img in &images {
        let mut seen = std::collections::HashSet::new();
        let (mut size, mut shared) = (0u64, 0u64);
        for l in &img.layers {
            if seen.insert(l.diff_id) {
                let n = tare_layer::content_size(&store, l)
                    .with_context(|| format!("sizing layer {} of image {}", l.digest, img.id))?;
                size = size.saturating_add(n);
                if users[&l.diff_id] > 1 {
                    shared = shared.saturating_add(n);
                }
            }
        }
        let names: Vec<(String, String)> = if img.repo_tags.is_empty() {
            vec![("<none>".into(), "<none>".into())]
        } else {
            img.repo_tags
                .iter()
                .map(|r| (r.familiar_name(), r.tag().unwrap_or("<none>").to_string()))
                .collect()
        };
        for (repo, tag) in names {
            rows.push(json!({
                "repository": repo,
                "tag": tag,
                "id": img.id.to_string(),
                "created": img.config.created,
                "size": size,
                "shared_size": shared,
                "unique_size": size - shared,
            }));
        }
    }
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    anyhow::ensure!(
        args.format == "table",
        "unknown --format {:?}: use table or json",
        args.format
    );
    let mut table = vec![[
        "REPOSITORY",
        "TAG",
        "IMAGE ID",
        "CREATED",
        "SIZE",
        "SHARED SIZE",
        "UNIQUE SIZE",
    ]
    .map(String::from)
    .to_vec()];
    for r in &rows {
        let id: tare_store::Digest = r["id"].as_str().unwrap_or_default().parse()?;
        table.push(vec![
            r["repository"].as_str().unwrap_or_default().to_string(),
            r["tag"].as_str().unwrap_or_default().to_string(),
            id.short(),
            human_ago(r["created"].as_str()),
            human_size(r["size"].as_u64().unwrap_or(0)),
            human_size(r["shared_size"].as_u64().unwrap_or(0)),
            human_size(r["unique_size"].as_u64().unwrap_or(0)),
        ]);
    }
    print_table(&table);
    Ok(ExitCode::SUCCESS)
}

/// Prints rows in columns separated by three spaces, like docker's tables.
pub(crate) fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}   ", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

/// Sizes the way docker prints them: decimal units, three significant digits (`4.26MB`).
pub(crate) fn human_size(bytes: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut size = bytes as f64;
    let mut unit = 0;
    while size >= 1000.0 && unit + 1 < units.len() {
        size /= 1000.0;
        unit += 1;
    }
    let text = if size >= 100.0 || unit == 0 {
        format!("{size:.0}")
    } else if size >= 10.0 {
        format!("{size:.1}")
    } else {
        format!("{size:.2}")
    };
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    };
    format!("{text}{}", units[unit])
}

/// `5 minutes ago`, from an RFC 3339 time.
pub(crate) fn human_ago(created: Option<&str>) -> String {
    let Some(t) = created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) else {
        return "N/A".to_string();
    };
    let secs = (chrono::Utc::now() - t.with_timezone(&chrono::Utc))
        .num_seconds()
        .max(0);
    let (n, unit) = match secs {
        s if s < 1 => return "Less than a second ago".to_string(),
        s if s < 60 => (s, "second"),
        s if s < 3600 => (s / 60, "minute"),
        s if s < 86400 * 2 => (s / 3600, "hour"),
        s if s < 86400 * 14 => (s / 86400, "day"),
        s if s < 86400 * 60 => (s / (86400 * 7), "week"),
        s if s < 86400 * 365 * 2 => (s / (86400 * 30), "month"),
        s => (s / (86400 * 365), "year"),
    };
    if n == 1 {
        format!(
            "{} {unit} ago",
            if unit == "hour" { "About an" } else { "1" }
        )
    } else {
        format!("{n} {unit}s ago")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human_size(0), "0B");
        assert_eq!(human_size(999), "999B");
        assert_eq!(human_size(4_261_000), "4.26MB");
        assert_eq!(human_size(12_345), "12.3kB");
        assert_eq!(human_size(150_000_000), "150MB");
    }
}
