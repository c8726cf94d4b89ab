//! `tare cache ls|prune --dir DIR` (issue 15): the entries of a cache directory
//! (`--cache-to type=local,dest=DIR`) listed as `--registry` lists them, and pruned by age
//! with their tags (the key's and the one by parent) and the blobs nothing else names.

use crate::util::cache::{build, cached_steps, Base};

#[test]
fn cache_ls_and_prune_of_a_directory() {
    let base = Base::new();
    let a = base.machine("bravo\n");
    let dir = a.path().join("cache");
    let d = dir.to_str().expect("utf-8");
    build(&a, &["--cache-to", &format!("type=local,dest={d}")]);
    let listing = a.ok(&["cache", "ls", "--dir", d]);
    // A header and WORKDIR, two COPYs, two RUNs.
    assert_eq!(listing.lines().count(), 6, "{listing}");
    assert!(listing.starts_with("KEY"), "{listing}");
    let json = a.ok(&["cache", "ls", "--dir", d, "--format", "json"]);
    assert_eq!(json.lines().count(), 5, "{json}");
    for line in json.lines() {
        let e: serde_json::Value = serde_json::from_str(line).expect("json");
        assert!(
            e["tag"]
                .as_str()
                .is_some_and(|t| t.starts_with("tare-cache-")),
            "{line}"
        );
    }
    let out = a.ok(&["cache", "prune", "--dir", d, "--keep-duration", "1h"]);
    assert!(out.contains("deleted 0 cache entries"), "{out}");
    assert_eq!(a.ok(&["cache", "ls", "--dir", d]).lines().count(), 6);

    let out = a.ok(&["cache", "prune", "--dir", d, "--keep-duration", "0s"]);
    assert!(out.contains("deleted 5 cache entries"), "{out}");
    assert_eq!(a.ok(&["cache", "ls", "--dir", d]).lines().count(), 1);
    // No tag is left in the index (neither tare-cache- nor tare-child-), and no blob.
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("json");
    assert_eq!(index["manifests"], serde_json::json!([]), "{index}");
    let blobs: Vec<String> = std::fs::read_dir(dir.join("blobs/sha256"))
        .expect("blobs")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(blobs.is_empty(), "{blobs:?}");
    // A builder reading it now runs everything.
    let b = base.machine("bravo\n");
    let (_, progress) = build(&b, &["--cache-from", &format!("type=local,src={d}")]);
    assert_eq!(cached_steps(&progress), 0, "{progress}");
    assert!(progress.contains("MARK42"), "{progress}");
}

#[test]
fn cache_ls_names_a_missing_directory_and_wants_one_cache() {
    let base = Base::new();
    let a = base.machine("bravo\n");
    let missing = a.path().join("missing");
    let m = missing.to_str().expect("utf-8");
    let err = a.fails(&["cache", "ls", "--dir", m]);
    assert!(err.contains(m), "{err}");
    let err = a.fails(&[
        "cache",
        "prune",
        "--dir",
        m,
        "--registry",
        "localhost:5000/c",
    ]);
    assert!(err.contains("cannot be used with"), "{err}");
    let err = a.fails(&["cache", "ls"]);
    assert!(err.contains("--registry") && err.contains("--dir"), "{err}");
}
