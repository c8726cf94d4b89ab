//! `--annotation` in buildx's notation: manifest annotations in each image's manifest (kept
//! by `save`, which re-encodes the manifest), index and manifest-descriptor annotations in
//! the index of a multi-platform build, index kinds refused for one platform.

use std::process::Command;

use super::{ctx_dir, inspect, setup};
use crate::util::TestContext;

/// A stored blob, parsed.
fn blob(t: &TestContext, digest: &str) -> serde_json::Value {
    let path = t
        .root
        .path()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn skopeo_raw(archive: &std::path::Path) -> serde_json::Value {
    let out = Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci-archive:{}", archive.display()))
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn manifest_annotations_go_into_the_manifest_and_survive_save() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN echo hi > /hi\n");
    t.ok(&[
        "build",
        "-q",
        "-t",
        "ann",
        "--annotation",
        "org.opencontainers.image.title=Title",
        "--annotation",
        "manifest:org.example.url=https://example.org/x?a=b",
        &ctx_dir(&t),
    ]);
    let img = inspect(&t, "ann");
    let manifest = blob(&t, img["manifest_digest"].as_str().unwrap());
    assert_eq!(
        manifest["annotations"],
        serde_json::json!({
            "org.opencontainers.image.title": "Title",
            "org.example.url": "https://example.org/x?a=b",
        })
    );
    let out = t.run(&["check"]);
    assert!(out.status.success(), "{out:?}");
    // save re-encodes the manifest (gzip layers) and keeps the annotations.
    let archive = t.path().join("ann.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        archive.to_str().unwrap(),
        "ann",
    ]);
    let saved = skopeo_raw(&archive);
    assert_eq!(
        saved["annotations"]["org.opencontainers.image.title"],
        "Title"
    );
    assert!(
        saved["layers"][0]["mediaType"]
            .as_str()
            .unwrap()
            .ends_with("gzip"),
        "{saved}"
    );
    // One platform has no index: BuildKit's refusal.
    let stderr = t.fails(&["build", "--annotation", "index:a=b", &ctx_dir(&t)]);
    assert!(stderr.contains("--annotation index:a=b"), "{stderr}");
    assert!(stderr.contains("single-platform"), "{stderr}");
    let stderr = t.fails(&["build", "--annotation", "nonsense:a=b", &ctx_dir(&t)]);
    assert!(stderr.contains("unknown type \"nonsense\""), "{stderr}");
}

#[test]
fn index_and_descriptor_annotations_go_into_the_index_and_platform_ones_to_their_manifest() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n",
    );
    let digest = t.ok(&[
        "build",
        "-q",
        "-t",
        "multi",
        "--platform",
        "linux/amd64,linux/arm64",
        "--annotation",
        "index,manifest-descriptor:org.opencontainers.image.version=1.2",
        "--annotation",
        "manifest[linux/arm64]:only=arm",
        &ctx_dir(&t),
    ]);
    let index = blob(&t, digest.trim());
    assert_eq!(
        index["annotations"]["org.opencontainers.image.version"],
        "1.2"
    );
    let manifests = index["manifests"].as_array().unwrap();
    for m in manifests {
        assert_eq!(
            m["annotations"]["org.opencontainers.image.version"], "1.2",
            "{index}"
        );
    }
    let amd = blob(&t, manifests[0]["digest"].as_str().unwrap());
    let arm = blob(&t, manifests[1]["digest"].as_str().unwrap());
    assert!(amd.get("annotations").is_none(), "{amd}");
    assert_eq!(arm["annotations"]["only"], "arm");
    // save writes a new index (gzip layers) with the same annotations.
    let archive = t.path().join("multi.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        archive.to_str().unwrap(),
        "multi",
    ]);
    let saved = skopeo_raw(&archive);
    assert_eq!(
        saved["annotations"]["org.opencontainers.image.version"],
        "1.2"
    );
    assert_eq!(
        saved["manifests"][1]["annotations"]["org.opencontainers.image.version"],
        "1.2"
    );
    // The same images built again without annotations get their plain manifests back; the
    // annotated index no longer names existing manifests, so its entry goes and the store
    // stays consistent.
    t.ok(&[
        "build",
        "-q",
        "-t",
        "plain",
        "--platform",
        "linux/amd64,linux/arm64",
        &ctx_dir(&t),
    ]);
    let out = t.run(&["check"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(inspect(&t, "plain").get("index").is_some());
    assert!(inspect(&t, "multi").get("index").is_none());
}
