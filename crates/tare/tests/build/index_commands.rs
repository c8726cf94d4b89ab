//! A multi-platform image (one OCI index) in every command: `save --format oci` writes the
//! whole index (skopeo reads and copies it), `images` and `inspect` list its platforms, `run`
//! takes this machine's, `image prune` keeps the other platforms, `rmi` takes them all and
//! leaves a store `tare check` finds consistent.

use std::process::Command;

use super::{ctx_dir, inspect, setup};
use crate::util::TestContext;

/// Builds `multi` for linux/amd64 and linux/arm64 the cross-compiling way (every RUN on
/// this machine, no emulation); each image's `/arch` names its platform. Returns the index
/// digest.
fn cross_built_index(t: &TestContext) -> String {
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
        &ctx_dir(t),
    ]);
    digest.trim().to_string()
}

pub(super) fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn check_ok(t: &TestContext) {
    let out = t.ok(&["check"]);
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn run_takes_the_hosts_platform_of_an_index_by_tag_and_by_index_digest() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: the test expects an amd64 machine");
        return;
    }
    let t = setup();
    let digest = cross_built_index(&t);
    assert_eq!(t.ok(&["run", "--rm", "multi", "cat", "/arch"]), "amd64\n");
    let pinned = format!("multi@{digest}");
    assert_eq!(t.ok(&["run", "--rm", &pinned, "cat", "/arch"]), "amd64\n");
}

#[test]
fn images_and_inspect_list_the_platforms_of_an_index() {
    let t = setup();
    let digest = cross_built_index(&t);
    let rows: serde_json::Value =
        serde_json::from_str(&t.ok(&["images", "--format", "json"])).unwrap();
    let rows = rows.as_array().unwrap();
    // One row for the tag (the index), none for an untagged platform image.
    assert!(rows.iter().all(|r| r["repository"] != "<none>"), "{rows:?}");
    let multi = rows.iter().find(|r| r["repository"] == "multi").unwrap();
    assert_eq!(multi["digest"], digest.as_str());
    let platforms: Vec<&str> = multi["platforms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["platform"].as_str().unwrap())
        .collect();
    assert_eq!(platforms, ["linux/amd64", "linux/arm64"]);
    let tree = t.ok(&["images", "--tree", "multi"]);
    assert!(tree.contains("├─ linux/amd64"), "{tree}");
    assert!(tree.contains("└─ linux/arm64"), "{tree}");

    let host = inspect(&t, "multi");
    assert_eq!(host["index"]["digest"], digest.as_str(), "{host}");
    assert_eq!(host["index"]["platforms"][1]["platform"], "linux/arm64");
    let arm: serde_json::Value =
        serde_json::from_str(&t.ok(&["inspect", "--platform", "linux/arm64", "multi"])).unwrap();
    assert_eq!(arm["config"]["architecture"], "arm64");
    assert_eq!(arm["id"], host["index"]["platforms"][1]["id"]);
    let stderr = t.fails(&["inspect", "--platform", "linux/s390x", "multi"]);
    assert!(
        stderr.contains("multi has no image for linux/s390x (it has linux/amd64, linux/arm64)"),
        "{stderr}"
    );
    // The arm64 image is not dangling: prune keeps it, and the index stays whole.
    t.ok(&["image", "prune", "-f"]);
    assert_eq!(
        inspect(&t, "multi")["index"]["platforms"][1]["platform"],
        "linux/arm64"
    );
    check_ok(&t);
}

#[test]
fn save_oci_of_an_index_writes_every_platform_and_skopeo_copies_it() {
    let t = setup();
    cross_built_index(&t);
    let archive = t.path().join("multi.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "-o",
        archive.to_str().unwrap(),
        "multi",
    ]);
    let src = format!("oci-archive:{}", archive.display());
    let index: serde_json::Value =
        serde_json::from_slice(&skopeo(&["inspect", "--raw", &src])).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let arches: Vec<&str> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "{index}");
    let arm_config: serde_json::Value = serde_json::from_slice(&skopeo(&[
        "inspect",
        "--config",
        "--override-arch",
        "arm64",
        &src,
    ]))
    .unwrap();
    assert_eq!(arm_config["architecture"], "arm64");
    // skopeo copies every manifest, config and layer, checking each digest.
    let dir = t.path().join("copied");
    skopeo(&["copy", "--all", &src, &format!("dir:{}", dir.display())]);
    let copied: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(copied["manifests"].as_array().unwrap().len(), 2);
    // The docker format keeps one image per name: this machine's.
    let docker = t.path().join("docker.tar");
    t.ok(&["save", "-o", docker.to_str().unwrap(), "multi"]);
    let loaded = TestContext::new();
    loaded.ok(&["load", "-i", docker.to_str().unwrap()]);
    assert_eq!(
        inspect(&loaded, "multi")["config"]["architecture"],
        std::env::consts::ARCH
            .replace("x86_64", "amd64")
            .replace("aarch64", "arm64")
    );
}

/// The image ID of `multi`'s platform number `n`, as `inspect` lists them.
fn platform_id(t: &TestContext, n: usize) -> String {
    inspect(t, "multi")["index"]["platforms"][n]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn rmi_of_an_index_removes_every_platform_and_leaves_the_store_consistent() {
    let t = setup();
    cross_built_index(&t);
    let arm_id = platform_id(&t, 1);
    let amd_id = platform_id(&t, 0);
    // The arm64 image alone, by ID, is refused: the index would name a missing image.
    let stderr = t.fails(&["rmi", &arm_id]);
    assert!(
        stderr.contains("(linux/arm64) is part of the multi-platform image multi:latest"),
        "{stderr}"
    );
    check_ok(&t);
    let out = t.ok(&["rmi", "multi"]);
    assert!(out.contains("Untagged: multi:latest"), "{out}");
    assert!(out.contains(&format!("Deleted: {arm_id}")), "{out}");
    assert!(out.contains(&format!("Deleted: {amd_id}")), "{out}");
    let tags = std::fs::read_to_string(t.root.path().join("index-tags.json")).unwrap();
    assert!(!tags.contains("multi"), "{tags}");
    t.fails(&["inspect", &arm_id]);
    check_ok(&t);
    // With --force, a platform's image goes and takes the index entry with it; the tag
    // still names this machine's image.
    cross_built_index(&t);
    let arm_id = platform_id(&t, 1);
    t.ok(&["rmi", "--force", &arm_id]);
    assert!(inspect(&t, "multi").get("index").is_none());
    check_ok(&t);
    // A store whose index names a missing manifest fails the check, naming the tag.
    cross_built_index(&t);
    let arm_id = platform_id(&t, 1);
    let record = t
        .root
        .path()
        .join("images")
        .join(format!("{}.json", arm_id.trim_start_matches("sha256:")));
    std::fs::remove_file(record).unwrap();
    let out = t.run(&["check"]);
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("index tag docker.io/library/multi:latest:"),
        "{stdout}"
    );
}
