//! Differential tests: each case under `tests/conformance/cases/NAME` is built by BuildKit
//! (`DOCKER_BUILDKIT=1 docker build`) and by `tare build`, and the two images must agree on the
//! flattened filesystem (path, type, mode, uid, gid, size, content hash, link target, xattrs),
//! the config fields users see, and the number of layers.
//!
//! Both images are flattened the same way: docker's image goes through `docker save` and
//! `tare load`, then both go through `tare export`. `docker_vs_docker_*` prove the comparison
//! itself: two BuildKit builds of one case compare equal, and a changed file is caught.
//!
//! A case may hold an `args` file: extra `build` arguments, one per line, given to both builders.

#[path = "../util/mod.rs"]
mod util;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use util::{docker, TestContext};

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/cases")
}

/// One entry of a flattened filesystem, without times.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    kind: String,
    mode: u32,
    uid: u64,
    gid: u64,
    size: u64,
    sha256: String,
    link: String,
    xattrs: BTreeMap<String, Vec<u8>>,
}

impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} mode={:o} uid={} gid={} size={} sha256={} link={:?} xattrs={:?}",
            self.kind,
            self.mode,
            self.uid,
            self.gid,
            self.size,
            &self.sha256[..self.sha256.len().min(12)],
            self.link,
            self.xattrs.keys().collect::<Vec<_>>()
        )
    }
}

type Tree = BTreeMap<String, Entry>;

/// Reads a rootfs tar into a path-keyed map. Hard links are resolved to their target's content
/// so that which of two linked names the exporter wrote first does not matter.
fn flatten(tar_path: &Path) -> Tree {
    let file = std::fs::File::open(tar_path).expect("open exported tar");
    let mut archive = tar::Archive::new(file);
    let mut tree = Tree::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let path = entry
            .path()
            .expect("entry path")
            .to_string_lossy()
            .into_owned();
        let path = normalize(&path);
        if path.is_empty() {
            continue;
        }
        let header = entry.header().clone();
        let kind = header.entry_type();
        let mut xattrs = BTreeMap::new();
        if let Ok(Some(exts)) = entry.pax_extensions() {
            for ext in exts.flatten() {
                if let Some(name) = ext.key().ok().and_then(|k| k.strip_prefix("SCHILY.xattr.")) {
                    xattrs.insert(name.to_string(), ext.value_bytes().to_vec());
                }
            }
        }
        let link = entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("entry content");
        let kind_name = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => "file",
            tar::EntryType::Directory => "dir",
            tar::EntryType::Symlink => "symlink",
            tar::EntryType::Link => "file",
            tar::EntryType::Char => "char",
            tar::EntryType::Block => "block",
            tar::EntryType::Fifo => "fifo",
            _ => "other",
        };
        let mut e = Entry {
            kind: kind_name.to_string(),
            mode: header.mode().expect("mode") & 0o7777,
            uid: header.uid().expect("uid"),
            gid: header.gid().expect("gid"),
            size: content.len() as u64,
            sha256: hex(&Sha256::digest(&content)),
            link: if kind == tar::EntryType::Symlink {
                link.clone()
            } else {
                String::new()
            },
            xattrs,
        };
        if kind == tar::EntryType::Link {
            let target = tree
                .get(&normalize(&link))
                .unwrap_or_else(|| {
                    panic!("{}: hard link {path} to missing {link}", tar_path.display())
                })
                .clone();
            e.size = target.size;
            e.sha256 = target.sha256;
        }
        tree.insert(path, e);
    }
    tree
}

fn normalize(path: &str) -> String {
    path.trim_start_matches("./")
        .trim_start_matches('/')
        .trim_end_matches('/')
        .to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The differences between two trees, one line each.
fn diff_trees(left: &Tree, right: &Tree) -> Vec<String> {
    let mut out = Vec::new();
    for (path, l) in left {
        match right.get(path) {
            None => out.push(format!("only in docker: /{path} ({l})")),
            Some(r) if r != l => out.push(format!("/{path}: docker {l}\n      tare   {r}")),
            Some(_) => {}
        }
    }
    for (path, r) in right {
        if !left.contains_key(path) {
            out.push(format!("only in tare: /{path} ({r})"));
        }
    }
    out
}

/// The config fields the comparison covers, and the layer count, from `tare inspect`.
fn summary(ctx: &TestContext, image: &str) -> (serde_json::Value, usize) {
    let json: serde_json::Value =
        serde_json::from_str(&ctx.ok(&["inspect", image])).expect("inspect json");
    let config = &json["config"]["config"];
    let mut picked = serde_json::Map::new();
    for key in [
        "Env",
        "Cmd",
        "Entrypoint",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "Volumes",
        "Labels",
        "StopSignal",
    ] {
        let value = config.get(key).cloned().unwrap_or(serde_json::Value::Null);
        // Docker writes absent and empty the same way in different places; compare meaning.
        let value = match value {
            serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
            serde_json::Value::Object(m) if m.is_empty() => serde_json::Value::Null,
            v => v,
        };
        picked.insert(key.to_string(), value);
    }
    let layers = json["layers"].as_array().map_or(0, Vec::len);
    (serde_json::Value::Object(picked), layers)
}

fn case_args(case: &Path) -> Vec<String> {
    match std::fs::read_to_string(case.join("args")) {
        Ok(text) => text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_string)
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Imports the same busybox rootfs into docker and into the test store as `busybox:latest`.
fn prepare_base(ctx: &TestContext) {
    prepare_tare_base(ctx);
    let tar = ctx.path().join("busybox-base.tar");
    let status = docker()
        .args(["import", tar.to_str().unwrap(), "busybox:latest"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("docker import");
    assert!(status.success(), "docker import of the busybox base failed");
}

/// Builds `case` with BuildKit as `tag`, then loads it into the test store.
fn docker_build(ctx: &TestContext, case: &Path, tag: &str, extra: &[String]) -> Result<(), String> {
    let out = docker()
        .env("DOCKER_BUILDKIT", "1")
        .args(["build", "--network=host", "--no-cache", "-q", "-t", tag])
        .args(extra)
        .arg(case)
        .output()
        .expect("docker build");
    if !out.status.success() {
        return Err(format!(
            "docker build failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let saved = ctx
        .path()
        .join(format!("{}.docker.tar", tag.replace([':', '/'], "_")));
    let status = docker()
        .args(["save", "-o"])
        .arg(&saved)
        .arg(tag)
        .status()
        .expect("docker save");
    assert!(status.success(), "docker save {tag}");
    ctx.ok(&["load", "-i", saved.to_str().unwrap()]);
    Ok(())
}

fn export(ctx: &TestContext, image: &str) -> Tree {
    let out = ctx
        .path()
        .join(format!("{}.fs.tar", image.replace([':', '/'], "_")));
    ctx.ok(&["export", image, "-o", out.to_str().unwrap()]);
    flatten(&out)
}

/// Compares two images in the store; returns the differences.
fn compare(ctx: &TestContext, docker_image: &str, tare_image: &str) -> Vec<String> {
    let mut problems = diff_trees(&export(ctx, docker_image), &export(ctx, tare_image));
    let (dc, dl) = summary(ctx, docker_image);
    let (tc, tl) = summary(ctx, tare_image);
    if dc != tc {
        problems.push(format!(
            "config differs:\n      docker {dc}\n      tare   {tc}"
        ));
    }
    if dl != tl {
        problems.push(format!("layer count differs: docker {dl}, tare {tl}"));
    }
    problems
}

fn all_cases() -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(cases_dir())
        .expect("cases dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    cases.sort();
    cases
}

#[test]
fn tare_builds_what_buildkit_builds() {
    let ctx = TestContext::new();
    prepare_base(&ctx);
    let cases = all_cases();
    assert!(
        cases.len() >= 30,
        "expected at least 30 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut passed = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let extra = case_args(case);
        let docker_tag = format!("conf-docker/{name}:latest");
        let tare_tag = format!("conf-tare/{name}:latest");
        if let Err(e) = docker_build(&ctx, case, &docker_tag, &extra) {
            failures.push(format!("{name}: {e}"));
            continue;
        }
        let mut args = vec![
            "build".to_string(),
            "-q".into(),
            "-t".into(),
            tare_tag.clone(),
        ];
        args.extend(extra.iter().cloned());
        args.push(case.to_string_lossy().into_owned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = ctx.run(&args);
        if !out.status.success() {
            failures.push(format!(
                "{name}: tare build failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
            continue;
        }
        let problems = compare(&ctx, &docker_tag, &tare_tag);
        if problems.is_empty() {
            passed += 1;
        } else {
            failures.push(format!("{name}:\n    {}", problems.join("\n    ")));
        }
    }
    println!("conformance: {passed} passed, {} failed", failures.len());
    assert!(
        failures.is_empty(),
        "differences from BuildKit:\n{}",
        failures.join("\n")
    );
}

#[test]
fn docker_vs_docker_builds_compare_equal() {
    let ctx = TestContext::new();
    prepare_base(&ctx);
    // Cases that exercise whiteouts, links, modes, ownership and config.
    for name in [
        "run-rm-whiteout",
        "run-symlinks-hardlinks",
        "copy-chown-chmod",
        "labels-expose-volume",
    ] {
        let case = cases_dir().join(name);
        let extra = case_args(&case);
        let a = format!("dvd-a/{name}:latest");
        let b = format!("dvd-b/{name}:latest");
        docker_build(&ctx, &case, &a, &extra).expect("first docker build");
        docker_build(&ctx, &case, &b, &extra).expect("second docker build");
        let problems = compare(&ctx, &a, &b);
        assert!(
            problems.is_empty(),
            "{name}: docker vs docker differs:\n{}",
            problems.join("\n")
        );
    }
}

#[test]
fn docker_vs_docker_catches_a_changed_file() {
    let ctx = TestContext::new();
    prepare_base(&ctx);
    let case = ctx.path().join("changed");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(case.join("Dockerfile"), "FROM busybox\nCOPY f /f\n").unwrap();
    std::fs::write(case.join("f"), "one\n").unwrap();
    docker_build(&ctx, &case, "dvd/changed-a:latest", &[]).expect("docker build a");
    std::fs::write(case.join("f"), "two\n").unwrap();
    docker_build(&ctx, &case, "dvd/changed-b:latest", &[]).expect("docker build b");
    let problems = compare(&ctx, "dvd/changed-a:latest", "dvd/changed-b:latest");
    assert!(
        problems.iter().any(|p| p.starts_with("/f:")),
        "a changed file was not reported: {problems:?}"
    );
}

/// Heredoc Dockerfiles that dockerd 20.10's BuildKit cannot parse without a frontend image:
/// tare's result is checked against the expected file contents instead.
#[test]
fn tare_only_cases_give_the_expected_files() {
    let ctx = TestContext::new();
    prepare_tare_base(&ctx);
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/tare-only");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tare-only dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.join("Dockerfile").is_file())
        .collect();
    cases.sort();
    assert!(!cases.is_empty());
    for case in cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let tag = format!("tare-only/{name}:latest");
        ctx.ok(&["build", "-q", "-t", &tag, case.to_str().unwrap()]);
        let tree = export(&ctx, &tag);
        for expected in std::fs::read_dir(case.join("expected")).expect("expected dir") {
            let expected = expected.expect("dir entry").path();
            let file = expected.file_name().unwrap().to_string_lossy().into_owned();
            let want = std::fs::read(&expected).unwrap();
            let got = tree
                .get(&file)
                .unwrap_or_else(|| panic!("{name}: /{file} missing"));
            assert_eq!(
                got.sha256,
                hex(&Sha256::digest(&want)),
                "{name}: /{file} differs from {}",
                expected.display()
            );
        }
    }
}

/// The busybox base in the test store only, for cases docker does not build.
fn prepare_tare_base(ctx: &TestContext) {
    let tar = ctx.path().join("busybox-base.tar");
    util::busybox_rootfs_tar(&tar);
    ctx.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
}
