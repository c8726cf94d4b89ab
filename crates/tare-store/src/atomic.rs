//! Files replaced whole, the one way tare writes a file that others may read meanwhile: the
//! content goes to a temporary file in the target's directory, which is renamed over the
//! target once complete. A reader sees the old file or the new one, never a part of either,
//! and a failed or killed writer leaves no half-written target.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::error::{io, Error, Result};

/// A file being written that replaces `path` on [`AtomicFile::commit`]. Dropped without a
/// commit, it is removed and `path` is unchanged. It is created with mode 0600.
pub struct AtomicFile {
    tmp: tempfile::NamedTempFile,
    path: PathBuf,
}

impl AtomicFile {
    /// Starts writing the new content of `path` (in `.` for a bare file name).
    pub fn create(path: &Path) -> Result<AtomicFile> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        // Named uniquely per call: several threads or processes may replace one file at once.
        let tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .tempfile_in(dir)
            .map_err(io("creating a temporary file in", dir))?;
        Ok(AtomicFile {
            tmp,
            path: path.to_path_buf(),
        })
    }

    /// Flushes the content to disk; a commit after it survives a crash of the machine.
    pub fn sync(&self) -> Result<()> {
        self.tmp
            .as_file()
            .sync_data()
            .map_err(io("syncing", self.tmp.path()))
    }

    /// Renames the written file over the target.
    pub fn commit(self) -> Result<()> {
        self.tmp.persist(&self.path).map_err(|e| Error::Io {
            op: "renaming into",
            path: self.path,
            source: e.error,
        })?;
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tmp.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.tmp.flush()
    }
}

/// Replaces `path` with `bytes`, synced to disk before the rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(bytes)
        .map_err(io("writing", file.tmp.path()))?;
    file.sync()?;
    file.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_replaced_whole_and_an_uncommitted_one_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let mut file = AtomicFile::create(&path).unwrap();
        file.write_all(b"three").unwrap();
        drop(file);
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "no temporary file is left");
    }
}
