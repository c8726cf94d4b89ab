//! `--annotation` with `-o type=oci`, placed where BuildKit 0.25's oci exporter puts each
//! kind (seen with `docker buildx build --annotation ... -o type=oci` on a containerd image
//! store, which the shared reference daemon lacks): `manifest` and plain ones in each
//! manifest, `index` in the index, `manifest-descriptor` on each manifest's descriptor (in
//! the index; with one platform, on `index.json`'s entry), `index-descriptor` on `index.json`'s
//! entry of the index. Nothing else gets them.

use super::oci_layout::Layout;
use super::{ctx_dir, setup};

/// The annotations of a JSON object other than the names `save` writes, as `{k: v}`.
fn own(value: &serde_json::Value) -> serde_json::Value {
    let mut map = value["annotations"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    map.remove("io.containerd.image.name");
    map.remove("org.opencontainers.image.ref.name");
    serde_json::Value::Object(map)
}

#[test]
fn one_platform_puts_manifest_descriptor_annotations_on_the_index_json_entry() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN echo hi > /hi\n");
    let archive = t.path().join("one.tar");
    t.ok(&[
        "build",
        "-q",
        "--annotation",
        "org.example.plain=p",
        "--annotation",
        "manifest:org.example.m=m",
        "--annotation",
        "manifest-descriptor:org.example.d=d",
        "-o",
        &format!("type=oci,dest={},name=example.org/one:1", archive.display()),
        &ctx_dir(&t),
    ]);
    let layout = Layout::open(&archive, &t.path().join("layout"));
    let top = layout.json("index.json");
    let entry = &top["manifests"][0];
    assert_eq!(
        own(entry),
        serde_json::json!({"org.example.d": "d"}),
        "{top}"
    );
    assert_eq!(
        entry["annotations"]["org.opencontainers.image.ref.name"],
        "example.org/one:1"
    );
    let manifest = layout.blob(&entry["digest"]);
    assert_eq!(
        own(&manifest),
        serde_json::json!({"org.example.plain": "p", "org.example.m": "m"})
    );
    // Without a layout there is no descriptor to carry it: refused, naming -o type=oci.
    let err = t.fails(&[
        "build",
        "--annotation",
        "manifest-descriptor:org.example.d=d",
        &ctx_dir(&t),
    ]);
    assert!(err.contains("manifest-descriptor:org.example.d=d"), "{err}");
    assert!(err.contains("-o type=oci"), "{err}");
}

#[test]
fn several_platforms_put_each_kind_where_buildkit_does() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\nRUN echo $TARGETARCH > /arch\n",
    );
    let archive = t.path().join("two.tar");
    t.ok(&[
        "build",
        "-q",
        "--platform",
        "linux/amd64,linux/arm64",
        "--annotation",
        "org.example.plain=p",
        "--annotation",
        "index:org.example.i=i",
        "--annotation",
        "manifest-descriptor:org.example.d=d",
        "--annotation",
        "index-descriptor:org.example.x=x",
        "--annotation",
        "manifest[linux/arm64]:org.example.arm=a",
        "-o",
        &format!("type=oci,dest={}", archive.display()),
        &ctx_dir(&t),
    ]);
    let layout = Layout::open(&archive, &t.path().join("layout"));
    let top = layout.json("index.json");
    let entry = &top["manifests"][0];
    assert_eq!(
        own(entry),
        serde_json::json!({"org.example.x": "x"}),
        "{top}"
    );
    let index = layout.blob(&entry["digest"]);
    assert_eq!(
        own(&index),
        serde_json::json!({"org.example.i": "i"}),
        "{index}"
    );
    let descriptors = index["manifests"].as_array().unwrap();
    assert_eq!(descriptors.len(), 2);
    for (d, arch) in descriptors.iter().zip(["amd64", "arm64"]) {
        assert_eq!(d["platform"]["architecture"], arch);
        assert_eq!(own(d), serde_json::json!({"org.example.d": "d"}), "{index}");
        let mut want = serde_json::json!({"org.example.plain": "p"});
        if arch == "arm64" {
            want["org.example.arm"] = "a".into();
        }
        assert_eq!(own(&layout.blob(&d["digest"])), want, "{arch}");
    }
    // Stored (no layout): the index's descriptor exists nowhere, so it is refused.
    let err = t.fails(&[
        "build",
        "--platform",
        "linux/amd64,linux/arm64",
        "--annotation",
        "index-descriptor:org.example.x=x",
        &ctx_dir(&t),
    ]);
    assert!(err.contains("-o type=oci"), "{err}");
}
