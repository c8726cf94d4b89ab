//! `RUN --mount=type=bind|cache|tmpfs`: what the step sees, what reaches the layer, what the
//! cache key holds, and how cache mounts live across builds.

use crate::util::TestContext;
use crate::{ctx_dir, file_in, setup};

fn build(t: &TestContext, tag: &str, extra: &[&str]) -> String {
    let ctx = ctx_dir(t);
    let mut args = vec!["build", "-q", "-t", tag];
    args.extend_from_slice(extra);
    args.push(&ctx);
    t.ok(&args)
}

/// The paths of an image's export, without the busybox base's.
fn paths(t: &TestContext, image: &str) -> Vec<String> {
    let out = t.path().join("paths.tar");
    t.ok(&["export", image, "-o", out.to_str().expect("utf-8")]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open export"));
    let mut names = Vec::new();
    for entry in archive.entries().expect("entries") {
        let entry = entry.expect("entry");
        let p = entry.path().expect("path").to_string_lossy().into_owned();
        names.push(p.trim_start_matches("./").trim_end_matches('/').to_string());
    }
    names
}

#[test]
fn tmpfs_contents_and_mount_points_stay_out_of_the_image() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=tmpfs,target=/scratch/deep,size=1m touch /scratch/deep/gone \
         && ls /scratch/deep > /listed && df -k /scratch/deep | tail -1 > /df \
         && stat -c %a /scratch/deep > /mode\n",
    );
    build(&t, "tm:1", &[]);
    assert_eq!(file_in(&t, "tm:1", "listed").as_deref(), Some("gone\n"));
    let df = file_in(&t, "tm:1", "df").expect("df");
    assert!(df.starts_with("tmpfs") && df.contains(" 1024 "), "{df}");
    assert_eq!(file_in(&t, "tm:1", "mode").as_deref(), Some("1777\n"));
    let names = paths(&t, "tm:1");
    assert!(
        !names.iter().any(|p| p.starts_with("scratch")),
        "mount point left in the image: {names:?}"
    );
}

#[test]
fn bind_shows_context_and_stage_files_and_discards_writes() {
    let t = setup();
    t.write("ctx/lock.txt", "v1\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS src\n\
         RUN echo from-stage > /s\n\
         FROM busybox\n\
         WORKDIR /w\n\
         RUN --mount=type=bind,source=lock.txt,target=lock.txt cat lock.txt > /copied\n\
         RUN --mount=type=bind,from=src,source=/s,target=/m cat /m > /staged\n\
         RUN --mount=type=bind,target=/ctx,rw echo changed > /ctx/lock.txt && touch /ctx/new \
         && cat /ctx/lock.txt > /written\n\
         RUN --mount=type=bind,target=/ro (touch /ro/x 2>/dev/null && echo writable || echo ro) > /rostate\n",
    );
    build(&t, "b:1", &[]);
    assert_eq!(file_in(&t, "b:1", "copied").as_deref(), Some("v1\n"));
    assert_eq!(
        file_in(&t, "b:1", "staged").as_deref(),
        Some("from-stage\n")
    );
    assert_eq!(file_in(&t, "b:1", "written").as_deref(), Some("changed\n"));
    assert_eq!(file_in(&t, "b:1", "rostate").as_deref(), Some("ro\n"));
    // The rw bind's writes went nowhere: not into the context, not into the image.
    assert_eq!(
        std::fs::read_to_string(t.path().join("ctx/lock.txt")).expect("ctx"),
        "v1\n"
    );
    assert!(!t.path().join("ctx/new").exists());
    let names = paths(&t, "b:1");
    for gone in ["ctx", "ro", "m", "w/lock.txt"] {
        assert!(!names.iter().any(|p| p == gone), "{gone} in {names:?}");
    }
    assert!(names.iter().any(|p| p == "w"), "WORKDIR /w kept: {names:?}");
}

#[test]
fn a_bound_file_is_in_the_key_by_content() {
    let t = setup();
    t.write("ctx/go.sum", "one\n");
    t.write("ctx/other", "x\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN --mount=type=bind,source=go.sum,target=/go.sum cat /go.sum > /seen\n",
    );
    build(&t, "k:1", &[]);
    // An unrelated context file changes nothing: the step is cached.
    t.write("ctx/other", "y\n");
    let id1 = build(&t, "k:2", &[]);
    assert_eq!(id1, build(&t, "k:1b", &[]));
    assert_eq!(file_in(&t, "k:2", "seen").as_deref(), Some("one\n"));
    // The bound file changes: the step runs again and sees the new content.
    t.write("ctx/go.sum", "two\n");
    build(&t, "k:3", &[]);
    assert_eq!(file_in(&t, "k:3", "seen").as_deref(), Some("two\n"));
}

#[test]
fn cache_mounts_persist_stay_out_of_layer_and_key_and_reset_with_no_cache() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         ARG N=1\n\
         RUN --mount=type=cache,target=/cache (ls /cache; echo $N) > /seen && echo $N >> /cache/runs\n\
         RUN --mount=type=cache,target=/other,id=/cache cat /other/runs > /shared\n",
    );
    build(&t, "c:1", &["--build-arg", "N=1"]);
    assert_eq!(file_in(&t, "c:1", "seen").as_deref(), Some("1\n"));
    assert_eq!(file_in(&t, "c:1", "shared").as_deref(), Some("1\n"));
    assert!(!paths(&t, "c:1")
        .iter()
        .any(|p| p.starts_with("cache") || p.starts_with("other")));
    // A changed build arg reruns the step: it finds what the first run left.
    build(&t, "c:2", &["--build-arg", "N=2"]);
    assert_eq!(file_in(&t, "c:2", "seen").as_deref(), Some("runs\n2\n"));
    assert_eq!(file_in(&t, "c:2", "shared").as_deref(), Some("1\n2\n"));
    // The contents are not in the key: the same arg again is answered by the cache.
    let again = build(&t, "c:2b", &["--build-arg", "N=2"]);
    assert_eq!(again, build(&t, "c:2c", &["--build-arg", "N=2"]));
    // --no-cache --keep-cache-mounts reruns with the contents.
    build(
        &t,
        "c:3",
        &["--build-arg", "N=3", "--no-cache", "--keep-cache-mounts"],
    );
    assert_eq!(file_in(&t, "c:3", "shared").as_deref(), Some("1\n2\n3\n"));
    // Plain --no-cache starts empty (once per build: the second step sees the first's write).
    build(&t, "c:4", &["--build-arg", "N=4", "--no-cache"]);
    assert_eq!(file_in(&t, "c:4", "seen").as_deref(), Some("4\n"));
    assert_eq!(file_in(&t, "c:4", "shared").as_deref(), Some("4\n"));
}

#[test]
fn a_new_cache_gets_mode_owner_and_from_seed() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS seed\n\
         RUN mkdir -p /s && echo seeded > /s/f\n\
         FROM busybox\n\
         RUN --mount=type=cache,target=/c,uid=5,gid=6,mode=0700 stat -c '%u %g %a' /c > /own\n\
         RUN --mount=type=cache,target=/d,from=seed,source=/s cat /d/f > /seeded\n\
         RUN --mount=type=cache,target=/e,readonly (touch /e/x 2>/dev/null && echo rw || echo ro) > /ro\n",
    );
    build(&t, "o:1", &[]);
    assert_eq!(file_in(&t, "o:1", "own").as_deref(), Some("5 6 700\n"));
    assert_eq!(file_in(&t, "o:1", "seeded").as_deref(), Some("seeded\n"));
    assert_eq!(file_in(&t, "o:1", "ro").as_deref(), Some("ro\n"));
}

/// BuildKit keys a cache by its id and what it starts from (`cache-dir:ID:REF`): a mount of
/// one id with `uid`/`gid`/`mode`, or with `from`, is another cache than the plain one, so it
/// starts as those options say even when the plain cache of the id exists (and the reverse).
#[test]
fn owner_mode_and_seed_make_a_cache_of_their_own() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS seed\n\
         RUN mkdir -p /s && echo seeded > /s/f\n\
         FROM busybox\n\
         RUN --mount=type=cache,target=/c touch /c/plain\n\
         RUN --mount=type=cache,target=/c,from=seed,source=/s ls /c > /from-seed\n\
         RUN --mount=type=cache,target=/c,uid=5,gid=6,mode=0700 (stat -c '%u %g %a' /c; ls /c) > /own\n\
         RUN --mount=type=cache,target=/c,uid=5,gid=6,mode=0700 touch /c/owned\n\
         RUN --mount=type=cache,target=/c,uid=5,gid=6,mode=0700 ls /c > /own-again\n\
         RUN --mount=type=cache,target=/c,mode=0700 (stat -c '%u %g %a' /c; ls /c) > /mode-only\n\
         RUN --mount=type=cache,target=/c ls /c > /plain\n",
    );
    build(&t, "k:1", &[]);
    assert_eq!(file_in(&t, "k:1", "from-seed").as_deref(), Some("f\n"));
    assert_eq!(file_in(&t, "k:1", "own").as_deref(), Some("5 6 700\n"));
    assert_eq!(file_in(&t, "k:1", "own-again").as_deref(), Some("owned\n"));
    assert_eq!(
        file_in(&t, "k:1", "mode-only").as_deref(),
        Some("0 0 700\n")
    );
    assert_eq!(file_in(&t, "k:1", "plain").as_deref(), Some("plain\n"));
}

#[test]
fn system_df_lists_cache_mounts_and_prune_cache_removes_them() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN --mount=type=cache,target=/c,id=bigcache head -c 300000 /dev/zero > /c/blob\n",
    );
    build(&t, "df:1", &[]);
    let df = t.ok(&["system", "df"]);
    let line = df
        .lines()
        .find(|l| l.starts_with("Cache mounts"))
        .unwrap_or_else(|| panic!("no cache mounts line: {df}"));
    assert!(line.split_whitespace().nth(2) == Some("1"), "{df}");
    let verbose = t.ok(&["system", "df", "-v"]);
    assert!(
        verbose
            .lines()
            .any(|l| l.starts_with("bigcache") && l.contains("300kB")),
        "{verbose}"
    );
    t.ok(&["prune", "--cache"]);
    let df = t.ok(&["system", "df", "-v"]);
    assert!(!df.contains("bigcache"), "{df}");
}

#[test]
fn refused_targets_name_the_line() {
    let t = setup();
    for line in [
        "RUN --mount=type=tmpfs,target=/ true",
        "RUN --mount=type=bind,target=/proc true",
        "RUN --mount=type=cache,target=/x/../proc/sys true",
    ] {
        t.write("ctx/Dockerfile", &format!("FROM busybox\n{line}\n"));
        let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
        assert!(
            err.contains("Dockerfile:2") && err.contains("cannot cover / or /proc"),
            "{line}: {err}"
        );
    }
}
