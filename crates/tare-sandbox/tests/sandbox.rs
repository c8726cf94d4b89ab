//! The sandbox on a busybox root filesystem: as a plain directory and as an overlay.
//! These tests need root (namespaces, mounts), as tare itself does.

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use tare_sandbox::{run, BindMount, Error, Network, Rootfs, RunSpec, Stdio};

const APPLETS: &[&str] = &[
    "sh", "ls", "cat", "echo", "id", "env", "true", "false", "sleep", "touch", "mkdir", "pwd",
    "hostname", "ip", "ps", "stat", "grep", "wc", "kill", "test", "readlink", "tty", "rm",
];

fn busybox_rootfs(dir: &Path) {
    for d in [
        "bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox")).unwrap();
    for applet in APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).unwrap();
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\n",
    )
    .unwrap();
}

/// A busybox rootfs as one read-only layer plus a fresh upper and work directory.
struct Overlay {
    _tmp: tempfile::TempDir,
    lower: PathBuf,
    upper: PathBuf,
    work: PathBuf,
}

impl Overlay {
    fn new() -> Overlay {
        let tmp = tempfile::tempdir().unwrap();
        let lower = tmp.path().join("lower");
        let upper = tmp.path().join("upper");
        let work = tmp.path().join("work");
        busybox_rootfs(&lower);
        std::fs::create_dir(&upper).unwrap();
        std::fs::create_dir(&work).unwrap();
        Overlay {
            _tmp: tmp,
            lower,
            upper,
            work,
        }
    }

    fn rootfs(&self) -> Rootfs {
        Rootfs::Overlay {
            lower: vec![self.lower.clone()],
            upper: self.upper.clone(),
            work: self.work.clone(),
        }
    }

    fn spec(&self, script: &str) -> RunSpec {
        RunSpec::new(self.rootfs(), sh(script))
    }

    fn upper_entries(&self) -> Vec<String> {
        let mut out = Vec::new();
        walk(&self.upper, &self.upper, &mut out);
        out.sort();
        out
    }
}

fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        out.push(path.strip_prefix(base).unwrap().display().to_string());
        if path.is_dir() && !path.is_symlink() {
            walk(base, &path, out);
        }
    }
}

fn sh(script: &str) -> Vec<String> {
    vec!["sh".into(), "-c".into(), script.into()]
}

/// Runs a spec with stdout captured through a pipe; returns (exit code, stdout).
fn capture(mut spec: RunSpec) -> (i32, String) {
    let (read, write) = pipe();
    spec.stdout = Stdio::Fd(write);
    let handle = std::thread::spawn(move || {
        let mut text = String::new();
        std::fs::File::from(read).read_to_string(&mut text).unwrap();
        text
    });
    let code = run(spec).expect("run");
    (code, handle.join().unwrap())
}

fn pipe() -> (OwnedFd, OwnedFd) {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap()
}

fn mounts_mentioning(needle: &Path) -> usize {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter(|l| l.contains(needle.to_str().unwrap()))
        .count()
}

#[test]
fn exit_codes_pass_through() {
    let ov = Overlay::new();
    assert_eq!(run(ov.spec("exit 0")).unwrap(), 0);
    assert_eq!(run(ov.spec("exit 3")).unwrap(), 3);
}

#[test]
fn missing_and_non_executable_commands_are_127_and_126() {
    let ov = Overlay::new();
    let err = run(RunSpec::new(ov.rootfs(), vec!["no-such-command".into()])).unwrap_err();
    assert!(matches!(err, Error::Exec { .. }), "{err}");
    assert_eq!(err.exit_code(), 127);
    assert!(
        err.to_string().contains("executable file not found"),
        "{err}"
    );

    std::fs::write(ov.lower.join("etc/plain"), "not a program").unwrap();
    let err = run(RunSpec::new(ov.rootfs(), vec!["/etc/plain".into()])).unwrap_err();
    assert_eq!(err.exit_code(), 126, "{err}");
}

#[test]
fn the_process_is_pid_1_with_its_own_hostname() {
    let ov = Overlay::new();
    let mut spec = ov.spec("echo $$; hostname; cat /etc/hostname");
    spec.hostname = "box".into();
    let (code, out) = capture(spec);
    assert_eq!(code, 0);
    assert_eq!(out, "1\nbox\nbox\n");
}

#[test]
fn env_defaults_path_and_home_and_keeps_given_variables() {
    let ov = Overlay::new();
    let mut spec = ov.spec("echo $PATH; echo $HOME; echo $GREETING");
    spec.env = vec!["GREETING=hello world".into()];
    let (_, out) = capture(spec);
    assert_eq!(
        out,
        format!("{}\n/root\nhello world\n", tare_sandbox::DEFAULT_PATH)
    );
}

#[test]
fn working_directory_is_created_when_missing() {
    let ov = Overlay::new();
    let mut spec = ov.spec("pwd");
    spec.cwd = "/srv/app/data".into();
    let (code, out) = capture(spec);
    assert_eq!((code, out.as_str()), (0, "/srv/app/data\n"));
    assert!(ov.upper.join("srv/app/data").is_dir());
}

#[test]
fn users_resolve_with_supplementary_groups_and_lose_capabilities() {
    let ov = Overlay::new();
    let mut spec = ov.spec("id -u; id -g; id -G; grep CapEff /proc/self/status");
    spec.user = Some("app".into());
    let (code, out) = capture(spec);
    assert_eq!(code, 0);
    assert_eq!(out, "1000\n1000\n1000 10\nCapEff:\t0000000000000000\n");

    let mut spec = ov.spec("id -u; id -g");
    spec.user = Some("4242:77".into());
    assert_eq!(capture(spec).1, "4242\n77\n");

    let mut spec = ov.spec("true");
    spec.user = Some("nobody".into());
    assert!(matches!(run(spec), Err(Error::UnknownUser(_))));
}

#[test]
fn root_gets_only_docker_default_capabilities() {
    let ov = Overlay::new();
    let (_, out) = capture(ov.spec("grep -E 'Cap(Eff|Bnd)' /proc/self/status"));
    assert_eq!(
        out, "CapEff:\t00000000a80425fb\nCapBnd:\t00000000a80425fb\n",
        "Docker's default set is 0xa80425fb"
    );
}

#[test]
fn network_none_has_only_loopback() {
    let ov = Overlay::new();
    let mut spec = ov.spec("ls /sys/class/net");
    spec.network = Network::None;
    let (code, out) = capture(spec);
    assert_eq!((code, out.as_str()), (0, "lo\n"));
}

#[test]
fn proc_and_sys_are_read_only_and_dev_has_the_devices() {
    let ov = Overlay::new();
    let (code, out) = capture(ov.spec(
        "ls /dev; touch /proc/x 2>/dev/null || echo proc-ro; touch /sys/x 2>/dev/null || echo sys-ro; echo hi > /dev/null && echo null-ok",
    ));
    assert_eq!(code, 0);
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(out.lines().any(|l| l == dev), "/dev lacks {dev}: {out}");
    }
    assert!(out.contains("proc-ro\nsys-ro\nnull-ok\n"), "{out}");
}

#[test]
fn volumes_are_read_write_or_read_only() {
    let ov = Overlay::new();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "from host").unwrap();
    let mut spec = ov.spec(
        "cat /data/in.txt; echo; echo out > /data/out.txt; echo x > /ro/y 2>/dev/null || echo ro-refused",
    );
    spec.mounts = vec![
        BindMount {
            source: host.path().to_path_buf(),
            target: "/data".into(),
            readonly: false,
        },
        BindMount {
            source: host.path().to_path_buf(),
            target: "/ro".into(),
            readonly: true,
        },
    ];
    let (code, out) = capture(spec);
    assert_eq!(code, 0);
    assert_eq!(out, "from host\nro-refused\n");
    assert_eq!(
        std::fs::read_to_string(host.path().join("out.txt")).unwrap(),
        "out\n"
    );
    assert!(!host.path().join("y").exists());
}

#[test]
fn etc_files_are_provided_but_never_left_in_the_upper_dir() {
    let ov = Overlay::new();
    let (code, out) = capture(ov.spec(
        "test -f /etc/resolv.conf && test -f /etc/hosts && grep -q localhost /etc/hosts && echo ok; echo hi > /etc/motd",
    ));
    assert_eq!((code, out.as_str()), (0, "ok\n"));
    assert_eq!(ov.upper_entries(), vec!["etc", "etc/motd"]);

    // An image without /etc, /proc, /dev or /sys: the stubs go away too.
    let ov = Overlay::new();
    for d in ["etc", "proc", "dev", "sys"] {
        std::fs::remove_dir_all(ov.lower.join(d)).unwrap();
    }
    assert_eq!(run(ov.spec("true")).unwrap(), 0);
    assert_eq!(ov.upper_entries(), Vec::<String>::new());
}

#[test]
fn plain_directory_rootfs_works_and_keeps_no_stubs() {
    let tmp = tempfile::tempdir().unwrap();
    busybox_rootfs(tmp.path());
    std::fs::remove_dir_all(tmp.path().join("proc")).unwrap();
    let spec = RunSpec::new(Rootfs::Dir(tmp.path().into()), sh("echo made > /root/f"));
    assert_eq!(run(spec).unwrap(), 0);
    assert!(!tmp.path().join("proc").exists());
    assert!(!tmp.path().join("etc/hosts").exists());
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("root/f")).unwrap(),
        "made\n"
    );
}

#[test]
fn read_only_rootfs_refuses_writes() {
    let ov = Overlay::new();
    let mut spec =
        ov.spec("touch /x 2>/dev/null || echo refused; echo ok > /dev/shm/y && echo shm");
    spec.readonly_rootfs = true;
    assert_eq!(capture(spec).1, "refused\nshm\n");
}

#[test]
fn background_processes_end_with_the_step_and_no_mounts_are_left() {
    let ov = Overlay::new();
    let marker = ov.upper.parent().unwrap().join("alive");
    let host = marker.parent().unwrap().to_path_buf();
    let mut spec = ov.spec("(sleep 2; touch /h/alive) & exit 0");
    spec.mounts = vec![BindMount {
        source: host.clone(),
        target: "/h".into(),
        readonly: false,
    }];
    assert_eq!(run(spec).unwrap(), 0);
    std::thread::sleep(std::time::Duration::from_millis(2500));
    assert!(!marker.exists(), "a background process outlived the step");
    assert_eq!(mounts_mentioning(&ov.upper), 0);
}

#[test]
fn stdin_is_passed_when_given() {
    let ov = Overlay::new();
    let (read, write) = pipe();
    let mut spec = ov.spec("wc -c");
    spec.stdin = Stdio::Fd(read);
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::File::from(write);
        std::io::Write::write_all(&mut f, b"12345").unwrap();
    });
    let (code, out) = capture(spec);
    writer.join().unwrap();
    assert_eq!((code, out.trim()), (0, "5"));
}

#[test]
fn a_terminal_is_given_with_tty() {
    let ov = Overlay::new();
    let mut spec = ov.spec("tty; test -t 0 && echo interactive");
    spec.tty = true;
    let (code, out) = capture(spec);
    assert_eq!(code, 0);
    assert_eq!(out.replace('\r', ""), "/dev/pts/0\ninteractive\n");
}

#[test]
fn runs_in_parallel_threads() {
    let handles: Vec<_> = (0..4)
        .map(|i| {
            std::thread::spawn(move || {
                let ov = Overlay::new();
                capture(ov.spec(&format!("echo {i}")))
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().unwrap(), (0, format!("{i}\n")));
    }
}

#[test]
fn runs_through_an_oci_runtime() {
    for name in ["runc", "crun"] {
        let runtime = tare_sandbox::oci::find_runtime(name).expect("runc and crun are installed");
        let ov = Overlay::new();
        let mut spec = ov.spec("echo $$ $(hostname) $(id -u); echo made > /root/f; exit 7");
        spec.hostname = "oci".into();
        let (read, write) = pipe();
        spec.stdout = Stdio::Fd(write);
        let reader = std::thread::spawn(move || {
            let mut text = String::new();
            std::fs::File::from(read).read_to_string(&mut text).unwrap();
            text
        });
        let code = tare_sandbox::oci::run_with_runtime(spec, &runtime).expect(name);
        assert_eq!(code, 7, "{name}");
        assert_eq!(reader.join().unwrap(), "1 oci 0\n", "{name}");
        assert_eq!(ov.upper_entries(), vec!["root", "root/f"], "{name}");
        assert_eq!(mounts_mentioning(&ov.upper), 0);
    }
}
