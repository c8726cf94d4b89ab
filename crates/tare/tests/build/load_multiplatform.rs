//! `tare load` of a multi-platform OCI archive keeps every platform and the index: a
//! two-platform image saved by one store and loaded into another lists both platforms in
//! `images --tree` and `inspect`, runs this machine's, and saves again to the same index,
//! which skopeo reads.

use super::index_commands::skopeo;
use super::{ctx_dir, inspect, setup};
use crate::util::TestContext;

/// The index an OCI archive's `index.json` names, as skopeo reads it (its bytes), and its
/// digest.
fn archive_index(path: &std::path::Path) -> (serde_json::Value, String) {
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", path.display()),
    ]);
    let digest = format!("sha256:{:x}", <sha2::Sha256 as sha2::Digest>::digest(&raw));
    (serde_json::from_slice(&raw).unwrap(), digest)
}

#[test]
fn a_saved_two_platform_image_loads_whole_and_saves_again_the_same() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n",
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "multi:1",
        "--platform",
        "linux/amd64,linux/arm64",
        "--annotation",
        "index,manifest-descriptor:org.opencontainers.image.version=1.2",
        &ctx_dir(&t),
    ]);
    let first = t.path().join("first.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        first.to_str().unwrap(),
        "multi:1",
    ]);
    let (saved, saved_digest) = archive_index(&first);

    // Another store, which has never seen the image.
    let other = TestContext::new();
    let out = other.ok(&["load", "-i", first.to_str().unwrap()]);
    assert!(out.contains("Loaded image: multi:1"), "{out}");
    let tree = other.ok(&["images", "--tree", "multi:1"]);
    assert!(tree.contains("├─ linux/amd64"), "{tree}");
    assert!(tree.contains("└─ linux/arm64"), "{tree}");
    let host = inspect(&other, "multi:1");
    let platforms: Vec<&str> = host["index"]["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"], "{host}");
    let arm: serde_json::Value =
        serde_json::from_str(&other.ok(&["inspect", "--platform", "linux/arm64", "multi:1"]))
            .unwrap();
    assert_eq!(arm["config"]["architecture"], "arm64");
    if std::env::consts::ARCH == "x86_64" {
        assert_eq!(
            other.ok(&["run", "--rm", "multi:1", "cat", "/arch"]),
            "amd64\n"
        );
    }
    let check = other.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");

    // Saved again: the same index (same manifests, same annotations), which skopeo reads.
    let second = other.path().join("second.tar");
    other.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        second.to_str().unwrap(),
        "multi:1",
    ]);
    let (again, again_digest) = archive_index(&second);
    assert_eq!(again, saved);
    assert_eq!(again_digest, saved_digest);
    assert_eq!(again["manifests"].as_array().unwrap().len(), 2, "{again}");
    assert_eq!(
        again["annotations"]["org.opencontainers.image.version"],
        "1.2"
    );
    assert_eq!(
        host["index"]["digest"], saved_digest,
        "the loaded index is the saved one, byte for byte"
    );
}
