//! `tare exec` of a rootless tare joins the user namespace of the container's pid 1. A
//! store record whose pids name other processes (a pid reused after the container ended, or a
//! tampered record) must not lead it into namespaces that are not its user's containers: the
//! kernel refuses another user's user namespace and the host's, and tare says which.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::rootless::user::RootlessUser;

/// An `unshare --fork` process and the pid of the process it forked into its namespaces.
struct Tree {
    unshare: Child,
    inner: u32,
}

impl Drop for Tree {
    fn drop(&mut self) {
        // The inner process first, by its pid: unshare's --kill-child is a parent-death signal,
        // which the kernel clears when the process changes its credentials (a `setpriv` wrap),
        // so it alone left `sleep 600` running after the test.
        if self.inner != 0 {
            let _ = Command::new("kill")
                .args(["-KILL", &self.inner.to_string()])
                .status();
        }
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

/// `unshare FLAGS --fork --kill-child WRAP... sleep 600`, as root or (with `user`) as that
/// user.
fn tree(flags: &[&str], wrap: &[&str], user: Option<&RootlessUser>) -> Tree {
    let mut cmd = match user {
        Some(u) => {
            let mut c = Command::new("setpriv");
            c.arg(format!("--reuid={}", u.uid))
                .arg(format!("--regid={}", u.gid))
                .args(["--clear-groups", "--", "unshare"]);
            c
        }
        None => Command::new("unshare"),
    };
    let unshare = cmd
        .args(flags)
        .args(["--fork", "--kill-child"])
        .args(wrap)
        .args(["sleep", "600"])
        .stdin(Stdio::null())
        // Not the test's output: a process left behind must not hold the pipe of whoever
        // reads the test run (CI's `tee` waited for it).
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn unshare");
    let pid = unshare.id();
    // Killed and reaped on drop, also when the loop below gives up.
    let mut tree = Tree { unshare, inner: 0 };
    let children = format!("/proc/{pid}/task/{pid}/children");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(inner) = text.split_whitespace().next() {
            let inner: u32 = inner.parse().expect("pid");
            // Forked, and in its new mount namespace once it runs sleep.
            let cmdline = std::fs::read(format!("/proc/{inner}/cmdline")).unwrap_or_default();
            if cmdline.starts_with(b"sleep") {
                tree.inner = inner;
                return tree;
            }
        }
        assert!(Instant::now() < deadline, "unshare {flags:?} did not fork");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Points the container record `id` at `pid` (its first process) started by `owner`, as a
/// running container.
fn point_at(store: &Path, id: &str, owner: u32, pid: u32) {
    let dir = store.join("containers").join(id);
    let file = dir.join("container.json");
    let mut record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&file).expect("record")).expect("json");
    record["owner_pid"] = owner.into();
    record["exit_code"] = serde_json::Value::Null;
    record["finished"] = serde_json::Value::Null;
    std::fs::write(&file, serde_json::to_vec(&record).unwrap()).expect("write record");
    std::fs::write(dir.join("init.pid"), format!("{pid}\n")).expect("write pid");
}

/// A root-owned file the exec'd command tries to overwrite.
fn canary() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("canary dir");
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let file = dir.path().join("canary");
    std::fs::write(&file, b"root's canary\n").expect("canary");
    std::fs::set_permissions(&file, PermissionsExt::from_mode(0o644)).expect("chmod");
    (dir, file)
}

fn assert_canary(file: &Path) {
    assert_eq!(std::fs::read(file).expect("canary"), b"root's canary\n");
    let meta = std::fs::metadata(file).expect("canary");
    assert_eq!(
        (meta.uid(), meta.gid(), meta.mode() & 0o7777),
        (0, 0, 0o644)
    );
}

#[test]
fn rootless_exec_refuses_processes_that_are_not_its_users_containers() {
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "busybox"]);
    let id = u.ok(&["run", "-d", "--name", "box", "busybox", "sleep", "600"]);
    let id = id.trim().to_string();
    u.ok(&["stop", "-t", "1", "box"]);
    let (_dir, canary) = canary();
    let attack = format!("echo pwned > {}", canary.display());
    let exec = ["exec", "box", "sh", "-c", attack.as_str()];

    // A process in a user namespace made by root: its namespaces are not the user's to read.
    let roots = tree(&["--user", "--map-root-user", "--mount"], &[], None);
    point_at(&u.store(), &id, roots.unshare.id(), roots.inner);
    let err = u.fails(&exec);
    assert!(err.contains("is not this user's"), "{err}");
    assert!(err.contains("container box"), "{err}");
    assert_canary(&canary);

    // The user's own process in the host's user namespace (a mount namespace root made for
    // it): the kernel refuses to join the namespace tare already is in (EINVAL).
    let (reuid, regid) = (format!("--reuid={}", u.uid), format!("--regid={}", u.gid));
    let host = tree(
        &["--mount"],
        &["setpriv", &reuid, &regid, "--clear-groups", "--"],
        None,
    );
    point_at(&u.store(), &id, host.unshare.id(), host.inner);
    let err = u.fails(&exec);
    assert!(err.contains("shares the host's user namespace"), "{err}");
    assert_canary(&canary);

    // A pid whose parent is not the recorded owner (a reused pid).
    point_at(&u.store(), &id, host.unshare.id(), roots.inner);
    let err = u.fails(&exec);
    assert!(err.contains("pid was reused"), "{err}");
    assert_canary(&canary);

    // The user's own namespace that is not a container: joining it gives the user nothing it
    // did not have, and the host's pid namespace stays out of reach.
    let own = tree(&["--user", "--map-root-user", "--mount"], &[], Some(&u));
    point_at(&u.store(), &id, own.unshare.id(), own.inner);
    let out = u.run(&exec);
    assert!(!out.status.success(), "the exec ran: {out:?}");
    assert_canary(&canary);

    // The store is still readable and the record removable once the processes are gone.
    drop((roots, host, own));
    let ps = u.ok(&["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(ps, "box\n");
    u.ok(&["rm", "-f", "box"]);
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
