//! Secret and ssh mounts: ids and targets that climb with `..`, secret sources that are links,
//! FIFOs, devices or huge, mount points over files and through links the image made. Canary
//! files outside the store must stay untouched; tare must fail with a clear error naming the
//! secret or the line, or succeed harmlessly.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::TestContext;

/// Host files no build may touch: their contents and modes at the start.
struct Canaries {
    dir: PathBuf,
    before: Vec<(PathBuf, Vec<u8>, u32)>,
}

impl Canaries {
    fn new(t: &TestContext) -> Canaries {
        let dir = t.path().join("canaries");
        std::fs::create_dir_all(dir.join("secrets")).unwrap();
        std::fs::write(dir.join("keep"), "canary\n").unwrap();
        std::fs::write(dir.join("secrets/tok"), "canary tok\n").unwrap();
        let mut c = Canaries {
            dir,
            before: Vec::new(),
        };
        c.before = c.state();
        c
    }

    fn state(&self) -> Vec<(PathBuf, Vec<u8>, u32)> {
        let mut out = Vec::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap().flatten() {
                let p = e.path();
                let meta = std::fs::symlink_metadata(&p).unwrap();
                if meta.is_dir() {
                    stack.push(p.clone());
                }
                let content = if meta.is_file() {
                    std::fs::read(&p).unwrap()
                } else {
                    Vec::new()
                };
                out.push((p, content, meta.permissions().mode()));
            }
        }
        out.sort();
        out
    }

    fn assert_untouched(&self) {
        assert_eq!(
            self.state(),
            self.before,
            "a canary under {:?} changed",
            self.dir
        );
    }
}

fn context(t: &TestContext, dockerfile: &str) -> String {
    let dir = t.path().join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    dir.to_string_lossy().into_owned()
}

/// Runs `tare build ARGS`; returns success and stderr, and fails on a panic.
fn build(t: &TestContext, args: &[&str]) -> (bool, String) {
    let out = t
        .tare()
        .arg("build")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "{err}");
    (out.status.success(), err)
}

fn paths_in(t: &TestContext, image: &str) -> Vec<String> {
    let out = t.path().join("paths.tar");
    t.ok(&["export", image, "-o", out.to_str().unwrap()]);
    let list = Command::new("tar").arg("-tf").arg(&out).output().unwrap();
    std::fs::remove_file(&out).unwrap();
    String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .collect()
}

#[test]
fn secret_ids_and_targets_with_dotdot_stay_inside_the_container() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let canaries = Canaries::new(&t);
    let secret = t.path().join("s.txt");
    std::fs::write(&secret, "dotdot-secret").unwrap();
    let host = canaries.dir.display().to_string();
    let up = "../../../../../../../../..";
    let dockerfile = format!(
        "FROM busybox\n\
         RUN --mount=type=secret,id={up}{host}/secrets/tok cat {host}/secrets/tok > /by-id\n\
         RUN --mount=type=secret,id=tok,target={up}{host}/keep cat {host}/keep > /by-target\n\
         RUN --mount=type=secret,id=tok,target=rel/{up}/x cat /x > /by-rel\n"
    );
    let dir = context(&t, &dockerfile);
    let by_id = format!("id={up}{host}/secrets/tok,src={}", secret.display());
    let tok = format!("id=tok,src={}", secret.display());
    let (ok, err) = build(
        &t,
        &[
            "-q", "-t", "dotdot:1", "--secret", &by_id, "--secret", &tok, &dir,
        ],
    );
    assert!(ok, "{err}");
    canaries.assert_untouched();
    // The secret was mounted at the cleaned path inside the container, and its mount points
    // are not in the image.
    let paths = paths_in(&t, "dotdot:1");
    for p in ["by-id", "by-target", "by-rel"] {
        assert!(paths.iter().any(|q| q == p), "{p} missing: {paths:?}");
    }
    let rel_host = host.trim_start_matches('/');
    assert!(
        !paths.iter().any(|p| p.starts_with(rel_host) || p == "x"),
        "{paths:?}"
    );
}

#[test]
fn secret_sources_that_are_not_plain_small_files_are_refused_clearly() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let canaries = Canaries::new(&t);
    let dir = context(
        &t,
        "FROM busybox\nRUN --mount=type=secret,id=s,required cat /run/secrets/s\n",
    );
    let fifo = t.path().join("fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let big = t.path().join("big");
    std::fs::write(&big, vec![b'x'; 600 * 1024]).unwrap();
    let to_zero = t.path().join("to-zero");
    std::os::unix::fs::symlink("/dev/zero", &to_zero).unwrap();
    let to_canary = t.path().join("to-canary");
    std::os::unix::fs::symlink(canaries.dir.join("keep"), &to_canary).unwrap();
    for (src, expect) in [
        (fifo.as_path(), "not a regular file"),
        (Path::new("/dev/zero"), "not a regular file"),
        (to_zero.as_path(), "not a regular file"),
        (big.as_path(), "larger than"),
        (Path::new("/nonexistent/secret"), "cannot open"),
    ] {
        let spec = format!("id=s,src={}", src.display());
        let (ok, err) = build(&t, &["-q", "--secret", &spec, &dir]);
        assert!(!ok, "{src:?} accepted");
        assert!(
            err.contains(expect) && err.contains(":2:") && err.contains("\"s\""),
            "{src:?}: {err}"
        );
    }
    // A link to a regular file is the user's own choice, as with docker: it is read.
    let spec = format!("id=s,src={}", to_canary.display());
    let (ok, err) = build(&t, &["-q", "--secret", &spec, &dir]);
    assert!(ok, "{err}");
    canaries.assert_untouched();
}

#[test]
fn mount_points_over_image_files_and_through_image_links_harm_nothing() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let canaries = Canaries::new(&t);
    let host = canaries.dir.display().to_string();
    let secret = t.path().join("s.txt");
    std::fs::write(&secret, "over-a-file").unwrap();
    let tok = format!("id=tok,src={}", secret.display());
    let keys = t.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let key = keys.join("k");
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen (openssh-client)");
    assert!(status.success());
    let ssh = format!("default={}", key.display());

    // An ssh socket and a secret over files the image has: the image keeps its files.
    let dir = context(
        &t,
        "FROM busybox\n\
         RUN echo original > /etc/app.conf && echo data > /data.txt\n\
         RUN --mount=type=ssh,target=/etc/app.conf --mount=type=secret,id=tok,target=/data.txt \
             test -S /etc/app.conf && test \"$(cat /data.txt)\" = over-a-file\n",
    );
    let (ok, err) = build(
        &t,
        &["-q", "-t", "over:1", "--ssh", &ssh, "--secret", &tok, &dir],
    );
    assert!(ok, "{err}");
    let out = t.path().join("over.tar");
    t.ok(&["export", "over:1", "-o", out.to_str().unwrap()]);
    let conf = Command::new("tar")
        .arg("-xOf")
        .arg(&out)
        .arg("etc/app.conf")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&conf.stdout), "original\n");
    let data = Command::new("tar")
        .arg("-xOf")
        .arg(&out)
        .arg("data.txt")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&data.stdout), "data\n");

    // The image links /run to the canary directory's host path: the mount points resolve
    // inside the container (where that path does not exist), and the cleanup follows no link.
    let dir = context(
        &t,
        &format!(
            "FROM busybox\n\
             RUN ln -s {host} /run\n\
             RUN --mount=type=secret,id=tok --mount=type=ssh true\n"
        ),
    );
    let (ok, err) = build(&t, &["-q", "--ssh", &ssh, "--secret", &tok, &dir]);
    if !ok {
        assert!(err.contains(":3:"), "{err}");
    }
    canaries.assert_untouched();
}
