//! CLI tests for the image store and the image commands: import, load, save, images,
//! history, inspect, export, tag, rmi, prune, check; against docker, skopeo and umoci.

#[path = "../util/mod.rs"]
mod util;

mod cli_habits;
mod import_change;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};

use sha2::Digest as _;
use util::{busybox_rootfs_tar, docker, docker_disabled, TestContext};

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}):\n{text}"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// path -> (type, mode, uid, gid, content sha256 or link target) for every entry of a tar,
/// with paths normalised (no `./`, no trailing `/`).
fn tar_listing(path: &Path) -> BTreeMap<String, String> {
    let file = std::fs::File::open(path).expect("open tar");
    let mut archive = tar::Archive::new(file);
    let mut out = BTreeMap::new();
    for entry in archive.entries().expect("tar entries") {
        let mut entry = entry.expect("tar entry");
        let p = entry
            .path()
            .expect("path")
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if p.is_empty() || p == "." {
            continue;
        }
        let h = entry.header().clone();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("read entry");
        let what = match h.entry_type() {
            tar::EntryType::Symlink => format!(
                "-> {}",
                entry
                    .link_name()
                    .ok()
                    .flatten()
                    .unwrap_or_default()
                    .display()
            ),
            tar::EntryType::Link => "hardlink".to_string(),
            _ => hex(&sha2::Sha256::digest(&content)),
        };
        let kind = if h.entry_type() == tar::EntryType::Link {
            tar::EntryType::Regular
        } else {
            h.entry_type()
        };
        out.insert(
            p,
            format!(
                "{kind:?} {:o} {}:{} {what}",
                h.mode().unwrap_or(0) & 0o7777,
                h.uid().unwrap_or(0),
                h.gid().unwrap_or(0)
            ),
        );
    }
    out
}

/// Docker's size for a layer tar, summed with the tar crate: regular files' lengths plus
/// symlink targets' lengths; hard links, directories and devices add nothing.
fn tar_content_size(path: &Path) -> u64 {
    let file = std::fs::File::open(path).expect("open tar");
    let mut archive = tar::Archive::new(file);
    let mut total = 0;
    for entry in archive.entries().expect("tar entries") {
        let entry = entry.expect("tar entry");
        total += match entry.header().entry_type() {
            tar::EntryType::Regular => entry.size(),
            tar::EntryType::Symlink => entry.link_name_bytes().map_or(0, |l| l.len() as u64),
            _ => 0,
        };
    }
    total
}

/// What `du --apparent-size -b` minus directories gives for a tree, which is how docker's
/// overlay2 driver sizes a layer: lstat sizes of non-directories, each inode once.
fn tree_content_size(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    fn walk(p: &Path, seen: &mut std::collections::HashSet<(u64, u64)>) -> u64 {
        let mut total = 0;
        for e in std::fs::read_dir(p).expect("read_dir") {
            let path = e.expect("dir entry").path();
            let m = std::fs::symlink_metadata(&path).expect("lstat");
            if m.is_dir() {
                total += walk(&path, seen);
            } else if seen.insert((m.dev(), m.ino())) {
                total += m.len();
            }
        }
        total
    }
    walk(dir, &mut Default::default())
}

/// Imports a tar made with GNU tar from `build(dir)` and returns (tar size, listed size).
fn import_tree(t: &TestContext, name: &str, build: impl FnOnce(&Path)) -> (u64, u64) {
    let dir = t.path().join(format!("{name}-tree"));
    std::fs::create_dir_all(&dir).unwrap();
    build(&dir);
    let tar = t.path().join(format!("{name}.tar"));
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&dir)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    t.ok(&["import", tar.to_str().unwrap(), name]);
    let images = json(&t.ok(&["images", "--format", "json"]));
    let row = images
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["repository"] == name)
        .unwrap_or_else(|| panic!("{name} listed: {images}"))
        .clone();
    (
        std::fs::metadata(&tar).unwrap().len(),
        row["size"].as_u64().unwrap(),
    )
}

#[test]
fn sizes_are_docker_content_sizes_not_tar_sizes() {
    let t = TestContext::new();
    // A directory-only layer (what WORKDIR makes): docker shows 0B, its tar is 1.5kB.
    let (tar, size) = import_tree(&t, "workdir", |d| {
        std::fs::create_dir_all(d.join("app/src")).unwrap();
    });
    assert!(tar >= 1536);
    assert_eq!(size, 0);
    // A symlink-only layer counts the target's length, as lstat reports.
    let (_, size) = import_tree(&t, "symlink", |d| {
        std::os::unix::fs::symlink("/usr/lib/target-of-the-link", d.join("link")).unwrap();
    });
    assert_eq!(size, "/usr/lib/target-of-the-link".len() as u64);
    // Hard-linked files count once; long names and long link targets add nothing extra.
    let (_, size) = import_tree(&t, "links", |d| {
        let long = d.join("n".repeat(150));
        std::fs::create_dir(&long).unwrap();
        std::fs::write(long.join("f".repeat(120)), vec![1u8; 10_000]).unwrap();
        std::fs::hard_link(long.join("f".repeat(120)), d.join("hard")).unwrap();
        std::os::unix::fs::symlink("t".repeat(300), d.join("long-link")).unwrap();
    });
    assert_eq!(size, 10_000 + 300);
    table_shows(&t, "workdir", "0B");
}

fn table_shows(t: &TestContext, repo: &str, size: &str) {
    let table = t.ok(&["images"]);
    let line = table
        .lines()
        .find(|l| l.starts_with(repo))
        .unwrap_or_else(|| panic!("{repo} in\n{table}"));
    assert!(line.contains(&format!("   {size}   ")), "{line}");
    let history = t.ok(&["history", repo]);
    assert!(
        history
            .lines()
            .nth(1)
            .unwrap()
            .contains(&format!("   {size}   ")),
        "{history}"
    );
}

#[test]
fn imported_rootfs_size_is_the_extracted_trees_apparent_size() {
    let t = TestContext::new();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar);
    let tree = t.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    run_ok(
        Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&tree),
    );
    let want = tree_content_size(&tree);
    assert_eq!(want, tar_content_size(&tar));
    for (name, compress) in [("plain", None), ("gz", Some("gzip")), ("zst", Some("zstd"))] {
        let input = match compress {
            None => tar.clone(),
            Some(tool) => {
                run_ok(Command::new(tool).args(["-k", "-f"]).arg(&tar));
                let ext = if tool == "gzip" { "gz" } else { "zst" };
                tar.with_extension(format!("tar.{ext}"))
            }
        };
        t.ok(&["import", input.to_str().unwrap(), name]);
        let inspect = json(&t.ok(&["inspect", name]));
        assert_eq!(inspect["size"].as_u64(), Some(want), "{name}");
    }
    let history = json(&t.ok(&["history", "plain", "--format", "json"]));
    assert_eq!(history[0]["layer_size"].as_u64(), Some(want));
}

#[test]
fn a_layer_record_without_a_content_size_is_sized_from_the_blob_and_recorded() {
    let t = TestContext::new();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar);
    t.ok(&[
        "import",
        "--compression",
        "gzip",
        tar.to_str().unwrap(),
        "old",
    ]);
    let want = tar_content_size(&tar);
    // Stores written before tare kept content sizes (and pulls) have records without one.
    let layers = t.root.path().join("layers");
    let mut records = 0;
    for e in std::fs::read_dir(&layers).unwrap() {
        let path = e.unwrap().path();
        let mut record = json(&std::fs::read_to_string(&path).unwrap());
        assert!(record["content_size"].is_u64(), "{record}");
        record.as_object_mut().unwrap().remove("content_size");
        std::fs::write(&path, record.to_string()).unwrap();
        records += 1;
    }
    assert_eq!(records, 1);
    let images = json(&t.ok(&["images", "--format", "json"]));
    assert_eq!(images[0]["size"].as_u64(), Some(want));
    for e in std::fs::read_dir(&layers).unwrap() {
        let record = json(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        assert_eq!(
            record["content_size"].as_u64(),
            Some(want),
            "recorded again"
        );
    }
    check_clean(&t);
}

#[test]
fn docker_import_and_tare_import_report_the_same_size_in_bytes() {
    if !require_docker() {
        return;
    }
    let t = TestContext::new();
    let tree = t.path().join("tree");
    util::busybox_rootfs(&tree);
    // Long names, a long link target and a hard link, beside busybox's applet links.
    let long = tree.join("d".repeat(120));
    std::fs::create_dir_all(&long).unwrap();
    std::fs::write(long.join("f".repeat(110)), vec![9u8; 12_345]).unwrap();
    std::fs::hard_link(long.join("f".repeat(110)), tree.join("hard")).unwrap();
    std::os::unix::fs::symlink("x".repeat(250), tree.join("long-link")).unwrap();
    let tar = t.path().join("rootfs.tar");
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&tree)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    let tag = format!("tare-size-test:{}", std::process::id());
    run_ok(docker().arg("import").arg(&tar).arg(&tag));
    let docker_size = run_ok(docker().args(["image", "inspect", "--format", "{{.Size}}", &tag]));
    run_ok(docker().args(["rmi", &tag]));
    t.ok(&["import", tar.to_str().unwrap(), "mine"]);
    let images = json(&t.ok(&["images", "--format", "json"]));
    assert_eq!(
        images[0]["size"].as_u64(),
        Some(docker_size.trim().parse::<u64>().unwrap())
    );
}

#[test]
fn built_layers_have_the_sizes_docker_build_gives_them() {
    if !require_docker() {
        return;
    }
    let t = TestContext::new();
    let base = format!("tare-size-base-{}", std::process::id());
    let tar = t.path().join("base.tar");
    busybox_rootfs_tar(&tar);
    run_ok(docker().arg("import").arg(&tar).arg(&base));
    t.ok(&["import", tar.to_str().unwrap(), &base]);
    let ctx = t.path().join("ctx");
    std::fs::create_dir_all(ctx.join("data")).unwrap();
    std::fs::write(ctx.join("data/a"), vec![5u8; 12_345]).unwrap();
    std::os::unix::fs::symlink("a", ctx.join("data/link")).unwrap();
    // WORKDIR (a directory only: 0B), a file plus a symlink and a hard link to it, a whiteout
    // beside a small file, a COPY, and a config-only step.
    std::fs::write(
        ctx.join("Dockerfile"),
        format!(
            "FROM {base}\nWORKDIR /app/deep\n\
             RUN dd if=/dev/zero of=/big bs=1k count=300 && ln -s /big /app/biglink && ln /big /app/hard\n\
             RUN rm /big && echo x > /app/x\nCOPY data /data\nENV A=1\n"
        ),
    )
    .unwrap();
    let tag = format!("tare-size-built:{}", std::process::id());
    let built = docker()
        .env("DOCKER_BUILDKIT", "0")
        .args(["build", "-q", "-t", &tag])
        .arg(&ctx)
        .output()
        .unwrap();
    assert!(
        built.status.success(),
        "{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let docker_sizes: Vec<u64> =
        run_ok(docker().args(["history", "--human=false", "--format", "{{.Size}}", &tag]))
            .lines()
            .map(|l| l.trim().parse().unwrap())
            .collect();
    let docker_total = run_ok(docker().args(["image", "inspect", "--format", "{{.Size}}", &tag]));
    let docker_total: u64 = docker_total.trim().parse().unwrap();
    // The same image saved by docker and loaded: its layers are sized as they are ingested.
    let saved = t.path().join("saved.tar");
    run_ok(docker().args(["save", "-o"]).arg(&saved).arg(&tag));
    run_ok(docker().args(["rmi", &tag, &base]));
    t.ok(&["load", "-i", saved.to_str().unwrap()]);
    let loaded = json(&t.ok(&["inspect", &tag]));
    assert_eq!(loaded["size"].as_u64(), Some(docker_total));
    t.ok(&["build", "-q", "-t", "built", ctx.to_str().unwrap()]);
    let history = json(&t.ok(&["history", "built", "--format", "json"]));
    let tare_sizes: Vec<u64> = history
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["layer_size"].as_u64().unwrap())
        .collect();
    assert_eq!(tare_sizes, docker_sizes);
    assert_eq!(history[0]["image_size"].as_u64(), Some(docker_total));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn check_clean(t: &TestContext) {
    let out = t.run(&["check"]);
    assert!(
        out.status.success(),
        "tare check found problems:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

fn require_docker() -> bool {
    if docker_disabled() {
        eprintln!("skipped: TARE_TEST_NO_DOCKER=1");
        return false;
    }
    true
}

#[test]
fn import_records_sizes_history_and_config_changes() {
    let t = TestContext::new();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar);
    let tar_size = std::fs::metadata(&tar).unwrap().len();
    let id = t.ok(&[
        "import",
        tar.to_str().unwrap(),
        "busybox",
        "--change",
        "CMD [\"sh\"]",
        "--change",
        "ENV A=1 B=\"two words\"",
        "--change",
        "WORKDIR /root",
    ]);
    let id = id.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let inspect = json(&t.ok(&["inspect", "busybox"]));
    assert_eq!(inspect["id"], id);
    assert_eq!(inspect["repo_tags"], serde_json::json!(["busybox:latest"]));
    assert_eq!(
        inspect["config"]["config"]["Cmd"],
        serde_json::json!(["sh"])
    );
    assert_eq!(
        inspect["config"]["config"]["Env"],
        serde_json::json!(["A=1", "B=two words"])
    );
    assert_eq!(inspect["config"]["config"]["WorkingDir"], "/root");
    let layer = &inspect["layers"][0];
    assert_eq!(layer["size"].as_u64(), Some(tar_size));
    // A plain tar is stored as given: its digest is its diffID.
    assert_eq!(layer["digest"], layer["diff_id"]);
    assert_eq!(inspect["config"]["rootfs"]["diff_ids"][0], layer["diff_id"]);
    let want = format!(
        "sha256:{}",
        hex(&sha2::Sha256::digest(std::fs::read(&tar).unwrap()))
    );
    assert_eq!(layer["diff_id"], want.as_str());

    // Listings show docker's size: file content, not the tar's headers and padding.
    let content = tar_content_size(&tar);
    assert!(content < tar_size);
    assert_eq!(layer["content_size"].as_u64(), Some(content));
    assert_eq!(inspect["size"].as_u64(), Some(content));
    assert_eq!(inspect["tar_size"].as_u64(), Some(tar_size));

    let history = json(&t.ok(&["history", "busybox", "--format", "json"]));
    assert_eq!(history[0]["layer_size"].as_u64(), Some(content));
    assert_eq!(history[0]["image_size"].as_u64(), Some(content));
    assert_eq!(history[0]["empty_layer"], false);
    assert!(history[0]["comment"]
        .as_str()
        .unwrap()
        .contains("rootfs.tar"));
    let table = t.ok(&["history", "busybox"]);
    assert!(
        table.starts_with("IMAGE") && table.contains("LAYER SIZE") && table.contains("IMAGE SIZE"),
        "{table}"
    );

    let images = json(&t.ok(&["images", "--format", "json"]));
    assert_eq!(images[0]["repository"], "busybox");
    assert_eq!(images[0]["tag"], "latest");
    assert_eq!(images[0]["size"].as_u64(), Some(content));
    check_clean(&t);
}

#[test]
fn images_count_shared_and_unique_sizes_like_docker_system_df() {
    let t = TestContext::new();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar);
    t.ok(&["import", tar.to_str().unwrap(), "one:latest"]);
    let out = t.ok(&["images", "--format", "json"]);
    assert_eq!(json(&out)[0]["shared_size"].as_u64(), Some(0));
    // The same rootfs imported again is the same diff: stored once and shared.
    // (A different config, so the two are different images even within the same second.)
    t.ok(&[
        "import",
        tar.to_str().unwrap(),
        "two:latest",
        "--change",
        "CMD [\"true\"]",
    ]);
    let rows = json(&t.ok(&["images", "--format", "json"]));
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        assert_eq!(r["shared_size"], r["size"], "{r}");
        assert_eq!(r["unique_size"].as_u64(), Some(0));
    }
    let table = t.ok(&["images"]);
    assert!(
        table.lines().next().unwrap().contains("SHARED SIZE"),
        "{table}"
    );
}

#[test]
fn references_normalise_like_docker_and_resolve_by_id_and_digest() {
    let t = TestContext::new();
    t.import_busybox("busybox");
    let inspect = json(&t.ok(&["inspect", "docker.io/library/busybox:latest"]));
    let id = inspect["id"].as_str().unwrap().to_string();
    let manifest = inspect["manifest_digest"].as_str().unwrap().to_string();
    for name in [
        "busybox",
        "busybox:latest",
        "library/busybox",
        &id,
        &id[7..19],
        &format!("busybox@{manifest}"),
    ] {
        assert_eq!(json(&t.ok(&["inspect", name]))["id"], id.as_str(), "{name}");
    }
    let err = t.fails(&["inspect", "Busybox"]);
    assert!(err.contains("invalid reference"), "{err}");
    let err = t.fails(&["inspect", "nothere"]);
    assert!(err.contains("no such image"), "{err}");
}

#[test]
fn tag_rmi_and_prune_free_only_unreferenced_blobs() {
    let t = TestContext::new();
    t.import_busybox("a:1");
    t.ok(&["tag", "a:1", "localhost:5000/b:2"]);
    let inspect = json(&t.ok(&["inspect", "localhost:5000/b:2"]));
    assert_eq!(
        inspect["repo_tags"],
        serde_json::json!(["a:1", "localhost:5000/b:2"])
    );
    let out = t.ok(&["rmi", "a:1"]);
    assert!(
        out.contains("Untagged: a:1") && !out.contains("Deleted"),
        "{out}"
    );
    let out = t.ok(&["prune"]);
    assert!(out.contains("Total reclaimed space: 0B"), "{out}");
    let out = t.ok(&["rmi", "localhost:5000/b:2"]);
    assert!(out.contains("Deleted: sha256:"), "{out}");
    assert_eq!(
        json(&t.ok(&["images", "--format", "json"])),
        serde_json::json!([])
    );
    let out = t.ok(&["prune"]);
    assert!(out.contains("3 blobs"), "{out}");
    let blobs = std::fs::read_dir(t.root.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
    check_clean(&t);
}

#[test]
fn check_reports_a_corrupt_blob_by_digest() {
    let t = TestContext::new();
    t.import_busybox("busybox");
    let inspect = json(&t.ok(&["inspect", "busybox"]));
    let digest = inspect["layers"][0]["digest"].as_str().unwrap().to_string();
    let path = t.root.path().join("blobs/sha256").join(&digest[7..]);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
    let out = t.run(&["check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&digest) && stdout.contains("corrupt"),
        "{stdout}"
    );
    // Reading it fails too, naming the digest.
    let err = t.fails(&[
        "export",
        "busybox",
        "-o",
        t.path().join("x.tar").to_str().unwrap(),
    ]);
    assert!(err.contains(&digest), "{err}");
}

#[test]
fn compressed_inputs_and_zstd_layers_round_trip() {
    let t = TestContext::new();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar);
    run_ok(Command::new("gzip").arg("-k").arg(&tar));
    run_ok(Command::new("zstd").arg("-q").arg("-k").arg(&tar));
    t.ok(&["import", tar.to_str().unwrap(), "plain"]);
    t.ok(&[
        "import",
        t.path().join("rootfs.tar.gz").to_str().unwrap(),
        "gz",
    ]);
    t.ok(&[
        "import",
        t.path().join("rootfs.tar.zst").to_str().unwrap(),
        "zst",
    ]);
    t.ok(&[
        "import",
        "--compression",
        "zstd",
        tar.to_str().unwrap(),
        "recompressed",
    ]);
    let diff = |name: &str| json(&t.ok(&["inspect", name]))["layers"][0].clone();
    let plain = diff("plain");
    for (name, mt) in [
        ("gz", "tar+gzip"),
        ("zst", "tar+zstd"),
        ("recompressed", "tar+zstd"),
    ] {
        let l = diff(name);
        assert_eq!(l["diff_id"], plain["diff_id"], "{name}");
        assert_eq!(l["size"], plain["size"], "{name}");
        assert!(
            l["media_type"].as_str().unwrap().ends_with(mt),
            "{name}: {l}"
        );
        assert!(
            l["compressed_size"].as_u64() < plain["size"].as_u64(),
            "{name}"
        );
    }
    // The same input compresses to the same bytes.
    let again = TestContext::new();
    again.ok(&[
        "import",
        "--compression",
        "zstd",
        tar.to_str().unwrap(),
        "x",
    ]);
    assert_eq!(
        json(&again.ok(&["inspect", "x"]))["layers"][0]["digest"],
        diff("recompressed")["digest"]
    );
    let out = t.path().join("a.tar");
    let out2 = t.path().join("b.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "plain",
        "-o",
        out.to_str().unwrap(),
    ]);
    t.ok(&[
        "save",
        "--format",
        "oci",
        "plain",
        "-o",
        out2.to_str().unwrap(),
    ]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&out2).unwrap(),
        "gzip output must be deterministic"
    );
    // Exports of all four are the same filesystem.
    let listing = |name: &str| {
        let p = t.path().join(format!("{name}.export.tar"));
        t.ok(&["export", name, "-o", p.to_str().unwrap()]);
        tar_listing(&p)
    };
    let base = listing("plain");
    assert!(base.contains_key("bin/busybox"));
    for name in ["gz", "zst", "recompressed"] {
        assert_eq!(listing(name), base, "{name}");
    }
    check_clean(&t);
}

/// A tar with one regular file whose raw name is written as given (bypassing the tar crate's
/// path checks), to make hostile archives.
fn raw_tar(entries: &[(&str, tar::EntryType, &str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, link, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        if !link.is_empty() {
            h.as_gnu_mut().unwrap().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn hostile_and_broken_archives_are_refused_and_leave_nothing() {
    let t = TestContext::new();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "dotdot.tar",
            raw_tar(&[("../evil", tar::EntryType::Regular, "", b"x")]),
            "'..'",
        ),
        (
            "deep-dotdot.tar",
            raw_tar(&[("a/../../evil", tar::EntryType::Regular, "", b"x")]),
            "'..'",
        ),
        (
            "hardlink.tar",
            raw_tar(&[("link", tar::EntryType::Link, "../../etc/passwd", b"")]),
            "hard link target",
        ),
        (
            "truncated.tar",
            {
                let tar = t.path().join("ok.tar");
                busybox_rootfs_tar(&tar);
                let mut bytes = std::fs::read(&tar).unwrap();
                bytes.truncate(bytes.len() / 2 + 100);
                bytes
            },
            "truncated.tar",
        ),
        (
            "corrupt.tar.gz",
            {
                let tar = t.path().join("ok2.tar");
                busybox_rootfs_tar(&tar);
                run_ok(Command::new("gzip").arg("-k").arg(&tar));
                let mut bytes = std::fs::read(t.path().join("ok2.tar.gz")).unwrap();
                let mid = bytes.len() / 2;
                for b in &mut bytes[mid..mid + 64] {
                    *b ^= 0x55;
                }
                bytes
            },
            "corrupt.tar.gz",
        ),
    ];
    for (name, bytes, expect) in cases {
        let path = t.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = t.fails(&["import", path.to_str().unwrap(), "bad"]);
        assert!(err.contains(expect), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: error should name the file: {err}"
        );
    }
    // A load whose blob does not match the digest in its name.
    let good = t.path().join("good.tar");
    busybox_rootfs_tar(&good);
    t.ok(&["import", good.to_str().unwrap(), "good"]);
    let saved = t.path().join("saved.tar");
    t.ok(&["save", "good", "-o", saved.to_str().unwrap()]);
    let inspect = json(&t.ok(&["inspect", "good"]));
    let layer = inspect["layers"][0]["digest"].as_str().unwrap()[7..].to_string();
    let mut bytes = std::fs::read(&saved).unwrap();
    let needle = b"bin/busybox";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("busybox entry")
        + 4096;
    bytes[at] ^= 0x01;
    let tampered = t.path().join("tampered.tar");
    std::fs::write(&tampered, bytes).unwrap();
    let fresh = TestContext::new();
    let err = fresh.fails(&["load", "-i", tampered.to_str().unwrap()]);
    assert!(
        err.contains("digest mismatch") && err.contains(&layer),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(fresh.root.path().join("blobs/sha256"))
            .unwrap()
            .count(),
        0,
        "nothing stored"
    );
    assert_eq!(
        std::fs::read_dir(fresh.root.path().join("tmp"))
            .unwrap()
            .count(),
        0,
        "no temporary files left"
    );
    assert!(
        json(&t.ok(&["images", "--format", "json"]))
            .as_array()
            .unwrap()
            .len()
            == 1
    );
    check_clean(&t);
    check_clean(&fresh);
}

#[test]
fn concurrent_imports_leave_a_clean_store() {
    let t = TestContext::new();
    let tars: Vec<_> = (0..4)
        .map(|i| {
            let p = t.path().join(format!("r{i}.tar"));
            busybox_rootfs_tar(&p);
            p
        })
        .collect();
    let children: Vec<_> = tars
        .iter()
        .enumerate()
        .map(|(i, p)| {
            t.tare()
                .args(["import", p.to_str().unwrap(), &format!("img{i}")])
                .stdout(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    assert_eq!(
        json(&t.ok(&["images", "--format", "json"]))
            .as_array()
            .unwrap()
            .len(),
        4
    );
    check_clean(&t);
}

#[test]
fn docker_loads_and_runs_an_image_saved_by_tare() {
    if !require_docker() {
        return;
    }
    let t = TestContext::new();
    let tar = t.path().join("rootfs.tar");
    busybox_rootfs_tar(&tar);
    let tag = format!("tare-test-save:{}", std::process::id());
    t.ok(&[
        "import",
        tar.to_str().unwrap(),
        &tag,
        "--change",
        "CMD [\"cat\", \"/etc/group\"]",
    ]);
    for compression in ["none", "gzip"] {
        let out = t.path().join(format!("docker-{compression}.tar"));
        t.ok(&[
            "save",
            &tag,
            "--compression",
            compression,
            "-o",
            out.to_str().unwrap(),
        ]);
        let loaded = run_ok(docker().arg("load").arg("-i").arg(&out));
        assert!(loaded.contains(&tag), "{loaded}");
        let ran = run_ok(docker().args(["run", "--rm", "--network", "none", &tag]));
        assert!(ran.contains("app:x:1000:"), "{ran}");
        let ran = run_ok(docker().args([
            "run",
            "--rm",
            "--network",
            "none",
            &tag,
            "sh",
            "-c",
            "id -u; ls /bin/busybox",
        ]));
        assert_eq!(ran, "0\n/bin/busybox\n");
        run_ok(docker().args(["rmi", &tag]));
    }
}

#[test]
fn skopeo_and_umoci_accept_the_oci_output() {
    let t = TestContext::new();
    t.import_busybox("oci-test:v1");
    let out = t.path().join("oci.tar");
    t.ok(&[
        "save",
        "--format",
        "oci",
        "oci-test:v1",
        "-o",
        out.to_str().unwrap(),
    ]);
    let layout = t.path().join("layout");
    std::fs::create_dir(&layout).unwrap();
    run_ok(
        Command::new("tar")
            .arg("xf")
            .arg(&out)
            .arg("-C")
            .arg(&layout),
    );
    let index = json(&std::fs::read_to_string(layout.join("index.json")).unwrap());
    let refname = "docker.io/library/oci-test:v1";
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        refname
    );
    let inspect = json(&run_ok(
        Command::new("skopeo")
            .arg("inspect")
            .arg(format!("oci:{}:{refname}", layout.display())),
    ));
    assert_eq!(inspect["Architecture"], "amd64");
    assert_eq!(inspect["Layers"].as_array().unwrap().len(), 1);
    let bundle = t.path().join("bundle");
    run_ok(
        Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{refname}", layout.display()))
            .arg(&bundle),
    );
    assert!(bundle.join("rootfs/bin/busybox").is_file());
    assert_eq!(
        std::fs::read_to_string(bundle.join("rootfs/etc/group"))
            .unwrap()
            .lines()
            .count(),
        4
    );
    // And tare loads its own OCI output back, as a directory and as a tar.
    let other = TestContext::new();
    let out = other.ok(&["load", "-i", layout.to_str().unwrap()]);
    assert!(out.contains("Loaded image: oci-test:v1"), "{out}");
    check_clean(&other);
}

#[test]
fn docker_save_and_skopeo_copy_load_into_tare_and_export_the_same_filesystem() {
    if !require_docker() {
        return;
    }
    let t = TestContext::new();
    let base = format!("tare-test-base:{}", std::process::id());
    let multi = format!("tare-test-multi:{}", std::process::id());
    t.import_busybox(&base);
    let saved = t.path().join("base.tar");
    t.ok(&["save", &base, "-o", saved.to_str().unwrap()]);
    run_ok(docker().arg("load").arg("-i").arg(&saved));
    // Three layers with a deleted file, a replaced directory and a new file: whiteouts and
    // opaque directories in docker's own layers.
    let ctx = t.path().join("ctx");
    std::fs::create_dir(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        format!("FROM {base}\nRUN rm /etc/group && mkdir -p /d/sub && echo x > /d/sub/f && echo y > /d/keep\nRUN rm -rf /d/sub && mkdir /d/sub && echo z > /d/sub/g && ln /d/keep /d/hard && ln -s ../keep /d/sub/sym\n"),
    )
    .unwrap();
    run_ok(
        docker()
            .env("DOCKER_BUILDKIT", "0")
            .args(["build", "-q", "--network", "none", "-t", &multi])
            .arg(&ctx),
    );
    let from_docker = t.path().join("docker-save.tar");
    run_ok(docker().args(["save", &multi, "-o"]).arg(&from_docker));
    let container = run_ok(docker().args(["create", &multi, "true"]));
    let docker_export = t.path().join("docker-export.tar");
    run_ok(
        docker()
            .args(["export", container.trim(), "-o"])
            .arg(&docker_export),
    );
    run_ok(docker().args(["rm", container.trim()]));
    let layout = t.path().join("skopeo-layout");
    run_ok(
        Command::new("skopeo")
            .arg("copy")
            .arg(format!("docker-archive:{}", from_docker.display()))
            .arg(format!("oci:{}:copied", layout.display())),
    );
    run_ok(docker().args(["rmi", &multi, &base]));

    let mut expected = tar_listing(&docker_export);
    // What docker adds to every container, not part of the image.
    expected.retain(|p, _| {
        !(p == ".dockerenv"
            || p.starts_with("dev/")
            || p.starts_with("proc/")
            || p.starts_with("sys/")
            || ["etc/hostname", "etc/hosts", "etc/mtab", "etc/resolv.conf"].contains(&p.as_str()))
    });
    assert!(
        !expected.contains_key("etc/group")
            && expected.contains_key("d/sub/g")
            && !expected.contains_key("d/sub/f")
    );

    let out = t.ok(&["load", "-i", from_docker.to_str().unwrap()]);
    assert!(out.contains(&format!("Loaded image: {multi}")), "{out}");
    let layers = json(&t.ok(&["inspect", &multi]))["layers"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(layers, 3);
    let ours = t.path().join("ours.tar");
    t.ok(&["export", &multi, "-o", ours.to_str().unwrap()]);
    let mut got = tar_listing(&ours);
    got.retain(|p, _| !(p.starts_with("dev") || p.starts_with("proc") || p.starts_with("sys")));
    expected.retain(|p, _| !(p == "dev" || p == "proc" || p == "sys"));
    assert_eq!(got, expected);

    let fresh = TestContext::new();
    let out = fresh.ok(&["load", "-i", layout.to_str().unwrap()]);
    assert!(out.contains("Loaded image: copied:latest"), "{out}");
    let ours2 = t.path().join("ours2.tar");
    fresh.ok(&["export", "copied", "-o", ours2.to_str().unwrap()]);
    let mut got2 = tar_listing(&ours2);
    got2.retain(|p, _| !(p.starts_with("dev") || p.starts_with("proc") || p.starts_with("sys")));
    assert_eq!(got2, got);
    check_clean(&t);
    check_clean(&fresh);
}
