//! `-o type=tar|oci|docker` of a multi-platform build, as BuildKit 0.25 writes them (seen with
//! `docker buildx build --platform linux/amd64,linux/arm64 -o type=...` on a containerd image
//! store): type=tar is one tar with a `linux_amd64/` directory (0755, root, mtime 0) per
//! platform; type=oci is one OCI layout whose `index.json` names an index of every platform's
//! manifest; type=docker is refused, as BuildKit refuses to export a manifest list with it.

use std::path::Path;
use std::process::Command;

use super::index_commands::skopeo;
use super::oci_layout::{untar, Layout};
use super::{ctx_dir, setup};
use crate::util::TestContext;

/// A cross-compiling build whose final stage has `/arch`, `/platform` and a hard link to
/// `/arch` (whose target must carry the platform's directory too).
fn write_context(t: &TestContext) {
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS build\n\
         ARG TARGETARCH TARGETPLATFORM\n\
         RUN mkdir /out && echo $TARGETARCH > /out/arch && echo $TARGETPLATFORM > /out/platform \\\n\
          && ln /out/arch /out/hard\n\
         FROM scratch\n\
         COPY --from=build /out /\n",
    );
}

/// A quiet build of the context for linux/amd64 and linux/arm64 into the `-o` value `output`.
pub(super) fn build_to(t: &TestContext, output: &str) {
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        output,
        &ctx_dir(t),
    ]);
}

/// Nothing the build made is kept as an image (`before`: `images -a -q` before it), and the
/// store is consistent.
fn assert_no_image_kept(t: &TestContext, before: &str) {
    assert_eq!(t.ok(&["images", "-a", "-q"]), before, "no image kept");
    t.ok(&["check"]);
}

#[test]
fn tar_output_of_two_platforms_puts_each_under_its_directory() {
    let t = setup();
    write_context(&t);
    let images_before = t.ok(&["images", "-a", "-q"]);
    let archive = t.path().join("out.tar");
    build_to(&t, &format!("type=tar,dest={}", archive.display()));
    let mut tar = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    let mut listing = Vec::new();
    for entry in tar.entries().unwrap() {
        let entry = entry.unwrap();
        let h = entry.header();
        let path = entry.path().unwrap().to_string_lossy().into_owned();
        if let Some(dir) = path.strip_suffix('/').filter(|p| !p.contains('/')) {
            // The platform's own directory, as BuildKit writes it.
            assert_eq!(h.entry_type(), tar::EntryType::Directory, "{path}");
            assert_eq!(h.mode().unwrap() & 0o7777, 0o755, "{path}");
            assert_eq!((h.uid().unwrap(), h.gid().unwrap()), (0, 0), "{path}");
            assert_eq!(h.mtime().unwrap(), 0, "{path}");
            listing.push(dir.to_string());
            continue;
        }
        if h.entry_type() == tar::EntryType::Link {
            let target = entry.link_name().unwrap().unwrap();
            let top = path.split('/').next().unwrap();
            assert_eq!(target, Path::new(top).join("arch"), "{path}");
        }
        listing.push(path);
    }
    listing.sort();
    assert_eq!(
        listing,
        [
            "linux_amd64",
            "linux_amd64/arch",
            "linux_amd64/hard",
            "linux_amd64/platform",
            "linux_arm64",
            "linux_arm64/arch",
            "linux_arm64/hard",
            "linux_arm64/platform",
        ]
    );
    let dir = t.path().join("x");
    untar(&archive, &dir);
    let read = |p: &str| std::fs::read_to_string(dir.join(p)).unwrap();
    assert_eq!(read("linux_amd64/arch"), "amd64\n");
    assert_eq!(read("linux_amd64/hard"), "amd64\n");
    assert_eq!(read("linux_amd64/platform"), "linux/amd64\n");
    assert_eq!(read("linux_arm64/arch"), "arm64\n");
    assert_eq!(read("linux_arm64/hard"), "arm64\n");
    assert_eq!(read("linux_arm64/platform"), "linux/arm64\n");
    assert_no_image_kept(&t, &images_before);
}

#[test]
fn oci_output_of_two_platforms_is_one_layout_with_an_index_of_both() {
    let t = setup();
    write_context(&t);
    let images_before = t.ok(&["images", "-a", "-q"]);
    let archive = t.path().join("oci.tar");
    build_to(
        &t,
        &format!(
            "type=oci,dest={},name=example.org/multi:1",
            archive.display()
        ),
    );
    let layout = Layout::open(&archive, &t.path().join("layout"));
    // index.json names one index, by the name given, which lists both platforms.
    let top = layout.json("index.json");
    let entries = top["manifests"].as_array().unwrap();
    assert_eq!(entries.len(), 1, "{top}");
    assert_eq!(
        entries[0]["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    assert_eq!(
        entries[0]["annotations"]["org.opencontainers.image.ref.name"],
        "example.org/multi:1"
    );
    let index = layout.blob(&entries[0]["digest"]);
    let manifests = index["manifests"].as_array().unwrap();
    let platforms: Vec<_> = manifests
        .iter()
        .map(|m| format!("{}/{}", m["platform"]["os"], m["platform"]["architecture"]))
        .collect();
    assert_eq!(platforms, ["\"linux\"/\"amd64\"", "\"linux\"/\"arm64\""]);
    for (m, arch) in manifests.iter().zip(["amd64", "arm64"]) {
        let manifest = layout.blob(&m["digest"]);
        let config = layout.blob(&manifest["config"]["digest"]);
        assert_eq!(config["architecture"], arch);
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 1, "{manifest}");
        assert!(layers[0]["mediaType"].as_str().unwrap().ends_with("gzip"));
        let out = Command::new("tar")
            .arg("-xzOf")
            .arg(layout.blob_path(&layers[0]["digest"]))
            .arg("arch")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{arch}\n"));
    }
    // skopeo reads it as a multi-platform image.
    let raw = skopeo(&[
        "inspect",
        "--raw",
        &format!("oci-archive:{}", archive.display()),
    ]);
    let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(raw["manifests"].as_array().unwrap().len(), 2, "{raw}");
    assert_no_image_kept(&t, &images_before);
}

#[test]
fn docker_output_of_two_platforms_is_refused_before_the_build() {
    let t = setup();
    write_context(&t);
    let dest = t.path().join("x.tar");
    let err = t.fails(&[
        "build",
        "--progress",
        "plain",
        "--platform",
        "linux/amd64,linux/arm64",
        "-o",
        &format!("type=docker,dest={}", dest.display()),
        &ctx_dir(&t),
    ]);
    assert!(err.contains("no manifest list"), "{err}");
    assert!(err.contains("type=oci"), "{err}");
    assert!(!err.contains("#1"), "refused before any step ran: {err}");
    assert!(!dest.exists());
}
