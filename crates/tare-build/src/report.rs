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
    pub total: usize,
}

/// One thing that happened.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step begins; `text` is the instruction as Docker shows it (`RUN echo hi`).
    Started { step: StepId, text: String },
    /// A step was answered from the cache.
    Cached { step: StepId },
    /// Why a step missed the cache (`--explain-cache`).
    CacheMiss { step: StepId, reason: String },
    /// A line of output from a RUN.
    Log {
        step: StepId,
        stream: Stream,
        line: String,
    },
    /// Bytes done of a known or unknown total (ADD of a URL, COPY of a large context).
    Progress {
        step: StepId,
        done: u64,
        total: Option<u64>,
    },
    /// Bytes moved of one blob of a step (`blob`: its short digest), such as a layer a FROM
    /// pulls: first with `done` 0, then a few times a second, last with `done == total`.
    Transfer {
        step: StepId,
        blob: String,
        done: u64,
        total: u64,
    },
    /// A step ended; `layer_size` is the uncompressed size of the layer it made (none for
    /// config-only steps and empty diffs), `image_size` the image's size so far.
    Finished {
        step: StepId,
        layer_size: Option<u64>,
        image_size: u64,
        seconds: f64,
    },
    /// A non-fatal message (an unused build arg).
    Warning { message: String },
}

/// Which output stream a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives build events. Called from several threads (one per running stage).
pub trait Reporter: Send + Sync {
    fn report(&self, at: SystemTime, event: Event);
}

/// A reporter that drops everything (`-q`).
pub struct Silent;

impl Reporter for Silent {
    fn report(&self, _at: SystemTime, _event: Event) {}
}
