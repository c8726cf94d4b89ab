//! The build cache in a directory (issue 15): `--cache-to type=local,dest=DIR` and
//! `--cache-from type=local,src=DIR`, an OCI layout with one entry per step key. Stores with
//! separate roots stand in for machines sharing DIR (a network filesystem, a CI cache).

use std::path::Path;

use crate::util::TestContext;

/// A RUN prints `MARK<n>` only when it runs (the instruction says `MARK$((...))`).
pub(crate) const DOCKERFILE: &str = "FROM busybox\n\
WORKDIR /app\n\
COPY a.txt /app/a.txt\n\
RUN echo \"MARK$((40+2))\" && cat /app/a.txt > /app/a.copy\n\
COPY b.txt /app/b.txt\n\
RUN echo \"MARK$((40+3))\" && cat /app/b.txt > /app/b.copy\n\
CMD [\"cat\", \"/app/b.copy\"]\n";

/// One busybox image saved to a tar, so every machine has the same base (an import dates
/// the image, so two imports differ).
pub(crate) struct Base {
    seed: TestContext,
}

impl Base {
    pub(crate) fn new() -> Base {
        let seed = TestContext::new();
        seed.import_busybox("busybox:latest");
        let tar = seed.path().join("base.tar");
        seed.ok(&["save", "busybox:latest", "-o", tar.to_str().expect("utf-8")]);
        Base { seed }
    }

    pub(crate) fn machine(&self, dockerfile: &str, b_txt: &str) -> TestContext {
        machine_on(&self.seed.path().join("base.tar"), dockerfile, b_txt)
    }
}

fn machine_on(base: &Path, dockerfile: &str, b_txt: &str) -> TestContext {
    let m = TestContext::new();
    m.ok(&["load", "-i", base.to_str().expect("utf-8")]);
    m.write("ctx/Dockerfile", dockerfile);
    m.write("ctx/a.txt", "alpha\n");
    m.write("ctx/b.txt", b_txt);
    m
}

/// A build with the cache flags; returns the image ID and the plain progress.
pub(crate) fn build(m: &TestContext, extra: &[&str]) -> (String, String) {
    let ctx = m.path().join("ctx");
    let iid = m.path().join("iid");
    let mut args = vec![
        "build",
        "--progress",
        "plain",
        "--iidfile",
        iid.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().expect("utf-8"));
    let out = m.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "tare {args:?} failed:\n{stderr}");
    let id = std::fs::read_to_string(&iid).expect("iidfile");
    (id.trim().to_string(), stderr)
}

pub(crate) fn cached_steps(progress: &str) -> usize {
    progress.lines().filter(|l| l.ends_with(" CACHED")).count()
}

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

    let a = base.machine(DOCKERFILE, "bravo\n");
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

    let b = base.machine(DOCKERFILE, "bravo\n");
    let (id_b, progress) = build(&b, &["--cache-from", &from]);
    assert!(!progress.contains("MARK4"), "a RUN ran on B:\n{progress}");
    assert!(!progress.contains("WARNING"), "{progress}");
    assert_eq!(cached_steps(&progress), 5, "{progress}");
    assert_eq!(id_b, id_a, "B made another image than A");
    assert_eq!(b.ok(&["run", "--rm", &id_b]), "bravo\n");
    b.ok(&["check"]);

    let c = base.machine(DOCKERFILE, "charlie\n");
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
    let dockerfile = |n: usize| {
        format!("FROM busybox\nRUN echo {n} > /n\nRUN echo \"MARK$((100+{n}))\" && cat /n > /m\n")
    };
    let machines: Vec<TestContext> = (0..4).map(|n| base.machine(&dockerfile(n), "")).collect();
    std::thread::scope(|s| {
        for m in &machines {
            let to = to.clone();
            s.spawn(move || build(m, &["--cache-to", &to]));
        }
    });
    let mut tags = entries(&dir);
    assert_eq!(tags.len(), 8, "two entries per Dockerfile: {tags:?}");
    tags.dedup();
    assert_eq!(tags.len(), 8);
    let from = format!("type=local,src={}", dir.display());
    for n in 0..4 {
        let fresh = base.machine(&dockerfile(n), "");
        let (id, progress) = build(&fresh, &["--cache-from", &from]);
        assert_eq!(cached_steps(&progress), 2, "{progress}");
        assert!(!progress.contains("MARK10"), "a RUN ran:\n{progress}");
        assert_eq!(
            fresh.ok(&["run", "--rm", &id, "cat", "/m"]),
            format!("{n}\n")
        );
    }
}

#[test]
fn cache_options_of_type_local_are_checked() {
    let t = Base::new().machine(DOCKERFILE, "b\n");
    let ctx = t.path().join("ctx");
    let ctx = ctx.to_str().expect("utf-8");
    let err = t.fails(&["build", "--cache-to", "type=local", ctx]);
    assert!(err.contains("type=local needs dest=DIRECTORY"), "{err}");
    let err = t.fails(&["build", "--cache-from", "type=local,dest=/x", ctx]);
    assert!(err.contains("type=local needs src=DIRECTORY"), "{err}");
}
