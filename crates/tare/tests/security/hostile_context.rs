//! A build context's own Dockerfile and ignore files are input from whoever made the context
//! (a repository, a tar on standard input): a device node, a fifo or a symlink out of the
//! context in their place must give a clear error or be passed over, never hang tare, read
//! without end, or read a host file.
//!
//! Each build runs with a deadline (killed past it: the test then fails), and a host canary
//! named by a symlink must not show in tare's output or image.

use std::io::Write;
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use crate::util::TestContext;

const SECRET: &str = "ctx-canary-7e41a9";
const DEADLINE: Duration = Duration::from_secs(120);

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    t
}

/// Waits for `child` at most [`DEADLINE`]; kills it and fails past that.
fn wait_bounded(mut child: Child, what: &str) -> Output {
    let start = Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: tare did not finish within {DEADLINE:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A context tar entry: kind, name, content.
type Entry<'a> = (tar::EntryType, &'a str, &'a [u8]);

/// A tar entry of `kind` with device numbers 1:5 (`/dev/zero`) for device kinds.
fn entry(b: &mut tar::Builder<Vec<u8>>, kind: tar::EntryType, name: &str, data: &[u8]) {
    let mut h = tar::Header::new_ustar();
    h.set_path(name).expect("name");
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    if matches!(kind, tar::EntryType::Char | tar::EntryType::Block) {
        h.set_device_major(1).expect("major");
        h.set_device_minor(5).expect("minor");
    }
    h.set_cksum();
    b.append(&h, data).expect("append");
}

/// `tare build -` with `archive` on standard input: the output, bounded.
fn build_stdin(t: &TestContext, archive: Vec<u8>, extra: &[&str], what: &str) -> Output {
    let mut args = vec!["build", "-q", "-t", "hostile"];
    args.extend_from_slice(extra);
    args.push("-");
    let mut child = t
        .tare()
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = std::thread::spawn(move || stdin.write_all(&archive));
    let out = wait_bounded(child, what);
    let _ = writer.join();
    out
}

#[test]
fn device_and_fifo_dockerfiles_and_ignore_files_in_a_context_tar_are_refused() {
    let t = setup();
    let df: &[u8] = b"FROM busybox\nCOPY . /c/\n";
    let cases: Vec<(&str, Vec<Entry>, &str)> = vec![
        (
            "a Dockerfile that is /dev/zero",
            vec![(tar::EntryType::Char, "Dockerfile", b"")],
            "Dockerfile",
        ),
        (
            "a Dockerfile that is a fifo",
            vec![(tar::EntryType::Fifo, "Dockerfile", b"")],
            "Dockerfile",
        ),
        (
            "an ignore file that is /dev/zero",
            vec![
                (tar::EntryType::Regular, "Dockerfile", df),
                (tar::EntryType::Char, ".dockerignore", b""),
            ],
            ".dockerignore",
        ),
        (
            "an ignore file that is a fifo",
            vec![
                (tar::EntryType::Regular, "Dockerfile", df),
                (tar::EntryType::Fifo, ".dockerignore", b""),
            ],
            ".dockerignore",
        ),
        (
            "a Dockerfile's own ignore file that is a fifo",
            vec![
                (tar::EntryType::Regular, "Dockerfile", df),
                (tar::EntryType::Fifo, "Dockerfile.dockerignore", b""),
            ],
            "Dockerfile.dockerignore",
        ),
    ];
    for (what, entries, name) in cases {
        let mut b = tar::Builder::new(Vec::new());
        for (kind, path, data) in entries {
            entry(&mut b, kind, path, data);
        }
        let out = build_stdin(&t, b.into_inner().expect("tar"), &[], what);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(!out.status.success(), "{what}: the build succeeded");
        assert!(
            err.contains(name) && err.contains("not a regular file"),
            "{what}: the error should name {name} and say why:\n{err}"
        );
    }
    t.ok(&["check"]);
}

#[test]
fn an_ignore_file_linking_out_of_the_context_reads_inside_it() {
    let t = setup();
    let host = t.path().join("host");
    std::fs::create_dir_all(&host).expect("host dir");
    // A pattern line that is not valid would be quoted in the error: the secret must not be.
    std::fs::write(host.join("ignore"), format!("[{SECRET}\n")).expect("canary");
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(ctx.join("etc")).expect("ctx");
    std::fs::write(ctx.join("Dockerfile"), "FROM busybox\nCOPY . /c/\n").expect("df");
    std::fs::write(ctx.join("kept"), "k").expect("kept");
    std::fs::write(ctx.join("dropped"), "d").expect("dropped");
    let ctx_s = ctx.to_str().expect("utf-8");
    let climbing = format!("../../../../../../../..{}", host.join("ignore").display());
    let links: [(&str, std::path::PathBuf); 3] = [
        ("an absolute link to a host file", host.join("ignore")),
        ("a link to /dev/zero", "/dev/zero".into()),
        ("a relative link climbing out", climbing.into()),
    ];
    for (what, target) in links {
        let _ = std::fs::remove_file(ctx.join(".dockerignore"));
        std::os::unix::fs::symlink(&target, ctx.join(".dockerignore")).expect("link");
        let child = t
            .tare()
            .args(["build", "-q", "-t", "linked", ctx_s])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let out = wait_bounded(child, what);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        assert!(
            !err.contains(SECRET),
            "{what}: the host file was read:\n{err}"
        );
        assert!(out.status.success(), "{what}: {err}");
    }
    // Inside the context, the link is followed as in a chroot: `/etc/ignore` is the context's.
    std::fs::write(ctx.join("etc/ignore"), "dropped\n").expect("ignore");
    let _ = std::fs::remove_file(ctx.join(".dockerignore"));
    std::os::unix::fs::symlink("/etc/ignore", ctx.join(".dockerignore")).expect("link");
    t.ok(&["build", "-q", "-t", "linked", ctx_s]);
    let listing = t.ok(&["run", "--rm", "linked", "ls", "/c"]);
    assert!(listing.contains("kept"), "{listing}");
    assert!(!listing.contains("dropped"), "{listing}");
}
