//! What the builder reports after a build: wasted bytes with the worst lines, and the budgets.
//!
//! The builder calls [`build_summary`] once the image is committed (its layers are cached, so
//! failing a budget afterwards costs nothing on the next build), prints [`BuildSummary::lines`],
//! and fails the build (exit 1) when [`BuildSummary::failed`] is true.

use tare_store::{Image, Store};

use crate::budget::{check, human, BudgetReport, Budgets};
use crate::error::Result;
use crate::waste::{analyze, Analysis};

/// The analysis of a freshly built image and its budget verdict.
#[derive(Clone, Debug)]
pub struct BuildSummary {
    /// Where the image's bytes go, waste included.
    pub analysis: Analysis,
    /// The budgets' verdict.
    pub budgets: BudgetReport,
}

/// Analyses `image` and checks it against `budgets`.
pub fn build_summary(store: &Store, image: &Image, budgets: &Budgets) -> Result<BuildSummary> {
    let analysis = analyze(store, image)?;
    let report = check(
        budgets,
        analysis.image_size,
        analysis.wasted_bytes,
        image.layers.len(),
    );
    Ok(BuildSummary {
        analysis,
        budgets: report,
    })
}

impl BuildSummary {
    /// True when a budget was exceeded: the build must exit 1.
    pub fn failed(&self) -> bool {
        !self.budgets.violations.is_empty()
    }

    /// The summary as lines of text: size, waste with the `worst` worst findings (each naming
    /// the lines that added and removed the bytes, and the remedy), warnings, and every
    /// exceeded budget (`budget exceeded: --max-size 5.0 MB: the image is 12.6 MB, 7.6 MB over`).
    pub fn lines(&self, worst: usize) -> Vec<String> {
        let a = &self.analysis;
        let mut out = vec![format!(
            "image size {} in {} layers, wasted {} (efficiency {:.1}%)",
            human(a.image_size),
            a.layers.len(),
            human(a.wasted_bytes),
            a.efficiency * 100.0
        )];
        for f in a.findings().iter().take(worst) {
            let at = |line: Option<usize>, layer: usize| match line {
                Some(l) => format!("line {l}"),
                None => format!("layer {layer}"),
            };
            out.push(format!(
                "  {} added at {}, {} at {} ({}{}): {}",
                human(f.bytes),
                at(f.added_line, f.added_layer),
                f.kind.verb(),
                at(f.removed_line, f.removed_layer),
                f.examples.first().map(String::as_str).unwrap_or(""),
                if f.files > 1 {
                    format!(" and {} more", f.files - 1)
                } else {
                    String::new()
                },
                f.remedy
            ));
        }
        for w in &self.budgets.warnings {
            out.push(format!("warning: {w}"));
        }
        for v in &self.budgets.violations {
            out.push(format!("budget exceeded: {v}"));
        }
        out
    }
}

/// `tare build --squash` (the layers this build added) or `--squash=all` (the whole image).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BuildSquash {
    /// `--squash`: the layers this build added become one; the base's layers stay shared.
    New,
    /// `--squash=all`: the whole image becomes one layer.
    All,
}

/// A build's image after [`finish_build`]: squashed or not, analysed and checked.
#[derive(Clone, Debug)]
pub struct Finished {
    /// The final image (the squashed one when squashing).
    pub image: Image,
    /// The squash result when the build squashed; `None` otherwise.
    pub squashed: Option<crate::squash::Squashed>,
    /// The analysis and budget verdict of `image`.
    pub summary: BuildSummary,
}

/// What the builder does once it has committed `image`: squash when asked (the base's
/// `base_layers` layers stay shared with `New`; the squashed image gets `tags`), then analyse
/// and check the budgets. The unsquashed layers stay in the store as the build cache, so a
/// failed budget or a squash never costs a rebuild.
pub fn finish_build(
    store: &Store,
    image: &Image,
    base_layers: usize,
    tags: &[tare_store::Reference],
    squash: Option<BuildSquash>,
    budgets: &Budgets,
) -> Result<Finished> {
    let from = match squash {
        Some(BuildSquash::All) if !image.layers.is_empty() => Some(0),
        // One new layer has nothing to merge with.
        Some(BuildSquash::New) if image.layers.len() > base_layers + 1 => Some(base_layers),
        _ => None,
    };
    let squashed = match from {
        Some(from) => Some(crate::squash::squash(
            store,
            image,
            crate::squash::SquashFrom::Layer(from),
            // Like the builder's own layers: stored as tar, compressed when they leave.
            tare_layer::Compression::None,
            tags,
            // The build's own date: its SOURCE_DATE_EPOCH when it has one.
            image.config.created.clone().unwrap_or_else(|| {
                chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            }),
        )?),
        None => None,
    };
    let image = squashed
        .as_ref()
        .map(|s| s.image.clone())
        .unwrap_or_else(|| image.clone());
    let summary = build_summary(store, &image, budgets)?;
    Ok(Finished {
        image,
        squashed,
        summary,
    })
}
