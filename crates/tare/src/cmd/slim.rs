//! `tare slim`: the smallest image that still works, found by watching it run.
//!
//! 1. Each probe runs in the sandbox on the image's layers, under the fanotify tracer of
//!    `tare-sandbox` (the image's ENTRYPOINT/CMD when no `--probe` is given; `--http-probe`s
//!    go to that default command, a server, and end it once answered). Runs use a network
//!    namespace of their own with only loopback: HTTP probes reach 127.0.0.1 inside it, so
//!    nothing is exposed on the host and no host port can clash.
//! 2. `tare_size::slim` plans what to keep (traced files plus loader, libraries, links,
//!    parents, users, CA certificates, includes) and writes one layer with the config kept.
//! 3. Verification: the same probes run again on the new image under the tracer. An exit code
//!    or output (stdout, stderr; for HTTP probes status and body) that differs fails the
//!    command, naming the files the original run opened and the new one did not (where the
//!    two runs parted). The new image is tagged only when verified.

use std::collections::BTreeSet;
use std::io::{Read, Seek, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use tare_layer::Compression;
use tare_sandbox::trace::{HttpAnswer, HttpProbe, TraceOptions, Traced};
use tare_sandbox::{Network, Rootfs, RunSpec, Stdio};
use tare_size::budget::human;
use tare_size::slim::{Extras, Report, View};
use tare_store::{Image, Reference, Store};

use super::run::combine_command;
use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The image to slim: a reference, an ID or an ID prefix.
    image: String,
    /// Name of the slim image (repeat for more tags).
    #[arg(short = 't', long = "tag", required = true, value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// A command line to run instead of the image's CMD (like `tare run IMAGE ARGS...`;
    /// split like a shell does, without expansion). Repeat for more probes.
    #[arg(long = "probe", value_name = "CMD")]
    probes: Vec<String>,
    /// `GET PATH` (default `/`) on 127.0.0.1:PORT inside the container, while its default
    /// command runs. Repeat for more.
    #[arg(long = "http-probe", value_name = "PORT[:PATH]")]
    http_probes: Vec<String>,
    /// Keep this path (a directory with everything below it). Repeat for more.
    #[arg(long = "include", value_name = "PATH")]
    include: Vec<String>,
    /// Keep every file of this Debian package (from the image's dpkg database).
    #[arg(long = "include-pkg", value_name = "NAME")]
    include_pkg: Vec<String>,
    /// The longest a probe may run (`30s`, `2m`, `500ms`): a run still going then is
    /// stopped, which is how a server's default command ends without HTTP probes.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Write the list of removed paths with size and package: FILE.json or FILE.html.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Compression of the new layer: gzip, zstd or none.
    #[arg(long, default_value = "gzip")]
    compression: String,
}

/// One traced run: its command and HTTP probes.
#[derive(Debug, Clone)]
struct Probe {
    label: String,
    command: Vec<String>,
    http: Vec<HttpProbe>,
}

/// What a probe did: the trace plus its output.
struct Outcome {
    traced: Traced,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let compression: Compression = args.compression.parse()?;
    let tags = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let http = args
        .http_probes
        .iter()
        .map(|h| parse_http_probe(h))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let store = ctx.store()?;
    let image = store
        .resolve(&args.image)
        .with_context(|| format!("finding image {}", args.image))?;
    let probes = probes_for(&image, &args.probes, http)?;
    let options = |p: &Probe| TraceOptions {
        duration: args.duration,
        http: p.http.clone(),
        ..TraceOptions::default()
    };

    let snapshots = snapshots_of(&store, &image)?;
    let mut originals = Vec::new();
    let mut probe_time = Duration::ZERO;
    for probe in &probes {
        let t = Instant::now();
        let outcome = run_probe(&store, &image, &snapshots, probe, &options(probe))
            .with_context(|| format!("running probe {}", probe.label))?;
        probe_time += t.elapsed();
        check_http(probe, &outcome.traced.http)?;
        originals.push(outcome);
    }
    let traced: BTreeSet<String> = originals
        .iter()
        .flat_map(|o| o.traced.paths.iter().cloned())
        .collect();

    let view = View::new(&store, &image, snapshots.clone())
        .with_context(|| format!("indexing image {}", image.id))?;
    let extras = Extras {
        include: args.include.clone(),
        include_pkg: args.include_pkg.clone(),
        env: image.config.config.env.clone().unwrap_or_default(),
    };
    let plan = tare_size::slim::plan(&view, &traced, &extras);
    let slim = tare_size::slim::write(
        &store,
        &image,
        &plan,
        compression,
        crate::epoch::created(None)?,
    )
    .with_context(|| format!("writing the slim image of {}", image.id))?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "Slimmed {}: {} -> {} ({:.1}x smaller; files {} -> {}, {} paths kept, {} removed)",
        args.image,
        human(image.size()),
        human(slim.size()),
        image.size() as f64 / slim.size().max(1) as f64,
        human(plan.bytes_before),
        human(plan.bytes_kept),
        plan.keep.len(),
        plan.removed.len(),
    )?;
    let own_time = started.elapsed().saturating_sub(probe_time);

    let verified_at = Instant::now();
    let slim_snapshots = snapshots_of(&store, &slim)?;
    for (probe, original) in probes.iter().zip(&originals) {
        let again = run_probe(&store, &slim, &slim_snapshots, probe, &options(probe))
            .with_context(|| format!("verifying probe {} on the slim image", probe.label))?;
        if let Some(difference) = compare(original, &again) {
            let parted: Vec<&String> = original
                .traced
                .paths
                .difference(&again.traced.paths)
                .take(20)
                .collect();
            let named = if parted.is_empty() {
                String::new()
            } else {
                format!(
                    "; the original run opened, and this one did not: {}",
                    parted
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            bail!(
                "verification failed: probe {} behaves differently on the slim image ({}): \
                 {difference}{named}; keep what it needs with --include PATH or a probe that \
                 uses it (the slim image {} is left untagged)",
                probe.label,
                args.tags.join(", "),
                slim.id
            );
        }
    }
    let verify_time = verified_at.elapsed();
    for t in &tags {
        store
            .tag(&slim.id, t)
            .with_context(|| format!("tagging {}", t.familiar()))?;
        writeln!(out, "Tagged {}", t.familiar())?;
    }
    writeln!(
        out,
        "Verified {} probe(s) on the slim image; time: probes {:.2}s, slimming {:.2}s, \
         verification {:.2}s",
        probes.len(),
        probe_time.as_secs_f64(),
        own_time.as_secs_f64(),
        verify_time.as_secs_f64()
    )?;
    if let Some(path) = &args.report {
        let report = Report {
            image: args.image.clone(),
            slim: args.tags.join(", "),
            size_before: image.size(),
            size_after: slim.size(),
            content_before: plan.bytes_before,
            content_after: plan.bytes_kept,
            kept: plan.keep.len(),
            removed: plan.removed.clone(),
        };
        tare_size::slim::write_report(path, &report)
            .with_context(|| format!("writing the report {}", path.display()))?;
        writeln!(out, "Report: {}", path.display())?;
    }
    writeln!(out, "{}", slim.id)?;
    Ok(ExitCode::SUCCESS)
}

/// The paths a traced run of `image` opens (`probe`, or its own command when `None`), and
/// the view of the image (`tare analyze --trace`).
pub(crate) fn trace_paths(
    store: &Store,
    image: &Image,
    probe: Option<&str>,
    duration: Duration,
) -> anyhow::Result<(BTreeSet<String>, View)> {
    let probes: Vec<String> = probe.map(String::from).into_iter().collect();
    let snapshots = snapshots_of(store, image)?;
    let mut paths = BTreeSet::new();
    for p in probes_for(image, &probes, Vec::new())? {
        let options = TraceOptions {
            duration,
            ..TraceOptions::default()
        };
        let outcome = run_probe(store, image, &snapshots, &p, &options)
            .with_context(|| format!("running probe {}", p.label))?;
        paths.extend(outcome.traced.paths);
    }
    let view = View::new(store, image, snapshots)
        .with_context(|| format!("indexing image {}", image.id))?;
    Ok((paths, view))
}

/// The runs: each `--probe`, and the default command when there is none or HTTP probes
/// need it.
fn probes_for(
    image: &Image,
    probes: &[String],
    http: Vec<HttpProbe>,
) -> anyhow::Result<Vec<Probe>> {
    let config = &image.config.config;
    let mut runs = Vec::new();
    for p in probes {
        let words =
            shlex::split(p).with_context(|| format!("invalid probe {p:?}: unbalanced quotes"))?;
        if words.is_empty() {
            bail!("invalid probe {p:?}: empty command");
        }
        let command = combine_command(
            config.entrypoint.as_deref(),
            config.cmd.as_deref(),
            None,
            &words,
        )?;
        runs.push(Probe {
            label: format!("{p:?}"),
            command,
            http: Vec::new(),
        });
    }
    if probes.is_empty() || !http.is_empty() {
        let command = combine_command(
            config.entrypoint.as_deref(),
            config.cmd.as_deref(),
            None,
            &[],
        )
        .context("the image has no command to trace: give one with --probe")?;
        runs.push(Probe {
            label: format!("{:?} (the image's command)", command.join(" ")),
            command,
            http,
        });
    }
    Ok(runs)
}

/// The image's layer snapshots, bottom first.
fn snapshots_of(store: &Store, image: &Image) -> anyhow::Result<Vec<PathBuf>> {
    image
        .config
        .rootfs
        .diff_ids
        .iter()
        .map(|d| tare_layer::snapshot(store, d).with_context(|| format!("extracting layer {d}")))
        .collect()
}

fn run_probe(
    store: &Store,
    image: &Image,
    snapshots: &[PathBuf],
    probe: &Probe,
    options: &TraceOptions,
) -> anyhow::Result<Outcome> {
    let dir = store.temp_dir("slim-")?;
    let (upper, work) = (dir.path().join("upper"), dir.path().join("work"));
    for d in [&upper, &work] {
        std::fs::create_dir(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let mut lower: Vec<PathBuf> = snapshots.iter().rev().cloned().collect();
    if lower.is_empty() {
        let empty = dir.path().join("empty");
        std::fs::create_dir(&empty).with_context(|| format!("creating {}", empty.display()))?;
        lower.push(empty);
    }
    // Where overlayfs is refused (or TARE_SNAPSHOTTER=copy), the probe runs on a merged copy
    // of the layers, as RUN steps and `tare run` do; the copy goes with `dir`.
    let copy = match tare_build::snapshotter(dir.path())? {
        tare_build::Snapshotter::Overlay => None,
        tare_build::Snapshotter::Copy => {
            let root = dir.path().join("rootfs");
            std::fs::create_dir(&root).with_context(|| format!("creating {}", root.display()))?;
            Some(
                tare_layer::copy_snapshot::CopySnapshot::make(&lower, &root)
                    .context("copying the image's layers (copy-based snapshots)")?,
            )
        }
    };
    let rootfs = match &copy {
        None => Rootfs::Overlay { lower, upper, work },
        Some(snap) => Rootfs::Dir(snap.path().to_path_buf()),
    };
    let config = &image.config.config;
    let mut stdout = tempfile::tempfile_in(dir.path()).context("creating an output file")?;
    let mut stderr = tempfile::tempfile_in(dir.path()).context("creating an output file")?;
    let mut spec = RunSpec::new(rootfs, probe.command.clone());
    spec.env = config.env.clone().unwrap_or_default();
    spec.cwd = config
        .working_dir
        .clone()
        .filter(|w| !w.is_empty())
        .unwrap_or_else(|| "/".into());
    spec.user = config.user.clone().filter(|u| !u.is_empty());
    spec.network = Network::None;
    spec.hostname = "tare-slim".into();
    spec.stdout = Stdio::Fd(stdout.try_clone()?.into());
    spec.stderr = Stdio::Fd(stderr.try_clone()?.into());
    spec.on_signal = tare_sandbox::OnSignal::Kill;
    let traced = tare_sandbox::trace::run_traced(spec, options)?;
    Ok(Outcome {
        traced,
        stdout: read_back(&mut stdout)?,
        stderr: read_back(&mut stderr)?,
    })
}

/// At most 16 MiB of a probe's output: enough to compare, bounded.
fn read_back(file: &mut std::fs::File) -> anyhow::Result<Vec<u8>> {
    file.rewind()?;
    let mut data = Vec::new();
    file.take(16 << 20).read_to_end(&mut data)?;
    Ok(data)
}

/// A probe whose HTTP probes got no answer on the original image is an error of the probe.
fn check_http(probe: &Probe, answers: &[HttpAnswer]) -> anyhow::Result<()> {
    for a in answers {
        if let Err(e) = &a.result {
            bail!(
                "http probe {}:{} of {}: {e}",
                a.probe.port,
                a.probe.path,
                probe.label
            );
        }
    }
    Ok(())
}

/// How two runs of the same probe differ, if they do. A run tare stopped (a server) is
/// compared by its HTTP answers only: its log may carry times.
fn compare(original: &Outcome, again: &Outcome) -> Option<String> {
    let (a, b) = (&original.traced, &again.traced);
    if a.stopped != b.stopped {
        let state = |t: &Traced| {
            if t.stopped {
                "was still running when stopped".to_string()
            } else {
                format!("exited with {}", t.code)
            }
        };
        return Some(format!(
            "the original {}, the slim one {}",
            state(a),
            state(b)
        ));
    }
    for (x, y) in a.http.iter().zip(&b.http) {
        if x.result != y.result {
            let show = |r: &Result<(u16, Vec<u8>), String>| match r {
                Ok((status, body)) => format!("status {status}, {} bytes", body.len()),
                Err(e) => e.clone(),
            };
            return Some(format!(
                "GET {} on port {}: {} on the original, {} on the slim image",
                x.probe.path,
                x.probe.port,
                show(&x.result),
                show(&y.result)
            ));
        }
    }
    if a.stopped {
        return None;
    }
    if a.code != b.code {
        return Some(format!(
            "exit code {} on the original, {} on the slim image{}",
            a.code,
            b.code,
            stderr_tail(&again.stderr)
        ));
    }
    for (name, x, y) in [
        ("stdout", &original.stdout, &again.stdout),
        ("stderr", &original.stderr, &again.stderr),
    ] {
        if x != y {
            return Some(format!(
                "its {name} differs: {:?} on the original, {:?} on the slim image",
                first_lines(x),
                first_lines(y)
            ));
        }
    }
    None
}

fn first_lines(text: &[u8]) -> String {
    let text = String::from_utf8_lossy(text);
    let mut lines: Vec<&str> = text.lines().take(3).collect();
    if text.lines().count() > 3 {
        lines.push("...");
    }
    lines.join("\\n")
}

fn stderr_tail(stderr: &[u8]) -> String {
    if stderr.is_empty() {
        String::new()
    } else {
        format!(" (its stderr: {:?})", first_lines(stderr))
    }
}

fn parse_http_probe(text: &str) -> anyhow::Result<HttpProbe> {
    let (port, path) = match text.split_once(':') {
        Some((p, path)) => (p, path.to_string()),
        None => (text, "/".to_string()),
    };
    let port: u16 = port.parse().ok().filter(|p| *p > 0).with_context(|| {
        format!("invalid --http-probe {text:?}: PORT[:PATH] with a port 1-65535")
    })?;
    let path = if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    };
    if path.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("invalid --http-probe {text:?}: the path has spaces or control characters");
    }
    Ok(HttpProbe { port, path })
}

/// Go's durations (`30s`, `2m`, `1m30s`, `500ms`), as HEALTHCHECK reads them; not zero.
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    match tare_dockerfile::parse_go_duration(text.trim()) {
        Ok(d) if !d.is_zero() => Ok(d),
        Ok(_) => Err(format!("invalid duration {text:?}: must be more than zero")),
        Err(e) => Err(format!("invalid duration {text:?}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("7").is_err());
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("5 parsecs").is_err());
    }

    #[test]
    fn http_probes_parse() {
        let p = parse_http_probe("8080:/health").unwrap();
        assert_eq!((p.port, p.path.as_str()), (8080, "/health"));
        assert_eq!(parse_http_probe("80").unwrap().path, "/");
        assert!(parse_http_probe("0").is_err());
        assert!(parse_http_probe("99999").is_err());
        assert!(parse_http_probe("80:/a b").is_err());
    }
}
