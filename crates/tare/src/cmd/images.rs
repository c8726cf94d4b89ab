//! `tare images`: the image list, with sizes as `docker system df -v` counts them: content
//! sizes (file bytes, as docker measures a layer), not tar sizes.

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use crate::format::{print_template, Format};
use crate::{outln, Context};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Only images whose name matches: `NAME`, `NAME:TAG`, with `*` and `?` wildcards.
    reference: Option<String>,
    /// Output format: `table` (default), `json`, or a Go template (`{{.Repository}}:{{.Tag}}`,
    /// `table {{.ID}}\t{{.Size}}`). Fields: ID, Repository, Tag, Digest, CreatedSince,
    /// CreatedAt, Size, SharedSize, UniqueSize, VirtualSize, Containers.
    #[arg(long)]
    format: Option<String>,
    /// Only print image IDs.
    #[arg(short, long)]
    quiet: bool,
    /// Show all images. tare keeps no intermediate images (build steps live in the build
    /// cache), so this lists the same images as without it; accepted for docker's scripts.
    #[arg(short, long)]
    all: bool,
    /// Show full image IDs.
    #[arg(long)]
    no_trunc: bool,
    /// Show the manifest digest of each image (of a multi-platform image: its index's).
    #[arg(long)]
    digests: bool,
    /// Under each multi-platform image, list its platforms: each one's image ID and size
    /// (docker's `--tree`).
    #[arg(long)]
    tree: bool,
    /// Filter: `dangling=true|false`, `reference=PATTERN`, `label=KEY[=VALUE]`,
    /// `before=IMAGE`, `since=IMAGE` (repeatable; the same key ORs, different keys AND).
    #[arg(short, long, value_name = "KEY=VALUE")]
    filter: Vec<String>,
}

/// Column titles for `--format 'table ...'`, as docker names them.
const HEADER: &[(&str, &str)] = &[
    ("ID", "IMAGE ID"),
    ("Repository", "REPOSITORY"),
    ("Tag", "TAG"),
    ("Digest", "DIGEST"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("Size", "SIZE"),
    ("SharedSize", "SHARED SIZE"),
    ("UniqueSize", "UNIQUE SIZE"),
    ("VirtualSize", "VIRTUAL SIZE"),
    ("Containers", "CONTAINERS"),
];

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let format = Format::parse(args.format.as_deref())?;
    let store = ctx.store()?;
    let mut images = store.images().context("listing images")?;
    let mut filters = Filters::parse(&args.filter, &store)?;
    if let Some(r) = &args.reference {
        filters.reference.push(r.clone());
    }
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
    // Multi-platform images: each tag's index; the images an index holds are its platforms,
    // listed under it (`--tree`, `platforms` in JSON), not as untagged images.
    let indexes: HashMap<String, tare_store::StoredIndex> = store
        .indexes()
        .context("reading the image indexes")?
        .into_iter()
        .map(|(r, i)| (r.to_string(), i))
        .collect();
    let held = store.index_holders().context("reading the image indexes")?;
    // Unnamed multi-platform images (`tare load` of an archive without names), by the ID of
    // the image of this machine's platform: listed as `<none>` with their index's ID.
    let mut unnamed: HashMap<tare_store::Digest, Vec<tare_store::StoredIndex>> = HashMap::new();
    for index in store
        .unnamed_indexes()
        .context("reading the image indexes")?
    {
        if let Some(host) = index.host_image() {
            unnamed.entry(host.id).or_default().push(index);
        }
    }
    let sizes = |img: &tare_store::Image| -> anyhow::Result<(u64, u64)> {
        let mut seen = std::collections::HashSet::new();
        let (mut size, mut shared) = (0u64, 0u64);
        if !args.quiet {
            for l in &img.layers {
                if seen.insert(l.diff_id) {
                    let n = tare_layer::content_size(&store, l).with_context(|| {
                        format!("sizing layer {} of image {}", l.digest, img.id)
                    })?;
                    size = size.saturating_add(n);
                    if users.get(&l.diff_id).is_some_and(|u| *u > 1) {
                        shared = shared.saturating_add(n);
                    }
                }
            }
        }
        Ok((size, shared))
    };
    // Newest first, as docker lists them.
    images.sort_by_key(|img| std::cmp::Reverse(created_of(img)));
    let platforms_of = |index: &tare_store::StoredIndex| -> anyhow::Result<serde_json::Value> {
        let mut platforms = Vec::new();
        for p in &index.images {
            let (size, _) = sizes(p)?;
            platforms.push(json!({
                "platform": tare_store::platform_name(p),
                "id": p.id.to_string(),
                "digest": p.manifest_digest.to_string(),
                "size": size,
            }));
        }
        Ok(platforms.into())
    };
    let mut rows = Vec::new();
    for img in &images {
        if !filters.keep_image(img) {
            continue;
        }
        let (size, shared) = sizes(img)?;
        if filters.reference.is_empty() {
            for index in unnamed.get(&img.id).into_iter().flatten() {
                rows.push(json!({
                    "repository": "<none>",
                    "tag": "<none>",
                    "id": index.digest.to_string(),
                    "digest": index.digest.to_string(),
                    "created": img.config.created,
                    "size": size,
                    "shared_size": shared,
                    "unique_size": size - shared,
                    "platforms": platforms_of(index)?,
                }));
            }
        }
        if img.repo_tags.is_empty() && held.contains_key(&img.id) {
            continue;
        }
        let names: Vec<Option<&tare_store::Reference>> = if img.repo_tags.is_empty() {
            vec![None]
        } else {
            img.repo_tags
                .iter()
                .filter(|r| filters.keep_reference(r))
                .map(Some)
                .collect()
        };
        for r in names {
            let mut row = json!({
                "repository": r.map_or("<none>".into(), |r| r.familiar_name()),
                "tag": r.and_then(|r| r.tag()).unwrap_or("<none>"),
                "id": img.id.to_string(),
                "digest": img.manifest_digest.to_string(),
                "created": img.config.created,
                "size": size,
                "shared_size": shared,
                "unique_size": size - shared,
            });
            if let Some(index) = r.and_then(|r| indexes.get(&r.to_string())) {
                row["digest"] = index.digest.to_string().into();
                row["platforms"] = platforms_of(index)?;
            }
            rows.push(row);
        }
    }
    let id_text = |r: &serde_json::Value| -> anyhow::Result<String> {
        let id: tare_store::Digest = r["id"].as_str().unwrap_or_default().parse()?;
        Ok(if args.no_trunc {
            id.to_string()
        } else {
            id.short()
        })
    };
    if args.quiet {
        for r in &rows {
            outln!("{}", id_text(r)?);
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        Format::Json => {
            outln!("{}", serde_json::to_string_pretty(&rows)?);
        }
        Format::Template { .. } => {
            let docker_rows = rows
                .iter()
                .map(|r| {
                    Ok(json!({
                        "ID": id_text(r)?,
                        "Repository": r["repository"],
                        "Tag": r["tag"],
                        "Digest": r["digest"],
                        "CreatedSince": human_ago(r["created"].as_str()),
                        "CreatedAt": docker_time(r["created"].as_str()),
                        "Size": human_size(r["size"].as_u64().unwrap_or(0)),
                        "SharedSize": human_size(r["shared_size"].as_u64().unwrap_or(0)),
                        "UniqueSize": human_size(r["unique_size"].as_u64().unwrap_or(0)),
                        "VirtualSize": human_size(r["size"].as_u64().unwrap_or(0)),
                        "Containers": "N/A",
                    }))
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            print_template(&format, &docker_rows, HEADER)?;
        }
        Format::Table => {
            let mut head = vec!["REPOSITORY", "TAG"];
            if args.digests {
                head.push("DIGEST");
            }
            head.extend(["IMAGE ID", "CREATED", "SIZE", "SHARED SIZE", "UNIQUE SIZE"]);
            let mut table = vec![head.into_iter().map(String::from).collect::<Vec<_>>()];
            for r in &rows {
                let mut row = vec![
                    r["repository"].as_str().unwrap_or_default().to_string(),
                    r["tag"].as_str().unwrap_or_default().to_string(),
                ];
                if args.digests {
                    row.push(r["digest"].as_str().unwrap_or_default().to_string());
                }
                row.extend([
                    id_text(r)?,
                    human_ago(r["created"].as_str()),
                    human_size(r["size"].as_u64().unwrap_or(0)),
                    human_size(r["shared_size"].as_u64().unwrap_or(0)),
                    human_size(r["unique_size"].as_u64().unwrap_or(0)),
                ]);
                table.push(row);
                let platforms = r["platforms"].as_array().filter(|_| args.tree);
                for (n, p) in platforms.into_iter().flatten().enumerate() {
                    let last = n + 1 == platforms.map_or(0, Vec::len);
                    let branch = if last { "└─" } else { "├─" };
                    let mut row = vec![
                        format!("{branch} {}", p["platform"].as_str().unwrap_or_default()),
                        String::new(),
                    ];
                    if args.digests {
                        row.push(p["digest"].as_str().unwrap_or_default().to_string());
                    }
                    row.extend([
                        id_text(p)?,
                        String::new(),
                        human_size(p["size"].as_u64().unwrap_or(0)),
                    ]);
                    table.push(row);
                }
            }
            print_table(&table)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `--filter` values, as docker's image list reads them.
#[derive(Default)]
struct Filters {
    dangling: Option<bool>,
    reference: Vec<String>,
    labels: Vec<(String, Option<String>)>,
    before: Option<Created>,
    since: Option<Created>,
}

type Created = Option<chrono::DateTime<chrono::FixedOffset>>;

/// An image's creation time, compared as a time (the texts differ in precision).
fn created_of(img: &tare_store::Image) -> Created {
    img.config
        .created
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
}

impl Filters {
    fn parse(list: &[String], store: &tare_store::Store) -> anyhow::Result<Filters> {
        let mut f = Filters::default();
        let created = |name: &str| -> anyhow::Result<Created> {
            let img = store
                .resolve(name)
                .with_context(|| format!("--filter: looking up {name}"))?;
            Ok(created_of(&img))
        };
        for item in list {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("bad --filter {item:?}: use KEY=VALUE"))?;
            match key {
                "dangling" => {
                    f.dangling = Some(match value {
                        "true" | "1" => true,
                        "false" | "0" => false,
                        _ => anyhow::bail!("bad --filter {item:?}: dangling is true or false"),
                    })
                }
                "reference" => f.reference.push(value.to_string()),
                "label" => f.labels.push(match value.split_once('=') {
                    Some((k, v)) => (k.to_string(), Some(v.to_string())),
                    None => (value.to_string(), None),
                }),
                "before" => f.before = Some(created(value)?),
                "since" => f.since = Some(created(value)?),
                other => anyhow::bail!(
                    "bad --filter {item:?}: unknown key {other:?} (use dangling, reference, label, \
                     before or since)"
                ),
            }
        }
        Ok(f)
    }

    fn keep_image(&self, img: &tare_store::Image) -> bool {
        if let Some(d) = self.dangling {
            if d != img.repo_tags.is_empty() {
                return false;
            }
        }
        if !self.reference.is_empty() && !img.repo_tags.iter().any(|r| self.keep_reference(r)) {
            return false;
        }
        let labels = img.config.config.labels.clone().unwrap_or_default();
        for (k, v) in &self.labels {
            match (labels.get(k), v) {
                (None, _) => return false,
                (Some(have), Some(want)) if have != want => return false,
                _ => {}
            }
        }
        let created = created_of(img);
        if self.before.as_ref().is_some_and(|b| created >= *b) {
            return false;
        }
        if self.since.as_ref().is_some_and(|s| created <= *s) {
            return false;
        }
        true
    }

    /// `reference=` matches the familiar name, or name:tag, with shell wildcards.
    fn keep_reference(&self, r: &tare_store::Reference) -> bool {
        if self.reference.is_empty() {
            return true;
        }
        let name = r.familiar_name();
        let full = match r.tag() {
            Some(t) => format!("{name}:{t}"),
            None => name.clone(),
        };
        self.reference
            .iter()
            .any(|p| wildcard(p, &name) || wildcard(p, &full))
    }
}

/// Go's `path.Match` for `*` and `?` (which do not cross `/`) and literal characters.
fn wildcard(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    fn go(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len())
                .take_while(|&i| i == 0 || t[i - 1] != '/')
                .any(|i| go(rest, &t[i..])),
            Some(('?', rest)) => t.first().is_some_and(|c| *c != '/') && go(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && go(rest, &t[1..]),
        }
    }
    go(&p, &t)
}

/// Docker's CreatedAt text: `2026-11-30 01:02:03 +0000 UTC`.
pub(crate) fn docker_time(created: Option<&str>) -> String {
    match created.and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok()) {
        Some(t) => t
            .with_timezone(&chrono::Utc)
            .format("%Y-%m-%d %H:%M:%S +0000 UTC")
            .to_string(),
        None => "N/A".to_string(),
    }
}

/// Prints rows in columns separated by three spaces, like docker's tables.
pub(crate) fn print_table(rows: &[Vec<String>]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
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
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

/// Sizes as docker prints them (`1.98MB`): tare's one formatter, [`tare_size::budget::human`].
pub(crate) use tare_size::budget::human as human_size;

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
    fn reference_wildcards_match_like_go_path_match() {
        assert!(wildcard("busy*", "busybox"));
        assert!(wildcard("busybox:*", "busybox:latest"));
        assert!(!wildcard("*", "library/busybox"));
        assert!(wildcard("*/app", "me/app"));
        assert!(wildcard("b?sybox", "busybox"));
        assert!(!wildcard("busy", "busybox"));
    }
}
