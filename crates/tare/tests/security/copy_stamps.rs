//! The saved stamps of a running container on a copy-based snapshot
//! (`containers/ID/rootfs.stamps`, read by `tare ps -s`, `commit` and `export`) and the copy
//! itself are hostile input: a stamps file replaced by a symlink to a host file, a forged or
//! oversized one, a fifo, and a container that swaps its directories for symlinks to host
//! paths while it is read. None may make tare read a host file outside the container's tree;
//! each is a clear error naming the file, or a harmless success.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::TestContext;

const SECRET: &str = "host-secret-7f3a9c";

/// Host files the container points its links at; none may reach an image.
struct Canary {
    _dir: tempfile::TempDir,
    dir: PathBuf,
}

impl Canary {
    fn new() -> Canary {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().to_path_buf();
        std::fs::create_dir(path.join("sub")).unwrap();
        std::fs::write(path.join("secret"), SECRET).unwrap();
        std::fs::write(path.join("sub/secret"), SECRET).unwrap();
        Canary {
            _dir: dir,
            dir: path,
        }
    }

    fn untouched(&self) {
        for f in ["secret", "sub/secret"] {
            assert_eq!(
                std::fs::read_to_string(self.dir.join(f)).unwrap(),
                SECRET,
                "canary {f}"
            );
        }
        let names: Vec<_> = std::fs::read_dir(&self.dir).unwrap().flatten().collect();
        assert_eq!(names.len(), 2, "nothing was added next to the canaries");
    }
}

fn tare_copy(ctx: &TestContext, args: &[&str]) -> std::process::Output {
    ctx.tare()
        .env("TARE_SNAPSHOTTER", "copy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn tare")
}

/// The bytes of `tare export TARGET`.
fn export_bytes(ctx: &TestContext, target: &str) -> Vec<u8> {
    let out = tare_copy(ctx, &["export", target, "-o", "-"]);
    assert!(
        out.status.success(),
        "export {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

/// A tar's entries whose content holds the secret.
fn secret_entries(tar: &[u8]) -> Vec<String> {
    let mut archive = tar::Archive::new(tar);
    let mut found = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        if contains(&content, SECRET) {
            found.push(entry.path().unwrap().display().to_string());
        }
    }
    found
}

fn stamps_path(ctx: &TestContext, name: &str) -> PathBuf {
    let out = ctx.ok(&[
        "ps",
        "-a",
        "-q",
        "--no-trunc",
        "--filter",
        &format!("name={name}"),
    ]);
    ctx.root
        .path()
        .join("containers")
        .join(out.trim())
        .join("rootfs.stamps")
}

/// Replaces `stamps` (atomically, as an attacker with the store's rights would) with `make`'s
/// result; `tare ps -s`, `commit` and `export` of the container must all fail naming it, with
/// `reason`.
fn refused(ctx: &TestContext, stamps: &Path, reason: &str, make: impl FnOnce(&Path)) {
    let saved = std::fs::read(stamps).expect("the saved stamps");
    let forged = stamps.with_extension("forged");
    make(&forged);
    std::fs::rename(&forged, stamps).unwrap();
    for args in [
        &["ps", "-s", "--filter", "name=cp"][..],
        &["commit", "cp", "forged:1"],
        &["export", "cp", "-o", "-"],
    ] {
        let out = tare_copy(ctx, args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded on {reason}");
        assert!(
            err.contains(&format!("{}: {reason}", stamps.display())),
            "{args:?}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let _ = std::fs::remove_file(stamps);
    std::fs::write(stamps, saved).unwrap();
}

fn record(path: &[u8], dir: bool) -> Vec<u8> {
    let mut r = (path.len() as u32).to_le_bytes().to_vec();
    r.extend_from_slice(path);
    r.push(u8::from(dir));
    r.extend_from_slice(&[0u8; 8 + 8 + 4 + 8 + 8]);
    r
}

#[test]
fn forged_stamps_and_links_to_the_host_never_bring_host_files_into_a_commit() {
    let ctx = TestContext::new();
    ctx.import_busybox("busybox");
    let canary = Canary::new();
    let host = canary.dir.display().to_string();
    // Links to the host paths, and a directory swapped for such a link over and over while
    // tare reads the copy from the host.
    let script = format!(
        "ln -s {host} /hostdir && ln -s {host}/secret /hostfile && mkdir -p /d/sub && \
         echo mine > /d/sub/f && touch /ready && \
         while true; do mv /d /d.x; ln -s {host} /d; rm /d; mv /d.x /d; done"
    );
    let out = tare_copy(
        &ctx,
        &["run", "-d", "--name", "cp", "busybox", "sh", "-c", &script],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !tare_copy(&ctx, &["exec", "cp", "cat", "/ready"])
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the container never got ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }

    // While the container swaps /d: each commit succeeds without host files, or fails
    // clearly.
    let mut committed = 0;
    for i in 0..6 {
        let image = format!("race:{i}");
        let out = tare_copy(&ctx, &["commit", "cp", &image]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{err}");
        if out.status.success() {
            committed += 1;
            let tar = export_bytes(&ctx, &image);
            assert_eq!(secret_entries(&tar), Vec::<String>::new(), "commit {i}");
        } else {
            assert!(err.contains("container cp: reading its changes"), "{err}");
        }
    }
    assert!(committed > 0, "no commit succeeded while the container ran");
    let tar = export_bytes(&ctx, "cp");
    assert_eq!(
        secret_entries(&tar),
        Vec::<String>::new(),
        "export of the container"
    );

    let stamps = stamps_path(&ctx, "cp");
    // A symlink to a host file, and to a copy of the real stamps.
    refused(&ctx, &stamps, "is a symlink", |p| {
        std::os::unix::fs::symlink(canary.dir.join("secret"), p).unwrap()
    });
    let real = canary.dir.join("sub/stamps");
    std::fs::copy(&stamps, &real).unwrap();
    refused(&ctx, &stamps, "is a symlink", |p| {
        std::os::unix::fs::symlink(&real, p).unwrap()
    });
    std::fs::remove_file(&real).unwrap();
    // Paths that climb out, absolute ones, a child before its directory.
    for (bad, reason) in [
        (
            &b"../../../../etc/passwd"[..],
            "record 0: path \"../../../../etc/passwd\"",
        ),
        (b"/etc/passwd", "record 0: path \"/etc/passwd\""),
        (
            b"etc/passwd",
            "record 0: etc/passwd comes before its directory",
        ),
    ] {
        refused(&ctx, &stamps, reason, |p| {
            let mut bytes = b"tare-copy-stamps 1\n".to_vec();
            bytes.extend(record(bad, false));
            std::fs::write(p, bytes).unwrap();
        });
    }
    refused(&ctx, &stamps, "truncated record", |p| {
        std::fs::write(p, b"tare-copy-stamps 1\n\x05\x00").unwrap()
    });
    refused(&ctx, &stamps, "not a stamps file", |p| {
        std::fs::write(p, b"{\"json\": true}").unwrap()
    });
    refused(&ctx, &stamps, "larger than", |p| {
        std::fs::File::create(p).unwrap().set_len(1 << 30).unwrap()
    });
    refused(&ctx, &stamps, "is not a regular file", |p| {
        let made = std::process::Command::new("mkfifo")
            .arg(p)
            .status()
            .unwrap();
        assert!(made.success());
    });

    // A well-formed stamps file that claims the image was empty: every path is new, and the
    // commit holds the container's own files, still no host file.
    let saved = std::fs::read(&stamps).unwrap();
    std::fs::write(&stamps, b"tare-copy-stamps 1\n").unwrap();
    let out = tare_copy(&ctx, &["commit", "cp", "claims-empty:1"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = export_bytes(&ctx, "claims-empty:1");
    assert_eq!(secret_entries(&tar), Vec::<String>::new());
    std::fs::write(&stamps, saved).unwrap();

    let out = tare_copy(&ctx, &["stop", "-t", "1", "cp"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let tar = export_bytes(&ctx, "cp");
    assert_eq!(secret_entries(&tar), Vec::<String>::new(), "after the stop");
    canary.untouched();
    // No link view was left in the container's directory by the failed reads.
    let dir = stamps.parent().unwrap();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name();
        assert!(
            !name.to_string_lossy().starts_with("changes-"),
            "{} left behind",
            entry.path().display()
        );
    }
}
