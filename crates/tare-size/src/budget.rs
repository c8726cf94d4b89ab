//! Size budgets: `--max-size`, `--max-waste`, `--max-layers`, and the overlay layer limit.
//!
//! The builder calls [`check`] after committing an image (its layers are in the cache
//! already, so a failed budget costs nothing on the next build) and fails the build when
//! [`BudgetReport::violations`] is not empty.

use serde::Serialize;

use crate::error::{Error, Result};

/// Images with more layers than this cannot be mounted with overlayfs (its lowerdir option
/// has a page-size limit), so no runtime using overlay can start them.
pub const OVERLAY_MAX_LAYERS: usize = 125;

/// The limits a build must stay within; `None` means no limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Budgets {
    /// `--max-size`: the largest uncompressed image size allowed, in bytes.
    pub max_size: Option<u64>,
    /// `--max-waste`: the most dead bytes (file versions the final filesystem does not show)
    /// allowed.
    pub max_waste: Option<u64>,
    /// `--max-layers`: the most layers the image may have.
    pub max_layers: Option<usize>,
}

/// One budget exceeded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Violation {
    /// The flag: `max-size`, `max-waste` or `max-layers`.
    pub budget: &'static str,
    /// The limit given (bytes, or layers for `max-layers`).
    pub limit: u64,
    /// What the image has, in the same unit.
    pub actual: u64,
}

impl Violation {
    /// How far the image is over the limit, in the limit's unit.
    pub fn over_by(&self) -> u64 {
        self.actual.saturating_sub(self.limit)
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.budget == "max-layers" {
            write!(
                f,
                "--max-layers {}: the image has {} layers, {} too many",
                self.limit,
                self.actual,
                self.over_by()
            )
        } else {
            let what = if self.budget == "max-size" {
                "the image is"
            } else {
                "the image wastes"
            };
            write!(
                f,
                "--{} {}: {} {}, {} over",
                self.budget,
                human(self.limit),
                what,
                human(self.actual),
                human(self.over_by())
            )
        }
    }
}

/// What [`check`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BudgetReport {
    /// Budgets exceeded: the build must fail.
    pub violations: Vec<Violation>,
    /// Always-on warnings (more than [`OVERLAY_MAX_LAYERS`] layers).
    pub warnings: Vec<String>,
}

impl BudgetReport {
    /// Whether no budget was exceeded (warnings do not count).
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Compares an image's numbers with the budgets. `image_size` is the uncompressed size (the
/// sum of the layer sizes), `wasted` the analysis' wasted bytes.
pub fn check(budgets: &Budgets, image_size: u64, wasted: u64, layers: usize) -> BudgetReport {
    let mut report = BudgetReport::default();
    if let Some(limit) = budgets.max_size {
        if image_size > limit {
            report.violations.push(Violation {
                budget: "max-size",
                limit,
                actual: image_size,
            });
        }
    }
    if let Some(limit) = budgets.max_waste {
        if wasted > limit {
            report.violations.push(Violation {
                budget: "max-waste",
                limit,
                actual: wasted,
            });
        }
    }
    if let Some(limit) = budgets.max_layers {
        if layers > limit {
            report.violations.push(Violation {
                budget: "max-layers",
                limit: limit as u64,
                actual: layers as u64,
            });
        }
    }
    if let Some(w) = layer_warning(layers) {
        report.warnings.push(w);
    }
    report
}

/// The warning for images past the overlay limit, whatever the budgets say.
pub fn layer_warning(layers: usize) -> Option<String> {
    (layers > OVERLAY_MAX_LAYERS).then(|| {
        format!(
            "the image has {layers} layers: more than {OVERLAY_MAX_LAYERS} cannot be mounted with \
             overlayfs, so most runtimes cannot start it (merge RUN steps, or `tare squash`)"
        )
    })
}

/// Parses a size: plain bytes (`1048576`), decimal units (`500MB`, `1.5GB`, `10kB`, `2T`) or
/// binary units (`10MiB`, `1.5GiB`, `512Ki`); units are case-insensitive, `B` optional.
pub fn parse_size(text: &str) -> Result<u64> {
    let bad = |reason| Error::InvalidSize {
        text: text.to_string(),
        reason,
    };
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    if number.is_empty() {
        return Err(bad("it does not start with a number"));
    }
    let unit = unit.trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "m" | "mb" => 1000_u64.pow(2),
        "g" | "gb" => 1000_u64.pow(3),
        "t" | "tb" => 1000_u64.pow(4),
        "ki" | "kib" => 1 << 10,
        "mi" | "mib" => 1 << 20,
        "gi" | "gib" => 1 << 30,
        "ti" | "tib" => 1 << 40,
        _ => {
            return Err(bad(
                "unknown unit (use B, kB, MB, GB, TB, KiB, MiB, GiB or TiB)",
            ))
        }
    };
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(multiplier)
            .ok_or_else(|| bad("it is too large"));
    }
    let value: f64 = number.parse().map_err(|_| bad("not a number"))?;
    let bytes = (value * multiplier as f64).round();
    if !bytes.is_finite() || bytes >= u64::MAX as f64 {
        return Err(bad("it is too large"));
    }
    Ok(bytes as u64)
}

/// A bar of `width` cells proportional to `size / max` (for `tare history` and analyze).
pub fn bar(size: u64, max: u64, width: usize) -> String {
    if max == 0 || size == 0 {
        return String::new();
    }
    let cells = ((size as f64 / max as f64) * width as f64).ceil() as usize;
    "█".repeat(cells.clamp(1, width))
}

/// A size for people as docker prints it (`docker images`, `docker history`): decimal units,
/// three significant digits, no space (`0B`, `999B`, `12.3kB`, `4.26MB`, `150MB`). tare's one
/// size formatter: tables, progress, reports, budgets and HTML pages all use it.
pub fn human(bytes: u64) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_in_decimal_and_binary_units() {
        assert_eq!(parse_size("500MB").unwrap(), 500_000_000);
        assert_eq!(parse_size("1.5GB").unwrap(), 1_500_000_000);
        assert_eq!(parse_size("10MiB").unwrap(), 10 << 20);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1.5gib").unwrap(), 3 << 29);
        assert_eq!(parse_size("2 kB").unwrap(), 2000);
        assert_eq!(parse_size("1KiB").unwrap(), 1024);
    }

    #[test]
    fn bad_sizes_are_errors() {
        for bad in [
            "",
            "MB",
            "ten",
            "10XB",
            "1.2.3MB",
            "-5",
            "99999999999999999999TB",
        ] {
            assert!(parse_size(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn check_names_each_budget_and_the_excess() {
        let b = Budgets {
            max_size: Some(1000),
            max_waste: Some(10),
            max_layers: Some(3),
        };
        let r = check(&b, 1500, 5, 4);
        assert_eq!(r.violations.len(), 2);
        assert_eq!(r.violations[0].budget, "max-size");
        assert_eq!(r.violations[0].over_by(), 500);
        assert_eq!(
            r.violations[1].to_string(),
            "--max-layers 3: the image has 4 layers, 1 too many"
        );
        assert!(r.warnings.is_empty());
        assert!(
            check(&Budgets::default(), 1 << 40, 1 << 40, 126).warnings[0].contains("126 layers")
        );
        assert!(check(&Budgets::default(), 0, 0, 125).passed());
    }

    #[test]
    fn sizes_print_like_docker() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(999), "999B");
        assert_eq!(human(1000), "1kB");
        assert_eq!(human(12_345), "12.3kB");
        assert_eq!(human(4_261_000), "4.26MB");
        assert_eq!(human(10_485_760), "10.5MB");
        assert_eq!(human(150_000_000), "150MB");
        assert_eq!(human(1_500_000_000), "1.5GB");
    }
}
