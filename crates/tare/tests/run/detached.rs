//! `tare run -d` without a daemon: the container outlives the command, is listed, logged,
//! stopped with its STOPSIGNAL, waited for and removed, and leaves no process or mount.

use std::time::{Duration, Instant};

use super::{container_dirs, ctx, mounts_with, stdout_of};

/// Processes whose command line contains `needle`.
pub(super) fn processes_with(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .chars()
            .all(|c| c.is_ascii_digit())
        {
            continue;
        }
        if let Ok(cmd) = std::fs::read(entry.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(cmd);
            }
        }
    }
    found
}

/// Polls `check` for up to 20 seconds.
pub(super) fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_detached_container_is_logged_stopped_waited_for_and_removed() {
    let ctx = ctx();
    // A marker in the command line finds the container's processes on the host.
    let marker = format!("detached-marker-{}", std::process::id());
    let script = format!(
        "trap 'echo got TERM; exit 7' TERM; echo {marker} started; \
         while true; do echo tick; sleep 0.1; done"
    );
    let (code, id, err) = stdout_of(
        &ctx,
        &["run", "-d", "--name", "bg", "busybox", "sh", "-c", &script],
    );
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim().to_string();
    assert_eq!(id.len(), 64, "run -d prints the full ID: {id:?}");
    // The command returned; the container lives on.
    assert!(!processes_with(&marker).is_empty(), "the container runs");
    let listed = ctx.ok(&["ps", "--format", "{{.Names}} {{.State}}"]);
    assert_eq!(listed, "bg running\n");

    eventually("two ticks in the log", || {
        ctx.ok(&["logs", "bg"]).matches("tick").count() >= 2
    });
    let logs = ctx.ok(&["logs", "bg"]);
    assert!(logs.starts_with(&format!("{marker} started\n")), "{logs}");
    assert_eq!(ctx.ok(&["logs", "--tail", "1", &id[..12]]), "tick\n");

    // SIGTERM reaches the container's shell, whose trap decides the exit code.
    assert_eq!(ctx.ok(&["stop", "bg"]), "bg\n");
    assert_eq!(ctx.ok(&["wait", "bg"]), "7\n");
    assert!(ctx.ok(&["logs", "bg"]).ends_with("got TERM\n"));
    let listed = ctx.ok(&["ps", "-a", "--format", "{{.Names}} {{.Status}}"]);
    assert!(listed.starts_with("bg Exited (7)"), "{listed}");
    eventually("no process left", || processes_with(&marker).is_empty());
    assert!(mounts_with(&id).is_empty(), "{:?}", mounts_with(&id));

    assert_eq!(ctx.ok(&["rm", "bg"]), "bg\n");
    assert!(container_dirs(ctx.root.path()).is_empty());
}

#[test]
fn stop_kills_a_container_that_ignores_its_stop_signal_and_logs_follow_to_the_end() {
    let ctx = ctx();
    let (code, _, err) = stdout_of(
        &ctx,
        &[
            "run",
            "-d",
            "--name",
            "stubborn",
            "busybox",
            "sh",
            "-c",
            "trap '' TERM; echo up; sleep 600",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    eventually("the container's first line", || {
        ctx.ok(&["logs", "stubborn"]) == "up\n"
    });
    let started = Instant::now();
    assert_eq!(ctx.ok(&["stop", "-t", "1", "stubborn"]), "stubborn\n");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "killed after -t, not left running"
    );
    assert_eq!(ctx.ok(&["wait", "stubborn"]), "137\n");

    // `logs -f` returns once the container has exited, with everything it printed.
    let (code, _, err) = stdout_of(
        &ctx,
        &[
            "run",
            "-d",
            "--name",
            "short",
            "busybox",
            "sh",
            "-c",
            "echo one; sleep 1; echo two",
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(ctx.ok(&["logs", "-f", "short"]), "one\ntwo\n");
    assert_eq!(ctx.ok(&["container", "wait", "short"]), "0\n");
    let pruned = ctx.ok(&["container", "prune", "-f"]);
    let ids = pruned.lines().filter(|l| l.len() == 64).count();
    assert_eq!(ids, 2, "{pruned}");
}

#[test]
fn detached_refusals_are_clear() {
    let ctx = ctx();
    let err = ctx.fails(&["run", "-d", "-t", "busybox", "sh"]);
    assert!(err.contains("-d cannot be combined with -t"), "{err}");
    let err = ctx.fails(&["run", "--restart", "always", "busybox", "sh"]);
    assert!(err.contains("no daemon"), "{err}");
    ctx.ok(&["run", "--name", "fg", "busybox", "sh", "-c", "echo hi"]);
    let err = ctx.fails(&["logs", "fg"]);
    assert!(err.contains("not started with -d"), "{err}");
    let err = ctx.fails(&["stop", "nosuch"]);
    assert!(err.contains("nosuch"), "{err}");
    let err = ctx.fails(&["logs", "--tail", "x", "fg"]);
    assert!(err.contains("--tail"), "{err}");
    let dirs = container_dirs(ctx.root.path());
    assert_eq!(dirs.len(), 1, "only fg was made: {dirs:?}");
}
