//! `RUN --mount`: a bind source that climbs out of the context or follows a symlink to the
//! host, a stage whose symlinks point at the host, a cache id that names a path outside the
//! store, cache contents leaking into a layer, and mounts over `/` or `/proc`.
//!
//! Each attack keeps canary files in a host directory outside the store and the context, and
//! checks they are untouched and that tare failed with a clear error or built an image that
//! holds no host file.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::util::TestContext;

const SECRET: &str = "host-canary-7f3a9c";

/// A host directory with a file whose content must never reach an image.
struct Canary {
    dir: PathBuf,
    before: BTreeMap<PathBuf, Vec<u8>>,
}

impl Canary {
    fn new(t: &TestContext) -> Canary {
        let dir = t.path().join("host/secret");
        std::fs::create_dir_all(dir.join("sub")).expect("canary dir");
        std::fs::write(dir.join("keep"), SECRET).expect("canary");
        std::fs::write(dir.join("sub/inner"), SECRET).expect("canary");
        let before = Canary::snapshot(&dir);
        Canary { dir, before }
    }

    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        let mut todo = vec![dir.to_path_buf()];
        while let Some(p) = todo.pop() {
            let meta = std::fs::symlink_metadata(&p).expect("canary stat");
            if meta.is_dir() {
                out.insert(p.clone(), Vec::new());
                for e in std::fs::read_dir(&p).expect("canary readdir") {
                    todo.push(e.expect("entry").path());
                }
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
            }
        }
        out
    }

    fn assert_intact(&self) {
        assert_eq!(
            Canary::snapshot(&self.dir),
            self.before,
            "the host canary changed"
        );
    }
}

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    std::fs::create_dir_all(t.path().join("ctx")).expect("ctx dir");
    t
}

/// Builds `ctx/` as `tag`: Ok, or the stderr of a failed build (never a panic).
fn build(t: &TestContext, tag: &str) -> Result<(), String> {
    let ctx = t.path().join("ctx");
    let out = t.run(&["build", "-q", "-t", tag, ctx.to_str().expect("utf-8")]);
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "tare panicked:\n{err}");
        Err(err)
    }
}

/// Every file's content in the image's export, concatenated.
fn image_bytes(t: &TestContext, image: &str) -> Vec<u8> {
    let out = t.path().join("image.tar");
    t.ok(&["export", image, "-o", out.to_str().expect("utf-8")]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open export"));
    let mut all = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        all.extend(entry.path().expect("path").to_string_lossy().as_bytes());
        entry.read_to_end(&mut all).expect("read");
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[test]
fn bind_sources_that_leave_the_context_do_not_show_host_files() {
    let t = setup();
    let canary = Canary::new(&t);
    let host = canary.dir.to_str().expect("utf-8").to_string();
    std::os::unix::fs::symlink(&canary.dir, t.path().join("ctx/abs")).expect("symlink");
    std::os::unix::fs::symlink("../host/secret", t.path().join("ctx/rel")).expect("symlink");
    for (i, mount) in [
        "source=../../host/secret".to_string(),
        "source=../host/secret".to_string(),
        format!("source={host}"),
        "source=abs".to_string(),
        "source=rel".to_string(),
        "source=abs,rw".to_string(),
    ]
    .iter()
    .enumerate()
    {
        t.write(
            "ctx/Dockerfile",
            &format!(
                "FROM busybox\nRUN --mount=type=bind,{mount},target=/m \
                 cat /m/keep /m/sub/inner > /out 2>&1; echo x > /m/keep 2>/dev/null; true\n"
            ),
        );
        let tag = format!("attack:bind{i}");
        match build(&t, &tag) {
            Ok(()) => assert!(
                !contains(&image_bytes(&t, &tag), SECRET),
                "{mount}: the image holds a host file"
            ),
            Err(err) => assert!(err.contains("Dockerfile:2"), "{mount}: {err}"),
        }
        canary.assert_intact();
    }
}

#[test]
fn a_stage_symlink_to_the_host_stays_inside_the_stage() {
    let t = setup();
    let canary = Canary::new(&t);
    let host = canary.dir.to_str().expect("utf-8");
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox AS evil\nRUN ln -s {host} /link && mkdir -p /d && ln -s {host} /d/inner\n\
             FROM busybox\n\
             RUN --mount=type=bind,from=evil,source=/d,target=/m,rw \
             (cat /m/inner/keep; echo pwned > /m/inner/keep) > /out 2>&1; true\n\
             RUN --mount=type=cache,target=/c,from=evil,source=/d \
             (cat /c/inner/keep; echo pwned > /c/inner/keep) > /out2 2>&1; true\n"
        ),
    );
    match build(&t, "attack:stage") {
        Ok(()) => assert!(!contains(&image_bytes(&t, "attack:stage"), SECRET)),
        Err(err) => assert!(err.contains("Dockerfile:"), "{err}"),
    }
    canary.assert_intact();
    // The link left in the cache is never followed by tare: not by df, not by prune.
    t.ok(&["system", "df", "-v"]);
    t.ok(&["prune", "--cache"]);
    canary.assert_intact();
}

#[test]
fn a_cache_id_cannot_name_a_path_outside_the_store() {
    let t = setup();
    let root = t.root.path().to_path_buf();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=cache,target=/c,id=../../x echo planted > /c/planted\n\
         RUN --mount=type=cache,target=/d,id=/ echo planted > /d/planted\n\
         RUN --mount=type=cache,target=/e,id=../cachemounts echo planted > /e/planted\n",
    );
    build(&t, "attack:id").expect("a hostile id is only a name");
    // Every planted file is below ROOT/cachemounts/<hash>/data.
    let mut planted = Vec::new();
    let mut todo = vec![root.clone(), t.path().to_path_buf()];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).expect("readdir").flatten() {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                todo.push(p);
            } else if e.file_name() == "planted" {
                planted.push(p);
            }
        }
    }
    assert_eq!(planted.len(), 3, "{planted:?}");
    for p in &planted {
        let rel = p.strip_prefix(&root).expect("inside the store");
        let parts: Vec<_> = rel.components().collect();
        assert_eq!(parts.len(), 4, "{}", p.display());
        assert_eq!(parts[0].as_os_str(), "cachemounts");
        assert_eq!(parts[2].as_os_str(), "data");
    }
}

#[test]
fn cache_contents_never_reach_a_layer() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nRUN --mount=type=cache,target=/var/cache/c \
             echo {SECRET} > /var/cache/c/data && mkdir -p /var/cache/c/d && echo done > /done\n"
        ),
    );
    build(&t, "attack:cache").expect("build");
    let bytes = image_bytes(&t, "attack:cache");
    assert!(
        !contains(&bytes, SECRET),
        "the cache's content is in the image"
    );
    assert!(contains(&bytes, "done"));
    // Nor in any snapshot of the store (layers are kept extracted there).
    let mut todo = vec![t.root.path().join("snapshots")];
    while let Some(dir) = todo.pop() {
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let p = e.path();
            if e.file_type().expect("type").is_dir() {
                todo.push(p);
            } else if e.file_type().expect("type").is_file() {
                let content = std::fs::read(&p).unwrap_or_default();
                assert!(!contains(&content, SECRET), "{}", p.display());
            }
        }
    }
}

#[test]
fn mounts_over_the_root_or_proc_are_refused_with_the_line() {
    let t = setup();
    for mount in [
        "type=bind,target=/",
        "type=tmpfs,target=/proc",
        "type=cache,target=/proc/sys/kernel",
        "type=tmpfs,target=/../proc",
    ] {
        t.write(
            "ctx/Dockerfile",
            &format!("FROM busybox\n\nRUN --mount={mount} true\n"),
        );
        let err = build(&t, "attack:target").expect_err(mount);
        assert!(err.contains("Dockerfile:3"), "{mount}: {err}");
        assert!(err.contains("cannot cover / or /proc"), "{mount}: {err}");
    }
}
