//! Rootless `tare slim` on hostile images: before the probe runs, tare walks the container's
//! tree from outside (through /proc/PID/root) to mark every directory and map its file handle
//! to its path. The walk must never follow the image's links (to the host's directories, to
//! `/`, to /proc), never leave the container's root mount, and refuse trees it cannot walk
//! with a clear error rather than trace a part of them.

use std::os::unix::ffi::OsStrExt;

use crate::fs_writes::Canary;
use crate::rootless::user::RootlessUser;
use crate::util::busybox_rootfs;

/// The image tar of `root`, owned by the user.
fn tar_for(u: &RootlessUser, root: &std::path::Path, name: &str) -> String {
    let tar = u.path().join(format!("{name}.tar"));
    let status = std::process::Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::set_permissions(&tar, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    tar.to_str().expect("utf-8").to_string()
}

#[test]
fn a_rootless_slim_walks_the_image_never_its_links_to_the_host() {
    let u = RootlessUser::ranged();
    let t = crate::util::TestContext::new();
    let canary = Canary::new(&t);
    let dir = tempfile::tempdir().expect("rootfs");
    let root = dir.path();
    busybox_rootfs(root);
    std::fs::create_dir_all(root.join("app/sub")).unwrap();
    std::fs::write(root.join("app/sub/data"), "image data\n").unwrap();
    // Directory links the walk would follow if it resolved names: the host's canary
    // directory, the root, the host's root through /proc, a loop, a climb.
    std::os::unix::fs::symlink(canary.path(), root.join("app/hostdir")).unwrap();
    std::os::unix::fs::symlink("/", root.join("app/rootdir")).unwrap();
    std::os::unix::fs::symlink("/proc/1/root", root.join("app/procroot")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("app/loop")).unwrap();
    std::os::unix::fs::symlink("../../../../..", root.join("app/up")).unwrap();
    // A directory nobody may read, and a name that is not UTF-8.
    std::fs::create_dir_all(root.join("app/closed/inner")).unwrap();
    std::fs::write(root.join("app/closed/inner/f"), "closed\n").unwrap();
    std::fs::create_dir_all(root.join(std::ffi::OsStr::from_bytes(b"app/\xff\xfe/x"))).unwrap();
    std::fs::set_permissions(
        root.join("app/closed"),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    let tar = tar_for(&u, root, "links");
    u.ok(&["import", &tar, "links:fat"]);

    let report = u.path().join("report.json");
    let out = u.ok(&[
        "slim",
        "links:fat",
        "-t",
        "links:slim",
        "--probe",
        "sh -c 'cat /app/sub/data; ls /app/hostdir/ /app/rootdir/ /app/procroot/ /app/up/ \
         >/dev/null 2>&1; cat /app/closed/inner/f; true'",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.contains("Tagged links:slim"), "{out}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let removed = report["removed"].to_string();
    assert!(!removed.contains(canary.path()), "{removed}");
    // (`ls` prints the non-UTF-8 name as it is.)
    let seen = u.run(&[
        "run",
        "--rm",
        "links:slim",
        "sh",
        "-c",
        "cat /app/sub/data /app/closed/inner/f; ls -R /app 2>&1",
    ]);
    assert!(seen.status.success(), "{seen:?}");
    let seen = String::from_utf8_lossy(&seen.stdout);
    assert!(seen.starts_with("image data\nclosed\n"), "{seen}");
    assert!(
        !seen.contains("canary"),
        "host content in the slim image: {seen}"
    );
    canary.assert_intact();
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}

#[test]
fn a_tree_deeper_than_the_walk_allows_is_refused_naming_the_path() {
    let u = RootlessUser::ranged();
    let dir = tempfile::tempdir().expect("rootfs");
    let root = dir.path();
    busybox_rootfs(root);
    let mut deep = root.join("deep");
    for _ in 0..520 {
        deep.push("d");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let tar = tar_for(&u, root, "deep");
    u.ok(&["import", &tar, "deep:fat"]);
    let images = u.ok(&["images", "-q"]);
    let err = u.fails(&["slim", "deep:fat", "-t", "deep:slim", "--probe", "true"]);
    assert!(err.contains("/deep/d/d/d/"), "{err}");
    assert!(err.contains("nested deeper than 512 directories"), "{err}");
    assert_eq!(u.ok(&["images", "-q"]), images);
    u.ok(&["check"]);
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
