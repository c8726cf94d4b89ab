//! `tare pull`: an image from a registry into the store, and the progress printer that
//! `tare push` shares.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{MultiProgress, ProgressBar};
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

/// Prints transfer events to stderr: one line per blob event, plus, on a terminal, a live bar
/// per blob that moves (the build's live view draws the same bars).
pub struct TransferPrinter {
    verb: &'static str,
    quiet: bool,
    started: Instant,
    /// The live bars, on a terminal.
    live: Option<MultiProgress>,
    /// The bar of each blob that moves, by digest.
    bars: RefCell<HashMap<String, ProgressBar>>,
}

impl TransferPrinter {
    pub fn new(verb: &'static str, quiet: bool) -> TransferPrinter {
        let tty = std::io::stderr().is_terminal() && !quiet;
        TransferPrinter {
            verb,
            quiet,
            started: Instant::now(),
            live: tty.then(crate::progress::live_area),
            bars: RefCell::new(HashMap::new()),
        }
    }

    fn line(&self, text: &str) {
        match &self.live {
            // Above the bars (a closed terminal is not an error here).
            Some(live) => {
                let _ = live.println(text);
            }
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    /// Takes the bars off the screen.
    pub fn finish(&self) {
        for (_, bar) in self.bars.borrow_mut().drain() {
            bar.finish_and_clear();
        }
        if let Some(live) = &self.live {
            let _ = live.clear();
        }
    }
}

fn short(d: &tare_store::Digest) -> String {
    d.hex()[..12].to_string()
}

fn rate(n: u64, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    format!("{}/s", tare_size::budget::human((n as f64 / secs) as u64))
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
                if let Some(live) = &self.live {
                    let bar = crate::progress::transfer_bar(live, None, size, short(&digest));
                    self.bars.borrow_mut().insert(digest.hex(), bar);
                }
                self.line(&format!(
                    "{}: {} {kind} ({})",
                    short(&digest),
                    self.verb,
                    tare_size::budget::human(size)
                ));
            }
            Event::BlobProgress { digest, done, .. } => {
                if let Some(bar) = self.bars.borrow().get(&digest.hex()) {
                    bar.set_position(done);
                }
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
                self.line(&format!(
                    "{}: {why} ({})",
                    short(&digest),
                    tare_size::budget::human(size)
                ));
            }
            Event::BlobDone {
                digest,
                size,
                elapsed,
            } => {
                if let Some(bar) = self.bars.borrow_mut().remove(&digest.hex()) {
                    bar.finish_and_clear();
                    if let Some(live) = &self.live {
                        live.remove(&bar);
                    }
                }
                self.line(&format!(
                    "{}: done, {} in {:.1}s ({})",
                    short(&digest),
                    tare_size::budget::human(size),
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
