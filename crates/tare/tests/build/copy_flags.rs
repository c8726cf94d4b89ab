//! COPY --link, --parents and the `# syntax=` directive: what the differential suite cannot
//! check (the reference dockerd stores --link layers like plain ones, and its built-in
//! Dockerfile front end has no --parents without a `-labs` frontend image, which needs the
//! network).

use crate::util::TestContext;
use std::collections::BTreeMap;

use crate::{ctx_dir, inspect, setup};

fn top_layer(t: &TestContext, image: &str) -> String {
    let json = inspect(t, image);
    let layers = json["layers"].as_array().expect("layers");
    layers.last().expect("a layer")["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

/// Every entry of the image's flattened file system: path (no leading `./` or `/`, no
/// trailing `/`), kind and mode.
fn entries(t: &TestContext, image: &str) -> BTreeMap<String, (tar::EntryType, u32)> {
    let out = t.path().join("export.tar");
    t.ok(&["export", image, "-o", out.to_str().expect("utf-8")]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open export"));
    let mut found = BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let p = entry.path().expect("path").to_string_lossy().into_owned();
        let p = p
            .trim_start_matches("./")
            .trim_start_matches('/')
            .trim_end_matches('/')
            .to_string();
        let h = entry.header();
        found.insert(p, (h.entry_type(), h.mode().expect("mode") & 0o7777));
    }
    found
}

#[test]
fn a_link_layer_is_reused_when_the_base_changes() {
    let t = setup();
    t.write("ctx/f.txt", "f\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nARG V\nRUN echo $V > /v\nCOPY --link f.txt /app/\n",
    );
    let build = |v: &str, tag: &str| {
        let out = t.run(&[
            "build",
            "--progress",
            "plain",
            "--build-arg",
            &format!("V={v}"),
            "-t",
            tag,
            &ctx_dir(&t),
        ]);
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let first = build("1", "link:1");
    assert!(!first.contains("CACHED"), "{first}");
    let second = build("2", "link:2");
    // The RUN above ran again; the COPY --link step came from the cache.
    assert_eq!(second.matches(" CACHED").count(), 1, "{second}");
    assert_eq!(top_layer(&t, "link:1"), top_layer(&t, "link:2"));

    // Without --link the same change reruns the COPY.
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nARG V\nRUN echo $V > /v\nCOPY f.txt /app/\n",
    );
    build("1", "plain:1");
    let again = build("3", "plain:3");
    assert!(!again.contains("CACHED"), "{again}");
}

#[test]
fn link_reads_nothing_of_the_destination_in_the_base() {
    let t = setup();
    t.write("ctx/f.txt", "f\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN mkdir /real && ln -s /real /sym && mkdir -m 700 /priv\n\
         COPY --link f.txt /sym/\n\
         COPY --link f.txt /priv/\n\
         COPY f.txt /plain-sym/\n",
    );
    t.ok(&["build", "-q", "-t", "linked", &ctx_dir(&t)]);
    let files = entries(&t, "linked");
    // BuildKit: "the destination path created with --link will always be a path containing
    // only directories": the base's symlink is replaced, not followed.
    assert_eq!(
        files.get("sym").map(|e| e.0),
        Some(tar::EntryType::Directory),
        "{files:?}"
    );
    assert!(files.contains_key("sym/f.txt"), "{files:?}");
    assert!(!files.contains_key("real/f.txt"), "{files:?}");
    // The directory the layer makes has its own metadata, not the base's 0700.
    assert_eq!(files.get("priv").map(|e| e.1), Some(0o755), "{files:?}");
    // A plain COPY still follows the base's state.
    assert!(files.contains_key("plain-sym/f.txt"), "{files:?}");
}

#[test]
fn parents_keep_paths_below_the_context_or_the_pivot() {
    let t = setup();
    for (p, c) in [
        ("ctx/a/b/f.txt", "1"),
        ("ctx/a/b/c/g.txt", "2"),
        ("ctx/a/other.txt", "o"),
        ("ctx/x/b/f.txt", "3"),
        ("ctx/top.txt", "4"),
    ] {
        t.write(p, c);
    }
    t.write(
        "ctx/Dockerfile",
        "# syntax=docker/dockerfile:1.7-labs\n\
         FROM busybox\n\
         COPY --parents a/b/f.txt top.txt /p1/\n\
         COPY --parents ./a/./b/c /p2/\n\
         COPY --parents */b/f.txt /p3/\n\
         COPY --parents --exclude=**/c a/b /p4\n\
         COPY --parents **/g.txt /p5/\n",
    );
    let out = t.run(&[
        "build",
        "--progress",
        "plain",
        "-t",
        "parents",
        &ctx_dir(&t),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The syntax directive is named with its line, and the build goes on.
    assert!(
        stderr.contains(
            "Dockerfile:1: the syntax directive \"docker/dockerfile:1.7-labs\" is ignored"
        ),
        "{stderr}"
    );
    let files = entries(&t, "parents");
    let has = |p: &str| files.contains_key(p);
    for p in [
        "p1/a/b/f.txt",
        "p1/top.txt",
        "p2/b/c/g.txt",
        "p3/a/b/f.txt",
        "p3/x/b/f.txt",
        "p4/a/b/f.txt",
        "p5/a/b/c/g.txt",
    ] {
        assert!(has(p), "{p} missing: {files:?}");
    }
    for p in [
        "p1/a/other.txt",
        "p1/a/b/c",
        "p2/a",
        "p4/a/b/c",
        "p4/a/other.txt",
        "p5/x",
        "p5/top.txt",
    ] {
        assert!(!has(p), "{p} should not be there: {files:?}");
    }
}

#[test]
fn a_missing_parents_source_is_an_error_naming_it() {
    let t = setup();
    t.write("ctx/a/f.txt", "f");
    t.write(
        "ctx/Dockerfile",
        "# syntax=docker/dockerfile:1.7-labs\nFROM busybox\nCOPY --parents a/nope.txt /d/\n",
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("a/nope.txt"), "{err}");
    // Without a labs syntax, BuildKit's Dockerfile 1.19 refuses the flag itself.
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nCOPY --parents a/f.txt /d/\n",
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("labs"),
        "{err}"
    );
}
