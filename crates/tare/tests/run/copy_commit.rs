//! `tare ps -s`, `tare commit` and `tare export` of a detached container that runs on a
//! copy-based snapshot (`TARE_SNAPSHOTTER=copy`): they read its changes while it runs, through
//! the copy's saved stamps, and see what they see of the same container on overlayfs, as root
//! and rootless.

use std::process::{Command, Stdio};

use super::copy_snapshots::{exported, no_copies_left, succeeds};
use super::ctx;
use super::rootless::user::RootlessUser;

/// Changes of every kind, then a marker, then it waits: a new file, a changed file, a file and
/// a directory deleted, a directory replaced, a mode and an owner changed, a new hard link and
/// a new symlink.
const SCRIPT: &str = "echo new > /etc/new && echo more >> /etc/group && rm /bin/true && \
    rm -rf /var && rm -rf /home/app && mkdir /home/app && echo x > /home/app/f && \
    chmod 700 /tmp && chown 1000:1000 /etc/new && ln /etc/new /etc/new2 && \
    ln -s /etc/new /lnk && mkdir -p /a/b/c && echo deep > /a/b/c/f && touch /ready && \
    while true; do sleep 0.1; done";

/// What one container gives: `ps -s`'s SIZE, the committed image's files, `tare diff` of the
/// base and that image, and the container's export.
#[derive(Debug, PartialEq)]
struct Seen {
    size: String,
    files: String,
    diff: String,
    export: String,
}

/// Starts SCRIPT detached as `name` on `snapshotter`, then reads it while it runs; `tare` makes
/// a command bound to the store.
fn seen_running(tare: &dyn Fn() -> Command, snapshotter: &str, name: &str) -> Seen {
    let with = |args: &[&str]| {
        let mut cmd = tare();
        cmd.env("TARE_SNAPSHOTTER", snapshotter);
        succeeds(cmd, args).0
    };
    with(&["run", "-d", "--name", name, "busybox", "sh", "-c", SCRIPT]);
    super::detached::eventually("the container's marker", || {
        let mut cmd = tare();
        cmd.args(["exec", name, "cat", "/ready"])
            .stdin(Stdio::null());
        cmd.output().is_ok_and(|o| o.status.success())
    });
    let size = with(&[
        "ps",
        "-s",
        "--filter",
        &format!("name={name}"),
        "--format",
        "{{.Size}}",
    ]);
    let image = format!("{name}-img");
    let id = with(&["commit", "--source-date-epoch", "1700000000", name, &image]);
    let files = exported(tare(), &image);
    // The layers' file times differ (the files were written at other times), so the IDs do.
    let diff = with(&["diff", "busybox", &image])
        .replace(id.trim(), "ID")
        .replace(&image, "IMAGE");
    let export = exported(tare(), name);
    Seen {
        size,
        files,
        diff,
        export,
    }
}

/// Stops the container, checks what it kept equals what was seen while it ran, removes it.
fn stop_and_compare(tare: &dyn Fn() -> Command, name: &str, running: &Seen) {
    succeeds(tare(), &["stop", "-t", "1", name]);
    assert_eq!(
        exported(tare(), name),
        running.export,
        "{name}: what it kept when it stopped"
    );
    let kept = format!("{name}-kept");
    succeeds(
        tare(),
        &["commit", "--source-date-epoch", "1700000000", name, &kept],
    );
    assert_eq!(
        exported(tare(), &kept),
        running.files,
        "{name}: committed after it stopped"
    );
    succeeds(tare(), &["rm", name]);
}

/// Every container directory is free of the link views ps/commit/export make.
fn no_link_views_left(store: &std::path::Path) {
    for entry in std::fs::read_dir(store.join("containers"))
        .unwrap()
        .flatten()
    {
        for inner in std::fs::read_dir(entry.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = inner.file_name();
            assert!(
                !name.to_string_lossy().starts_with("changes-"),
                "{} was left behind",
                inner.path().display()
            );
        }
    }
}

fn check(tare: &dyn Fn() -> Command, store: &std::path::Path, who: &str) -> Seen {
    let overlay = seen_running(tare, "overlay", "ov");
    let copy = seen_running(tare, "copy", "cp");
    no_link_views_left(store);
    assert!(
        overlay.files.contains("etc/new Regular 644 1000:1000"),
        "{}",
        overlay.files
    );
    assert!(overlay.files.contains("etc/new2 Link"), "{}", overlay.files);
    assert!(!overlay.files.contains("bin/true "), "{}", overlay.files);
    assert!(
        overlay.files.contains("\ntmp/ Directory 700 0:0"),
        "{}",
        overlay.files
    );
    assert!(
        overlay.files.contains("a/b/c/f Regular"),
        "{}",
        overlay.files
    );
    assert!(
        !overlay.size.starts_with("0B "),
        "the running container's size counts its changes: {}",
        overlay.size
    );
    assert_eq!(
        copy, overlay,
        "{who}: copy-based container read while running"
    );
    stop_and_compare(tare, "ov", &overlay);
    stop_and_compare(tare, "cp", &copy);
    no_copies_left(store);
    overlay
}

#[test]
fn ps_size_commit_and_export_of_a_running_container_on_copies_see_what_overlay_does() {
    let root = ctx();
    let root_tare = || root.tare();
    let as_root = check(&root_tare, root.root.path(), "root");

    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "busybox"]);
    let user_tare = || u.tare();
    let rootless = check(&user_tare, &u.store(), "rootless");
    assert_eq!(
        rootless.files, as_root.files,
        "rootless commit equals root's"
    );
    assert_eq!(rootless.size, as_root.size);
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
