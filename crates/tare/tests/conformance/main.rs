//! Differential tests: each case under `tests/conformance/cases/NAME` is built by current
//! BuildKit (Docker 28.5 with BuildKit 0.25 and its built-in Dockerfile 1.19 frontend, started by
//! `../shared/tools/modern-buildkit.sh`) and by `tare build`, and the two images must agree on
//! the flattened filesystem (path, type, mode, uid, gid, size, content hash, link target,
//! xattrs), the config fields users see, the history the Dockerfile wrote (each entry's text
//! and whether it made a layer), and the number of layers.
//!
//! Both images are flattened the same way: the reference image goes through `docker save` and
//! `tare load`, then both go through `tare export`. `docker_vs_docker_*` prove the comparison
//! itself: two BuildKit builds of one case compare equal, and a changed file is caught.
//!
//! A case may hold:
//! - `args`: extra `build` arguments, one per line, given to both builders;
//! - `expect-fail`: both builders must refuse the Dockerfile; the file's first line is the
//!   location tare's error must name (e.g. `Dockerfile:3`).
//!
//! The reference client is `$MODERN_DOCKER` (scripts/test.sh sources the start script, which
//! exports it); when it is unset the harness runs the start script itself from `../shared/tools`
//! beside the repository.

#[path = "../util/mod.rs"]
mod util;

mod rootless;
mod rootless_listing;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};
use util::TestContext;

fn cases_dir() -> PathBuf {
    repo_root().join("tests/conformance/cases")
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

/// The reference builder's client (see [`util::modern_docker_client`]).
fn reference_client() -> &'static Path {
    util::modern_docker_client()
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A command for the reference daemon (its client wrapper sets its own `DOCKER_HOST`).
fn reference() -> Command {
    let mut cmd = Command::new(reference_client());
    cmd.env_remove("DOCKER_HOST");
    cmd
}

/// Tags in the reference daemon are unique to this process: other test runs may share it.
fn reference_tag(tag: &str) -> String {
    format!("tare-conformance-{}/{tag}", std::process::id())
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
        "Shell",
        "OnBuild",
        "Healthcheck",
        "ArgsEscaped",
    ] {
        let value = config.get(key).cloned().unwrap_or(serde_json::Value::Null);
        // Docker writes absent and empty the same way in different places; compare meaning.
        let value = match value {
            serde_json::Value::Bool(false) => serde_json::Value::Null,
            serde_json::Value::String(s) if s.is_empty() => serde_json::Value::Null,
            serde_json::Value::Object(m) if m.is_empty() => serde_json::Value::Null,
            serde_json::Value::Array(a) if a.is_empty() => serde_json::Value::Null,
            v => v,
        };
        picked.insert(key.to_string(), value);
    }
    // The platform (`--platform` cases): empty and absent alike, as above.
    for key in ["architecture", "os", "variant"] {
        let value = match json["config"].get(key) {
            Some(serde_json::Value::String(s)) if !s.is_empty() => {
                serde_json::Value::String(s.clone())
            }
            _ => serde_json::Value::Null,
        };
        picked.insert(key.to_string(), value);
    }
    // The history the Dockerfile wrote (the base's own entries differ by how it was
    // imported): each entry's text and whether it made a layer.
    let history: Vec<serde_json::Value> = json["config"]["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .filter(|e| e["comment"] == "buildkit.dockerfile.v0")
                .map(|e| {
                    serde_json::json!([
                        e["created_by"],
                        e["empty_layer"].as_bool().unwrap_or(false)
                    ])
                })
                .collect()
        })
        .unwrap_or_default();
    picked.insert("history".to_string(), serde_json::Value::Array(history));
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

/// The location tare's error must name when the case must fail (`expect-fail`'s first line).
fn expected_failure(case: &Path) -> Option<String> {
    let text = std::fs::read_to_string(case.join("expect-fail")).ok()?;
    Some(text.lines().next().unwrap_or_default().trim().to_string())
}

/// Imports the same busybox rootfs into the reference daemon and into the test store as
/// `busybox:latest`.
fn prepare_base(ctx: &TestContext) {
    prepare_tare_base(ctx);
    let tar = ctx.path().join("busybox-base.tar");
    let status = reference()
        .args(["import", tar.to_str().unwrap(), "busybox:latest"])
        .stdout(std::process::Stdio::null())
        .status()
        .expect("docker import");
    assert!(status.success(), "docker import of the busybox base failed");
}

/// The busybox base in the test store.
fn prepare_tare_base(ctx: &TestContext) {
    let tar = ctx.path().join("busybox-base.tar");
    util::busybox_rootfs_tar(&tar);
    ctx.ok(&["import", tar.to_str().unwrap(), "busybox:latest"]);
}

/// Builds `case` with the reference BuildKit; on success saves it, loads it into the test store
/// as `tag` and removes it from the daemon. `Err` holds the build's stderr.
fn docker_build(ctx: &TestContext, case: &Path, tag: &str, extra: &[String]) -> Result<(), String> {
    let remote = reference_tag(tag);
    let out = reference()
        .args([
            "build",
            "--network",
            "none",
            "--no-cache",
            "-q",
            "-t",
            &remote,
        ])
        .args(extra)
        .arg(case)
        .output()
        .expect("docker build");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let saved = ctx
        .path()
        .join(format!("{}.docker.tar", tag.replace([':', '/'], "_")));
    let status = reference()
        .args(["save", "-o"])
        .arg(&saved)
        .arg(&remote)
        .status()
        .expect("docker save");
    assert!(status.success(), "docker save {remote}");
    let _ = reference()
        .args(["rmi", "-f", &remote])
        .stdout(std::process::Stdio::null())
        .status();
    ctx.ok(&["load", "-i", saved.to_str().unwrap()]);
    ctx.ok(&["tag", &remote, tag]);
    let _ = std::fs::remove_file(&saved);
    Ok(())
}

fn export(ctx: &TestContext, image: &str) -> Tree {
    let out = ctx
        .path()
        .join(format!("{}.fs.tar", image.replace([':', '/'], "_")));
    ctx.ok(&["export", image, "-o", out.to_str().unwrap()]);
    let tree = flatten(&out);
    let _ = std::fs::remove_file(&out);
    tree
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

/// Runs one case; `Err` describes how tare differs from BuildKit.
fn run_case(ctx: &TestContext, case: &Path) -> Result<(), String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let extra = case_args(case);
    let docker_tag = format!("conf-docker/{name}:latest");
    let tare_tag = format!("conf-tare/{name}:latest");
    let must_fail = expected_failure(case);
    let reference = docker_build(ctx, case, &docker_tag, &extra);
    let mut args = vec!["build", "-q", "-t", &tare_tag];
    args.extend(extra.iter().map(String::as_str));
    let case_arg = case.to_string_lossy();
    args.push(&case_arg);
    let out = ctx.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("panicked") {
        return Err(format!("tare panicked:\n{stderr}"));
    }
    match (must_fail, reference) {
        (Some(location), Err(_)) => {
            if out.status.success() {
                Err("BuildKit refuses this Dockerfile; tare built it".to_string())
            } else if !stderr.contains(&location) {
                Err(format!("tare's error does not name {location}:\n{stderr}"))
            } else {
                Ok(())
            }
        }
        (Some(_), Ok(())) => Err("expect-fail, but BuildKit built it".to_string()),
        (None, Err(e)) => Err(format!("BuildKit failed:\n{e}")),
        (None, Ok(())) => {
            if !out.status.success() {
                return Err(format!("tare build failed:\n{stderr}"));
            }
            let problems = compare(ctx, &docker_tag, &tare_tag);
            if problems.is_empty() {
                Ok(())
            } else {
                Err(problems.join("\n    "))
            }
        }
    }
}

#[test]
fn tare_builds_what_buildkit_builds() {
    let ctx = TestContext::new();
    prepare_base(&ctx);
    let cases = all_cases();
    // CONFORMANCE_FILTER=substring runs the matching cases only (for working on some cases).
    let filter = std::env::var("CONFORMANCE_FILTER").unwrap_or_default();
    assert!(
        !filter.is_empty() || cases.len() >= 150,
        "expected at least 150 cases, found {}",
        cases.len()
    );
    let mut failures = Vec::new();
    let mut passed = 0;
    for case in cases
        .iter()
        .filter(|c| c.to_string_lossy().contains(&filter))
    {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        match run_case(&ctx, case) {
            Ok(()) => passed += 1,
            Err(e) => failures.push(format!("{name}:\n    {e}")),
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
        "copy-chown-numeric",
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

#[test]
fn docker_vs_docker_catches_a_changed_config() {
    let ctx = TestContext::new();
    prepare_base(&ctx);
    let case = ctx.path().join("shell");
    std::fs::create_dir_all(&case).unwrap();
    std::fs::write(
        case.join("Dockerfile"),
        "FROM busybox\nSHELL [\"/bin/sh\", \"-c\"]\n",
    )
    .unwrap();
    docker_build(&ctx, &case, "dvd/shell-a:latest", &[]).expect("docker build a");
    std::fs::write(
        case.join("Dockerfile"),
        "FROM busybox\nSHELL [\"/bin/sh\", \"-ec\"]\n",
    )
    .unwrap();
    docker_build(&ctx, &case, "dvd/shell-b:latest", &[]).expect("docker build b");
    let problems = compare(&ctx, "dvd/shell-a:latest", "dvd/shell-b:latest");
    assert!(
        problems.iter().any(|p| p.starts_with("config differs")),
        "a changed SHELL was not reported: {problems:?}"
    );
}
