//! Running the `tare` binary as an unprivileged host user (rootless tare), for the run and
//! security tests. The tests run as root; `setpriv` drops to the user for each command, with
//! HOME in a scratch directory the user owns, so the store is tare's rootless default.
//!
//! Users: [`RANGED`] has a subordinate ID range in /etc/subuid and /etc/subgid (scripts/test.sh
//! creates it; it is created here too when missing), and `nobody` has none (the single-ID
//! mapping).
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

/// The user with a subordinate ID range.
pub const RANGED: &str = "tare-rootless";
/// Its range when this module creates it.
pub const RANGE_START: u32 = 100000;
pub const RANGE_COUNT: u32 = 65536;

static USERADD: Mutex<()> = Mutex::new(());

/// A host user that runs tare, and a scratch directory it owns (removed on drop).
pub struct RootlessUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    dir: PathBuf,
}

fn id_of(name: &str, flag: &str) -> Option<u32> {
    let out = Command::new("id").args([flag, name]).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn has_range(file: &str, name: &str, uid: u32) -> bool {
    std::fs::read_to_string(file).is_ok_and(|t| {
        t.lines().any(|l| {
            let mut p = l.split(':');
            let who = p.next().unwrap_or("");
            (who == name || who == uid.to_string())
                && p.nth(1).and_then(|c| c.parse::<u32>().ok()).unwrap_or(0) > 0
        })
    })
}

fn status(cmd: &mut Command) {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl RootlessUser {
    /// The user with a subordinate range, created (with its range) when missing.
    pub fn ranged() -> Self {
        {
            let _guard = USERADD.lock().unwrap_or_else(|e| e.into_inner());
            if id_of(RANGED, "-u").is_none() {
                status(Command::new("useradd").args([
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    RANGED,
                ]));
            }
            let uid = id_of(RANGED, "-u").expect("uid of the rootless test user");
            if !has_range("/etc/subuid", RANGED, uid) || !has_range("/etc/subgid", RANGED, uid) {
                let range = format!("{RANGE_START}-{}", RANGE_START + RANGE_COUNT - 1);
                status(Command::new("usermod").args([
                    "--add-subuids",
                    &range,
                    "--add-subgids",
                    &range,
                    RANGED,
                ]));
            }
        }
        Self::new(RANGED)
    }

    /// `nobody`, which has no subordinate range: tare falls back to a single-ID mapping.
    pub fn single() -> Self {
        let uid = id_of("nobody", "-u").expect("user nobody");
        assert!(
            !has_range("/etc/subuid", "nobody", uid),
            "the single-ID tests need `nobody` without a range in /etc/subuid"
        );
        Self::new("nobody")
    }

    fn new(name: &str) -> Self {
        let uid = id_of(name, "-u").expect("uid");
        let gid = id_of(name, "-g").expect("gid");
        let dir = tempfile::Builder::new()
            .prefix("tare-rootless-test-")
            .tempdir()
            .expect("scratch dir")
            .keep();
        std::fs::create_dir(dir.join("home")).expect("home");
        status(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{uid}:{gid}"))
                .arg(&dir),
        );
        RootlessUser {
            name: name.to_string(),
            uid,
            gid,
            dir,
        }
    }

    /// The user's scratch directory (its HOME is `home` in it).
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Where rootless tare keeps its store for this user.
    pub fn store(&self) -> PathBuf {
        self.dir.join("home/.local/share/tare")
    }

    /// Writes a file the user owns under the scratch directory.
    pub fn write(&self, rel: &str, content: &[u8]) -> PathBuf {
        let path = self.dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, content).expect("write");
        status(
            Command::new("chown")
                .arg("-R")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(
                    self.dir
                        .join(rel.split('/').next().expect("first component")),
                ),
        );
        path
    }

    /// A busybox rootfs tar (see `busybox_rootfs_tar`) that the user owns.
    pub fn busybox_tar(&self) -> String {
        let tar = self.dir.join("busybox.tar");
        crate::util::busybox_rootfs_tar(&tar);
        status(
            Command::new("chown")
                .arg(format!("{}:{}", self.uid, self.gid))
                .arg(&tar),
        );
        tar.to_str().expect("utf-8 path").to_string()
    }

    /// `tare` as this user, with the default (rootless) store.
    pub fn tare(&self) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.arg(format!("--reuid={}", self.uid))
            .arg(format!("--regid={}", self.gid))
            .arg("--clear-groups")
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_tare"))
            .env("HOME", self.dir.join("home"))
            .env_remove("XDG_DATA_HOME")
            .env_remove("TARE_ROOT")
            .env("NO_COLOR", "1")
            .current_dir(&self.dir)
            .stdin(Stdio::null());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.tare().args(args).output().expect("spawn setpriv tare")
    }

    /// Runs `tare ARGS` as the user; fails the test unless it succeeds; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "rootless tare {args:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    }

    /// Runs `tare ARGS` as the user; fails the test if it succeeds; returns stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            !out.status.success(),
            "rootless tare {args:?} succeeded but should have failed\nstdout:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8(out.stderr).expect("utf-8")
    }

    /// Every path under `dir` whose host owner is outside what this user may own (itself and
    /// its subordinate range), or that is setuid/setgid and owned by host root.
    pub fn foreign_files(&self, dir: &Path) -> Vec<String> {
        let range = subordinate(&self.name, self.uid);
        let mine =
            |id: u32, own: u32| id == own || range.is_some_and(|(s, c)| id >= s && id - s < c);
        let mut bad = Vec::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(p) = stack.pop() {
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if !mine(meta.uid(), self.uid) || !mine(meta.gid(), self.gid) {
                bad.push(format!(
                    "{} owned by {}:{}",
                    p.display(),
                    meta.uid(),
                    meta.gid()
                ));
            }
            if meta.mode() & 0o6000 != 0 && (meta.uid() == 0 || meta.gid() == 0) {
                bad.push(format!("{} is setuid/setgid root", p.display()));
            }
            if meta.is_dir() {
                if let Ok(rd) = std::fs::read_dir(&p) {
                    stack.extend(rd.flatten().map(|e| e.path()));
                }
            }
        }
        bad
    }
}

/// The first subordinate uid range of a user.
pub fn subordinate(name: &str, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string("/etc/subuid").ok()?;
    text.lines().find_map(|l| {
        let mut p = l.split(':');
        let who = p.next()?;
        if who != name && who != uid.to_string() {
            return None;
        }
        Some((p.next()?.parse().ok()?, p.next()?.parse().ok()?))
    })
}

impl Drop for RootlessUser {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
