//! `tare container prune` reports what removing the stopped containers frees. A container on
//! copy-based snapshots (`TARE_SNAPSHOTTER=copy`, what `auto` picks where overlayfs is
//! refused) whose `tare run` was killed keeps its merged copy of the image (`rootfs/`) until
//! it is removed, with the container's changes still in it: the count must include the copy,
//! not only the writable layer (`diff/`, empty then).

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use super::{container_dirs, ctx};

/// Bytes of the regular files and symbolic links under `dir`, each inode once (what removing
/// `dir` frees; nothing in a container's directory is linked from outside it).
fn bytes_under(dir: &Path) -> u64 {
    let mut inodes = HashMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                stack.push(entry.path());
            } else if meta.is_file() || meta.is_symlink() {
                inodes.insert((meta.dev(), meta.ino()), meta.len());
            }
        }
    }
    inodes.values().sum()
}

/// `1.23MB`, `456kB`, `0B` (docker's decimal units) back to bytes.
fn parse_size(text: &str) -> f64 {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or_else(|| panic!("no unit in {text:?}"));
    let (number, unit) = text.split_at(split);
    let scale = match unit {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        other => panic!("unit {other:?} in {text:?}"),
    };
    number.parse::<f64>().expect("a number") * scale
}

#[test]
fn container_prune_counts_the_copy_a_killed_run_left() {
    let t = ctx();
    // The container writes 3 MB into its copy, says so, and waits; its tare is then killed
    // (the container dies with it: parent-death signal), before the changes move out.
    let mut run = t.tare();
    run.env("TARE_SNAPSHOTTER", "copy")
        .args([
            "run",
            "--name",
            "killed",
            "busybox",
            "sh",
            "-c",
            "head -c 3000000 /dev/zero > /big && echo ready && exec sleep 600",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = run.spawn().expect("spawn tare run");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .expect("read the container's output");
    assert_eq!(line, "ready\n", "the container did not start");
    child.kill().expect("kill tare run");
    child.wait().expect("wait for tare run");

    let ids = container_dirs(t.root.path());
    assert_eq!(ids.len(), 1, "{ids:?}");
    let dir = t.root.path().join("containers").join(&ids[0]);
    let copy = dir.join("rootfs");
    assert!(
        copy.join("big").is_file(),
        "the killed run left no copy with the change in {}",
        copy.display()
    );
    let want = bytes_under(&dir);
    assert!(want > 3_000_000, "{want}");

    let out = t.ok(&["container", "prune", "-f"]);
    assert!(out.contains(&ids[0]), "{out}");
    let reported = out
        .lines()
        .find_map(|l| l.strip_prefix("Total reclaimed space: "))
        .unwrap_or_else(|| panic!("no total in {out}"));
    // Three significant digits: within half a unit of the third.
    let got = parse_size(reported);
    assert!(
        (got - want as f64).abs() <= want as f64 * 0.005,
        "reported {reported}, the directory held {want} bytes"
    );
    assert_eq!(container_dirs(t.root.path()), Vec::<String>::new());
}
