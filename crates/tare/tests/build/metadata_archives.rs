//! `--metadata-file` of archive outputs, as BuildKit 0.25's oci exporter reports them (its
//! `Export` sets `containerimage.digest` and `containerimage.descriptor` to the manifest or
//! index it wrote, `containerimage.config.digest` for one platform, `image.name` for the
//! names; the tar and local exporters report nothing): the digest is the one the archive's
//! `index.json` names.

use super::oci_layout::Layout;
use super::{ctx_dir, setup};
use crate::util::TestContext;

fn cross_context(t: &TestContext) {
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS b\nARG TARGETARCH\n\
         RUN echo $TARGETARCH > /arch\nFROM scratch\nCOPY --from=b /arch /\n",
    );
}

/// Builds into `output` with `--metadata-file`; returns the metadata.
fn build_with_metadata(t: &TestContext, platforms: &str, output: &str) -> serde_json::Value {
    let metadata = t.path().join("metadata.json");
    let _ = std::fs::remove_file(&metadata);
    t.ok(&[
        "build",
        "-q",
        "--platform",
        platforms,
        "--metadata-file",
        &metadata.to_string_lossy(),
        "-o",
        output,
        &ctx_dir(t),
    ]);
    serde_json::from_slice(&std::fs::read(&metadata).unwrap()).unwrap()
}

/// The metadata's digest and descriptor are `index.json`'s one entry (without its names),
/// whose blob is that size; returns the entry.
fn assert_names_the_entry(m: &serde_json::Value, layout: &Layout) -> serde_json::Value {
    let top = layout.json("index.json");
    let entries = top["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{top}");
    let entry = &entries[0];
    assert_eq!(m["containerimage.digest"], entry["digest"], "{m}\n{top}");
    let descriptor = &m["containerimage.descriptor"];
    for key in ["mediaType", "digest", "size"] {
        assert_eq!(descriptor[key], entry[key], "{key}: {m}\n{top}");
    }
    let size = std::fs::metadata(layout.blob_path(&entry["digest"]))
        .unwrap()
        .len();
    assert_eq!(descriptor["size"], size, "{m}");
    entry.clone()
}

#[test]
fn one_platform_oci_and_docker_archives_report_the_manifest_they_hold() {
    let t = setup();
    cross_context(&t);
    for (kind, archive) in [("oci", "one.oci.tar"), ("docker", "one.docker.tar")] {
        let archive = t.path().join(archive);
        let m = build_with_metadata(
            &t,
            "linux/amd64",
            &format!(
                "type={kind},dest={},name=example.org/m:1",
                archive.display()
            ),
        );
        let layout = Layout::open(&archive, &t.path().join(kind));
        let entry = assert_names_the_entry(&m, &layout);
        let manifest = layout.blob(&entry["digest"]);
        assert_eq!(
            m["containerimage.config.digest"], manifest["config"]["digest"],
            "{kind}: {m}"
        );
        assert_eq!(m["image.name"], "example.org/m:1", "{kind}: {m}");
    }
}

#[test]
fn two_platform_oci_archive_reports_its_index_and_tar_reports_nothing() {
    let t = setup();
    cross_context(&t);
    let archive = t.path().join("two.tar");
    let m = build_with_metadata(
        &t,
        "linux/amd64,linux/arm64",
        &format!("type=oci,dest={},name=example.org/m:2", archive.display()),
    );
    let layout = Layout::open(&archive, &t.path().join("two"));
    let entry = assert_names_the_entry(&m, &layout);
    assert_eq!(
        entry["mediaType"], "application/vnd.oci.image.index.v1+json",
        "{entry}"
    );
    let index = layout.blob(&entry["digest"]);
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2, "{index}");
    // One config per platform: none is named, as BuildKit names none for an index.
    assert!(m.get("containerimage.config.digest").is_none(), "{m}");
    assert_eq!(m["image.name"], "example.org/m:2", "{m}");
    let files = t.path().join("files.tar");
    let m = build_with_metadata(
        &t,
        "linux/amd64,linux/arm64",
        &format!("type=tar,dest={}", files.display()),
    );
    assert_eq!(m, serde_json::json!({}));
}
