//! What `tare build` prints and checks after the build: squash, size budgets, the
//! `--baseline` comparison, and the step table.

use anyhow::Context as _;
use tare_build::BuildResult;
use tare_store::Reference;

use super::Args;
use crate::cmd::images::human_size;

/// Squashes when asked, then finds the dead bytes and checks the budgets. The unsquashed
/// layers stay in the cache, so a failed budget costs no rebuild.
pub(super) fn finish(
    store: &tare_store::Store,
    args: &Args,
    result: &BuildResult,
    tags: &[Reference],
) -> anyhow::Result<tare_size::Finished> {
    let squash = args.squash.as_deref().map(|s| match s {
        "all" => tare_size::BuildSquash::All,
        _ => tare_size::BuildSquash::New,
    });
    let budgets = tare_size::Budgets {
        max_size: args.max_size,
        max_waste: args.max_waste,
        max_layers: args.max_layers,
    };
    tare_size::finish_build(
        store,
        &result.image,
        result.base_layers,
        tags,
        squash,
        &budgets,
    )
    .context("analysing the image")
}

/// `--baseline`: the new image against the baseline, as `tare diff` compares them. Returns
/// the summary line and, when it grew more than `--max-growth`, the error lines.
pub(super) fn compare_baseline(
    store: &tare_store::Store,
    args: &Args,
    base: &tare_store::Image,
    image: &tare_store::Image,
) -> anyhow::Result<(String, Option<Vec<String>>)> {
    use tare_size::budget::human;
    use tare_size::imagediff::{diff, signed_size as signed, Side};
    let d = diff(Side { store, image: base }, Side { store, image })
        .context("comparing the image with --baseline")?;
    let summary = format!(
        "compared with {}: files {} ({} -> {}), compressed {}, {} paths differ",
        args.baseline.as_deref().unwrap_or_default(),
        signed(d.size_delta()),
        human(d.size_a),
        human(d.size_b),
        signed(d.wire_delta()),
        d.files.len(),
    );
    let over = args.max_growth.and_then(|limit| d.growth_over(limit, 10));
    Ok((summary, over))
}

pub(super) fn print_summary(
    result: &BuildResult,
    image: &tare_store::Image,
    size: u64,
) -> anyhow::Result<()> {
    let own = size.saturating_sub(result.base_size);
    crate::outln!("image    {}", image.id);
    if !image.repo_tags.is_empty() {
        let tags: Vec<String> = image.repo_tags.iter().map(|t| t.familiar()).collect();
        crate::outln!("tags     {}", tags.join(", "));
    }
    crate::outln!(
        "size     {} (base {}, this build {})",
        human_size(size),
        human_size(result.base_size),
        human_size(own)
    );
    crate::outln!(
        "layers   {} ({} from the base, {} from this build)",
        image.layers.len(),
        result.base_layers,
        image.layers.len() - result.base_layers.min(image.layers.len())
    );
    if result.steps.is_empty() {
        return Ok(());
    }
    let rows: Vec<[String; 4]> = result
        .steps
        .iter()
        .map(|s| {
            let mut text = s.text.replace('\n', " ");
            if text.chars().count() > 60 {
                text = text.chars().take(57).collect::<String>() + "...";
            }
            [
                format!("[{}] {}", s.stage, text),
                s.layer_size.map_or_else(|| "-".to_string(), human_size),
                human_size(s.image_size),
                if s.cached {
                    "cached".into()
                } else {
                    String::new()
                },
            ]
        })
        .collect();
    let w0 = rows
        .iter()
        .map(|r| r[0].chars().count())
        .max()
        .unwrap_or(4)
        .max(4);
    let w1 = rows.iter().map(|r| r[1].len()).max().unwrap_or(5).max(5);
    crate::outln!();
    crate::outln!("{:<w0$}   {:>w1$}   {:>8}", "STEP", "LAYER", "IMAGE");
    for r in rows {
        let line = format!("{:<w0$}   {:>w1$}   {:>8}   {}", r[0], r[1], r[2], r[3]);
        crate::outln!("{}", line.trim_end());
    }
    for w in &result.warnings {
        eprintln!("WARNING: {w}");
    }
    Ok(())
}
