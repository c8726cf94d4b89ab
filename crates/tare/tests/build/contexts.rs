//! `tare build --build-context NAME=...`: a directory, `docker-image://` and `oci-layout://`,
//! used by FROM and COPY --from, and the errors for what does not fit.

use super::{ctx_dir, file_in, inspect, setup};

#[test]
fn a_directory_context_feeds_copy_from_and_is_refused_by_from() {
    let t = setup();
    t.write("extra/sub/f.txt", "from the named context\n");
    t.write("ctx/f.txt", "from the main context\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nCOPY --from=Extra sub/f.txt /named.txt\nCOPY f.txt /main.txt\n",
    );
    let extra = format!("extra={}", t.path().join("extra").display());
    let build_and_read = |path: &str| {
        let args = ["build", "-q", "-t", "named-dir", "--build-context", &extra];
        t.ok(&[&args[..], &[ctx_dir(&t).as_str()]].concat());
        file_in(&t, "named-dir", path)
    };
    assert_eq!(
        build_and_read("named.txt").as_deref(),
        Some("from the named context\n")
    );
    assert_eq!(
        file_in(&t, "named-dir", "main.txt").as_deref(),
        Some("from the main context\n")
    );
    // A changed file in the named context is a new COPY, not a cached one.
    t.write("extra/sub/f.txt", "changed\n");
    assert_eq!(build_and_read("named.txt").as_deref(), Some("changed\n"));
    // FROM needs an image.
    t.write("ctx/Dockerfile", "FROM extra\n");
    let stderr = t.fails(&["build", "--build-context", &extra, &ctx_dir(&t)]);
    assert!(stderr.contains("Dockerfile:1"), "{stderr}");
    assert!(
        stderr.contains("build context \"extra\" is a directory"),
        "{stderr}"
    );
}

#[test]
fn a_docker_image_context_replaces_the_image_of_that_name() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN echo one > /one\n");
    t.ok(&["build", "-q", "-t", "replacement:1", &ctx_dir(&t)]);
    // `FROM alpine` and `COPY --from=alpine` read replacement:1; no alpine is in the store.
    t.write(
        "ctx/Dockerfile",
        "FROM alpine\nCOPY --from=alpine /one /two\nRUN cat /one /two > /both\n",
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "replaced",
        "--build-context",
        "alpine=docker-image://replacement:1",
        &ctx_dir(&t),
    ]);
    assert_eq!(
        file_in(&t, "replaced", "both").as_deref(),
        Some("one\none\n")
    );
}

#[test]
fn an_oci_layout_context_picks_its_image_by_tag_or_digest() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN echo layout > /from-layout\n",
    );
    t.ok(&["build", "-q", "-t", "lay/out:v1", &ctx_dir(&t)]);
    let tar = t.path().join("layout.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "lay/out:v1",
        "-o",
        tar.to_str().unwrap(),
    ]);
    let dir = t.path().join("layout");
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&tar)
        .arg("-C")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(status.success());
    t.ok(&["rmi", "lay/out:v1"]);
    t.write(
        "ctx/Dockerfile",
        "FROM base\nRUN cat /from-layout > /copied\n",
    );
    let spec = format!("base=oci-layout://{}@v1", dir.display());
    t.ok(&[
        "build",
        "-q",
        "-t",
        "from-layout",
        "--build-context",
        &spec,
        &ctx_dir(&t),
    ]);
    assert_eq!(
        file_in(&t, "from-layout", "copied").as_deref(),
        Some("layout\n")
    );
    // By digest, from index.json.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let spec = format!("base=oci-layout://{}@{digest}", dir.display());
    t.ok(&[
        "build",
        "-q",
        "-t",
        "by-digest",
        "--build-context",
        &spec,
        &ctx_dir(&t),
    ]);
    assert_eq!(
        inspect(&t, "by-digest")["layers"],
        inspect(&t, "from-layout")["layers"]
    );
    // The loaded image got no name of its own.
    assert!(!t.run(&["inspect", "lay/out:v1"]).status.success());
    // A tag the layout does not hold.
    let spec = format!("base=oci-layout://{}@v9", dir.display());
    let stderr = t.fails(&["build", "--build-context", &spec, &ctx_dir(&t)]);
    assert!(stderr.contains("no image \"v9\" in the layout"), "{stderr}");
    assert!(stderr.contains("Dockerfile:1"), "{stderr}");
}

#[test]
fn bad_build_contexts_are_refused_before_building() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN exit 3\n");
    for (spec, why) in [
        ("x", "expected NAME=PATH"),
        ("x=/nonexistent/h5-ctx", "is not a directory"),
        ("x=git://example.invalid/r.git", "unsupported kind git://"),
        ("x=oci-layout:///nonexistent", "not an OCI layout"),
    ] {
        let stderr = t.fails(&["build", "--build-context", spec, &ctx_dir(&t)]);
        assert!(stderr.contains(why), "{spec}: {stderr}");
        assert!(!stderr.contains("exit code 3"), "{spec}: {stderr}");
    }
}
