//! `--cgroup-parent` tests: the host's cgroup hierarchies, and a parent cgroup that is removed
//! from every hierarchy when the test ends.
#![allow(dead_code)]

use std::path::PathBuf;

/// Every mounted cgroup hierarchy (v1 and v2), each once, from /proc/self/mountinfo.
pub fn hierarchies() -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let mut devices = Vec::new();
    let mut out = Vec::new();
    for line in text.lines() {
        let (mount, fs) = line.split_once(" - ").expect("mountinfo line");
        let fields: Vec<&str> = mount.split(' ').collect();
        if !matches!(fs.split(' ').next(), Some("cgroup" | "cgroup2")) {
            continue;
        }
        if !devices.contains(&fields[2]) {
            devices.push(fields[2]);
            out.push(PathBuf::from(fields[4]));
        }
    }
    out
}

/// A top-level cgroup name unique to this test, removed (with what tare left under it) from
/// every hierarchy on drop.
pub struct TestParent {
    pub name: String,
}

impl TestParent {
    pub fn new(what: &str) -> TestParent {
        TestParent {
            name: format!("tare-test-{what}-{}", std::process::id()),
        }
    }

    /// The directories of `rel` (under this parent) in every hierarchy.
    pub fn dirs(&self, rel: &str) -> Vec<PathBuf> {
        hierarchies()
            .into_iter()
            .map(|h| h.join(&self.name).join(rel))
            .collect()
    }
}

impl Drop for TestParent {
    fn drop(&mut self) {
        for h in hierarchies() {
            remove_tree(&h.join(&self.name));
        }
    }
}

/// Cgroup directories go deepest first (rmdir only: their files are not removable).
fn remove_tree(dir: &std::path::Path) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_tree(&e.path());
            }
        }
    }
    let _ = std::fs::remove_dir(dir);
}
