//! The run's temporary directory.

use std::path::PathBuf;

use crate::Error;

/// The run's temporary directory (the overlay's mount point and the /etc files), removed on
/// drop. It lives in the host's temporary directory, outside any image.
pub(crate) struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub(crate) fn new() -> Result<Scratch, Error> {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir();
        for _ in 0..100 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(0);
            let path = base.join(format!("tare-run-{}-{n}-{nanos:x}", std::process::id()));
            match std::fs::create_dir(&path) {
                Ok(()) => {
                    return Ok(Scratch { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Err(Error::io(
            base,
            std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        ))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
