//! Git repositories for the tests: a `git daemon` on 127.0.0.1 serving bare repositories,
//! work trees with commits, and tar archives for contexts on standard input.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Runs git in `dir` with a fixed identity; panics on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "protocol.file.allow=always",
        ])
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A `git daemon` serving the bare repositories in its base directory, stopped on drop.
pub struct GitServer {
    child: Child,
    pub base: PathBuf,
    pub port: u16,
}

impl GitServer {
    pub fn start(base: &Path) -> GitServer {
        std::fs::create_dir_all(base).expect("base dir");
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let child = Command::new("git")
            .args([
                "daemon",
                "--reuseaddr",
                "--export-all",
                "--informative-errors",
                "--listen=127.0.0.1",
                &format!("--port={port}"),
                &format!("--base-path={}", base.display()),
                &base.display().to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("git daemon");
        let server = GitServer {
            child,
            base: base.to_path_buf(),
            port,
        };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(25));
        }
        panic!("git daemon did not listen on {port}");
    }

    /// The git:// URL of repository `name` (without `#fragment`).
    pub fn url(&self, name: &str) -> String {
        format!("git://127.0.0.1:{}/{name}", self.port)
    }

    /// Makes bare repository `name` from the work tree `work` (its branches and tags).
    pub fn publish(&self, work: &Path, name: &str) {
        let bare = self.base.join(name);
        if !bare.exists() {
            git(
                &self.base,
                &["init", "-q", "--bare", bare.to_str().expect("utf-8")],
            );
        }
        git(
            work,
            &[
                "push",
                "-q",
                "--force",
                "--tags",
                bare.to_str().expect("utf-8"),
                "refs/heads/*:refs/heads/*",
            ],
        );
        // The default branch the server advertises.
        git(&bare, &["symbolic-ref", "HEAD", "refs/heads/main"]);
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A work tree at `dir` with `files` (path, content, executable) committed on `main`.
pub fn repo_with(dir: &Path, files: &[(&str, &str, bool)]) -> String {
    std::fs::create_dir_all(dir).expect("repo dir");
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q"]);
    }
    for (path, content, exec) in files {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        std::fs::write(&p, content).expect("write");
        if *exec {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
    }
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", "c"]);
    git(dir, &["rev-parse", "HEAD"])
}

/// A tar of `files` (path, content).
pub fn tar_of(files: &[(&str, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        b.append_data(&mut h, path, content.as_bytes())
            .expect("append");
    }
    b.into_inner().expect("tar")
}
