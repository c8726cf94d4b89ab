//! `tare run` on copy-based snapshots (`TARE_SNAPSHOTTER=copy`, what `auto` picks where
//! overlayfs is refused): the container sees the same files, keeps the same changes (read back
//! through `tare export` of the container) and leaves no copy behind, as root and rootless.

use std::process::{Command, Stdio};

use super::rootless::listing_of;
use super::rootless::user::RootlessUser;
use super::{ctx, stdout_of};

/// Changes of every kind: a new file, a file and a directory deleted, a directory replaced, a
/// mode and an owner changed.
const SCRIPT: &str = "echo new > /etc/new && rm /bin/true && rm -rf /var && \
    rm -rf /home/app && mkdir /home/app && echo x > /home/app/f && chmod 700 /tmp && \
    chown 1000:1000 /etc/new && ls /home /bin | wc -l && cat /etc/passwd";

/// The files of a container, through `tare export` (a command bound to its store).
pub(super) fn exported(mut tare: Command, container: &str) -> String {
    let mut child = tare
        .args(["export", container, "-o", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tare export");
    let listing = listing_of(child.stdout.take().unwrap(), &[]);
    let out = child.wait_with_output().expect("wait for tare export");
    assert!(
        out.status.success(),
        "tare export {container}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    listing
}

/// Runs `tare ARGS` (stdin empty), fails the test unless it succeeds; returns stdout and
/// stderr.
pub(super) fn succeeds(mut tare: Command, args: &[&str]) -> (String, String) {
    let out = tare
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn tare");
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "tare {args:?}: {stdout}\n{stderr}");
    (stdout, stderr)
}

/// Runs SCRIPT in a container named `name`, with TARE_SNAPSHOTTER=`snapshotter` and `-v`;
/// returns stdout and stderr.
fn run_script(mut tare: Command, snapshotter: &str, name: &str) -> (String, String) {
    tare.env("TARE_SNAPSHOTTER", snapshotter);
    succeeds(
        tare,
        &["-v", "run", "--name", name, "busybox", "sh", "-c", SCRIPT],
    )
}

/// No container directory holds a merged copy any more.
pub(super) fn no_copies_left(store: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(store.join("containers")) else {
        return;
    };
    for entry in entries.flatten() {
        let copy = entry.path().join("rootfs");
        assert!(!copy.exists(), "{} was left behind", copy.display());
    }
}

#[test]
fn run_on_copies_keeps_the_changes_overlay_keeps_as_root_and_rootless() {
    // Root.
    let root = ctx();
    let (want_out, err) = run_script(root.tare(), "overlay", "ov");
    assert!(
        err.contains("snapshots: overlayfs (TARE_SNAPSHOTTER=overlay)"),
        "{err}"
    );
    let (out, err) = run_script(root.tare(), "copy", "cp");
    assert!(
        err.contains("snapshots: copies (TARE_SNAPSHOTTER=copy)"),
        "{err}"
    );
    assert_eq!(out, want_out);
    assert!(want_out.contains("app:x:1000:1000"), "{want_out}");
    let want = exported(root.tare(), "ov");
    assert!(want.contains("etc/new Regular 644 1000:1000"), "{want}");
    assert!(want.contains("\ntmp/ Directory 700 0:0"), "{want}");
    assert!(!want.contains("bin/true "), "{want}");
    assert!(
        !want
            .lines()
            .any(|l| l.trim_start_matches("./").starts_with("var")),
        "{want}"
    );
    assert_eq!(exported(root.tare(), "cp"), want, "copy run as root");
    no_copies_left(root.root.path());

    // Exit codes and --rm are the same on copies.
    let out = root
        .tare()
        .env("TARE_SNAPSHOTTER", "copy")
        .args(["run", "--rm", "busybox", "sh", "-c", "exit 7"])
        .stdin(Stdio::null())
        .output()
        .expect("spawn");
    assert_eq!(out.status.code(), Some(7));

    // Rootless: the same files and output as root's, on overlay and on copies.
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "busybox"]);
    let (out, err) = run_script(u.tare(), "overlay", "ov");
    assert!(err.contains("snapshots: overlayfs"), "{err}");
    assert_eq!(out, want_out);
    let (out, err) = run_script(u.tare(), "copy", "cp");
    assert!(
        err.contains("snapshots: copies (TARE_SNAPSHOTTER=copy)"),
        "{err}"
    );
    assert_eq!(out, want_out);
    assert_eq!(exported(u.tare(), "ov"), want, "overlay run rootless");
    assert_eq!(exported(u.tare(), "cp"), want, "copy run rootless");
    no_copies_left(&u.store());
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}

#[test]
fn a_detached_container_on_copies_takes_exec_and_keeps_its_changes() {
    let ctx = ctx();
    let run = |args: &[&str]| {
        let out = ctx
            .tare()
            .env("TARE_SNAPSHOTTER", "copy")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn tare");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[
        "run",
        "-d",
        "--name",
        "bg",
        "busybox",
        "sh",
        "-c",
        "echo made > /made; trap 'exit 3' TERM; while true; do sleep 0.1; done",
    ]);
    assert_eq!(code, Some(0), "{err}");
    super::detached::eventually("the container's file", || {
        stdout_of(&ctx, &["exec", "bg", "cat", "/made"]).1 == "made\n"
    });
    // exec resolves the user in the running copy, which the container changed.
    let (code, out, err) = run(&[
        "exec",
        "bg",
        "sh",
        "-c",
        "echo extra:x:2000:2000::/:/bin/sh >> /etc/passwd",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out2, err) = run(&["exec", "-u", "extra", "bg", "id", "-u"]);
    assert_eq!((code, out2.as_str()), (Some(0), "2000\n"), "{out}{err}");
    let (code, _, err) = run(&["stop", "bg"]);
    assert_eq!(code, Some(0), "{err}");
    let files = {
        let mut cmd = ctx.tare();
        cmd.env("TARE_SNAPSHOTTER", "copy");
        exported(cmd, "bg")
    };
    assert!(files.contains("made Regular 644 0:0"), "{files}");
    no_copies_left(ctx.root.path());
    let (code, _, err) = run(&["rm", "bg"]);
    assert_eq!(code, Some(0), "{err}");
}
