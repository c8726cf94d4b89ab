//! `tare analyze`: where an image's bytes go, what it wastes, and the remedy for each finding.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use tare_size::budget::human;
use tare_size::steps::short_command;
use tare_size::waste::Analysis;

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image: a reference, an ID or an ID prefix.
    image: String,
    /// Output format: text or json.
    #[arg(long, value_enum, default_value = "text")]
    format: super::ReportFormat,
    /// Also write a self-contained HTML report (layer chart, directory treemap, wasted files).
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// How many findings and largest files the text report lists.
    #[arg(long, default_value_t = 10)]
    top: usize,
    // tare slim's tracer (issue 19).
    /// Run the image under tare slim's tracer (this command line; `''` for the image's own
    /// command) and show per layer how much of it the run never touched.
    #[arg(long, value_name = "CMD")]
    trace: Option<String>,
    /// With --trace: the longest the traced run may take (`30s`, `2m`).
    #[arg(long, default_value = "30s", value_parser = super::slim::parse_duration)]
    duration: std::time::Duration,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    if args.trace.is_some() && args.format != super::ReportFormat::Text {
        anyhow::bail!("--trace prints the unused share in the text format only");
    }
    let store = ctx.store()?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("finding image {}", args.image))?;
    let analysis = tare_size::analyze(&store, &image)
        .with_context(|| format!("analysing image {}", image.id))?;
    if let Some(path) = &args.html {
        let page = tare_size::html::render(&analysis, &args.image);
        std::fs::write(path, page)
            .with_context(|| format!("writing the HTML report to {}", path.display()))?;
    }
    let mut out = std::io::stdout().lock();
    if args.format == super::ReportFormat::Json {
        serde_json::to_writer_pretty(&mut out, &analysis)?;
        writeln!(out)?;
    } else {
        let name = image
            .repo_tags
            .first()
            .map(|t| t.familiar())
            .unwrap_or_else(|| args.image.clone());
        print_text(&mut out, &analysis, &name, args.top)?;
        if let Some(cmd) = &args.trace {
            let probe = Some(cmd.as_str()).filter(|c| !c.trim().is_empty());
            let (traced, view) = super::slim::trace_paths(&store, &image, probe, args.duration)?;
            let plan = tare_size::slim::plan(&view, &traced, &tare_size::slim::Extras::default());
            writeln!(
                out,
                "\nUnused by the traced run (what tare slim would remove):"
            )?;
            let layers = tare_size::slim::unused_by_layer(&view, &plan, image.layers.len());
            for (i, (shown, unused)) in layers.iter().enumerate() {
                let pct = if *shown == 0 {
                    0.0
                } else {
                    *unused as f64 * 100.0 / *shown as f64
                };
                writeln!(
                    out,
                    "  layer {i}: {} of {} ({pct:.1}%)",
                    human(*unused),
                    human(*shown)
                )?;
            }
        }
        if let Some(path) = &args.html {
            writeln!(out, "\nHTML report written to {}", path.display())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn step(layer: usize, line: Option<usize>, by: &Option<String>) -> String {
    let cmd = by.as_deref().map(short_command).unwrap_or_default();
    match (line, cmd.is_empty()) {
        (Some(l), false) => format!("line {l} ({cmd})"),
        (Some(l), true) => format!("line {l}"),
        (None, false) => format!("layer {layer} ({cmd})"),
        (None, true) => format!("layer {layer}"),
    }
}

fn print_text(out: &mut impl Write, a: &Analysis, name: &str, top: usize) -> anyhow::Result<()> {
    writeln!(out, "Image {name} ({})", a.image)?;
    if let Some(file) = &a.dockerfile {
        writeln!(out, "Built from {file}")?;
    }
    let pct = |n: u64| {
        if a.image_size == 0 {
            0.0
        } else {
            n as f64 * 100.0 / a.image_size as f64
        }
    };
    writeln!(
        out,
        "Size {} in {} layers; wasted {} ({:.1}%), of which {} metadata-only rewrites; \
         efficiency {:.1}% (as dive computes it)",
        human(a.image_size),
        a.layers.len(),
        human(a.wasted_bytes),
        pct(a.wasted_bytes),
        human(a.metadata_only_bytes),
        a.efficiency * 100.0
    )?;

    writeln!(out, "\nLayers")?;
    writeln!(
        out,
        "  {:>3}  {:>5}  {:>9}  {:>9}  {:>12}  STEP",
        "#", "LINE", "SIZE", "RUNNING", "KILLED LATER"
    )?;
    let max = a.layers.iter().map(|l| l.size).max().unwrap_or(0).max(1);
    for l in &a.layers {
        let bar = tare_size::budget::bar(l.size, max, 20);
        writeln!(
            out,
            "  {:>3}  {:>5}  {:>9}  {:>9}  {:>12}  {:<20} {}",
            l.index,
            l.line.map(|n| n.to_string()).unwrap_or_else(|| "-".into()),
            human(l.size),
            human(l.running_size),
            human(l.wasted_bytes),
            bar,
            l.created_by
                .as_deref()
                .map(short_command)
                .unwrap_or_default()
        )?;
    }

    let findings = a.findings();
    if findings.is_empty() {
        writeln!(
            out,
            "\nNo wasted bytes: every file the layers store is in the final filesystem."
        )?;
    } else {
        writeln!(out, "\nFindings")?;
        for (i, f) in findings.iter().take(top).enumerate() {
            writeln!(
                out,
                "{}. {} in {} file{} added at {}, {} at {}",
                i + 1,
                human(f.bytes),
                f.files,
                if f.files == 1 { "" } else { "s" },
                step(f.added_layer, f.added_line, &f.added_by),
                f.kind.verb(),
                step(f.removed_layer, f.removed_line, &f.removed_by),
            )?;
            for p in &f.examples {
                writeln!(out, "     {p}")?;
            }
            if f.files > f.examples.len() {
                writeln!(out, "     … and {} more", f.files - f.examples.len())?;
            }
            writeln!(out, "   remedy: {}", f.remedy)?;
        }
        if findings.len() > top {
            writeln!(
                out,
                "… and {} more findings (--top, or --format json)",
                findings.len() - top
            )?;
        }
        writeln!(
            out,
            "\nFor this image as it is: `tare squash {name} -t NEW` drops the {} of dead files \
             (the filesystem stays identical).",
            human(a.wasted_bytes)
        )?;
    }

    if !a.largest.is_empty() {
        writeln!(out, "\nLargest files")?;
        for f in a.largest.iter().take(top) {
            writeln!(
                out,
                "  {:>9}  {}  (layer {})",
                human(f.size),
                f.path,
                f.layer
            )?;
        }
    }
    Ok(())
}
