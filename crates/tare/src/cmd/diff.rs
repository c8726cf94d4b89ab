//! `tare diff A B`: files added, removed and changed with their size deltas and the steps that
//! made them, layer verdicts, config differences; `--why` for the first byte-level cause;
//! `--max-growth` to fail CI on a size regression. A and B are store images or archives
//! (`docker save` and OCI archives, OCI layouts), which are read into a temporary store.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_size::imagediff::{self, Change, ImageDiff, Side};
use tare_store::{Image, Store};

use super::images::human_size;
use crate::{outln, Context};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The first image (the baseline): name[:tag], name@digest, ID, or an archive: a file
    /// `tare load` reads (a path, or `docker-archive:PATH`, `oci-archive:PATH`, `oci:DIR`).
    a: String,
    /// The second image, in the same forms.
    b: String,
    /// Output format: text or json.
    #[arg(long, value_enum, default_value = "text")]
    format: super::ReportFormat,
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
    /// Also write the comparison as one self-contained HTML page to FILE.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
}

/// The archives of one `tare diff`, read into one temporary store (so two archives sharing
/// their base store and index it once); removed when dropped.
struct Archives {
    store: Store,
    _dir: tare_store::TempDir,
}

/// Where an operand names an archive: `docker-archive:`, `oci-archive:` or `oci:` prefixes
/// always do; otherwise a name the store does not know that is an existing file or directory.
fn archive_path(store: &Store, what: &str) -> Option<PathBuf> {
    for prefix in ["docker-archive:", "oci-archive:", "oci:"] {
        if let Some(path) = what.strip_prefix(prefix) {
            return Some(PathBuf::from(path));
        }
    }
    if store.resolve(what).is_ok() {
        return None;
    }
    let path = Path::new(what);
    path.exists().then(|| path.to_path_buf())
}

/// Reads the one image of an archive into the temporary store (made on first use).
fn load_archive(
    store: &Store,
    archives: &mut Option<Archives>,
    path: &Path,
) -> anyhow::Result<Image> {
    let name = path.display().to_string();
    if archives.is_none() {
        let dir = store
            .temp_dir("diff-")
            .context("making a temporary store for the archives")?;
        let temp = Store::open(dir.path().join("store"))?;
        *archives = Some(Archives {
            store: temp,
            _dir: dir,
        });
    }
    let temp = &archives.as_ref().expect("made above").store;
    let images = if path.is_dir() {
        tare_layer::layout::load_dir(temp, path, &name)
    } else {
        let file = std::fs::File::open(path).with_context(|| format!("opening {name}"))?;
        tare_layer::archive::load(temp, file, &name)
    }
    .with_context(|| format!("reading {name}"))?;
    let images: Vec<tare_store::Image> = images.into_iter().map(|l| l.image).collect();
    match images.as_slice() {
        [one] => Ok(one.clone()),
        [] => anyhow::bail!("{name} holds no image"),
        many => anyhow::bail!(
            "{name} holds {} images ({}): tare diff compares one image of each side; save \
             the one you mean on its own (tare save -o FILE IMAGE)",
            many.len(),
            many.iter()
                .map(|i| match i.repo_tags.first() {
                    Some(t) => t.familiar(),
                    None => i.id.short(),
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let store = ctx.store()?;
    let mut archives = None;
    let mut images = Vec::new();
    for what in [&args.a, &args.b] {
        let image = match archive_path(&store, what) {
            Some(path) => (load_archive(&store, &mut archives, &path)?, true),
            None => (
                store
                    .resolve(what)
                    .with_context(|| format!("looking up {what}"))?,
                false,
            ),
        };
        images.push(image);
    }
    let side = |i: usize| -> Side<'_> {
        let (image, archived) = &images[i];
        Side {
            store: match (archived, &archives) {
                (true, Some(a)) => &a.store,
                _ => &store,
            },
            image,
        }
    };
    let (a, b) = (side(0), side(1));
    if args.why {
        let reasons = imagediff::why(a, b).context("comparing the images' bytes")?;
        if args.format == super::ReportFormat::Json {
            outln!("{}", serde_json::to_string_pretty(&reasons)?);
        } else if reasons.is_empty() {
            outln!("the images are the same: {}", a.image.id);
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
    let diff = imagediff::diff(a, b).context("comparing the images")?;
    if let Some(path) = &args.html {
        let page = tare_size::html::render_diff(&diff, &args.a, &args.b);
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    if args.format == super::ReportFormat::Json {
        outln!("{}", serde_json::to_string_pretty(&diff)?);
    } else {
        print_text(&diff, &args)?;
    }
    if let Some(limit) = args.max_growth {
        if let Some(lines) = diff.growth_over(limit, 10) {
            eprintln!("error: {} {}", args.b, lines[0]);
            for line in &lines[1..] {
                eprintln!("{line}");
            }
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
