//! `tare diff A B`: files added, removed and changed with their size deltas and the steps that
//! made them, layer verdicts, config differences; `--why` for the first byte-level cause;
//! `--max-growth` to fail CI on a size regression.

use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_size::imagediff::{self, Change, ImageDiff};

use super::images::human_size;
use crate::{outln, Context};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The first image (the baseline): name[:tag], name@digest, or ID.
    a: String,
    /// The second image.
    b: String,
    /// Output format: text or json.
    #[arg(long, default_value = "text", value_name = "text|json")]
    format: String,
    /// Name what makes the two images' bytes differ, layer by layer, then in the config,
    /// each with its remedy (for images whose files are the same).
    #[arg(long)]
    why: bool,
    /// Exit 1 when B's content is larger than A's by more than SIZE (`10MB`, `1GiB`).
    #[arg(long, value_name = "SIZE", value_parser = tare_size::parse_size)]
    max_growth: Option<u64>,
    /// How many changed paths to list, largest size change first (0: all).
    #[arg(long, default_value_t = 20)]
    top: usize,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        matches!(args.format.as_str(), "text" | "json"),
        "unknown --format {:?}: use text or json",
        args.format
    );
    let store = ctx.store()?;
    let a = store
        .resolve(&args.a)
        .with_context(|| format!("looking up {}", args.a))?;
    let b = store
        .resolve(&args.b)
        .with_context(|| format!("looking up {}", args.b))?;
    if args.why {
        let reasons = imagediff::why(&store, &a, &b).context("comparing the images' bytes")?;
        if args.format == "json" {
            outln!("{}", serde_json::to_string_pretty(&reasons)?);
        } else if reasons.is_empty() {
            outln!("the images are the same: {}", a.id);
        } else {
            for (i, r) in reasons.iter().enumerate() {
                outln!(
                    "{} {}: {}\n    remedy: {}",
                    if i == 0 { "first:" } else { "also: " },
                    r.place,
                    r.what,
                    r.remedy
                );
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    let diff = imagediff::diff(&store, &a, &b).context("comparing the images")?;
    if args.format == "json" {
        outln!("{}", serde_json::to_string_pretty(&diff)?);
    } else {
        print_text(&diff, &args)?;
    }
    if let Some(limit) = args.max_growth {
        if diff.size_delta() > limit as i64 {
            eprintln!(
                "error: {} grew by {}, more than --max-growth {}",
                args.b,
                human_size(diff.size_delta() as u64),
                human_size(limit)
            );
            return Ok(ExitCode::from(1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn signed(delta: i64) -> String {
    let sign = if delta < 0 { "-" } else { "+" };
    format!("{sign}{}", human_size(delta.unsigned_abs()))
}

fn print_text(diff: &ImageDiff, args: &Args) -> anyhow::Result<()> {
    outln!("A  {} ({})", diff.a, args.a);
    outln!("B  {} ({})", diff.b, args.b);
    outln!(
        "size        {} -> {} ({})",
        human_size(diff.size_a),
        human_size(diff.size_b),
        signed(diff.size_delta())
    );
    outln!(
        "compressed  {} -> {} ({})",
        human_size(diff.wire_a),
        human_size(diff.wire_b),
        signed(diff.wire_delta())
    );
    let count = |c: Change| diff.files.iter().filter(|f| f.change == c).count();
    outln!(
        "\nfiles: {} added, {} removed, {} changed",
        count(Change::Added),
        count(Change::Removed),
        count(Change::Changed)
    );
    let shown = if args.top == 0 {
        diff.files.len()
    } else {
        args.top
    };
    for f in diff.files.iter().take(shown) {
        let change = match f.change {
            Change::Added => "added".to_string(),
            Change::Removed => "removed".to_string(),
            Change::Changed => format!("changed ({})", f.what.join(", ")),
        };
        outln!(
            "  {:>9}  {:<24} /{}   {}",
            signed(f.delta),
            change,
            f.path,
            f.step
        );
    }
    if diff.files.len() > shown {
        outln!(
            "  … and {} more (--top 0 lists all)",
            diff.files.len() - shown
        );
    }
    outln!("\nlayers:");
    for l in &diff.layers {
        outln!("  {:>3}  {}", l.index, l.verdict);
    }
    outln!("\nconfig: {} fields differ", diff.config.len());
    for c in &diff.config {
        outln!("  {}: {} -> {}", c.field, c.a, c.b);
    }
    Ok(())
}
