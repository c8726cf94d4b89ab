//! `tare history IMAGE`: one row per history entry, with what each layer adds and the image
//! size so far, in content sizes (file bytes, as docker measures a layer).

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use serde_json::json;

use super::images::{human_ago, human_size, print_table};
use crate::format::{print_template, Format};
use crate::{outln, Context};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The image: name[:tag], name@digest, or ID.
    image: String,
    /// Output format: `table` (default), `json`, or a Go template (`{{.CreatedBy}}`,
    /// `table {{.ID}}\t{{.Size}}`). Fields: ID, CreatedSince, CreatedAt, CreatedBy, Size,
    /// Comment, and tare's Line and ImageSize.
    #[arg(long)]
    format: Option<String>,
    /// Show full CREATED BY text and full IDs.
    #[arg(long)]
    no_trunc: bool,
    /// Only print the IDs (the image's own, `<missing>` for the layers below it).
    #[arg(short, long)]
    quiet: bool,
    /// Print sizes and dates in human-readable form (`-H=false` for bytes and RFC 3339).
    #[arg(short = 'H', long, default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    human: bool,
}

/// Column titles for `--format 'table ...'`, as docker names them (plus tare's own).
const HEADER: &[(&str, &str)] = &[
    ("ID", "IMAGE"),
    ("CreatedSince", "CREATED"),
    ("CreatedAt", "CREATED AT"),
    ("CreatedBy", "CREATED BY"),
    ("Size", "SIZE"),
    ("Comment", "COMMENT"),
    ("Line", "LINE"),
    ("ImageSize", "IMAGE SIZE"),
];

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let img = store
        .resolve(&args.image)
        .with_context(|| format!("looking up {}", args.image))?;
    let mut layers = img.layers.iter();
    let mut total = 0u64;
    let mut rows = Vec::new();
    let history = if img.config.history.is_empty() {
        // No history (some importers): one row per layer.
        img.layers
            .iter()
            .map(|_| tare_store::config::History::default())
            .collect()
    } else {
        img.config.history.clone()
    };
    // The Dockerfile line of each entry, when tare built the image (null otherwise).
    let mut lines = tare_size::steps::history_lines(&img).into_iter();
    for h in &history {
        let line = lines.next().flatten();
        let layer = if h.empty_layer { None } else { layers.next() };
        let layer_size = match layer {
            Some(l) => tare_layer::content_size(&store, l)
                .with_context(|| format!("sizing layer {}", l.digest))?,
            None => 0,
        };
        total = total.saturating_add(layer_size);
        rows.push(json!({
            "created": h.created,
            "created_by": h.created_by.clone().unwrap_or_default(),
            "comment": h.comment.clone().unwrap_or_default(),
            "empty_layer": h.empty_layer,
            "layer_size": layer_size,
            "image_size": total,
            "line": line,
        }));
    }
    rows.reverse();
    let format = Format::parse(args.format.as_deref())?;
    let id_of = |i: usize| {
        if i > 0 {
            "<missing>".to_string()
        } else if args.no_trunc {
            img.id.to_string()
        } else {
            img.id.short()
        }
    };
    if args.quiet {
        for i in 0..rows.len() {
            outln!("{}", id_of(i));
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Format::Json = format {
        outln!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(ExitCode::SUCCESS);
    }
    let dockerfile = img
        .build_info
        .as_ref()
        .and_then(|info| info.dockerfile.as_deref())
        .map(|path| {
            std::path::Path::new(path)
                .file_name()
                .map_or(path.to_string(), |n| n.to_string_lossy().into_owned())
        });
    let largest = rows
        .iter()
        .filter_map(|r| r["layer_size"].as_u64())
        .max()
        .unwrap_or(0);
    let size_text = |n: u64| {
        if args.human {
            human_size(n)
        } else {
            n.to_string()
        }
    };
    if format.is_template() {
        let docker_rows: Vec<serde_json::Value> = rows
            .iter()
            .enumerate()
            .map(|(i, r)| {
                let created = r["created"].as_str();
                json!({
                    "ID": id_of(i),
                    "CreatedSince": if args.human {
                        human_ago(created)
                    } else {
                        created.unwrap_or_default().to_string()
                    },
                    "CreatedAt": created.unwrap_or_default(),
                    "CreatedBy": r["created_by"],
                    "Size": size_text(r["layer_size"].as_u64().unwrap_or(0)),
                    "Comment": r["comment"],
                    "Line": r["line"],
                    "ImageSize": size_text(r["image_size"].as_u64().unwrap_or(0)),
                })
            })
            .collect();
        print_template(&format, &docker_rows, HEADER)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = vec![[
        "IMAGE",
        "CREATED",
        "LINE",
        "CREATED BY",
        "LAYER SIZE",
        "",
        "IMAGE SIZE",
        "COMMENT",
    ]
    .map(String::from)
    .to_vec()];
    for (i, r) in rows.iter().enumerate() {
        let mut by = r["created_by"]
            .as_str()
            .unwrap_or_default()
            .replace('\n', " ");
        if !args.no_trunc && by.chars().count() > 45 {
            by = by.chars().take(44).collect::<String>() + "…";
        }
        table.push(vec![
            id_of(i),
            if args.human {
                human_ago(r["created"].as_str())
            } else {
                r["created"].as_str().unwrap_or_default().to_string()
            },
            match (r["line"].as_u64(), &dockerfile) {
                (Some(line), Some(file)) => format!("{file}:{line}"),
                (Some(line), None) => line.to_string(),
                _ => String::new(),
            },
            by,
            size_text(r["layer_size"].as_u64().unwrap_or(0)),
            tare_size::budget::bar(r["layer_size"].as_u64().unwrap_or(0), largest, 20),
            size_text(r["image_size"].as_u64().unwrap_or(0)),
            r["comment"].as_str().unwrap_or_default().to_string(),
        ]);
    }
    print_table(&table)?;
    Ok(ExitCode::SUCCESS)
}
