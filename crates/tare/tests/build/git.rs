//! `ADD <git url>`, the build context from a git URL or standard input, and `ADD --checksum`
//! of an http URL.
//!
//! The repositories are served by `git daemon` on 127.0.0.1 (the git:// protocol), a real
//! server, so tare's git runs as it would against a remote. BuildKit 0.25 cannot be compared
//! here (its daemon would have to reach this test's loopback server), so the expected results
//! are written from BuildKit 0.25's source: `dfgitutil.ParseGitRef` for the URL forms,
//! `source/git/source.go` for the checkout (no `.git` unless `--keep-git-dir`, files owned by
//! root with git's modes, a commit `--checksum` compared as a prefix, a ref resolved with
//! `git ls-remote` so a moved branch is a new step).

use std::io::Write;
use std::process::{Command, Stdio};

use super::util::git::{git, repo_with, tar_of, GitServer};
use super::util::TestContext;
use super::{ctx_dir, file_in, owner_and_mode, setup, with_entry};

fn entry_exists(t: &TestContext, image: &str, path: &str) -> bool {
    with_entry(t, image, path, |_| ()).is_some()
}

#[test]
fn add_of_a_git_url_checks_out_the_ref_without_its_git_dir() {
    let t = setup();
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    let first = repo_with(
        &work,
        &[
            ("a.txt", "one\n", false),
            ("sub/b.txt", "bee\n", false),
            ("run.sh", "#!/bin/sh\n", true),
        ],
    );
    git(&work, &["tag", "-a", "-m", "v1", "v1"]);
    server.publish(&work, "repo.git");
    let url = server.url("repo.git");
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nADD {url}#v1 /src\nADD {url}#main:sub /sub\n\
             ADD {url}?ref=main&subdir=sub /q\nADD {url} /default/\n"
        ),
    );
    t.ok(&["build", "-q", "-t", "git:1", &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "git:1", "src/a.txt").as_deref(), Some("one\n"));
    assert_eq!(file_in(&t, "git:1", "sub/b.txt").as_deref(), Some("bee\n"));
    assert_eq!(file_in(&t, "git:1", "q/b.txt").as_deref(), Some("bee\n"));
    assert_eq!(
        file_in(&t, "git:1", "default/a.txt").as_deref(),
        Some("one\n")
    );
    assert!(!entry_exists(&t, "git:1", "src/.git"));
    assert!(!entry_exists(&t, "git:1", "src/.git/HEAD"));
    assert!(!entry_exists(&t, "git:1", "sub/a.txt"));
    // Root's files with git's modes, as BuildKit's checkout (umask 022) gives them.
    assert_eq!(
        owner_and_mode(&t, "git:1", "src/a.txt"),
        Some((0, 0, 0o644))
    );
    assert_eq!(
        owner_and_mode(&t, "git:1", "src/run.sh"),
        Some((0, 0, 0o755))
    );
    assert_eq!(owner_and_mode(&t, "git:1", "src/sub/"), Some((0, 0, 0o755)));

    // --keep-git-dir keeps a repository whose HEAD is the commit, origin the remote.
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nADD --keep-git-dir {url}#main /kept\n\
             RUN cat /kept/.git/HEAD > /head && grep -q '{url}' /kept/.git/config\n"
        ),
    );
    t.ok(&["build", "-q", "-t", "git:2", &ctx_dir(&t)]);
    assert_eq!(
        file_in(&t, "git:2", "head").map(|h| h.trim().to_string()),
        Some(first.clone())
    );
    assert!(!entry_exists(&t, "git:2", "kept/.git/FETCH_HEAD"));
}

#[test]
fn a_git_checksum_pins_the_commit_and_a_moved_branch_is_a_new_step() {
    let t = setup();
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    let first = repo_with(&work, &[("f", "first\n", false)]);
    server.publish(&work, "r.git");
    let url = server.url("r.git");
    let dockerfile =
        |checksum: &str| format!("FROM busybox\nADD --checksum={checksum} {url}#main /r\n");
    // The commit, or a prefix of it, builds.
    t.write("ctx/Dockerfile", &dockerfile(&first));
    t.ok(&["build", "-q", "-t", "sum:1", &ctx_dir(&t)]);
    t.write("ctx/Dockerfile", &dockerfile(&first[..12]));
    t.ok(&["build", "-q", "-t", "sum:2", &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "sum:2", "r/f").as_deref(), Some("first\n"));
    // Another commit fails with the file and line.
    let wrong = "0123456789abcdef0123456789abcdef01234567";
    t.write("ctx/Dockerfile", &dockerfile(wrong));
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains("Dockerfile:2"), "{err}");
    assert!(
        err.contains(&format!("expected checksum to match {wrong}, got {first}")),
        "{err}"
    );
    // A sha256: checksum is for URLs; BuildKit refuses it for git.
    t.write("ctx/Dockerfile", &dockerfile("sha256:abcd"));
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("expected a hex commit"),
        "{err}"
    );

    // The resolved commit is in the step's key: cached while the branch stays, rebuilt
    // when it moves.
    t.write(
        "ctx/Dockerfile",
        &format!("FROM busybox\nADD {url}#main /r\n"),
    );
    t.ok(&["build", "-q", &ctx_dir(&t)]);
    let out = t.run(&["build", "--progress", "plain", &ctx_dir(&t)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("#1 CACHED"));
    repo_with(&work, &[("f", "second\n", false)]);
    server.publish(&work, "r.git");
    let out = t.run(&["build", "--progress", "plain", "-t", "moved", &ctx_dir(&t)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("CACHED"), "{stderr}");
    assert_eq!(file_in(&t, "moved", "r/f").as_deref(), Some("second\n"));
}

#[test]
fn copy_of_a_git_url_is_refused_and_a_missing_ref_is_named() {
    let t = setup();
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    repo_with(&work, &[("f", "f\n", false)]);
    server.publish(&work, "r.git");
    let url = server.url("r.git");
    t.write("ctx/Dockerfile", &format!("FROM busybox\nCOPY {url} /r\n"));
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("source can't be a git ref for COPY"),
        "{err}"
    );
    t.write(
        "ctx/Dockerfile",
        &format!("FROM busybox\nADD {url}#nope /r\n"),
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(
        err.contains("Dockerfile:2") && err.contains("has no ref \"nope\""),
        "{err}"
    );
    t.ok(&["check"]);
}

#[test]
fn the_context_can_come_from_a_git_url() {
    let t = setup();
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    repo_with(
        &work,
        &[
            ("app/Dockerfile", "FROM busybox\nCOPY hello /hello\n", false),
            ("app/hello", "from git\n", false),
            (
                "app/other.Dockerfile",
                "FROM busybox\nCOPY hello /other\n",
                false,
            ),
        ],
    );
    server.publish(&work, "ctx.git");
    let url = format!("{}#main:app", server.url("ctx.git"));
    t.ok(&["build", "-q", "-t", "gitctx:1", &url]);
    assert_eq!(
        file_in(&t, "gitctx:1", "hello").as_deref(),
        Some("from git\n")
    );
    // -f names a file of the repository's context.
    t.ok(&[
        "build",
        "-q",
        "-t",
        "gitctx:2",
        "-f",
        "other.Dockerfile",
        &url,
    ]);
    assert_eq!(
        file_in(&t, "gitctx:2", "other").as_deref(),
        Some("from git\n")
    );
    let err = t.fails(&[
        "build",
        "-q",
        "-f",
        "../../../../../../../../../../etc/passwd",
        &url,
    ]);
    assert!(err.contains("outside the build context"), "{err}");
    // The checkout is gone after the build.
    let left: Vec<_> = std::fs::read_dir(t.root.path().join("tmp"))
        .expect("tmp")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// Runs `tare build ARGS` with `input` on its standard input.
pub(crate) fn build_with_stdin(
    t: &TestContext,
    args: &[&str],
    input: &[u8],
) -> std::process::Output {
    let mut child = t
        .tare()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = input.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = stdin.write_all(&input);
    });
    let out = child.wait_with_output().expect("wait");
    let _ = writer.join();
    out
}

#[test]
fn the_context_can_come_from_stdin_as_a_tar_or_a_dockerfile() {
    let t = setup();
    let ctx = tar_of(&[
        ("Dockerfile", "FROM busybox\nCOPY f /f\n"),
        ("f", "from the tar\n"),
        ("alt/Dockerfile", "FROM busybox\nCOPY f /alt\n"),
    ]);
    let out = build_with_stdin(&t, &["build", "-q", "-t", "stdin:tar", "-"], &ctx);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        file_in(&t, "stdin:tar", "f").as_deref(),
        Some("from the tar\n")
    );
    // Compressed, with -f inside it.
    let gz = {
        let mut child = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("gzip");
        let mut stdin = child.stdin.take().expect("stdin");
        let input = ctx.clone();
        let w = std::thread::spawn(move || stdin.write_all(&input));
        let out = child.wait_with_output().expect("gzip");
        w.join().expect("join").expect("write");
        out.stdout
    };
    let out = build_with_stdin(
        &t,
        &["build", "-q", "-t", "stdin:gz", "-f", "alt/Dockerfile", "-"],
        &gz,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        file_in(&t, "stdin:gz", "alt").as_deref(),
        Some("from the tar\n")
    );
    // Not an archive: a Dockerfile with an empty context.
    let out = build_with_stdin(
        &t,
        &["build", "-q", "-t", "stdin:df", "-"],
        b"FROM busybox\nRUN echo alone > /alone\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(file_in(&t, "stdin:df", "alone").as_deref(), Some("alone\n"));
    let out = build_with_stdin(
        &t,
        &["build", "-q", "-"],
        b"FROM busybox\nCOPY anything /x\n",
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("-:2: COPY anything"),
        "{err}"
    );
    // Both from standard input is refused.
    let out = build_with_stdin(&t, &["build", "-q", "-f", "-", "-"], b"FROM busybox\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("cannot both come from standard input"),
        "{err}"
    );
    t.ok(&["check"]);
}

#[test]
fn add_checksum_of_an_http_url_builds_when_right_and_fails_with_the_line_when_wrong() {
    let t = setup();
    let body = "checked content\n";
    let server = crate::util::http::Server::serve(2, body.as_bytes().to_vec(), None);
    let port = server.port;
    use sha2::Digest as _;
    let sum = |data: &[u8]| {
        let hex: String = sha2::Sha256::digest(data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("sha256:{hex}")
    };
    let (right, wrong) = (sum(body.as_bytes()), sum(b"other"));
    let dockerfile = |sum: &str| {
        format!(
            "FROM busybox\nRUN true\nADD --checksum={sum} http://127.0.0.1:{port}/f.txt /f.txt\n"
        )
    };
    t.write("ctx/Dockerfile", &dockerfile(&right));
    t.ok(&["build", "-q", "-t", "sum:http", &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "sum:http", "f.txt").as_deref(), Some(body));
    t.write("ctx/Dockerfile", &dockerfile(&wrong));
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(
        err.contains(&format!("is {right}, expected {wrong}")),
        "{err}"
    );
    server.join();
}
