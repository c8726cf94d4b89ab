//! Progress reporting, and the worker pool that moves several blobs at once.
//!
//! Workers never call the [`Reporter`]: they send events over a channel and bump byte
//! counters, and the calling thread forwards both. So a reporter needs neither `Send` nor
//! `Sync`, and it sees events in one order.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tare_store::Digest;

use crate::error::Result;

/// What happened, for the binary to print.
#[derive(Clone, Debug)]
pub enum Event {
    /// The manifest of `reference` resolved to `digest` (for `platform`, from an index).
    Resolved {
        /// The reference as pulled or pushed (familiar form).
        reference: String,
        /// The manifest digest it resolved to.
        digest: Digest,
        /// The platform picked from an index (`linux/arm64`); `None` for a single-image manifest.
        platform: Option<String>,
    },
    /// A blob transfer began (`size` bytes, `kind` "layer" or "config").
    BlobStarted {
        /// The blob.
        digest: Digest,
        /// Its size in bytes, from its descriptor.
        size: u64,
        /// `layer` or `config`.
        kind: &'static str,
    },
    /// Bytes moved so far for a blob; sent a few times a second while it moves.
    BlobProgress {
        /// The blob.
        digest: Digest,
        /// Bytes moved so far.
        done: u64,
        /// The blob's size in bytes.
        total: u64,
    },
    /// A blob needed no transfer.
    BlobSkipped {
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// Why it needed no transfer.
        reason: Skip,
    },
    /// A blob transfer finished.
    BlobDone {
        /// The blob.
        digest: Digest,
        /// Its size in bytes.
        size: u64,
        /// Time from start to finish of the transfer.
        elapsed: Duration,
    },
    /// A transfer failed and is tried again.
    Retrying {
        /// What is retried (a blob, a manifest).
        what: String,
        /// Which retry this is (1 for the first).
        attempt: u32,
        /// Why the last attempt failed.
        error: String,
    },
    /// A manifest was uploaded.
    Pushed {
        /// The reference the manifest was pushed to.
        reference: String,
        /// The manifest's digest.
        digest: Digest,
        /// The manifest's size in bytes.
        size: u64,
    },
}

/// Why a blob was not transferred.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Skip {
    /// The local store already has it (pull).
    Stored,
    /// The registry already has it in the target repository (push).
    Exists,
    /// The registry linked it from another repository of its own (push).
    Mounted {
        /// The repository it was mounted from.
        from: String,
    },
}

/// Receives progress. Implemented by the binary's printers.
pub trait Reporter {
    /// Takes one event; called on the thread that called pull or push, in order.
    fn report(&self, event: Event);
}

/// A reporter that drops everything.
pub struct NoReporter;

impl Reporter for NoReporter {
    fn report(&self, _event: Event) {}
}

/// What a worker uses to report: events go through the channel, bytes through a counter.
pub(crate) struct Progress {
    tx: mpsc::Sender<Msg>,
}

enum Msg {
    Event(Event),
    Track(Digest, u64, Arc<AtomicU64>),
    Untrack(Digest),
}

impl Progress {
    pub(crate) fn event(&self, e: Event) {
        let _ = self.tx.send(Msg::Event(e));
    }

    /// Starts a transfer: returns the counter the worker adds bytes to.
    pub(crate) fn start(&self, digest: Digest, size: u64, kind: &'static str) -> Arc<AtomicU64> {
        let counter = Arc::new(AtomicU64::new(0));
        self.event(Event::BlobStarted { digest, size, kind });
        let _ = self.tx.send(Msg::Track(digest, size, counter.clone()));
        counter
    }

    pub(crate) fn done(&self, digest: Digest, size: u64, started: Instant) {
        let _ = self.tx.send(Msg::Untrack(digest));
        self.event(Event::BlobDone {
            digest,
            size,
            elapsed: started.elapsed(),
        });
    }
}

/// How often byte counts are reported.
const TICK: Duration = Duration::from_millis(200);

/// Runs `work` on every item with at most `jobs` at once, forwarding progress to `reporter`
/// from this thread. Stops handing out items after the first failure and returns it.
pub(crate) fn run_parallel<T: Sync, R: Send>(
    jobs: usize,
    items: &[T],
    reporter: &dyn Reporter,
    work: impl Fn(&T, &Progress) -> Result<R> + Sync,
) -> Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let (tx, rx) = mpsc::channel::<Msg>();
    let results: Vec<std::sync::Mutex<Option<Result<R>>>> =
        items.iter().map(|_| std::sync::Mutex::new(None)).collect();
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, items.len().max(1)) {
            let progress = Progress { tx: tx.clone() };
            let (next, failed, results, work) = (&next, &failed, &results, &work);
            scope.spawn(move || {
                while !failed.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    let r = work(item, &progress);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
                }
            });
        }
        drop(tx);
        // Forward events until every worker has dropped its sender.
        let mut tracked: Vec<(Digest, u64, Arc<AtomicU64>, u64)> = Vec::new();
        let mut tick = Instant::now();
        loop {
            match rx.recv_timeout(TICK) {
                Ok(Msg::Event(e)) => reporter.report(e),
                Ok(Msg::Track(d, total, c)) => tracked.push((d, total, c, 0)),
                Ok(Msg::Untrack(d)) => tracked.retain(|t| t.0 != d),
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if tick.elapsed() >= TICK {
                tick = Instant::now();
                for (digest, total, counter, last) in &mut tracked {
                    let done = counter.load(Ordering::Relaxed);
                    if done != *last {
                        *last = done;
                        reporter.report(Event::BlobProgress {
                            digest: *digest,
                            done,
                            total: *total,
                        });
                    }
                }
            }
        }
    });
    let mut out = Vec::with_capacity(items.len());
    let mut first_error = None;
    for slot in results {
        match slot.into_inner().unwrap_or_else(|e| e.into_inner()) {
            Some(Ok(r)) => out.push(r),
            Some(Err(e)) => {
                first_error.get_or_insert(e);
            }
            None => {}
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Collect(RefCell<Vec<String>>);

    impl Reporter for Collect {
        fn report(&self, event: Event) {
            if let Event::Retrying { what, .. } = event {
                self.0.borrow_mut().push(what);
            }
        }
    }

    #[test]
    fn results_keep_item_order_and_events_reach_the_reporter() {
        let items: Vec<u32> = (0..20).collect();
        let reporter = Collect(RefCell::new(Vec::new()));
        let out = run_parallel(3, &items, &reporter, |i, p| {
            p.event(Event::Retrying {
                what: i.to_string(),
                attempt: 1,
                error: String::new(),
            });
            Ok(i * 2)
        })
        .unwrap();
        assert_eq!(out, items.iter().map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(reporter.0.borrow().len(), 20);
    }

    #[test]
    fn the_first_failure_stops_the_pool_and_is_returned() {
        let items: Vec<u32> = (0..1000).collect();
        let started = AtomicUsize::new(0);
        let err = run_parallel(2, &items, &NoReporter, |i, _| {
            started.fetch_add(1, Ordering::Relaxed);
            if *i == 3 {
                Err(crate::Error::NotFound(format!("item {i}")))
            } else {
                Ok(())
            }
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "not found: item 3");
        assert!(started.load(Ordering::Relaxed) < 1000);
    }
}
