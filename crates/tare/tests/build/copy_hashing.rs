//! The COPY key of context files: content digests remembered by stat data (size, mtime, ctime,
//! inode) and, for files the cache has not seen in that state, taken while the layer is
//! streamed (one read per file). A change the stat data cannot hide must miss; a touch that
//! leaves the content alone must hit, with the key taken in one pass equal to the one the
//! remembered digests give.

use std::process::Command;

use crate::util::TestContext;
use crate::{ctx_dir, setup, with_entry};

/// Sets `path`'s mtime to `secs` (the content stays).
fn set_mtime(path: &std::path::Path, secs: i64) {
    let ok = Command::new("touch")
        .args(["-m", "-d", &format!("@{secs}")])
        .arg(path)
        .status()
        .expect("touch");
    assert!(ok.success());
}

/// Builds the context as `tag`; the plain progress output.
fn build(t: &TestContext, tag: &str, extra: &[&str]) -> String {
    let ctx = ctx_dir(t);
    let mut args = vec!["build", "--progress", "plain", "-t", tag];
    args.extend_from_slice(extra);
    args.push(&ctx);
    let out = t.run(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The content of `rel` in the image's file system.
fn file_in(t: &TestContext, image: &str, rel: &str) -> String {
    with_entry(t, image, rel, |entry| {
        let mut text = String::new();
        std::io::Read::read_to_string(entry, &mut text).expect("read");
        text
    })
    .unwrap_or_else(|| panic!("{rel} not in {image}"))
}

fn top_layer(t: &TestContext, image: &str) -> String {
    let json: serde_json::Value =
        serde_json::from_str(&t.ok(&["inspect", image])).expect("inspect json");
    json["layers"]
        .as_array()
        .expect("layers")
        .last()
        .expect("a layer")["digest"]
        .as_str()
        .expect("digest")
        .to_string()
}

/// A file rewritten with the same size and its mtime put back. BuildKit reuses its cache
/// here (it compares name, size, mode and mtime only: moby/buildkit#2592, #4817); tare also
/// compares the inode's ctime, which no write can keep, so the step reruns with the new
/// content.
#[test]
fn a_rewrite_that_keeps_size_and_mtime_still_misses() {
    let t = setup();
    let f = t.write("ctx/app.conf", "mode=safe\n");
    set_mtime(&f, 1_600_000_000);
    t.write("ctx/Dockerfile", "FROM busybox\nCOPY app.conf /app.conf\n");
    build(&t, "conf:1", &[]);
    assert_eq!(file_in(&t, "conf:1", "app.conf"), "mode=safe\n");

    std::fs::write(&f, "mode=evil\n").expect("rewrite");
    set_mtime(&f, 1_600_000_000);
    let again = build(&t, "conf:2", &[]);
    assert!(!again.contains(" CACHED"), "{again}");
    assert_eq!(file_in(&t, "conf:2", "app.conf"), "mode=evil\n");
    assert_ne!(top_layer(&t, "conf:1"), top_layer(&t, "conf:2"));
}

/// The first build in a fresh store hashes the context while streaming the layer; a second
/// build must find that step by the same key (and give the same image) from the remembered
/// digests. A touch (new mtime, same content) goes through the one-pass path again and still
/// hits, as in BuildKit, whose COPY key is the content. A hard link (whose second name the
/// stream does not read) and a nested tree are part of it.
#[test]
fn the_key_taken_while_streaming_is_the_key_of_the_content() {
    let t = setup();
    for i in 0..20 {
        t.write(&format!("ctx/data/d{}/f{i}.txt", i % 3), &format!("{i}\n"));
    }
    std::fs::hard_link(
        t.path().join("ctx/data/d0/f0.txt"),
        t.path().join("ctx/data/again.txt"),
    )
    .expect("hard link");
    t.write("ctx/Dockerfile", "FROM busybox\nCOPY data /data\n");
    let first = build(&t, "data:1", &["--no-cache"]);
    assert!(!first.contains(" CACHED"), "{first}");
    let second = build(&t, "data:2", &[]);
    assert_eq!(second.matches(" CACHED").count(), 1, "{second}");
    assert_eq!(top_layer(&t, "data:1"), top_layer(&t, "data:2"));

    set_mtime(&t.path().join("ctx/data/d1/f1.txt"), 1_500_000_000);
    let touched = build(&t, "data:3", &[]);
    assert_eq!(touched.matches(" CACHED").count(), 1, "{touched}");
    assert_eq!(top_layer(&t, "data:1"), top_layer(&t, "data:3"));

    // A changed file among unchanged ones: a miss, with its new content.
    t.write("ctx/data/d2/f2.txt", "changed\n");
    let changed = build(&t, "data:4", &[]);
    assert!(!changed.contains(" CACHED"), "{changed}");
    assert_eq!(file_in(&t, "data:4", "data/d2/f2.txt"), "changed\n");
    assert_eq!(file_in(&t, "data:4", "data/again.txt"), "0\n");
}
