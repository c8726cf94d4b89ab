//! `tare pull`: an image from a registry into the store, and the progress printer that
//! `tare push` shares.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use tare_registry::{Event, Options, Platform, Reporter, Skip};
use tare_store::Reference;

use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Platform to pick from a multi-platform image: os/arch[/variant] (default: this host's).
    #[arg(long, value_name = "OS/ARCH")]
    platform: Option<String>,
    #[command(flatten)]
    registry: RegistryArgs,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
    /// The image: name[:tag] or name@digest (`busybox` is docker.io/library/busybox:latest).
    reference: String,
}

/// Flags shared by the commands that talk to registries.
#[derive(clap::Args, Debug)]
pub struct RegistryArgs {
    /// Allow plain HTTP and unverified TLS for this registry (host[:port]); repeatable.
    /// Loopback registries may always use plain HTTP.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure: Vec<String>,
}

impl RegistryArgs {
    /// Options from the environment plus these flags.
    pub fn options(&self) -> Options {
        let mut options = Options::from_env();
        options
            .insecure_registries
            .extend(self.insecure.iter().cloned());
        options
    }
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let reference = Reference::parse(&args.reference)
        .with_context(|| format!("reading the reference {:?}", args.reference))?;
    let mut options = args.registry.options();
    if let Some(p) = &args.platform {
        options.platform = Some(p.parse::<Platform>()?);
    }
    let store = ctx.store()?;
    let printer = TransferPrinter::new("pulling", args.quiet);
    let image = tare_registry::pull_with(&store, &reference, &options, &printer)
        .with_context(|| format!("pulling {}", reference.familiar()))?;
    printer.finish();
    let mut out = std::io::stdout().lock();
    if args.quiet {
        writeln!(out, "{}", image.id)?;
    } else {
        writeln!(out, "Digest: {}", image.manifest_digest)?;
        writeln!(out, "Image: {}", image.id)?;
        writeln!(out, "{reference}")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints transfer events to stderr: one line per blob event, plus, on a terminal, a status
/// line with bytes and rate that is redrawn in place.
pub struct TransferPrinter {
    verb: &'static str,
    quiet: bool,
    tty: bool,
    started: Instant,
    /// digest, bytes done, total, when it started
    active: RefCell<Vec<(String, u64, u64, Instant)>>,
    status_shown: Cell<bool>,
}

impl TransferPrinter {
    pub fn new(verb: &'static str, quiet: bool) -> TransferPrinter {
        TransferPrinter {
            verb,
            quiet,
            tty: std::io::stderr().is_terminal(),
            started: Instant::now(),
            active: RefCell::new(Vec::new()),
            status_shown: Cell::new(false),
        }
    }

    fn line(&self, text: &str) {
        let mut err = std::io::stderr().lock();
        if self.status_shown.replace(false) {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{text}");
    }

    fn status(&self) {
        if !self.tty {
            return;
        }
        let active = self.active.borrow();
        let parts: Vec<String> = active
            .iter()
            .map(|(d, done, total, t)| {
                format!(
                    "{} {}/{} {}",
                    &d[..12.min(d.len())],
                    bytes(*done),
                    bytes(*total),
                    rate(*done, t.elapsed())
                )
            })
            .collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[K{}", parts.join("  "));
        let _ = err.flush();
        self.status_shown.set(!parts.is_empty());
    }

    /// Clears the status line.
    pub fn finish(&self) {
        if self.status_shown.replace(false) {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

fn short(d: &tare_store::Digest) -> String {
    d.hex()[..12].to_string()
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < UNITS.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn rate(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!("{}/s", bytes((n as f64 / secs) as u64))
}

impl Reporter for TransferPrinter {
    fn report(&self, event: Event) {
        if self.quiet {
            return;
        }
        match event {
            Event::Resolved {
                reference,
                digest,
                platform,
            } => match platform {
                Some(p) => self.line(&format!("{reference}: resolved to {digest} for {p}")),
                None => self.line(&format!("{reference}: resolved to {digest}")),
            },
            Event::BlobStarted { digest, size, kind } => {
                self.active
                    .borrow_mut()
                    .push((digest.hex(), 0, size, Instant::now()));
                self.line(&format!(
                    "{}: {} {kind} ({})",
                    short(&digest),
                    self.verb,
                    bytes(size)
                ));
            }
            Event::BlobProgress { digest, done, .. } => {
                let hex = digest.hex();
                if let Some(a) = self.active.borrow_mut().iter_mut().find(|a| a.0 == hex) {
                    a.1 = done;
                }
                self.status();
            }
            Event::BlobSkipped {
                digest,
                size,
                reason,
            } => {
                let why = match reason {
                    Skip::Stored => "already in the store".to_string(),
                    Skip::Exists => "already in the registry".to_string(),
                    Skip::Mounted { from } => format!("mounted from {from}"),
                };
                self.line(&format!("{}: {why} ({})", short(&digest), bytes(size)));
            }
            Event::BlobDone {
                digest,
                size,
                elapsed,
            } => {
                let hex = digest.hex();
                self.active.borrow_mut().retain(|a| a.0 != hex);
                self.line(&format!(
                    "{}: done, {} in {:.1}s ({})",
                    short(&digest),
                    bytes(size),
                    elapsed.as_secs_f64(),
                    rate(size, elapsed)
                ));
            }
            Event::Retrying {
                what,
                attempt,
                error,
            } => self.line(&format!(
                "{what}: retrying (attempt {attempt}) after: {error}"
            )),
            Event::Pushed {
                reference,
                digest,
                size,
            } => self.line(&format!(
                "{reference}: digest: {digest} size: {size} ({:.1}s)",
                self.started.elapsed().as_secs_f64()
            )),
        }
    }
}
