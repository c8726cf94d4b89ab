//! Git sources and contexts from standard input: URLs that try to pass options to git or ssh
//! (`--upload-pack=`, `-c`, `ext::`, `-oProxyCommand`), subdirs that climb out of the
//! repository, repository symlinks that point at the host, submodules that read host
//! repositories, a server that never answers, a repository too big to check out, and a
//! context tar with `..` entries, absolute symlinks and hard links to host files.
//!
//! Each attack keeps canary files in a host directory outside the store and checks they are
//! untouched, and that tare failed with a clear error or built an image holding no host file.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::util::git::{git, repo_with, GitServer};
use crate::util::TestContext;

const SECRET: &str = "git-canary-51c2e8";

/// A host directory whose files must stay as they are and never reach an image.
struct Canary {
    dir: PathBuf,
    before: BTreeMap<PathBuf, Vec<u8>>,
}

impl Canary {
    fn new(t: &TestContext) -> Canary {
        let dir = t.path().join("host/secret");
        std::fs::create_dir_all(&dir).expect("canary dir");
        std::fs::write(dir.join("keep"), SECRET).expect("canary");
        let before = Canary::snapshot(&dir);
        Canary { dir, before }
    }

    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        let mut out = BTreeMap::new();
        for e in std::fs::read_dir(dir).expect("canary readdir") {
            let p = e.expect("entry").path();
            out.insert(p.clone(), std::fs::read(&p).unwrap_or_default());
        }
        out
    }

    fn assert_intact(&self, what: &str) {
        assert_eq!(
            Canary::snapshot(&self.dir),
            self.before,
            "{what}: the host canary changed"
        );
    }
}

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    std::fs::create_dir_all(t.path().join("ctx")).expect("ctx dir");
    t
}

/// Builds `ctx/` as `tag` with `extra` flags: Ok, or the stderr of a failed build.
fn build(t: &TestContext, tag: &str, extra: &[&str]) -> Result<(), String> {
    let ctx = t.path().join("ctx");
    let args = [
        &["build", "-q", "-t", tag][..],
        extra,
        &[ctx.to_str().expect("utf-8")],
    ]
    .concat();
    let out = t.run(&args);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!err.contains("panicked"), "tare panicked:\n{err}");
    if out.status.success() {
        Ok(())
    } else {
        Err(err)
    }
}

/// Whether any file of the image's export holds `needle`.
fn image_holds(t: &TestContext, image: &str, needle: &str) -> bool {
    let out = t.path().join("image.tar");
    t.ok(&["export", image, "-o", out.to_str().expect("utf-8")]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open export"));
    for entry in archive.entries().expect("entries") {
        let mut data = Vec::new();
        entry.expect("entry").read_to_end(&mut data).expect("read");
        if data.windows(needle.len()).any(|w| w == needle.as_bytes()) {
            return true;
        }
    }
    false
}

#[test]
fn git_urls_that_would_pass_options_to_git_or_ssh_are_refused() {
    let t = setup();
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    repo_with(&work, &[("f", "f\n", false)]);
    server.publish(&work, "r.git");
    let url = server.url("r.git");
    let pwned = t.path().join("pwned");
    let p = pwned.to_str().expect("utf-8");
    for source in [
        format!("{url}#--upload-pack=touch {p}"),
        format!("{url}?ref=--upload-pack=touch%20{p}"),
        format!("{url}#-cprotocol.ext.allow=always"),
        format!("{url}#main:--upload-pack=touch {p}"),
        format!("ssh://-oProxyCommand=touch {p}/r.git"),
        "git@-oProxyCommand:r.git".to_string(),
        format!("ext::sh -c touch% {p}"),
        format!("https://127.0.0.1:1/r.git?upload-pack=touch%20{p}"),
    ] {
        // The JSON form keeps spaces inside one source.
        t.write(
            "ctx/Dockerfile",
            &format!("FROM busybox\nADD [\"{source}\", \"/r\"]\n"),
        );
        let err = build(&t, "inject", &[]).expect_err(&source);
        assert!(err.contains("Dockerfile:2"), "{source}: {err}");
        assert!(!pwned.exists(), "{source}: git ran the injected command");
    }
}

#[test]
fn subdirs_and_symlinks_that_leave_the_repository_are_refused() {
    let t = setup();
    let canary = Canary::new(&t);
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    std::fs::create_dir_all(&work).expect("work");
    std::os::unix::fs::symlink(&canary.dir, work.join("abs")).expect("symlink");
    std::os::unix::fs::symlink("../../../../../../../../..", work.join("up")).expect("symlink");
    repo_with(&work, &[("f", "f\n", false)]);
    server.publish(&work, "r.git");
    let url = server.url("r.git");
    let host_rel = format!("../../../../../../../..{}", canary.dir.display());
    for (source, want) in [
        (format!("{url}#main:{host_rel}"), "\"..\" component"),
        (format!("{url}?subdir=../.."), "\"..\" component"),
        (format!("{url}#main:abs"), "leads outside the repository"),
        (
            format!("{url}#main:up/{}", canary.dir.display()),
            "leads outside the repository",
        ),
    ] {
        t.write(
            "ctx/Dockerfile",
            &format!("FROM busybox\nADD {source} /r\n"),
        );
        let err = build(&t, "subdir", &[]).expect_err(&source);
        assert!(
            err.contains("Dockerfile:2") && err.contains(want),
            "{source}: {err}"
        );
        canary.assert_intact(&source);
    }
}

#[test]
fn repository_symlinks_to_the_host_are_copied_as_links_and_never_followed() {
    let t = setup();
    let canary = Canary::new(&t);
    let server = GitServer::start(&t.path().join("srv"));
    let links = t.path().join("links");
    std::fs::create_dir_all(&links).expect("links");
    std::os::unix::fs::symlink(&canary.dir, links.join("esc")).expect("symlink");
    std::os::unix::fs::symlink("../../../../../../../..", links.join("up")).expect("symlink");
    std::os::unix::fs::symlink(canary.dir.join("keep"), links.join("keep")).expect("symlink");
    repo_with(&links, &[("readme", "links\n", false)]);
    server.publish(&links, "links.git");
    let writer = t.path().join("writer");
    repo_with(
        &writer,
        &[("pwned", "overwritten\n", false), ("keep", "x\n", false)],
    );
    server.publish(&writer, "writer.git");
    // The second ADD writes through the first one's links: inside the image at most.
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nADD {} /dest\nADD {} /dest/esc/\nADD {} /dest/up/{}/\n",
            server.url("links.git"),
            server.url("writer.git"),
            server.url("writer.git"),
            canary.dir.display()
        ),
    );
    match build(&t, "links", &[]) {
        Ok(()) => assert!(
            !image_holds(&t, "links", SECRET),
            "the image holds a host file"
        ),
        Err(err) => assert!(err.contains("Dockerfile:"), "{err}"),
    }
    canary.assert_intact("repository symlinks");
}

#[test]
fn submodules_cannot_fetch_host_repositories() {
    let t = setup();
    let canary = Canary::new(&t);
    let server = GitServer::start(&t.path().join("srv"));
    // A repository on the host that the submodule names with a file:// URL.
    let host_repo = canary.dir.join("repo");
    repo_with(&host_repo, &[("secret", SECRET, false)]);
    let canary = Canary::new(&t);
    let work = t.path().join("work");
    repo_with(&work, &[("f", "f\n", false)]);
    git(
        &work,
        &[
            "submodule",
            "add",
            "-q",
            &format!("file://{}", host_repo.display()),
            "sub",
        ],
    );
    git(&work, &["commit", "-q", "-m", "sub"]);
    server.publish(&work, "r.git");
    t.write(
        "ctx/Dockerfile",
        &format!("FROM busybox\nADD {} /r\n", server.url("r.git")),
    );
    match build(&t, "submodule", &[]) {
        Ok(()) => assert!(
            !image_holds(&t, "submodule", SECRET),
            "the image holds a host file"
        ),
        Err(err) => assert!(
            err.contains("Dockerfile:2") && err.contains("submodule"),
            "{err}"
        ),
    }
    // submodules=false skips them, as in BuildKit.
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nADD {}?submodules=false /r\n",
            server.url("r.git")
        ),
    );
    build(&t, "nosub", &[]).expect("submodules=false");
    assert!(!image_holds(&t, "nosub", SECRET));
    canary.assert_intact("submodules");
}

#[test]
fn a_silent_server_and_a_huge_repository_are_bounded() {
    let t = setup();
    // Accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    t.write(
        "ctx/Dockerfile",
        &format!("FROM busybox\nADD git://127.0.0.1:{port}/r.git#main /r\n"),
    );
    let err = build(&t, "silent", &["--git-timeout", "2"]).expect_err("silent server");
    assert!(
        err.contains("Dockerfile:2") && err.contains("did not finish within 2 s"),
        "{err}"
    );
    // A checkout larger than --max-download-size is refused before it is written.
    let server = GitServer::start(&t.path().join("srv"));
    let work = t.path().join("work");
    let big = "x".repeat(200_000);
    repo_with(&work, &[("big", &big, false)]);
    server.publish(&work, "big.git");
    t.write(
        "ctx/Dockerfile",
        &format!("FROM busybox\nADD {} /r\n", server.url("big.git")),
    );
    let err = build(&t, "big", &["--max-download-size", "100KB"]).expect_err("big repo");
    assert!(
        err.contains("Dockerfile:2") && err.contains("more than the limit"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(t.root.path().join("tmp"))
        .expect("tmp")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A tar entry: kind, name, link target, content.
type RawEntry = (tar::EntryType, String, String, Vec<u8>);

/// A tar entry whose name is written as it is (the tar crate refuses `..` names).
fn raw_entry(
    b: &mut tar::Builder<Vec<u8>>,
    kind: tar::EntryType,
    name: &str,
    link: &str,
    data: &[u8],
) {
    let mut h = tar::Header::new_old();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(data.len() as u64);
    h.set_cksum();
    b.append(&h, data).expect("append");
}

#[test]
fn a_context_tar_on_stdin_cannot_write_outside_its_directory() {
    let t = setup();
    let canary = Canary::new(&t);
    let host = canary.dir.to_str().expect("utf-8");
    let keep = format!("{host}/keep");
    let cases: Vec<(&str, Vec<RawEntry>)> = vec![
        (
            "dot-dot entries",
            vec![(
                tar::EntryType::Regular,
                format!("../../../../../..{host}/keep"),
                String::new(),
                b"pwned".to_vec(),
            )],
        ),
        (
            "an absolute symlink, then a file through it",
            vec![
                (
                    tar::EntryType::Symlink,
                    "abs".into(),
                    host.to_string(),
                    Vec::new(),
                ),
                (
                    tar::EntryType::Regular,
                    "abs/keep".into(),
                    String::new(),
                    b"pwned".to_vec(),
                ),
            ],
        ),
        (
            "a hard link to a host file",
            vec![(tar::EntryType::Link, "hl".into(), keep.clone(), Vec::new())],
        ),
    ];
    for (what, entries) in cases {
        let mut b = tar::Builder::new(Vec::new());
        let df = b"FROM busybox\nCOPY . /c/\n";
        raw_entry(&mut b, tar::EntryType::Regular, "Dockerfile", "", df);
        for (kind, name, link, data) in &entries {
            raw_entry(&mut b, *kind, name, link, data);
        }
        let archive = b.into_inner().expect("tar");
        let mut child = t
            .tare()
            .args(["build", "-q", "-t", "stdin-attack", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || stdin.write_all(&archive));
        let out = child.wait_with_output().expect("wait");
        let _ = writer.join();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("panicked"), "{what}: {err}");
        if out.status.success() {
            assert!(
                !image_holds(&t, "stdin-attack", SECRET),
                "{what}: the image holds a host file"
            );
        } else {
            assert!(err.contains("standard input"), "{what}: {err}");
        }
        canary.assert_intact(what);
    }
    t.ok(&["check"]);
    let left: Vec<_> = std::fs::read_dir(t.root.path().join("tmp"))
        .expect("tmp")
        .flatten()
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
