//! The build cache in a directory (issue 15): `--cache-to type=local,dest=DIR` and
//! `--cache-from type=local,src=DIR`, an OCI layout with one entry per step key. Stores with
//! separate roots stand in for machines sharing DIR (a network filesystem, a CI cache).

use std::path::Path;

use crate::util::cache::{
    assert_every_step_cached, assert_writer_cached, build, cached_steps, export_at_once,
    writer_dockerfile, Base, WRITERS,
};
use crate::util::TestContext;

/// The tags of the entries in the layout's index (not their second tags, by parent).
fn entries(dir: &Path) -> Vec<String> {
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join("index.json")).expect("index"))
            .expect("json");
    index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .map(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .expect("ref name")
                .to_string()
        })
        .filter(|t| t.starts_with("tare-cache-"))
        .collect()
}

/// A exports; B, empty, finds every step CACHED and makes A's image; C changes one file and
/// runs only that COPY and what follows. The directory is an OCI layout a loader accepts.
#[test]
fn machines_sharing_a_cache_directory() {
    let base = Base::new();
    let shared = tempfile::tempdir().expect("tmp");
    let dir = shared.path().join("cache");
    let to = format!("type=local,dest={},mode=max", dir.display());
    let from = format!("type=local,src={}", dir.display());

    let a = base.machine("bravo\n");
    // A first build with a --cache-from that does not exist yet: a warning, not a failure.
    let (id_a, progress) = build(&a, &["--cache-to", &to, "--cache-from", &from]);
    assert!(
        progress.contains("MARK42") && progress.contains("MARK43"),
        "{progress}"
    );
    assert!(
        progress.contains("WARNING: --cache-from") && progress.contains("not used"),
        "{progress}"
    );
    assert_eq!(entries(&dir).len(), 5, "WORKDIR, two COPYs, two RUNs");
    assert!(dir.join("oci-layout").is_file());

    let b = base.machine("bravo\n");
    let (id_b, progress) = build(&b, &["--cache-from", &from]);
    assert_every_step_cached(&progress);
    assert!(!progress.contains("WARNING"), "{progress}");
    assert_eq!(id_b, id_a, "B made another image than A");
    assert_eq!(b.ok(&["run", "--rm", &id_b]), "bravo\n");
    b.ok(&["check"]);

    let c = base.machine("charlie\n");
    let (id_c, progress) = build(&c, &["--cache-from", &from, "--cache-to", &to]);
    assert!(!progress.contains("MARK42"), "{progress}");
    assert!(progress.contains("MARK43"), "{progress}");
    assert_eq!(cached_steps(&progress), 3, "{progress}");
    assert_ne!(id_c, id_a);
    assert_eq!(c.ok(&["run", "--rm", &id_c]), "charlie\n");
    // C added its two new entries; A's are still there.
    assert_eq!(entries(&dir).len(), 7);

    // Every blob is named by its digest; nothing temporary is left.
    for f in std::fs::read_dir(dir.join("blobs/sha256")).expect("blobs") {
        let f = f.expect("entry");
        let bytes = std::fs::read(f.path()).expect("blob");
        let name = f.file_name().to_string_lossy().into_owned();
        assert_eq!(format!("{:x}", sha2::Sha256::digest(&bytes)), name);
    }
    // Another OCI tool reads an entry through the layout's index.
    let tag = &entries(&dir)[0];
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:{tag}", dir.display()))
        .output()
        .expect("skopeo");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest");
    assert_eq!(
        manifest["config"]["mediaType"],
        "application/vnd.tare.cache.entry.v1+json"
    );
}

use sha2::Digest as _;

/// Four builders export four different Dockerfiles to one directory at the same time:
/// every entry is in the index afterwards, and fresh stores find every step of each.
#[test]
fn four_concurrent_writers_to_one_directory_lose_no_entry() {
    let base = Base::new();
    let shared = tempfile::tempdir().expect("tmp");
    let dir = shared.path().join("cache");
    let to = format!("type=local,dest={},mode=max", dir.display());
    let machines: Vec<TestContext> = (0..WRITERS)
        .map(|n| base.machine_with(&writer_dockerfile("busybox", n), ""))
        .collect();
    export_at_once(&machines, &to);
    let mut tags = entries(&dir);
    assert_eq!(tags.len(), 8, "two entries per Dockerfile: {tags:?}");
    tags.dedup();
    assert_eq!(tags.len(), 8);
    let from = format!("type=local,src={}", dir.display());
    for n in 0..WRITERS {
        let fresh = base.machine_with(&writer_dockerfile("busybox", n), "");
        assert_writer_cached(&fresh, n, &from);
    }
}

#[test]
fn cache_options_of_type_local_are_checked() {
    let t = Base::new().machine("b\n");
    let ctx = t.path().join("ctx");
    let ctx = ctx.to_str().expect("utf-8");
    let err = t.fails(&["build", "--cache-to", "type=local", ctx]);
    assert!(err.contains("type=local needs dest=DIRECTORY"), "{err}");
    let err = t.fails(&["build", "--cache-from", "type=local,dest=/x", ctx]);
    assert!(err.contains("type=local needs src=DIRECTORY"), "{err}");
}
