//! `tare load` of an unnamed multi-platform OCI archive (an `index.json` entry without a
//! name annotation, as `buildx -o type=oci` and skopeo write them) keeps the whole index,
//! found by its digest, its ID: `images --tree`, `inspect`, `run`, `save` and `rmi` take it.
//! Platforms whose blobs are not all in the archive are left out with a warning (docker's
//! containerd store imports with `WithSkipMissing`); the rest loads.

use std::path::{Path, PathBuf};

use super::oci_layout::Layout;
use super::{ctx_dir, setup};
use crate::util::TestContext;

/// A two-platform image (linux/amd64 and linux/arm64, no emulation) written by
/// `-o type=oci`, unpacked, with every name annotation of `index.json` removed. Returns the
/// layout and the digest of the index `index.json` names.
fn unnamed_layout(t: &TestContext) -> (Layout, String) {
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n",
    );
    let archive = t.path().join("multi.tar");
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
        &ctx_dir(t),
    ]);
    let layout = Layout::open(&archive, &t.path().join("layout"));
    let mut index = layout.json("index.json");
    let entries = index["manifests"].as_array_mut().unwrap();
    assert_eq!(entries.len(), 1, "{index}");
    entries[0].as_object_mut().unwrap().remove("annotations");
    let digest = entries[0]["digest"].as_str().unwrap().to_string();
    std::fs::write(
        layout.dir.join("index.json"),
        serde_json::to_vec(&index).unwrap(),
    )
    .unwrap();
    (layout, digest)
}

/// The layout packed again as a tar (what skopeo's `oci-archive:` is).
fn pack(layout: &Layout, out: &Path) -> PathBuf {
    let status = std::process::Command::new("tar")
        .arg("-cf")
        .arg(out)
        .arg("-C")
        .arg(&layout.dir)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    out.to_path_buf()
}

/// `tare images --tree` rows of the unnamed image `id` (its short form) and its platforms.
fn tree_rows(t: &TestContext, id: &str) -> Vec<String> {
    let short = &id.trim_start_matches("sha256:")[..12];
    let tree = t.ok(&["images", "--tree"]);
    let lines: Vec<&str> = tree.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.starts_with("<none>") && l.contains(short))
        .unwrap_or_else(|| panic!("no <none> row with {short}: {tree}"));
    lines[at..]
        .iter()
        .take_while(|l| *l == &lines[at] || l.starts_with("├─") || l.starts_with("└─"))
        .map(|l| l.to_string())
        .collect()
}

fn platforms(t: &TestContext, id: &str) -> Vec<String> {
    let host: serde_json::Value = serde_json::from_str(&t.ok(&["inspect", id])).unwrap();
    assert_eq!(host["index"]["digest"], id, "{host}");
    host["index"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn an_unnamed_two_platform_archive_loads_whole_under_its_index_id() {
    let t = setup();
    let (layout, digest) = unnamed_layout(&t);
    let archive = pack(&layout, &t.path().join("unnamed.tar"));

    let other = TestContext::new();
    let out = other.ok(&["load", "-i", archive.to_str().unwrap()]);
    assert_eq!(out, format!("Loaded image ID: {digest}\n"));
    let rows = tree_rows(&other, &digest);
    assert_eq!(rows.len(), 3, "{rows:?}");
    assert!(rows[1].starts_with("├─ linux/amd64"), "{rows:?}");
    assert!(rows[2].starts_with("└─ linux/arm64"), "{rows:?}");
    // The platforms are not listed again as untagged images of their own.
    let quiet = other.ok(&["images", "-q", "--no-trunc"]);
    assert_eq!(quiet, format!("{digest}\n"));
    assert_eq!(platforms(&other, &digest), ["linux/amd64", "linux/arm64"]);
    let short = &digest.trim_start_matches("sha256:")[..12];
    let arm: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", "--platform", "linux/arm64", short])).unwrap();
    assert_eq!(arm["config"]["architecture"], "arm64");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            other.ok(&["run", "--rm", &digest, "cat", "/arch"]),
            "amd64\n"
        );
    }
    let check = other.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");

    // Saved by its ID: the whole index again, the same bytes.
    let again = other.path().join("again.tar");
    other.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        again.to_str().unwrap(),
        &digest,
    ]);
    let saved = Layout::open(&again, &other.path().join("again"));
    let index = saved.json("index.json");
    assert_eq!(index["manifests"][0]["digest"], digest.as_str(), "{index}");
    assert_eq!(
        saved.blob(&index["manifests"][0]["digest"])["manifests"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Loading it again is the same image; a layout directory loads the same way.
    let dir = TestContext::new();
    let out = dir.ok(&["load", "-i", layout.dir.to_str().unwrap()]);
    assert_eq!(out, format!("Loaded image ID: {digest}\n"));

    // rmi by ID removes the index and both platforms' images.
    let removed = other.ok(&["rmi", short]);
    assert_eq!(removed.lines().count(), 3, "{removed}");
    assert!(
        removed.starts_with(&format!("Deleted: {digest}\n")),
        "{removed}"
    );
    assert_eq!(other.ok(&["images", "-q"]), "");
    assert!(other.run(&["inspect", &digest]).status.code() != Some(0));
    let check = other.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");

    // An unnamed image is dangling: `image prune` removes it and its platforms.
    dir.ok(&["image", "prune", "-f"]);
    assert_eq!(dir.ok(&["images", "-q"]), "");
    let check = dir.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");
}

#[test]
fn platforms_whose_blobs_are_missing_are_left_out_with_a_warning() {
    let t = setup();
    let (layout, digest) = unnamed_layout(&t);
    // The arm64 image's last layer (its RUN, which only it has) is not in the archive.
    let index = layout.blob(&layout.json("index.json")["manifests"][0]["digest"]);
    let arm = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap();
    let manifest = layout.blob(&arm["digest"]);
    let layer = manifest["layers"].as_array().unwrap().last().unwrap()["digest"].clone();
    std::fs::remove_file(layout.blob_path(&layer)).unwrap();
    let archive = pack(&layout, &t.path().join("partial.tar"));

    let other = TestContext::new();
    let out = other.run(&["load", "-i", archive.to_str().unwrap()]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("linux/arm64"), "{stderr}");
    assert!(stderr.contains(layer.as_str().unwrap()), "{stderr}");
    // The stored index lists amd64 only: another index, another ID.
    let id = stdout
        .strip_prefix("Loaded image ID: ")
        .and_then(|s| s.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{stdout}"))
        .to_string();
    assert_ne!(id, digest);
    assert_eq!(platforms(&other, &id), ["linux/amd64"]);
    let rows = tree_rows(&other, &id);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(rows[1].starts_with("└─ linux/amd64"), "{rows:?}");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(other.ok(&["run", "--rm", &id, "cat", "/arch"]), "amd64\n");
    }
    let check = other.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");
}
