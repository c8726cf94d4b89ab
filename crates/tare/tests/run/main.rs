//! `tare run`, `tare ps`, `tare rm`: flags, exit codes, signals, terminals, volumes, and that
//! nothing is left behind (mounts, processes, files in the writable layer).

#[path = "../util/mod.rs"]
mod util;

mod copy_commit;
mod copy_snapshots;
mod detached;
mod etc_files;
mod exec;
mod overlay_refused;
mod prune_copies;
mod repeated_layers;
mod rootless;
mod rootless_demo;
mod rootless_exec;
mod rootless_runtime;
mod rootless_suite;

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

/// Paths in a tar file, sorted, without a trailing `/` or leading `./`.
fn tar_paths(tar: &Path) -> Vec<String> {
    let out = Command::new("tar").arg("-tf").arg(tar).output().unwrap();
    assert!(out.status.success(), "tar -tf {}", tar.display());
    let mut paths: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.trim_start_matches("./").trim_end_matches('/').to_string())
        .filter(|l| !l.is_empty() && l != ".")
        .collect();
    paths.sort();
    paths
}

fn blob_count(root: &Path) -> usize {
    std::fs::read_dir(root.join("blobs/sha256"))
        .unwrap()
        .count()
}

/// A kept container that adds, changes and deletes files of its image.
const CHANGES: &str = "echo new > /root/new; echo changed >> /etc/passwd; rm /etc/group; \
                       mkdir -p /opt/d; echo x > /opt/d/f; ln -s /root/new /opt/link";

/// What a container that ran [`CHANGES`] sees.
const SHOW: &str = "cat /root/new /opt/d/f /opt/link; tail -1 /etc/passwd; \
                    test -e /etc/group || echo no-group";
const SHOWN: &str = "new\nx\nnew\nchanged\nno-group\n";

#[test]
fn exported_container_imports_and_runs_the_same() {
    let ctx = ctx();
    ctx.ok(&["run", "--name", "work", "busybox", "sh", "-c", CHANGES]);
    let blobs = blob_count(ctx.root.path());
    let tar = ctx.path().join("work.tar");
    ctx.ok(&["export", "work", "-o", tar.to_str().unwrap()]);
    // The container's layer was written only for the export.
    assert_eq!(blob_count(ctx.root.path()), blobs);

    let paths = tar_paths(&tar);
    for p in [
        "root/new",
        "opt/d/f",
        "opt/link",
        "etc/passwd",
        "bin/busybox",
    ] {
        assert!(paths.iter().any(|x| x == p), "{p} missing: {paths:?}");
    }
    assert!(!paths.iter().any(|x| x == "etc/group"), "{paths:?}");
    assert!(!paths.iter().any(|x| x.contains(".wh.")), "{paths:?}");
    // Each path once: the container's version replaces the image's.
    let mut unique = paths.clone();
    unique.dedup();
    assert_eq!(unique, paths);

    // The same bytes through standard output.
    let out = ctx
        .tare()
        .args(["export", "work"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(out.stdout == std::fs::read(&tar).unwrap(), "stdout differs");

    ctx.ok(&["import", tar.to_str().unwrap(), "flat:1"]);
    assert_eq!(ctx.ok(&["run", "--rm", "flat:1", "sh", "-c", SHOW]), SHOWN);
    // The imported image exports to the same file list.
    let again = ctx.path().join("flat.tar");
    ctx.ok(&["export", "flat:1", "-o", again.to_str().unwrap()]);
    assert_eq!(tar_paths(&again), paths);
}

#[test]
fn export_prefers_a_container_over_an_image_of_the_same_name() {
    let ctx = ctx();
    ctx.ok(&["run", "--name", "busybox", "busybox", "touch", "/marker"]);
    let from_container = ctx.path().join("c.tar");
    ctx.ok(&["export", "busybox", "-o", from_container.to_str().unwrap()]);
    assert!(tar_paths(&from_container).contains(&"marker".to_string()));
    let from_image = ctx.path().join("i.tar");
    ctx.ok(&[
        "export",
        "busybox:latest",
        "-o",
        from_image.to_str().unwrap(),
    ]);
    assert!(!tar_paths(&from_image).contains(&"marker".to_string()));
}

#[test]
fn commit_adds_the_changes_as_one_layer() {
    let ctx = ctx();
    ctx.ok(&["run", "--name", "work", "busybox", "sh", "-c", CHANGES]);
    let id = ctx.ok(&[
        "commit",
        "-m",
        "saved work",
        "-a",
        "Ann <ann@example.com>",
        "-c",
        "CMD [\"cat\", \"/root/new\"]",
        "work",
        "saved:v1",
    ]);
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(ctx.ok(&["run", "--rm", "saved:v1"]), "new\n");
    assert_eq!(
        ctx.ok(&["run", "--rm", "saved:v1", "sh", "-c", SHOW]),
        SHOWN
    );

    let base: serde_json::Value = serde_json::from_str(&ctx.ok(&["inspect", "busybox"])).unwrap();
    let img: serde_json::Value = serde_json::from_str(&ctx.ok(&["inspect", "saved:v1"])).unwrap();
    let count = |v: &serde_json::Value, key: &str| v["config"][key].as_array().unwrap().len();
    let diff_ids =
        |v: &serde_json::Value| v["config"]["rootfs"]["diff_ids"].as_array().unwrap().len();
    assert_eq!(count(&img, "history"), count(&base, "history") + 1);
    assert_eq!(diff_ids(&img), diff_ids(&base) + 1);
    let last = img["config"]["history"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["comment"], "saved work");
    assert_eq!(last["author"], "Ann <ann@example.com>");
    assert_eq!(last["created_by"], format!("sh -c {CHANGES}"));
    assert_eq!(img["config"]["author"], "Ann <ann@example.com>");
    let history = ctx.ok(&["history", "saved:v1"]);
    assert!(history.contains("saved work"), "{history}");

    // A container that changed nothing: a history entry, no layer (as docker).
    ctx.ok(&["run", "--name", "idle", "busybox", "true"]);
    ctx.ok(&["commit", "idle", "idle:1"]);
    let idle: serde_json::Value = serde_json::from_str(&ctx.ok(&["inspect", "idle:1"])).unwrap();
    assert_eq!(count(&idle, "history"), count(&base, "history") + 1);
    assert_eq!(diff_ids(&idle), diff_ids(&base));
    assert_eq!(
        idle["config"]["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()["empty_layer"],
        true
    );
}

#[test]
fn export_and_commit_of_unknown_names_fail_clearly() {
    let ctx = ctx();
    let out = ctx.run(&["export", "nosuchthing", "-o", "/dev/null"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no container or image named \"nosuchthing\""),
        "{err}"
    );

    let out = ctx.run(&["commit", "nosuchthing", "img:1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("nosuchthing: no such container"), "{err}");
    // Nothing was stored under the name.
    assert!(!ctx.ok(&["images"]).contains("img"));
}
