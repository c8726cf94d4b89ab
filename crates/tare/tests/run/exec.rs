//! `tare exec`: a process joins a running container's namespaces, environment and
//! confinement, ends with it, and cannot be pointed at a process that is not the container.

use super::detached::{eventually, processes_with};
use super::{container_dirs, ctx, mounts_with, stdout_of};

/// `/proc/self/status` lines of a process, for comparing confinement.
const STATUS: &str = "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/$0/status";

#[test]
fn exec_joins_the_container_with_its_environment_user_and_confinement() {
    let ctx = ctx();
    let marker = format!("exec-marker-{}", std::process::id());
    let script = format!("echo {marker} >/dev/null; touch /started; exec sleep 600");
    let (code, id, err) = stdout_of(&ctx, &run_box(&script));
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim().to_string();

    // The container's pid namespace, host name, files, environment and working directory.
    let out = ctx.ok(&[
        "exec",
        "box",
        "sh",
        "-c",
        "echo $$; hostname; ls /started; echo $FROM_RUN; pwd",
    ]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_ne!(lines[0], "1", "pid 1 is the container's own process");
    assert!(
        lines[0].parse::<u32>().unwrap() < 100,
        "a pid of the container's namespace: {out}"
    );
    assert_eq!(lines[1], &id[..12], "the container's host name");
    assert_eq!(&lines[2..], ["/started", "1", "/tmp"]);
    let ps = ctx.ok(&["exec", "box", "ps", "-o", "pid,args"]);
    assert!(ps.contains("    1 sleep 600"), "{ps}");

    // Flags override the container's settings, as in docker.
    assert_eq!(
        ctx.ok(&[
            "exec",
            "-e",
            "FROM_RUN=2",
            "-w",
            "/",
            "-u",
            "65534:65534",
            "box",
            "sh",
            "-c",
            "echo $FROM_RUN $(pwd) $(id -u):$(id -g)"
        ]),
        "2 / 65534:65534\n"
    );
    // Exit codes pass through; a missing command is docker's 127, a missing directory an error.
    let (code, _, _) = stdout_of(&ctx, &["exec", "box", "sh", "-c", "exit 7"]);
    assert_eq!(code, Some(7));
    let (code, _, err) = stdout_of(&ctx, &["exec", "box", "no-such-command"]);
    assert_eq!(code, Some(127), "{err}");
    assert!(err.contains("no-such-command"), "{err}");
    let err = ctx.fails(&["exec", "-w", "/no/such/dir", "box", "true"]);
    assert!(err.contains("working directory"), "{err}");

    // The same capabilities, seccomp mode and no_new_privs as the container's first process.
    let of_exec = ctx.ok(&["exec", "box", "sh", "-c", STATUS, "self"]);
    let of_init = ctx.ok(&["exec", "box", "sh", "-c", STATUS, "1"]);
    assert_eq!(of_exec, of_init);
    assert!(of_exec.contains("Seccomp:\t2"), "{of_exec}");
    let privileged = ctx.ok(&["exec", "--privileged", "box", "sh", "-c", STATUS, "self"]);
    assert!(privileged.contains("Seccomp:\t0"), "{privileged}");
    assert_ne!(privileged, of_init);

    stdin_lands_in_the_layer_and_processes_end_with_the_container(&|| ctx.tare(), &marker);
    assert!(mounts_with(&id).is_empty(), "{:?}", mounts_with(&id));
    let err = ctx.fails(&["exec", "box", "true"]);
    assert!(err.contains("container box is not running"), "{err}");
    ctx.ok(&["rm", "box"]);
    assert!(container_dirs(ctx.root.path()).is_empty());
}

/// `tare run -d` of the container `box` running `sh -c SCRIPT`, with an environment variable
/// and a working directory of its own (for root's and the rootless exec tests).
pub(super) fn run_box(script: &str) -> [&str; 12] {
    [
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FROM_RUN=1",
        "-w",
        "/tmp",
        "busybox",
        "sh",
        "-c",
        script,
    ]
}

/// For root's and the rootless exec tests, with the container `box` (whose command holds
/// `marker`) running: `exec -i` passes stdin and its write lands in the container's layer; a
/// process exec leaves running ends when `tare stop` ends the container.
pub(super) fn stdin_lands_in_the_layer_and_processes_end_with_the_container(
    tare: &dyn Fn() -> std::process::Command,
    marker: &str,
) {
    let ok = |args: &[&str]| {
        let out = tare().args(args).output().unwrap();
        assert!(out.status.success(), "tare {args:?}: {out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    let mut child = tare()
        .args(["exec", "-i", "box", "sh", "-c", "cat > /from-exec"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"piped in\n")
        .unwrap();
    assert!(child.wait().unwrap().success());
    assert_eq!(ok(&["exec", "box", "cat", "/from-exec"]), "piped in\n");

    let sleeper = format!("{marker}-exec");
    let mut background = tare()
        .args([
            "exec",
            "box",
            "sh",
            "-c",
            &format!("sleep 600; : {sleeper}"),
        ])
        .spawn()
        .unwrap();
    eventually("the exec'd process", || {
        !processes_with(&sleeper).is_empty()
    });
    assert_eq!(ok(&["stop", "-t", "1", "box"]), "box\n");
    let status = background.wait().unwrap();
    assert!(!status.success(), "killed with its container: {status}");
    eventually("no process left", || {
        processes_with(marker).is_empty() && processes_with(&sleeper).is_empty()
    });
}

#[test]
fn exec_with_a_terminal_gets_one_from_the_containers_devpts() {
    let ctx = ctx();
    let (code, _, err) = stdout_of(
        &ctx,
        &["run", "-d", "--name", "t", "busybox", "sleep", "600"],
    );
    assert_eq!(code, Some(0), "{err}");
    // `script` gives tare a terminal of its own to relay.
    let tare = ctx.tare().get_program().to_string_lossy().into_owned();
    let root = ctx.root.path().display().to_string();
    let out = std::process::Command::new("script")
        .args([
            "-qec",
            &format!("{tare} --root {root} exec -it t sh -c 'tty; echo rows=$(stty size)'"),
            "/dev/null",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains("/dev/pts/"), "a terminal inside: {text}");
    assert!(text.contains("rows="), "{text}");
    ctx.ok(&["rm", "-f", "t"]);
}

#[test]
fn exec_refuses_a_pid_file_that_names_another_process() {
    let ctx = ctx();
    let (code, id, err) = stdout_of(
        &ctx,
        &["run", "-d", "--name", "p", "busybox", "sleep", "600"],
    );
    assert_eq!(code, Some(0), "{err}");
    let id = id.trim();
    // As if the container's pid had been reused by a host process: the pid file names a
    // process of the host (this test's own child), which tare exec must not join.
    let mut host = std::process::Command::new("sleep")
        .arg("600")
        .spawn()
        .unwrap();
    let pid_file = ctx.root.path().join("containers").join(id).join("init.pid");
    let real = std::fs::read_to_string(&pid_file).unwrap();
    std::fs::write(&pid_file, format!("{}\n", host.id())).unwrap();
    let canary = ctx.root.path().join("canary");
    let err = ctx.fails(&[
        "exec",
        "p",
        "sh",
        "-c",
        &format!("touch {}", canary.display()),
    ]);
    assert!(err.contains("not the container's"), "{err}");
    assert!(!canary.exists(), "the command ran on the host");
    host.kill().unwrap();
    host.wait().unwrap();
    std::fs::write(&pid_file, real).unwrap();
    assert_eq!(ctx.ok(&["exec", "p", "echo", "ok"]), "ok\n");
    ctx.ok(&["rm", "-f", "p"]);
}
