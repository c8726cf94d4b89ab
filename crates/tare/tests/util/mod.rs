//! Shared helpers for the CLI integration tests: a fresh store per test, the `tare` binary,
//! and base images made locally (no registry is reachable from the tests).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub mod cache;
pub mod demo;
pub mod git;
pub mod http;

/// Applets linked to /bin/busybox in the test base image.
pub const BUSYBOX_APPLETS: &[&str] = &[
    "sh",
    "ls",
    "cat",
    "echo",
    "rm",
    "mkdir",
    "dd",
    "id",
    "env",
    "true",
    "false",
    "sleep",
    "touch",
    "chmod",
    "chown",
    "ln",
    "test",
    "[",
    "stat",
    "wc",
    "sha256sum",
    "cp",
    "mv",
    "grep",
    "sed",
    "head",
    "tail",
    "printf",
    "pwd",
    "whoami",
    "hostname",
    "find",
    "tar",
    "gzip",
    "kill",
    "ps",
    "trap",
    "readlink",
    "mknod",
    "seq",
    "sort",
    "uname",
    "ip",
    "mount",
    "tr",
    "cut",
    "xargs",
    "du",
];

/// A fresh store and scratch directory for one test.
pub struct TestContext {
    pub root: tempfile::TempDir,
    pub dir: tempfile::TempDir,
}

impl TestContext {
    pub fn new() -> Self {
        TestContext {
            root: tempfile::tempdir().expect("temp store"),
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    /// The scratch directory, for contexts and files a test writes.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A `tare` command bound to this test's store.
    pub fn tare(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tare"));
        cmd.arg("--root").arg(self.root.path());
        cmd.env_remove("TARE_ROOT");
        cmd.env("NO_COLOR", "1");
        cmd
    }

    /// Runs `tare ARGS` and returns its output, whatever the exit code.
    pub fn run(&self, args: &[&str]) -> Output {
        self.tare()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn tare")
    }

    /// Runs `tare ARGS`, fails the test unless it succeeds, and returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "tare {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 stdout")
    }

    /// Runs `tare ARGS`, fails the test if it succeeds, and returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "tare {args:?} succeeded but should have failed\nstdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8 stderr")
    }

    /// Writes `content` to `rel` under the scratch directory, creating parents.
    pub fn write(&self, rel: &str, content: &str) -> PathBuf {
        let path = self.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent");
        }
        std::fs::write(&path, content).expect("write file");
        path
    }

    /// Makes a busybox rootfs tar and imports it as `name` (e.g. `busybox:latest`).
    pub fn import_busybox(&self, name: &str) {
        let tar = self
            .path()
            .join(format!("busybox-{}.tar", name.replace([':', '/'], "_")));
        busybox_rootfs_tar(&tar);
        self.ok(&["import", tar.to_str().expect("utf-8 path"), name]);
    }

    /// Packs the root filesystem in `dir` (numeric owners, sorted names) and imports it as
    /// `name`; returns the tar.
    pub fn import_dir(&self, dir: &Path, name: &str) -> PathBuf {
        self.import_dir_with(dir, name, &[])
    }

    /// [`TestContext::import_dir`] with `--change` instructions (`CMD [...]`, `USER x`).
    pub fn import_dir_with(&self, dir: &Path, name: &str, changes: &[&str]) -> PathBuf {
        let tar = self
            .path()
            .join(format!("{}.tar", name.replace([':', '/'], "_")));
        let status = Command::new("tar")
            .args(["--numeric-owner", "--sort=name", "-C"])
            .arg(dir)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .expect("tar");
        assert!(status.success(), "tar of {}", dir.display());
        let mut args = vec!["import"];
        for change in changes {
            args.extend(["--change", change]);
        }
        args.extend([tar.to_str().expect("utf-8 path"), name]);
        self.ok(&args);
        tar
    }
}

/// Builds a small busybox root filesystem in `dir`: applets, /etc/passwd with root, nobody and
/// `app` (1000), /etc/group, and the usual top-level directories.
pub fn busybox_rootfs(dir: &Path) {
    for d in [
        "bin", "etc", "tmp", "proc", "sys", "dev", "root", "home/app", "var", "usr/bin",
    ] {
        std::fs::create_dir_all(dir.join(d)).expect("rootfs dir");
    }
    std::fs::copy("/bin/busybox", dir.join("bin/busybox"))
        .expect("copy /bin/busybox (apt-get install busybox-static)");
    for applet in BUSYBOX_APPLETS {
        std::os::unix::fs::symlink("busybox", dir.join("bin").join(applet)).expect("applet link");
    }
    std::fs::write(
        dir.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )
    .expect("passwd");
    std::fs::write(
        dir.join("etc/group"),
        "root:x:0:\nwheel:x:10:app\napp:x:1000:\nnogroup:x:65534:\n",
    )
    .expect("group");
    let status = Command::new("chmod")
        .args(["1777"])
        .arg(dir.join("tmp"))
        .status()
        .expect("chmod");
    assert!(status.success());
    let status = Command::new("chown")
        .args(["1000:1000"])
        .arg(dir.join("home/app"))
        .status()
        .expect("chown");
    assert!(status.success());
}

/// Writes a busybox rootfs as a plain tar at `out`.
pub fn busybox_rootfs_tar(out: &Path) {
    let dir = tempfile::tempdir().expect("temp rootfs");
    busybox_rootfs(dir.path());
    let status = Command::new("tar")
        .args(["--numeric-owner", "--sort=name", "-C"])
        .arg(dir.path())
        .arg("-cf")
        .arg(out)
        .arg(".")
        .status()
        .expect("run tar");
    assert!(status.success(), "tar of busybox rootfs failed");
}

/// True when docker-dependent tests must be skipped (set only by developers without dockerd;
/// the test script starts dockerd, so CI never skips).
pub fn docker_disabled() -> bool {
    std::env::var_os("TARE_TEST_NO_DOCKER").is_some_and(|v| v == "1")
}

/// A `docker` command talking to the test daemon (`DOCKER_HOST`, default /tmp/docker.sock).
pub fn docker() -> Command {
    let mut cmd = Command::new("/usr/bin/docker");
    if std::env::var_os("DOCKER_HOST").is_none() {
        cmd.env("DOCKER_HOST", "unix:///tmp/docker.sock");
    }
    cmd
}

/// The client of the reference BuildKit (current Docker): `$MODERN_DOCKER`, or the one
/// `shared/tools/modern-buildkit.sh env` reports (which starts it). Without `DOCKER_HOST` it
/// talks to the reference daemon; with `DOCKER_HOST=unix:///tmp/docker.sock`, to dockerd 20.10.
pub fn modern_docker_client() -> &'static Path {
    static CLIENT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    CLIENT.get_or_init(|| {
        if let Some(client) = std::env::var_os("MODERN_DOCKER") {
            return PathBuf::from(client);
        }
        let script = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../..")
            .join("../shared/tools/modern-buildkit.sh");
        assert!(
            script.is_file(),
            "MODERN_DOCKER is unset and {} is missing: the reference BuildKit cannot start",
            script.display()
        );
        let out = Command::new("bash")
            .arg(&script)
            .arg("env")
            .output()
            .expect("run modern-buildkit.sh");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{} env failed:\n{}{}",
            script.display(),
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
            .split_whitespace()
            .find_map(|word| word.strip_prefix("MODERN_DOCKER="))
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "no MODERN_DOCKER in the output of {} env: {stdout}",
                    script.display()
                )
            })
    })
}
