//! What a build tells the outside while it runs: BuildKit's vertex model, as a trait.
//!
//! The library never prints. Every event names its step with a [`StepId`] (stage and
//! position) and carries a time, so a display can label lines per stage and tests can prove
//! that two stages overlapped.

use std::time::SystemTime;

/// Identifies one step: `#N` in the order steps were started, plus its stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepId {
    /// Unique within a build, in start order (1-based), like BuildKit's `#N`.
    pub number: usize,
    /// The stage's name, or its index as text; empty for a step of no stage (a pull).
    pub stage: String,
    /// Position of the step in its stage (1-based), and the stage's step count; both 0 for
    /// a step of no stage.
    pub index: usize,
    /// The number of steps in the stage (0 for a step of no stage).
    pub total: usize,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step begins; `text` is the instruction as Docker shows it (`RUN echo hi`).
    Started {
        /// The step.
        step: StepId,
        /// The instruction as Docker shows it.
        text: String,
    },
    /// A step was answered from the cache.
    Cached {
        /// The step.
        step: StepId,
    },
    /// Why a step missed the cache (`--explain-cache`).
    CacheMiss {
        /// The step.
        step: StepId,
        /// What changed since the nearest cached step, in a sentence.
        reason: String,
    },
    /// A line of output from a RUN.
    Log {
        /// The step.
        step: StepId,
        /// Standard output or standard error.
        stream: Stream,
        /// The line, without its newline.
        line: String,
    },
    /// Bytes done of a known or unknown total (ADD of a URL, COPY of a large context).
    Progress {
        /// The step.
        step: StepId,
        /// Bytes done so far.
        done: u64,
        /// All the bytes, when known.
        total: Option<u64>,
    },
    /// Bytes moved of one blob of a step (`blob`: its short digest), such as a layer a FROM
    /// pulls: first with `done` 0, then a few times a second, last with `done == total`.
    Transfer {
        /// The step.
        step: StepId,
        /// The blob's short digest.
        blob: String,
        /// Bytes moved so far.
        done: u64,
        /// The blob's size in bytes.
        total: u64,
    },
    /// A step ended; `layer_size` is the uncompressed size of the layer it made (none for
    /// config-only steps and empty diffs), `image_size` the image's size so far.
    Finished {
        /// The step.
        step: StepId,
        /// The layer's uncompressed size in bytes, `None` when the step made none.
        layer_size: Option<u64>,
        /// The image's size so far, in bytes.
        image_size: u64,
        /// How long the step took, in seconds.
        seconds: f64,
    },
    /// A non-fatal message (an unused build arg).
    Warning {
        /// The message, without a `WARNING:` prefix.
        message: String,
    },
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// The process's standard output.
    Stdout,
    /// The process's standard error.
    Stderr,
}

/// Receives build events. Called from several threads (one per running stage).
pub trait Reporter: Send + Sync {
    /// Receives `event`, which happened at `at`.
    fn report(&self, at: SystemTime, event: Event);
}

/// A reporter that drops everything (`-q`).
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _at: SystemTime, _event: Event) {}
}

/// A registry transfer (a FROM's pull, a push after the build) as build events under a step
/// of its own, `#N TEXT`, which its first event starts: a pull of an image already stored
/// makes no step. Blobs report as [`Event::Transfer`], the rest as log lines.
pub struct TransferStep<'a> {
    reporter: &'a dyn Reporter,
    text: String,
    /// The step's number, asked once, when the step starts.
    number: Box<dyn Fn() -> usize + 'a>,
    step: std::cell::OnceCell<(StepId, std::time::Instant)>,
}

impl<'a> TransferStep<'a> {
    /// A transfer that reports to `reporter` as the step `text`, numbered by `number` when its
    /// first event arrives.
    pub fn new(
        reporter: &'a dyn Reporter,
        text: String,
        number: impl Fn() -> usize + 'a,
    ) -> TransferStep<'a> {
        TransferStep {
            reporter,
            text,
            number: Box::new(number),
            step: std::cell::OnceCell::new(),
        }
    }

    fn step(&self) -> StepId {
        self.step
            .get_or_init(|| {
                let step = StepId {
                    number: (self.number)(),
                    stage: String::new(),
                    index: 0,
                    total: 0,
                };
                self.emit(Event::Started {
                    step: step.clone(),
                    text: self.text.clone(),
                });
                (step, std::time::Instant::now())
            })
            .0
            .clone()
    }

    fn emit(&self, event: Event) {
        self.reporter.report(SystemTime::now(), event);
    }

    /// A line under the step (which starts it).
    pub(crate) fn log(&self, line: String) {
        let step = self.step();
        self.emit(Event::Log {
            step,
            stream: Stream::Stdout,
            line,
        });
    }

    fn transfer(&self, digest: &tare_store::Digest, done: u64, total: u64) {
        let step = self.step();
        self.emit(Event::Transfer {
            step,
            blob: short_digest(digest),
            done,
            total,
        });
    }

    /// Ends the step, if there is one; `image_size` is the size of what was moved.
    pub fn finish(&self, image_size: u64) {
        if let Some((step, started)) = self.step.get() {
            self.emit(Event::Finished {
                step: step.clone(),
                layer_size: None,
                image_size,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
}

/// `sha256:` and the first 12 hex digits, as the transfer lines show a blob.
fn short_digest(digest: &tare_store::Digest) -> String {
    digest.to_string().chars().take(19).collect()
}

impl tare_registry::Reporter for TransferStep<'_> {
    fn report(&self, event: tare_registry::Event) {
        use tare_registry::{Event as E, Skip};
        match event {
            E::Resolved {
                reference, digest, ..
            } => self.log(format!("resolve {reference} to {digest}")),
            E::BlobStarted { digest, size, .. } => self.transfer(&digest, 0, size),
            E::BlobProgress {
                digest,
                done,
                total,
            } => self.transfer(&digest, done, total),
            E::BlobDone { digest, size, .. } => self.transfer(&digest, size, size),
            E::BlobSkipped { digest, reason, .. } => {
                let why = match reason {
                    // A pull's blobs already stored are no news.
                    Skip::Stored => return,
                    Skip::Exists => "already in the registry".to_string(),
                    Skip::Mounted { from } => format!("mounted from {from}"),
                };
                self.log(format!("{}: {why}", short_digest(&digest)));
            }
            E::Retrying {
                what,
                attempt,
                error,
            } => self.log(format!(
                "{what}: retrying (attempt {attempt}) after: {error}"
            )),
            E::Pushed {
                reference, digest, ..
            } => self.log(format!("pushed {reference}: {digest}")),
        }
    }
}
