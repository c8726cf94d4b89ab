//! An OCI layout archive (`-o type=oci`, `tare save --format oci`) unpacked for reading: its
//! `index.json` and its JSON blobs by digest.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

/// `tar -x` of `archive` into `dir`, made anew (GNU tar fails on a hard link whose target is
/// not in the archive).
pub fn untar(archive: &Path, dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("tar")
        .arg("-xf")
        .arg(archive)
        .arg("-C")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The layout unpacked in a directory.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    /// Unpacks `archive` into `dir` (made anew).
    pub fn open(archive: &Path, dir: &Path) -> Layout {
        untar(archive, dir);
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub fn json(&self, rel: &str) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.dir.join(rel)).unwrap()).unwrap()
    }

    /// The file of the blob `digest` (a JSON string `sha256:...`).
    pub fn blob_path(&self, digest: &serde_json::Value) -> PathBuf {
        let hex = digest.as_str().unwrap().trim_start_matches("sha256:");
        self.dir.join("blobs/sha256").join(hex)
    }

    /// The blob `digest`, parsed as JSON.
    pub fn blob(&self, digest: &serde_json::Value) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.blob_path(digest)).unwrap()).unwrap()
    }
}
