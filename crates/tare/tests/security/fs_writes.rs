//! COPY, ADD and WORKDIR writing into a step's tree through symlinks that the context, an
//! archive, an earlier source of the same step, an earlier RUN or a `--from` stage made.
//!
//! Every attack points its symlinks at a *host* directory holding canary files (outside the
//! store and the context) and then checks that the canaries are untouched, nothing new
//! appeared on the host, the host directory's mode did not change, and tare either built the
//! image with the files inside it or failed with an error naming what it refused.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::util::TestContext;

/// A host directory with canary files, and what it looked like at the start.
pub(crate) struct Canary {
    pub(crate) dir: PathBuf,
    before: BTreeMap<String, (u32, u64, Vec<u8>)>,
}

impl Canary {
    /// `dir/keep` (a file), `dir/victim/inner` (a directory with a file), mode 0700 dirs.
    pub(crate) fn new(t: &TestContext) -> Canary {
        let dir = t.path().join("host/dir");
        std::fs::create_dir_all(dir.join("victim")).expect("canary dir");
        std::fs::write(dir.join("keep"), "canary keep\n").expect("canary");
        std::fs::write(dir.join("victim/inner"), "canary inner\n").expect("canary");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let before = Canary::snapshot(&dir);
        Canary { dir, before }
    }

    fn snapshot(dir: &Path) -> BTreeMap<String, (u32, u64, Vec<u8>)> {
        let mut out = BTreeMap::new();
        fn walk(root: &Path, rel: &Path, out: &mut BTreeMap<String, (u32, u64, Vec<u8>)>) {
            let path = root.join(rel);
            let meta = std::fs::symlink_metadata(&path).expect("canary stat");
            let content = if meta.is_file() {
                std::fs::read(&path).expect("canary read")
            } else {
                Vec::new()
            };
            out.insert(
                rel.to_string_lossy().into_owned(),
                (meta.mode(), meta.nlink(), content),
            );
            if meta.is_dir() {
                for e in std::fs::read_dir(&path).expect("canary readdir") {
                    walk(root, &rel.join(e.expect("entry").file_name()), out);
                }
            }
        }
        walk(dir, Path::new(""), &mut out);
        out
    }

    pub(crate) fn path(&self) -> &str {
        self.dir.to_str().expect("utf-8 path")
    }

    /// The host directory is exactly as it was: same names, modes, link counts, contents.
    pub(crate) fn assert_intact(&self) {
        assert_eq!(
            Canary::snapshot(&self.dir),
            self.before,
            "the host directory {} changed",
            self.dir.display()
        );
    }
}

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    std::fs::create_dir_all(t.path().join("ctx")).expect("ctx dir");
    t
}

fn ctx(t: &TestContext) -> String {
    t.path().join("ctx").to_string_lossy().into_owned()
}

/// Builds `ctx/` as `tag`; returns Ok(()) or the stderr of a failed build.
fn build(t: &TestContext, tag: &str) -> Result<(), String> {
    let out = t.run(&["build", "-q", "-t", tag, &ctx(t)]);
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!err.contains("panicked"), "tare panicked:\n{err}");
        Err(err)
    }
}

/// Path -> (mode, content) of every entry of an image, through `tare export`.
fn image_files(t: &TestContext, image: &str) -> BTreeMap<String, (u32, Vec<u8>)> {
    let out = t
        .path()
        .join(format!("{}.tar", image.replace([':', '/'], "_")));
    t.ok(&["export", image, "-o", out.to_str().expect("utf-8")]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open export"));
    let mut files = BTreeMap::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let path = path.trim_start_matches("./").trim_matches('/').to_string();
        let mode = entry.header().mode().expect("mode");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read");
        files.insert(path, (mode, content));
    }
    files
}

#[test]
fn copy_through_a_symlink_from_an_earlier_source_stays_in_the_image() {
    let t = setup();
    let canary = Canary::new(&t);
    std::fs::create_dir_all(t.path().join("ctx/d1")).expect("d1");
    std::os::unix::fs::symlink(&canary.dir, t.path().join("ctx/d1/x")).expect("symlink");
    let file = t.write("ctx/d2/x/file", "pwned\n");
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o4755)).expect("setuid");
    t.write("ctx/Dockerfile", "FROM busybox\nCOPY d1 d2 /dst/\n");
    let outcome = build(&t, "attack:copy");
    canary.assert_intact();
    assert!(!canary.dir.join("file").exists());
    if outcome.is_ok() {
        let files = image_files(&t, "attack:copy");
        let (mode, content) = files.get("dst/x/file").expect("the file is in the image");
        assert_eq!(content, b"pwned\n");
        assert_eq!(mode & 0o7777, 0o4755, "setuid is kept inside the image");
    }
}

#[test]
fn copy_from_a_stage_through_its_symlinks_stays_in_the_image() {
    let t = setup();
    let canary = Canary::new(&t);
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox AS evil\n\
             RUN mkdir -p /d1 /d2/x /d2/victim && ln -s {dir} /d1/x && ln -s {dir} /d1/victim \
             && echo pwned > /d2/x/file && chmod 4755 /d2/x/file && echo gone > /d2/victim/inner\n\
             FROM busybox\n\
             COPY --from=evil /d1 /d2 /dst/\n",
            dir = canary.path()
        ),
    );
    let outcome = build(&t, "attack:from");
    canary.assert_intact();
    if outcome.is_ok() {
        let files = image_files(&t, "attack:from");
        let (mode, _) = files.get("dst/x/file").expect("the file is in the image");
        assert_eq!(mode & 0o7777, 0o4755);
        assert_eq!(
            files.get("dst/victim/inner").map(|f| f.1.as_slice()),
            Some(&b"gone\n"[..])
        );
    }
}

/// A tar with the given entries: (path, kind, content or link target).
pub(crate) fn tar_of(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(if *kind == tar::EntryType::Directory {
            0o755
        } else {
            0o644
        });
        h.set_mtime(1_600_000_000);
        // Names are written raw: the tar crate's helpers refuse `..` and absolute names.
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        match kind {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                let target = data.as_bytes();
                h.as_old_mut().linkname[..target.len()].copy_from_slice(target);
                h.set_size(0);
                h.set_cksum();
                b.append(&h, std::io::empty()).expect("append");
            }
            _ => {
                h.set_size(data.len() as u64);
                h.set_cksum();
                b.append(&h, data.as_bytes()).expect("append");
            }
        }
    }
    b.into_inner().expect("tar")
}

#[test]
fn add_tar_symlink_then_entry_below_it_never_deletes_on_the_host() {
    let t = setup();
    let canary = Canary::new(&t);
    let tar = tar_of(&[
        ("x", tar::EntryType::Symlink, canary.path()),
        ("x/victim", tar::EntryType::Regular, "replaced\n"),
        ("x/keep", tar::EntryType::Regular, "replaced\n"),
    ]);
    std::fs::write(t.path().join("ctx/evil.tar"), tar).expect("tar");
    t.write("ctx/Dockerfile", "FROM busybox\nADD evil.tar /dst/\n");
    let outcome = build(&t, "attack:addlink");
    canary.assert_intact();
    if let Err(e) = outcome {
        assert!(e.contains("evil.tar"), "the error names the archive:\n{e}");
    }
}

#[test]
fn add_tar_slip_absolute_names_and_hard_link_escapes_are_refused() {
    let t = setup();
    let canary = Canary::new(&t);
    let keep = canary.dir.join("keep");
    let keep = keep.to_str().expect("utf-8");
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "slip",
            tar_of(&[(
                "../../../../../../../../../../tmp/tare-slip",
                tar::EntryType::Regular,
                "x",
            )]),
        ),
        (
            "absolute",
            tar_of(&[(keep, tar::EntryType::Regular, "overwritten\n")]),
        ),
        (
            "hardlink-absolute",
            tar_of(&[("l", tar::EntryType::Link, keep)]),
        ),
        (
            "hardlink-up",
            tar_of(&[(
                "l",
                tar::EntryType::Link,
                "../../../../../../../../../../etc/passwd",
            )]),
        ),
        (
            "hardlink-through-symlink",
            tar_of(&[
                ("s", tar::EntryType::Symlink, canary.path()),
                ("l", tar::EntryType::Link, "s/keep"),
                ("l2", tar::EntryType::Regular, "x"),
            ]),
        ),
    ];
    for (name, tar) in cases {
        std::fs::write(t.path().join(format!("ctx/{name}.tar")), tar).expect("tar");
        t.write(
            "ctx/Dockerfile",
            &format!("FROM busybox\nADD {name}.tar /dst/\n"),
        );
        let outcome = build(&t, &format!("attack:{name}"));
        canary.assert_intact();
        assert!(!Path::new("/tmp/tare-slip").exists(), "{name}: slipped out");
        match outcome {
            Err(e) => assert!(e.contains(&format!("{name}.tar")), "{name}: {e}"),
            Ok(()) => {
                // Harmless success: an absolute name lands below /dst inside the image.
                let files = image_files(&t, &format!("attack:{name}"));
                if name == "absolute" {
                    let inside = format!("dst{keep}");
                    assert_eq!(
                        files.get(&inside).map(|f| f.1.as_slice()),
                        Some(&b"overwritten\n"[..]),
                        "{name}"
                    );
                }
            }
        }
    }
}

#[test]
fn copy_to_a_destination_symlinked_to_the_host_by_a_run_stays_in_the_image() {
    let t = setup();
    let canary = Canary::new(&t);
    t.write("ctx/f", "pwned\n");
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nRUN ln -s {dir} /dst && ln -s {dir}/victim /w\n\
             COPY f /dst/\nCOPY f /dst/victim/inner\nWORKDIR /w/sub\nADD f /w/\n",
            dir = canary.path()
        ),
    );
    build(&t, "attack:dest").expect("the build succeeds inside the image");
    canary.assert_intact();
    let files = image_files(&t, "attack:dest");
    let inside = canary.path().trim_start_matches('/');
    assert!(files.contains_key(&format!("{inside}/f")), "{files:?}");
    assert!(files.contains_key(&format!("{inside}/victim/sub")));
    assert_eq!(
        files
            .get(&format!("{inside}/victim/inner"))
            .map(|f| f.1.as_slice()),
        Some(&b"pwned\n"[..])
    );
}

/// A loopback HTTP server answering every request with `body`; returns its port.
fn serve(body: &'static [u8]) -> u16 {
    crate::util::http::Server::forever(|_| crate::util::http::Server::ok_response(body)).port
}

#[test]
fn add_url_names_cannot_climb_out_of_the_destination() {
    let t = setup();
    let canary = Canary::new(&t);
    let port = serve(b"downloaded\n");
    for path in ["x/..", "x/.", "..", "a%2F..%2F..%2Fescape", "%2e%2e"] {
        let url = format!("http://127.0.0.1:{port}/{path}");
        t.write(
            "ctx/Dockerfile",
            &format!("FROM busybox\nRUN mkdir /dst\nADD {url} /dst/\n"),
        );
        match build(&t, "attack:url") {
            Err(e) => {
                assert!(e.contains(&url), "the error names the URL:\n{e}");
                // A refusal, not an accident: the old code removed the step's directory
                // (`upper/dst/..`) and then failed to write into it.
                assert!(
                    !e.contains("os error") && !e.contains("/step-"),
                    "{path}: {e}"
                );
            }
            Ok(()) => {
                let files = image_files(&t, "attack:url");
                let added: Vec<_> = files
                    .keys()
                    .filter(|k| k.starts_with("dst/"))
                    .cloned()
                    .collect();
                assert_eq!(added.len(), 1, "{path}: one file below /dst: {added:?}");
            }
        }
        canary.assert_intact();
    }
}

#[test]
fn add_url_downloads_over_the_size_limit_fail_clearly() {
    let t = setup();
    let port = serve(&[b'z'; 64 << 10]);
    let url = format!("http://127.0.0.1:{port}/big.bin");
    t.write("ctx/Dockerfile", &format!("FROM busybox\nADD {url} /big\n"));
    let out = t.run(&[
        "build",
        "-q",
        "--max-download-size",
        "1KiB",
        "-t",
        "attack:big",
        &ctx(&t),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&url) && err.contains("1024"), "{err}");
    // Within the limit, the same download works.
    t.ok(&[
        "build",
        "-q",
        "--max-download-size",
        "1MiB",
        "-t",
        "attack:big",
        &ctx(&t),
    ]);
    let files = image_files(&t, "attack:big");
    assert_eq!(files.get("big").map(|f| f.1.len()), Some(64 << 10));
}
