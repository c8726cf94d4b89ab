//! `tare run`, `tare ps`, `tare rm`: flags, exit codes, signals, terminals, volumes, and that
//! nothing is left behind (mounts, processes, files in the writable layer).

#[path = "../util/mod.rs"]
mod util;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use util::TestContext;

fn ctx() -> TestContext {
    let ctx = TestContext::new();
    ctx.import_busybox("busybox");
    ctx
}

fn stdout_of(ctx: &TestContext, args: &[&str]) -> (Option<i32>, String, String) {
    let out = ctx.run(args);
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Mount table lines that mention `needle`.
fn mounts_with(needle: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle))
        .map(String::from)
        .collect()
}

fn container_dirs(root: &Path) -> Vec<String> {
    let dir = root.join("containers");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<String> = entries
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "names")
        .collect();
    out.sort();
    out
}

fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(base).unwrap().display().to_string());
            if path.is_dir() && !path.is_symlink() {
                walk(base, &path, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn exit_code_of_the_container_is_tares() {
    let ctx = ctx();
    let (code, out, _) = stdout_of(
        &ctx,
        &["run", "--rm", "busybox", "sh", "-c", "echo hi; exit 7"],
    );
    assert_eq!((code, out.as_str()), (Some(7), "hi\n"));
    let (code, _, _) = stdout_of(&ctx, &["run", "--rm", "busybox", "true"]);
    assert_eq!(code, Some(0));
}

#[test]
fn missing_command_is_127_and_non_executable_is_126() {
    let ctx = ctx();
    let (code, _, err) = stdout_of(&ctx, &["run", "--rm", "busybox", "no-such-command"]);
    assert_eq!(code, Some(127));
    assert!(err.contains("executable file not found in $PATH"), "{err}");
    let (code, _, err) = stdout_of(&ctx, &["run", "--rm", "busybox", "/etc/passwd"]);
    assert_eq!(code, Some(126));
    assert!(err.contains("permission denied"), "{err}");
    assert!(mounts_with(ctx.root.path().to_str().unwrap()).is_empty());
}

#[test]
fn runs_as_pid_1_with_env_workdir_and_hostname() {
    let ctx = ctx();
    let env_file = ctx.write("vars.env", "# comment\nFROM_FILE=yes\nSHARED=file\n");
    let out = ctx.ok(&[
        "run",
        "--rm",
        "-e",
        "GREETING=hello",
        "--env-file",
        env_file.to_str().unwrap(),
        "-e",
        "SHARED=flag",
        "-w",
        "/work/dir",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $$ $GREETING $FROM_FILE $SHARED $PATH; pwd; hostname; echo $HOSTNAME",
    ]);
    assert_eq!(
        out,
        "1 hello yes flag /usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/work/dir\nbox\nbox\n"
    );
}

#[test]
fn user_flag_resolves_names_uids_and_groups() {
    let ctx = ctx();
    let out = ctx.ok(&["run", "--rm", "-u", "app", "busybox", "id"]);
    assert_eq!(
        out,
        "uid=1000(app) gid=1000(app) groups=10(wheel),1000(app)\n"
    );
    let out = ctx.ok(&[
        "run",
        "--rm",
        "-u",
        "1000:10",
        "busybox",
        "sh",
        "-c",
        "id -u; id -g",
    ]);
    assert_eq!(out, "1000\n10\n");
    let err = ctx.fails(&["run", "--rm", "-u", "ghost", "busybox", "id"]);
    assert!(err.contains("unable to find user ghost"), "{err}");
    assert!(container_dirs(ctx.root.path()).is_empty());
}

#[test]
fn network_none_has_only_loopback() {
    let ctx = ctx();
    let out = ctx.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "busybox",
        "ls",
        "/sys/class/net",
    ]);
    assert_eq!(out, "lo\n");
}

#[test]
fn volumes_read_write_and_read_only() {
    let ctx = ctx();
    let host = ctx.path().join("shared");
    std::fs::create_dir(&host).unwrap();
    std::fs::write(host.join("in.txt"), "from host\n").unwrap();
    let rw = format!("{}:/data", host.display());
    let ro = format!("{}:/ro:ro", host.display());
    let (code, out, _) = stdout_of(
        &ctx,
        &[
            "run",
            "--rm",
            "--volume",
            &rw,
            "--volume",
            &ro,
            "busybox",
            "sh",
            "-c",
            "cat /data/in.txt; echo new > /data/out.txt; (echo x > /ro/nope) 2>/dev/null || echo refused",
        ],
    );
    assert_eq!((code, out.as_str()), (Some(0), "from host\nrefused\n"));
    assert_eq!(
        std::fs::read_to_string(host.join("out.txt")).unwrap(),
        "new\n"
    );
    assert!(!host.join("nope").exists());

    let err = ctx.fails(&["run", "--rm", "-v", "relative:/data", "busybox", "true"]);
    assert!(err.contains("must be absolute"), "{err}");
    let err = ctx.fails(&["run", "--rm", "--volume", "/tmp:data", "busybox", "true"]);
    assert!(err.contains("must be absolute"), "{err}");
}

#[test]
fn rm_flag_leaves_nothing_behind() {
    let ctx = ctx();
    ctx.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo data > /root/file",
    ]);
    assert!(container_dirs(ctx.root.path()).is_empty());
    assert_eq!(ctx.ok(&["ps", "-a", "-q"]), "");
    let out = ctx.ok(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "cat /root/file 2>&1 || echo gone",
    ]);
    assert!(out.ends_with("gone\n"), "{out}");
    assert!(mounts_with(ctx.root.path().to_str().unwrap()).is_empty());
    assert!(mounts_with("tare-run-").is_empty());
}

#[test]
fn kept_containers_are_listed_and_removed() {
    let ctx = ctx();
    let (code, _, _) = stdout_of(
        &ctx,
        &[
            "run",
            "--name",
            "keeper",
            "busybox",
            "sh",
            "-c",
            "cat /etc/resolv.conf > /dev/null; echo x > /root/f; exit 3",
        ],
    );
    assert_eq!(code, Some(3));
    let table = ctx.ok(&["ps", "-a"]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("CONTAINER ID"), "{table}");
    assert!(
        lines[0].contains("STATUS") && lines[0].contains("NAMES"),
        "{table}"
    );
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[1].contains("busybox"), "{table}");
    assert!(lines[1].contains("Exited (3)"), "{table}");
    assert!(lines[1].ends_with("keeper"), "{table}");
    // Not running: `ps` without -a shows none.
    assert_eq!(ctx.ok(&["ps"]).lines().count(), 1);

    // The writable layer holds the container's own change, not the /etc mount points.
    let id = ctx.ok(&["ps", "-a", "-q", "--no-trunc"]).trim().to_string();
    let diff = ctx.root.path().join("containers").join(&id).join("diff");
    assert_eq!(files_under(&diff), vec!["root", "root/f"]);

    let err = ctx.fails(&["run", "--name", "keeper", "busybox", "true"]);
    assert!(err.contains("already in use"), "{err}");

    assert_eq!(ctx.ok(&["rm", "keeper"]), "keeper\n");
    assert_eq!(ctx.ok(&["ps", "-a", "-q"]), "");
    assert!(container_dirs(ctx.root.path()).is_empty());
    let err = ctx.fails(&["rm", "keeper"]);
    assert!(err.contains("no such container"), "{err}");
}

#[test]
fn unknown_image_is_a_clear_error() {
    let ctx = ctx();
    let err = ctx.fails(&["run", "--rm", "nosuchimage", "true"]);
    assert!(err.contains("nosuchimage"), "{err}");
    assert!(container_dirs(ctx.root.path()).is_empty());
}

#[test]
fn read_only_rootfs() {
    let ctx = ctx();
    let out = ctx.ok(&[
        "run",
        "--rm",
        "--read-only",
        "busybox",
        "sh",
        "-c",
        "(touch /x) 2>/dev/null || echo refused; touch /dev/shm/ok && echo shm",
    ]);
    assert_eq!(out, "refused\nshm\n");
}

#[test]
fn entrypoint_flag_replaces_the_command() {
    let ctx = ctx();
    let out = ctx.ok(&["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"]);
    assert_eq!(out, "a b\n");
    let err = ctx.fails(&["run", "--rm", "busybox"]);
    assert!(err.contains("no command specified"), "{err}");
}

#[test]
fn stdin_is_passed_with_i_only() {
    let ctx = ctx();
    let mut child = ctx
        .tare()
        .args(["run", "--rm", "-i", "busybox", "sh", "-c", "cat; echo end"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"hello\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hello\nend\n");

    let mut child = ctx
        .tare()
        .args(["run", "--rm", "busybox", "sh", "-c", "cat; echo end"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(b"ignored\n");
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "end\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn trapped_sigterm_is_forwarded() {
    let ctx = ctx();
    let mut child = ctx
        .tare()
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got-term; exit 5' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(lines.next().unwrap().unwrap(), "got-term");
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(5));
    assert!(container_dirs(ctx.root.path()).is_empty());
    assert!(mounts_with(ctx.root.path().to_str().unwrap()).is_empty());
}

#[test]
fn background_processes_end_with_the_container() {
    let ctx = ctx();
    let started = Instant::now();
    ctx.ok(&["run", "--rm", "busybox", "sh", "-c", "sleep 31337 & exit 0"]);
    assert!(started.elapsed() < Duration::from_secs(30));
    let survivors: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains("31337"))
        .collect();
    assert!(survivors.is_empty(), "{survivors:?}");
}

#[test]
fn tty_flag_gives_a_terminal() {
    let ctx = ctx();
    let tare = format!(
        "{} --root {} run --rm -t busybox sh -c '/bin/busybox tty; test -t 1 && echo is-a-tty; /bin/busybox stty size'",
        env!("CARGO_BIN_EXE_tare"),
        ctx.root.path().display()
    );
    let out = Command::new("script")
        .args(["-qec", &tare, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) is installed");
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "");
    assert!(out.status.success(), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "/dev/pts/0", "{text}");
    assert_eq!(lines[1], "is-a-tty", "{text}");
    // The size is the outer terminal's, or 24 80 when it has none.
    let size: Vec<u32> = lines[2].split(' ').map(|n| n.parse().unwrap()).collect();
    assert!(size[0] > 0 && size[1] > 0, "{text}");
}

#[test]
fn runs_through_runc() {
    let ctx = ctx();
    let (code, out, err) = stdout_of(
        &ctx,
        &[
            "run",
            "--rm",
            "--runtime",
            "runc",
            "busybox",
            "sh",
            "-c",
            "echo $$ $(id -u); exit 4",
        ],
    );
    assert_eq!((code, out.as_str()), (Some(4), "1 0\n"), "{err}");
    assert!(container_dirs(ctx.root.path()).is_empty());
}
