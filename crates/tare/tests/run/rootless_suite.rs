//! The `tare run` behaviours of this test binary, run once as root and once as `tare-rootless`
//! (issue 16: "the run tests ... as that user"), one test per group of behaviours: exit
//! codes, environment, users, working directory, host name, entrypoint, read-only root, network
//! modes and security options; volumes; forwarded signals; `-d`, `logs`, `stop`; stdin. Each
//! compares the user's exit code and output with root's.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};

use super::rootless::user::RootlessUser;
use super::{ctx, detached::eventually};
use crate::util::TestContext;

/// Root's store and the user's, each with the same busybox image.
fn pair() -> (TestContext, RootlessUser) {
    let root = ctx();
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "busybox"]);
    (root, u)
}

fn text(out: &Output) -> (Option<i32>, String) {
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs `tare ARGS` as root and as the user; asserts the same exit code and stdout; returns
/// them.
fn same(root: &TestContext, u: &RootlessUser, args: &[&str]) -> (Option<i32>, String) {
    let want = root.run(args);
    let got = u.run(args);
    assert_eq!(
        text(&want),
        text(&got),
        "tare {args:?}: rootless differs from root\nroot stderr:\n{}\nrootless stderr:\n{}",
        String::from_utf8_lossy(&want.stderr),
        String::from_utf8_lossy(&got.stderr)
    );
    text(&want)
}

#[test]
fn rootless_one_shot_runs_match_roots() {
    let (root, u) = pair();
    let cases: &[(&[&str], Option<i32>, &str)] = &[
        (
            &["run", "--rm", "busybox", "sh", "-c", "exit 3"],
            Some(3),
            "",
        ),
        (&["run", "--rm", "busybox", "/nonexistent"], Some(127), ""),
        (&["run", "--rm", "busybox", "/etc/passwd"], Some(126), ""),
        (
            &[
                "run",
                "--rm",
                "-e",
                "A=1",
                "-e",
                "B=two words",
                "-w",
                "/tmp/work",
                "--hostname",
                "h1",
                "busybox",
                "sh",
                "-c",
                "echo pid $$; env | sort; pwd; hostname",
            ],
            Some(0),
            "pid 1\nA=1\nB=two words\nHOME=/root\nHOSTNAME=h1\n",
        ),
        (
            &["run", "--rm", "-u", "app", "busybox", "id"],
            Some(0),
            "uid=1000(app) gid=1000(app)",
        ),
        (
            &["run", "--rm", "-u", "1000:10", "busybox", "id"],
            Some(0),
            "uid=1000(app) gid=10(wheel)",
        ),
        (
            &["run", "--rm", "-u", "nobody", "busybox", "id"],
            Some(0),
            "uid=65534(nobody)",
        ),
        (
            &["run", "--rm", "--entrypoint", "echo", "busybox", "a", "b"],
            Some(0),
            "a b\n",
        ),
        (
            &[
                "run",
                "--rm",
                "--read-only",
                "busybox",
                "sh",
                "-c",
                "touch /x 2>/dev/null; echo root $?; touch /tmp/y 2>/dev/null; echo tmp $?",
            ],
            Some(0),
            "root 1\n",
        ),
        (
            &[
                "run",
                "--rm",
                "--network",
                "none",
                "busybox",
                "sh",
                "-c",
                "ip -o link | cut -d: -f2",
            ],
            Some(0),
            " lo\n",
        ),
        (
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "ip -o -4 addr | grep -v ' lo ' | wc -l; cat /etc/resolv.conf",
            ],
            Some(0),
            "nameserver",
        ),
        (
            &[
                "run",
                "--rm",
                "--security-opt",
                "no-new-privileges",
                "busybox",
                "grep",
                "-E",
                "^(NoNewPrivs|Seccomp):",
                "/proc/self/status",
            ],
            Some(0),
            "NoNewPrivs:\t1\nSeccomp:\t2\n",
        ),
        (
            &[
                "run",
                "--rm",
                "--security-opt",
                "seccomp=unconfined",
                "busybox",
                "grep",
                "^Seccomp:",
                "/proc/self/status",
            ],
            Some(0),
            "Seccomp:\t0\n",
        ),
        // The container ends when its first process does, background processes too.
        (
            &[
                "run",
                "--rm",
                "busybox",
                "sh",
                "-c",
                "sleep 300 & echo started",
            ],
            Some(0),
            "started\n",
        ),
    ];
    for (args, code, expect) in cases {
        let (got_code, out) = same(&root, &u, args);
        assert_eq!(got_code, *code, "tare {args:?}: {out}");
        assert!(
            out.contains(expect),
            "tare {args:?}: {out:?} lacks {expect:?}"
        );
    }
}

#[test]
fn rootless_volumes_match_roots_and_files_belong_to_the_user() {
    let (root, u) = pair();
    let root_vol = root.write("vol/in", "hello\n");
    let user_vol = u.write("vol/in", b"hello\n");
    let script = "cat /data/in; echo out > /data/out; stat -c '%n %u %g' /data/in /data/out; \
                  touch /ro/x 2>/dev/null; echo ro $?; cat /ro/in";
    let args = |vol: &std::path::Path| -> Vec<String> {
        let dir = vol.parent().unwrap().display().to_string();
        [
            "run",
            "--rm",
            "-v",
            &format!("{dir}:/data"),
            "-v",
            &format!("{dir}:/ro:ro"),
            "busybox",
            "sh",
            "-c",
            script,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let want = root.ok(&args(&root_vol)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    let got = u.ok(&args(&user_vol)
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>());
    assert_eq!(want, got);
    assert_eq!(
        want, "hello\n/data/in 0 0\n/data/out 0 0\nro 1\nhello\n",
        "volume run"
    );
    // On the host, what the container's root wrote belongs to the user.
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(user_vol.with_file_name("out")).expect("out in the volume");
    assert_eq!((meta.uid(), meta.gid()), (u.uid, u.gid));
    let meta = std::fs::metadata(root_vol.with_file_name("out")).expect("out in the volume");
    assert_eq!((meta.uid(), meta.gid()), (0, 0));
}

/// `tare run` of a command that traps SIGTERM, signalled once it is ready: exit code and
/// output.
fn signalled(mut tare: Command) -> (Option<i32>, String) {
    let mut child = tare
        .args([
            "run",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "trap 'echo got TERM; exit 7' TERM; echo ready; while true; do sleep 0.1; done",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tare run");
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line, "ready\n");
    // setpriv execs tare: the child's pid is tare's.
    let pid = child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill")
        .success());
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).expect("rest of the output");
    let status = child.wait().expect("wait");
    (status.code(), line + &rest)
}

#[test]
fn rootless_signals_are_forwarded_as_for_root() {
    let (root, u) = pair();
    let want = signalled(root.tare());
    let got = signalled(u.tare());
    assert_eq!(want, (Some(7), "ready\ngot TERM\n".to_string()));
    assert_eq!(got, want);
}

#[test]
fn rootless_detached_logs_stop_and_rm_match_roots() {
    let (root, u) = pair();
    let script = "trap 'echo got TERM; exit 7' TERM; echo started; while true; do sleep 0.1; done";
    let run_d = ["run", "-d", "--name", "bg", "busybox", "sh", "-c", script];
    let (code, id) = text(&root.run(&run_d));
    assert_eq!(code, Some(0));
    let (code, user_id) = text(&u.run(&run_d));
    assert_eq!(code, Some(0));
    assert_eq!((id.trim().len(), user_id.trim().len()), (64, 64));
    eventually("root's container logs", || {
        root.ok(&["logs", "bg"]) == "started\n"
    });
    eventually("the rootless container logs", || {
        u.ok(&["logs", "bg"]) == "started\n"
    });
    same(&root, &u, &["ps", "--format", "{{.Names}} {{.State}}"]);
    // `tare exec` joins the container's user namespace (rootless_exec.rs has the rest).
    let (_, id) = same(&root, &u, &["exec", "bg", "id"]);
    assert_eq!(id, "uid=0(root) gid=0(root) groups=0(root)\n");
    let (code, _) = same(&root, &u, &["stop", "bg"]);
    assert_eq!(code, Some(0));
    let (_, logs) = same(&root, &u, &["logs", "bg"]);
    assert_eq!(logs, "started\ngot TERM\n");
    // The status ends with how long ago the container exited, which the two sides may see a
    // second apart ("1 second ago" against "Less than a second ago"): compared without it.
    let status_args = ["ps", "-a", "--format", "{{.Names}} {{.Status}}"];
    let status = |out: &Output| {
        let (code, text) = text(out);
        (code, text.split_once(") ").map(|(s, _)| s.to_string()))
    };
    let want = status(&root.run(&status_args));
    assert_eq!(
        want,
        status(&u.run(&status_args)),
        "tare ps -a: rootless differs"
    );
    assert_eq!(want, (Some(0), Some("bg Exited (7".to_string())));
    same(&root, &u, &["rm", "bg"]);
    let (_, ps) = same(&root, &u, &["ps", "-a", "--format", "{{.Names}}"]);
    assert_eq!(ps, "");
}

#[test]
fn rootless_stdin_is_passed_with_i_as_for_root() {
    let (root, u) = pair();
    let feed = |mut tare: Command| -> (Option<i32>, String) {
        let mut child = tare
            .args([
                "run",
                "--rm",
                "-i",
                "busybox",
                "sh",
                "-c",
                "wc -l; echo end",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"one\ntwo\n")
            .expect("write stdin");
        let out = child.wait_with_output().expect("wait");
        text(&out)
    };
    let want = feed(root.tare());
    assert_eq!(want, (Some(0), "2\nend\n".to_string()));
    assert_eq!(feed(u.tare()), want);
}
