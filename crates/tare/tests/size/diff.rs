//! `tare diff`: images that differ in one file, one mode, one mtime, one config field and one
//! layer's compression; what the diff lists and what `--why` names for each.

use std::path::Path;
use std::process::Command;

use crate::util::TestContext;

/// A deterministic tar of `dir` (sorted names, numeric owners, the given mtime for all).
fn tar_of(dir: &Path, out: &Path, mtime: u64) {
    let status = Command::new("tar")
        .args(["--sort=name", "--numeric-owner", "--owner=0", "--group=0"])
        .arg(format!("--mtime=@{mtime}"))
        .arg("-C")
        .arg(dir)
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
}

/// A store with `base:1` and one variant per kind of difference.
pub(crate) fn variants() -> TestContext {
    let t = TestContext::new();
    let root = t.path().join("root");
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::create_dir_all(root.join("etc")).unwrap();
    std::fs::write(root.join("app/data"), "0123456789").unwrap();
    std::fs::write(root.join("etc/conf"), "same\n").unwrap();
    let import = |name: &str, extra: &[&str], mtime: u64| {
        let tar = t.path().join(format!("{}.tar", name.replace(':', "_")));
        tar_of(&root, &tar, mtime);
        // A fixed `created`: two imports a second apart must not differ in the config.
        let mut args = vec![
            "import",
            "-m",
            "fixed",
            "--source-date-epoch",
            "1700000000",
            tar.to_str().unwrap(),
            name,
        ];
        args.extend(extra);
        t.ok(&args);
    };
    import("base:1", &[], 1000);
    std::fs::write(
        root.join("app/data"),
        "0123456789 and 1000 more bytes".repeat(40),
    )
    .unwrap();
    import("content:1", &[], 1000);
    std::fs::write(root.join("app/data"), "0123456789").unwrap();
    std::fs::set_permissions(
        root.join("etc/conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    import("mode:1", &[], 1000);
    std::fs::set_permissions(
        root.join("etc/conf"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    import("mtime:1", &[], 2000);
    import("config:1", &["--change", "ENV MODE=prod"], 1000);
    import(
        "zstd:1",
        &["--compression", "zstd", "--change", "LABEL z=1"],
        1000,
    );
    t
}

pub(crate) fn diff_json(t: &TestContext, a: &str, b: &str) -> serde_json::Value {
    serde_json::from_str(&t.ok(&["diff", "--format", "json", a, b])).unwrap()
}

fn why(t: &TestContext, a: &str, b: &str) -> String {
    t.ok(&["diff", "--why", a, b])
}

#[test]
fn diff_lists_files_layers_config_and_sizes_and_why_names_the_cause() {
    let t = variants();

    // One file's content: changed, with its growth; the layer holds different files.
    let d = diff_json(&t, "base:1", "content:1");
    let files = d["files"].as_array().unwrap();
    assert_eq!(files.len(), 1, "{d:#}");
    assert_eq!(files[0]["path"], "app/data");
    assert_eq!(files[0]["change"], "changed");
    assert_eq!(files[0]["what"], serde_json::json!(["content"]));
    assert_eq!(files[0]["delta"], 1200 - 10);
    assert_eq!(
        d["size_b"].as_i64().unwrap() - d["size_a"].as_i64().unwrap(),
        1190
    );
    assert_eq!(d["layers"][0]["verdict"], "different");
    assert!(d["config"].as_array().unwrap().is_empty(), "{d:#}");
    let w = why(&t, "base:1", "content:1");
    assert!(w.starts_with("first: layer 0: ./app/data: content"), "{w}");

    // One mode.
    let d = diff_json(&t, "base:1", "mode:1");
    assert_eq!(d["files"][0]["path"], "etc/conf");
    assert_eq!(d["files"][0]["what"], serde_json::json!(["mode"]));
    assert!(why(&t, "base:1", "mode:1").contains("etc/conf: mode: 644 vs 600"));

    // One mtime: no file differs, the tars do.
    let d = diff_json(&t, "base:1", "mtime:1");
    assert!(d["files"].as_array().unwrap().is_empty(), "{d:#}");
    assert_eq!(d["layers"][0]["verdict"], "same-files");
    let w = why(&t, "base:1", "mtime:1");
    assert!(
        w.starts_with("first: layer 0: ./: mtime: 1000 vs 2000"),
        "{w}"
    );

    // One config field: the layers are the same blob.
    let d = diff_json(&t, "base:1", "config:1");
    assert!(d["files"].as_array().unwrap().is_empty());
    assert_eq!(d["layers"][0]["verdict"], "same");
    let fields: Vec<&str> = d["config"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"config.Env[1]") || fields.contains(&"config.Env"),
        "{fields:?}"
    );
    assert!(why(&t, "base:1", "config:1").contains("config: config.Env"));

    // One layer's compression: the same tar in another blob.
    let d = diff_json(&t, "base:1", "zstd:1");
    assert_eq!(d["layers"][0]["verdict"], "recompressed");
    assert!(d["files"].as_array().unwrap().is_empty());
    let w = why(&t, "base:1", "zstd:1");
    assert!(w.starts_with("first: layer 0 blob: compression:"), "{w}");
    assert!(w.contains("zstd"), "{w}");

    // Text output and the CI gate.
    let text = t.ok(&["diff", "base:1", "content:1"]);
    assert!(
        text.contains("files: 0 added, 0 removed, 1 changed"),
        "{text}"
    );
    assert!(text.contains("+1.19kB  changed (content)"), "{text}");
    let out = t.run(&["diff", "--max-growth", "1kB", "base:1", "content:1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than --max-growth 1kB"));
    t.ok(&["diff", "--max-growth", "2kB", "base:1", "content:1"]);
    assert_eq!(
        why(&t, "base:1", "base:1").trim_end(),
        format!(
            "the images are the same: {}",
            t.ok(&["images", "-q", "--no-trunc", "base:1"]).trim()
        )
    );
    let err = t.fails(&["diff", "base:1", "nosuch:1"]);
    assert!(err.contains("nosuch:1"), "{err}");
}

#[test]
fn a_gzip_header_difference_is_named() {
    let t = TestContext::new();
    let root = t.path().join("r");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), "x").unwrap();
    let tar = t.path().join("f.tar");
    tar_of(&root, &tar, 1000);
    // `gzip` (with a name and a time in its header) against tare's own gzip of the same tar.
    let status = Command::new("gzip").arg("-k").arg(&tar).status().unwrap();
    assert!(status.success());
    t.ok(&[
        "import",
        "--compression",
        "gzip",
        "-m",
        "one",
        tar.to_str().unwrap(),
        "ours:1",
    ]);
    let gz = t.path().join("f.tar.gz");
    t.ok(&["import", "-m", "two", gz.to_str().unwrap(), "theirs:1"]);
    let d = diff_json(&t, "ours:1", "theirs:1");
    assert_eq!(d["layers"][0]["verdict"], "recompressed", "{d:#}");
    let w = why(&t, "ours:1", "theirs:1");
    assert!(w.starts_with("first: layer 0 blob: gzip header"), "{w}");
}
