//! An image whose layer list names one layer twice (`RUN true` twice makes two empty layers
//! with one diffID, stored once) runs: overlayfs refuses a lower directory given twice
//! ("too many levels of symbolic links"), so the run must give each directory once.

use super::ctx;

#[test]
fn an_image_with_one_layer_twice_runs_and_builds_on() {
    let ctx = ctx();
    ctx.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN true\nRUN true\nRUN echo one > /one\nRUN true\n",
    );
    let ctx_dir = ctx.path().join("ctx");
    ctx.ok(&[
        "build",
        "-q",
        "-t",
        "twice",
        ctx_dir.to_str().expect("utf-8"),
    ]);
    let config = ctx.ok(&["inspect", "--format", "{{json .RootFS.Layers}}", "twice"]);
    let layers: Vec<String> = serde_json::from_str(config.trim()).expect("layer list");
    let mut unique = layers.clone();
    unique.sort();
    unique.dedup();
    assert!(
        unique.len() < layers.len(),
        "the image should name one layer more than once: {layers:?}"
    );
    assert_eq!(ctx.ok(&["run", "--rm", "twice", "cat", "/one"]), "one\n");
    // A container of it commits, and the committed image runs too.
    ctx.ok(&[
        "run",
        "--name",
        "c1",
        "twice",
        "sh",
        "-c",
        "echo two > /two",
    ]);
    ctx.ok(&["commit", "c1", "twice:next"]);
    assert_eq!(
        ctx.ok(&["run", "--rm", "twice:next", "cat", "/one", "/two"]),
        "one\ntwo\n"
    );
}
