//! Where overlayfs is refused, tare falls back to copy-based snapshots by itself: the store
//! lives on an overlayfs mount, which the kernel refuses as an upper directory ("filesystem
//! on ... not supported as upperdir", `EINVAL`), so the probe of `TARE_SNAPSHOTTER=auto` (the
//! default, not a flag that skips it) fails for real. Builds and runs on that store give the
//! image IDs, output and container files of a store where overlayfs works, and `-v` names the
//! mode, as root and rootless.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::copy_snapshots::{exported, no_copies_left, succeeds};
use super::rootless::user::RootlessUser;
use crate::util::TestContext;

const DOCKERFILE: &str = "FROM base
RUN echo hi > /greeting && rm /bin/true && rm -rf /home/app && mkdir /home/app \
 && echo x > /home/app/f && chown -R 1000:1000 /home/app && chmod 700 /tmp
RUN rm /greeting && mkdir -p /opt/d && ln -s /opt/d /opt/link
";

/// What a container changes and prints.
const SCRIPT: &str = "echo new > /etc/new && rm -rf /var && chown 1000:1000 /etc/new && \
    stat -c '%n %a %u %g %s %F' /opt /opt/d /opt/link /home/app /home/app/f /tmp && \
    (test -e /greeting || echo no-greeting) && (test -e /bin/true || echo no-true) && \
    id && cat /etc/passwd";

const EPOCH: &str = "1700000000";

/// An overlayfs mount (made by root) that holds a store; unmounted on drop.
struct OverlayMount {
    dir: tempfile::TempDir,
}

impl OverlayMount {
    /// Mounts it, its root owned by `uid:gid`.
    fn new(uid: u32, gid: u32) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        for d in ["lower", "upper", "work", "merged"] {
            std::fs::create_dir(dir.path().join(d)).expect("mkdir");
        }
        std::os::unix::fs::chown(dir.path().join("upper"), Some(uid), Some(gid)).expect("chown");
        // The rootless user walks into it from its scratch directory's parent side too.
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .expect("chmod");
        let opts = format!(
            "lowerdir={0}/lower,upperdir={0}/upper,workdir={0}/work",
            dir.path().display()
        );
        let out = Command::new("mount")
            .args(["-t", "overlay", "overlay", "-o", &opts])
            .arg(dir.path().join("merged"))
            .output()
            .expect("spawn mount");
        assert!(
            out.status.success(),
            "mounting the outer overlay: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        OverlayMount { dir }
    }

    fn merged(&self) -> PathBuf {
        self.dir.path().join("merged")
    }
}

impl Drop for OverlayMount {
    fn drop(&mut self) {
        let merged = self.merged();
        let ok = Command::new("umount")
            .arg(&merged)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = Command::new("umount").arg("-l").arg(&merged).status();
        }
    }
}

/// `tare -v build` of DOCKERFILE at `dir` with a fixed clock; returns the image ID and stderr.
fn build(mut tare: Command, dir: &Path) -> (String, String) {
    tare.env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("TARE_SNAPSHOTTER");
    let dir = dir.to_str().expect("utf-8 path");
    let args = ["-v", "build", "-q", "--rewrite-timestamp", "-t", "img", dir];
    let (stdout, stderr) = succeeds(tare, &args);
    (stdout.trim().to_string(), stderr)
}

/// `tare -v run --name c img sh -c SCRIPT`; returns stdout and stderr.
fn run(mut tare: Command) -> (String, String) {
    tare.env_remove("TARE_SNAPSHOTTER");
    succeeds(
        tare,
        &["-v", "run", "--name", "c", "img", "sh", "-c", SCRIPT],
    )
}

const REFUSED: &str = "snapshots: copies, since overlayfs is refused here";

#[test]
fn a_store_where_overlayfs_is_refused_builds_and_runs_on_copies_with_the_same_results() {
    // Root, on a store where overlayfs works: what every other store must give.
    let plain = TestContext::new();
    let context = plain.path().join("context");
    std::fs::create_dir(&context).unwrap();
    std::fs::write(context.join("Dockerfile"), DOCKERFILE).unwrap();
    plain.import_busybox("base");
    let saved = plain.path().join("base.tar");
    plain.ok(&["save", "base", "-o", saved.to_str().unwrap()]);
    std::fs::set_permissions(&saved, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let (want_id, err) = build(plain.tare(), &context);
    assert!(want_id.starts_with("sha256:"), "{want_id}");
    assert!(err.contains("snapshots: native overlayfs"), "{err}");
    let (want_out, err) = run(plain.tare());
    assert!(err.contains("snapshots: native overlayfs"), "{err}");
    assert!(want_out.contains("app:x:1000:1000"), "{want_out}");
    // The images' whiteouts hide their paths.
    assert!(want_out.contains("no-greeting\nno-true\n"), "{want_out}");
    let want_files = exported(plain.tare(), "c");
    assert!(
        want_files.contains("etc/new Regular 644 1000:1000"),
        "{want_files}"
    );
    assert!(
        want_files.contains("home/app/f Regular 644 1000:1000"),
        "{want_files}"
    );

    // Root, with the store on an overlayfs mount: the probe is refused, RUN steps and the
    // container use copies.
    let mount = OverlayMount::new(0, 0);
    let on_overlay = TestContext {
        root: tempfile::tempdir_in(mount.merged()).expect("store on the overlay"),
        dir: tempfile::tempdir().expect("temp dir"),
    };
    on_overlay.ok(&["load", "-i", saved.to_str().unwrap()]);
    let (id, err) = build(on_overlay.tare(), &context);
    assert!(err.contains(REFUSED), "{err}");
    assert!(err.contains("Invalid argument"), "{err}");
    assert_eq!(id, want_id, "image built on copies as root");
    let (out, err) = run(on_overlay.tare());
    assert!(err.contains(REFUSED), "{err}");
    assert_eq!(out, want_out);
    assert_eq!(
        exported(on_overlay.tare(), "c"),
        want_files,
        "root on copies"
    );
    no_copies_left(on_overlay.root.path());
    drop(on_overlay);
    drop(mount);

    // Rootless: the user's default store on an overlayfs mount, and on its plain home.
    let u = RootlessUser::ranged();
    let saved_bytes = std::fs::read(&saved).unwrap();
    u.write("context/Dockerfile", DOCKERFILE.as_bytes());
    let user_saved = u.write("base.tar", &saved_bytes);
    u.ok(&["load", "-i", user_saved.to_str().unwrap()]);
    let (id, err) = build(u.tare(), &u.path().join("context"));
    assert!(err.contains("snapshots: native overlayfs"), "{err}");
    assert_eq!(id, want_id, "image built rootless on overlayfs");
    let (out, _) = run(u.tare());
    assert_eq!(out, want_out);
    assert_eq!(exported(u.tare(), "c"), want_files, "rootless on overlayfs");

    let v = RootlessUser::ranged();
    std::fs::create_dir_all(v.path().join("home/.local/share")).unwrap();
    std::os::unix::fs::chown(v.path().join("home/.local"), Some(v.uid), Some(v.gid)).unwrap();
    let mount = OverlayMount::new(v.uid, v.gid);
    let status = Command::new("mount")
        .arg("--bind")
        .arg(mount.merged())
        .arg(v.path().join("home/.local/share"))
        .status()
        .expect("spawn mount --bind");
    assert!(status.success());
    let unbind = Unmount(v.path().join("home/.local/share"));
    v.write("context/Dockerfile", DOCKERFILE.as_bytes());
    let user_saved = v.write("base.tar", &saved_bytes);
    v.ok(&["load", "-i", user_saved.to_str().unwrap()]);
    let (id, err) = build(v.tare(), &v.path().join("context"));
    assert!(err.contains(REFUSED), "{err}");
    assert_eq!(id, want_id, "image built rootless on copies");
    let (out, err) = run(v.tare());
    assert!(err.contains(REFUSED), "{err}");
    assert_eq!(out, want_out);
    assert_eq!(exported(v.tare(), "c"), want_files, "rootless on copies");
    no_copies_left(&v.store());
    assert_eq!(v.foreign_files(&v.store()), Vec::<String>::new());
    v.ok(&["rm", "c"]);
    drop(unbind);
    drop(mount);
}

/// A bind mount, unmounted on drop.
struct Unmount(PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}
