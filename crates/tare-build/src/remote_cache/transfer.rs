//! The progress of the cache's blob transfers (issues 15 and 18). An export (`--cache-to`)
//! and each fetch of a lazy hit's layer (`--cache-from`) report as a step of their own,
//! numbered after the build's steps (`#N exporting cache to REF`, `#N importing cache from
//! SRC`), with [`Event::Transfer`](crate::Event::Transfer)s per blob, as a FROM's pull does:
//! the registry's own events for a registry, and the same events made here while a
//! directory's blobs are copied.

use std::io::Read;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tare_registry::{Event, Reporter};
use tare_store::Digest;

use super::import::Env;
use crate::report::TransferStep;

/// How often the bytes of a copied blob are reported ("a few times a second").
const PERIOD: Duration = Duration::from_millis(200);

impl Env<'_> {
    /// A step of its own titled `text` for a transfer of the cache; it starts with its first
    /// event, so a transfer that moves nothing and logs nothing makes no step.
    pub(super) fn transfer_step(&self, text: String) -> TransferStep<'_> {
        TransferStep::new(self.reporter, text, || {
            self.steps.fetch_add(1, Ordering::SeqCst) + 1
        })
    }
}

/// A reader of one blob that reports the bytes read through it: started on the first
/// read, then at most every [`PERIOD`].
struct Counted<'a, R> {
    inner: R,
    reporter: &'a dyn Reporter,
    digest: Digest,
    size: u64,
    done: u64,
    last: Option<Instant>,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.done += n as u64;
        if self.last.is_none_or(|t| t.elapsed() >= PERIOD) && self.done < self.size {
            self.last = Some(Instant::now());
            self.reporter.report(Event::BlobProgress {
                digest: self.digest,
                done: self.done,
                total: self.size,
            });
        }
        Ok(n)
    }
}

/// Runs `copy` on `reader`, the blob `digest` of `size` bytes (`kind`: `layer` or `config`),
/// reporting its transfer to `reporter`: started, its bytes a few times a second, and done
/// when `copy` succeeds.
pub(super) fn copy_reported<T, E>(
    reporter: &dyn Reporter,
    digest: Digest,
    size: u64,
    kind: &'static str,
    reader: impl Read,
    copy: impl FnOnce(&mut dyn Read) -> Result<T, E>,
) -> Result<T, E> {
    let started = Instant::now();
    reporter.report(Event::BlobStarted { digest, size, kind });
    let mut counted = Counted {
        inner: reader,
        reporter,
        digest,
        size,
        done: 0,
        last: Some(started),
    };
    let copied = copy(&mut counted)?;
    reporter.report(Event::BlobDone {
        digest,
        size,
        elapsed: started.elapsed(),
    });
    Ok(copied)
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use super::*;

    struct Collect(RefCell<Vec<Event>>);

    impl Reporter for Collect {
        fn report(&self, event: Event) {
            self.0.borrow_mut().push(event);
        }
    }

    #[test]
    fn a_copy_reports_start_bytes_and_done_and_a_failed_copy_no_done() {
        let collect = Collect(RefCell::new(Vec::new()));
        let digest = Digest::of(b"blob");
        let slow = b"aaaa";
        let copied = copy_reported(&collect, digest, 4, "layer", &slow[..], |r| {
            let mut out = Vec::new();
            // A byte, a pause longer than the period, a byte (reported), the rest.
            let mut byte = [0u8; 1];
            r.read_exact(&mut byte)?;
            std::thread::sleep(PERIOD + Duration::from_millis(20));
            r.read_exact(&mut byte)?;
            r.read_to_end(&mut out)?;
            Ok::<_, std::io::Error>(out)
        })
        .expect("copy");
        assert_eq!(copied, b"aa");
        let events = collect.0.into_inner();
        assert!(matches!(
            events.first(),
            Some(Event::BlobStarted { size: 4, .. })
        ));
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::BlobProgress { done, total: 4, .. } if *done < 4)),
            "{events:?}"
        );
        assert!(matches!(
            events.last(),
            Some(Event::BlobDone { size: 4, .. })
        ));

        let collect = Collect(RefCell::new(Vec::new()));
        let failed = copy_reported(&collect, digest, 4, "layer", &slow[..], |_| {
            Err::<(), _>("refused")
        });
        assert_eq!(failed, Err("refused"));
        assert!(!collect
            .0
            .into_inner()
            .iter()
            .any(|e| matches!(e, Event::BlobDone { .. })));
    }
}
