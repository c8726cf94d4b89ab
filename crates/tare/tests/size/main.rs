//! The size toolkit from the CLI: `tare analyze` (text, JSON, HTML rendered in Chromium),
//! `tare squash` (compared file by file with the original through `tare export`), and
//! `tare lint` on the seed's Dockerfiles.

#[path = "../util/mod.rs"]
mod util;

mod build_budgets;
mod diff;
mod diff_inputs;
mod reproducible;
mod rootless;
mod slim;
mod slim_copies;
mod slim_debian;
mod slim_rootless;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{json, Value};
use sha2::Digest as _;
use util::TestContext;

/// One entry of a hand-made layer tar.
enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
    Whiteout(&'a str),
    Opaque(&'a str),
}

fn layer_tar(entries: &[E<'_>]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mtime(1_700_000_000);
        h.set_uid(0);
        h.set_gid(0);
        let file = |h: &mut tar::Header, mode: u32, len: usize| {
            h.set_entry_type(tar::EntryType::Regular);
            h.set_mode(mode);
            h.set_size(len as u64);
        };
        match e {
            E::Dir(p, mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                b.append_data(&mut h, format!("{p}/"), &[][..]).unwrap();
            }
            E::File(p, content, mode) => {
                file(&mut h, *mode, content.len());
                b.append_data(&mut h, p, *content).unwrap();
            }
            E::Symlink(p, target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Hardlink(p, target) => {
                h.set_entry_type(tar::EntryType::Link);
                h.set_mode(0o644);
                h.set_size(0);
                b.append_link(&mut h, p, target).unwrap();
            }
            E::Whiteout(p) => {
                let (dir, name) = p.rsplit_once('/').unwrap_or(("", p));
                let path = if dir.is_empty() {
                    format!(".wh.{name}")
                } else {
                    format!("{dir}/.wh.{name}")
                };
                file(&mut h, 0, 0);
                b.append_data(&mut h, path, &[][..]).unwrap();
            }
            E::Opaque(dir) => {
                file(&mut h, 0, 0);
                b.append_data(&mut h, format!("{dir}/.wh..wh..opq"), &[][..])
                    .unwrap();
            }
        }
    }
    b.into_inner().unwrap()
}

/// Writes a docker archive (`docker save` format) with these layers and history, and loads it.
fn load_image(ctx: &TestContext, tag: &str, layers: &[Vec<u8>], history: &[(&str, bool)]) {
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, path: &str, bytes: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        b.append_data(&mut h, path, bytes).unwrap();
    };
    let mut diff_ids = Vec::new();
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        diff_ids.push(format!("sha256:{}", hex(&sha2::Sha256::digest(l))));
        let name = format!("layer{i}/layer.tar");
        add(&mut b, &name, l);
        names.push(name);
    }
    let config = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-01-01T00:00:00Z",
        "config": {"Cmd": ["sh", "-c", "echo hi"], "Env": ["PATH=/bin", "A=b"], "User": "1000", "WorkingDir": "/app"},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history.iter().map(|(by, empty)| {
            let mut h = json!({"created": "2024-01-01T00:00:00Z", "created_by": by});
            if *empty { h["empty_layer"] = json!(true); }
            h
        }).collect::<Vec<_>>(),
    });
    let config_bytes = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", hex(&sha2::Sha256::digest(&config_bytes)));
    add(&mut b, &config_name, &config_bytes);
    let manifest = json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    let archive = ctx
        .path()
        .join(format!("{}.tar", tag.replace([':', '/'], "_")));
    std::fs::write(&archive, b.into_inner().unwrap()).unwrap();
    ctx.ok(&["load", "-i", archive.to_str().unwrap()]);
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const BIG: usize = 10 << 20;

/// Four layers: a base, one that adds a 10 MiB file, copies files and hides base content,
/// one that deletes the big file, chmods a file (same content) and rewrites another, and one
/// that deletes and recreates directories.
fn waste_image(ctx: &TestContext, tag: &str) {
    let zeros = vec![0u8; BIG];
    let base = layer_tar(&[
        E::Dir("bin", 0o755),
        E::File("bin/tool", b"#!/bin/sh\necho tool\n", 0o755),
        E::Symlink("bin/t", "tool"),
        E::Dir("etc", 0o755),
        E::File("etc/passwd", b"root:x:0:0::/root:/bin/sh\n", 0o644),
        E::File("etc/old", b"old config\n", 0o644),
        E::Dir("opt", 0o755),
        E::Dir("opt/keep", 0o755),
        E::File("opt/keep/a", b"base file under opt\n", 0o644),
        E::Dir("srv", 0o750),
        E::File("srv/s", b"served\n", 0o644),
    ]);
    let l1 = layer_tar(&[
        E::File("bigfile", &zeros, 0o644),
        E::Dir("app", 0o755),
        E::File("app/data.txt", b"data\n", 0o644),
        E::File("app/script.sh", b"#!/bin/sh\necho run\n", 0o644),
        E::File("app/lib.so", b"library\n", 0o755),
        E::Hardlink("app/lib.so.1", "app/lib.so"),
        E::Whiteout("etc/old"),
        E::Dir("opt", 0o755),
        E::Opaque("opt"),
        E::File("opt/new", b"new under opt\n", 0o644),
    ]);
    let l2 = layer_tar(&[
        E::Whiteout("bigfile"),
        E::Dir("app", 0o755),
        E::File("app/script.sh", b"#!/bin/sh\necho run\n", 0o755),
        E::File("app/data.txt", b"data, second version\n", 0o644),
        E::Dir("tmp", 0o1777),
        E::File("tmp/x", b"x\n", 0o644),
        E::Whiteout("srv"),
    ]);
    let l3 = layer_tar(&[
        E::Whiteout("tmp"),
        E::Dir("tmp", 0o1777),
        E::File("tmp/y", b"y\n", 0o644),
        E::File(
            "srv/again",
            b"srv recreated without a directory entry\n",
            0o600,
        ),
        E::File(
            "etc/passwd",
            b"root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/app:/bin/sh\n",
            0o644,
        ),
    ]);
    load_image(
        ctx,
        tag,
        &[base, l1, l2, l3],
        &[
            ("/bin/sh -c #(nop) ADD file:base in /", false),
            ("/bin/sh -c #(nop)  CMD [\"sh\"]", true),
            (
                "RUN /bin/sh -c dd if=/dev/zero of=/bigfile bs=1M count=10 # buildkit",
                false,
            ),
            (
                "RUN /bin/sh -c rm /bigfile && chmod +x /app/script.sh # buildkit",
                false,
            ),
            ("/bin/sh -c #(nop)  ENV A=b", true),
            ("RUN /bin/sh -c rm -rf /tmp && mkdir /tmp # buildkit", false),
        ],
    );
}

fn analyze_json(ctx: &TestContext, image: &str) -> Value {
    serde_json::from_str(&ctx.ok(&["analyze", image, "--format", "json"])).unwrap()
}

#[test]
fn analyze_finds_the_deleted_big_file_and_the_chmod_rewrite() {
    let ctx = TestContext::new();
    waste_image(&ctx, "waste:1");
    let a = analyze_json(&ctx, "waste:1");
    let wasted = a["wasted"].as_array().unwrap();
    let big = wasted
        .iter()
        .find(|w| w["path"] == "/bigfile")
        .expect("bigfile listed");
    assert_eq!(big["size"], BIG as u64);
    assert_eq!(big["kind"], "deleted");
    assert_eq!(big["added_layer"], 1);
    assert_eq!(big["removed_layer"], 2);
    assert!(big["added_by"]
        .as_str()
        .unwrap()
        .contains("dd if=/dev/zero"));
    assert!(big["removed_by"].as_str().unwrap().contains("rm /bigfile"));
    // Loaded images carry no Dockerfile lines.
    assert_eq!(big["added_line"], Value::Null);
    let script = wasted
        .iter()
        .find(|w| w["path"] == "/app/script.sh")
        .unwrap();
    assert_eq!(script["kind"], "metadata");
    // "#!/bin/sh\necho run\n": 19 bytes stored twice.
    assert_eq!(a["metadata_only_bytes"], 19);
    assert!(a["wasted_bytes"].as_u64().unwrap() >= BIG as u64 + 19);
    assert!(a["efficiency"].as_f64().unwrap() < 0.6);
    assert_eq!(a["layers"].as_array().unwrap().len(), 4);
    let layers = a["layers"].as_array().unwrap();
    let total: u64 = layers.iter().map(|l| l["size"].as_u64().unwrap()).sum();
    assert_eq!(a["image_size"], total);
    assert_eq!(layers[3]["running_size"], total);
    assert!(a["largest"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f["path"] == "/etc/passwd"));

    let text = ctx.ok(&["analyze", "waste:1"]);
    assert!(text.contains("/bigfile"), "{text}");
    assert!(text.contains("fold the cleanup into the RUN"), "{text}");
    assert!(text.contains("COPY --chown"), "{text}");
    assert!(text.contains("tare squash"), "{text}");

    // The second analysis reads the cached indexes and gives the same answer.
    assert_eq!(analyze_json(&ctx, "waste:1"), a);
}

#[test]
fn analyze_of_an_unknown_image_fails() {
    let ctx = TestContext::new();
    let err = ctx.fails(&["analyze", "nope:1"]);
    assert!(err.contains("nope"), "{err}");
}

/// Every path of an exported filesystem: type, mode, owner, size, content hash, link.
fn export_listing(ctx: &TestContext, image: &str) -> BTreeMap<String, String> {
    let out = ctx
        .path()
        .join(format!("{}.export.tar", image.replace([':', '/'], "_")));
    ctx.ok(&["export", image, "-o", out.to_str().unwrap()]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let mut map = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            continue;
        }
        let h = entry.header().clone();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).unwrap();
        let link = entry
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let kind = match h.entry_type() {
            // A hard link and a copy are the same file to whoever reads it; the comparison is
            // about content, so both show as files with the target's content.
            tar::EntryType::Link => "file".to_string(),
            t => format!("{t:?}"),
        };
        let content_hash = if h.entry_type() == tar::EntryType::Link {
            String::from("link")
        } else {
            hex(&sha2::Sha256::digest(&content))
        };
        map.insert(
            path,
            format!(
                "{kind} {:o} {}:{} {} {}",
                h.mode().unwrap(),
                h.uid().unwrap(),
                h.gid().unwrap(),
                content_hash,
                if h.entry_type() == tar::EntryType::Symlink {
                    link.unwrap_or_default()
                } else {
                    String::new()
                }
            ),
        );
    }
    map
}

/// Contents by path, following hard links, to compare files whatever their link structure.
fn export_contents(ctx: &TestContext, image: &str) -> BTreeMap<String, Vec<u8>> {
    let out = ctx
        .path()
        .join(format!("{}.contents.tar", image.replace([':', '/'], "_")));
    ctx.ok(&["export", image, "-o", out.to_str().unwrap()]);
    let dir = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("tar")
        .arg("-xf")
        .arg(&out)
        .arg("-C")
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "tar -xf {}: {}",
        out.display(),
        String::from_utf8_lossy(&status.stderr)
    );
    let mut map = BTreeMap::new();
    walk(dir.path(), dir.path(), &mut map);
    map
}

fn walk(root: &Path, dir: &Path, map: &mut BTreeMap<String, Vec<u8>>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
        let ft = e.file_type().unwrap();
        if ft.is_dir() {
            map.insert(rel, b"<dir>".to_vec());
            walk(root, &p, map);
        } else if ft.is_symlink() {
            map.insert(
                rel,
                std::fs::read_link(&p)
                    .unwrap()
                    .to_string_lossy()
                    .as_bytes()
                    .to_vec(),
            );
        } else {
            map.insert(rel, std::fs::read(&p).unwrap());
        }
    }
}

fn inspect(ctx: &TestContext, image: &str) -> Value {
    let v: Value = serde_json::from_str(&ctx.ok(&["inspect", image])).unwrap();
    match v {
        Value::Array(mut items) => items.remove(0),
        other => other,
    }
}

fn config_of(ctx: &TestContext, image: &str) -> Value {
    // The run config (Cmd, Env, User, ...), wherever `tare inspect` nests it.
    fn find(v: &Value) -> Option<&Value> {
        match v {
            Value::Object(m) if m.contains_key("Cmd") => Some(v),
            Value::Object(m) => m.values().find_map(find),
            Value::Array(items) => items.iter().find_map(find),
            _ => None,
        }
    }
    let v = inspect(ctx, image);
    find(&v)
        .cloned()
        .expect("a config with Cmd in tare inspect")
}

#[test]
fn squash_from_a_layer_keeps_the_base_and_gives_the_same_filesystem() {
    let ctx = TestContext::new();
    waste_image(&ctx, "waste:1");
    let out = ctx.ok(&["squash", "waste:1", "-t", "waste:squashed", "--from", "1"]);
    assert!(out.contains("Squashed layers 1 to 3"), "{out}");

    let before = analyze_json(&ctx, "waste:1");
    let after = analyze_json(&ctx, "waste:squashed");
    let layers = after["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 2);
    assert_eq!(
        layers[0]["diff_id"], before["layers"][0]["diff_id"],
        "base layer shared"
    );
    // Dead files of the squashed layers are gone; what remains is base files the squashed
    // layer deletes or replaces (they stay in the shared base layer).
    let left = after["wasted"].as_array().unwrap();
    assert!(left.iter().all(|w| w["added_layer"] == 0), "{after:#}");
    assert!(after["wasted_bytes"].as_u64().unwrap() < 100, "{after:#}");
    assert!(
        after["image_size"].as_u64().unwrap() < before["image_size"].as_u64().unwrap() - BIG as u64
    );

    assert_eq!(
        export_contents(&ctx, "waste:1"),
        export_contents(&ctx, "waste:squashed")
    );
    let (a, b) = (
        export_listing(&ctx, "waste:1"),
        export_listing(&ctx, "waste:squashed"),
    );
    for (path, meta) in &a {
        // Hard links may become copies: compare those by content (above), the rest fully.
        if meta.contains(" link ") {
            continue;
        }
        let other = b
            .get(path)
            .unwrap_or_else(|| panic!("/{path} missing after squash"));
        if other.contains(" link ") {
            continue;
        }
        assert_eq!(meta, other, "/{path} differs after squash");
    }
    // Every non-directory is in both; a directory that a layer only implies (srv/ above
    // srv/again) may be listed by one export and not the other; extraction (compared above)
    // makes it either way.
    let files = |m: &BTreeMap<String, String>| {
        m.iter()
            .filter(|(_, v)| !v.starts_with("Directory"))
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(files(&a), files(&b));

    // Config and history kept; squashed entries marked empty_layer, one entry added.
    let config = config_of(&ctx, "waste:squashed");
    assert_eq!(config, config_of(&ctx, "waste:1"));
    let history = ctx.ok(&[
        "history",
        "waste:squashed",
        "--format",
        "json",
        "--no-trunc",
    ]);
    assert!(history.contains("rm /bigfile"), "{history}");
    assert!(history.contains("tare squash"), "{history}");

    // Squashing the same layers again reuses the stored layer.
    let again = ctx.ok(&["squash", "waste:1", "-t", "waste:again", "--from", "1"]);
    assert!(again.contains("(cached)"), "{again}");
}

#[test]
fn squash_all_makes_one_layer_with_the_same_files() {
    let ctx = TestContext::new();
    waste_image(&ctx, "waste:1");
    ctx.ok(&["squash", "waste:1", "-t", "flat:1", "--all"]);
    let a = analyze_json(&ctx, "flat:1");
    assert_eq!(a["layers"].as_array().unwrap().len(), 1);
    assert_eq!(a["wasted_bytes"], 0);
    assert_eq!(
        export_contents(&ctx, "waste:1"),
        export_contents(&ctx, "flat:1")
    );
    // With no record of a base image, the default squashes everything too.
    ctx.ok(&["squash", "waste:1", "-t", "flat:2"]);
    assert_eq!(
        analyze_json(&ctx, "flat:2")["layers"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let err = ctx.fails(&["squash", "waste:1", "-t", "x:1", "--from", "4"]);
    assert!(err.contains("4 layers"), "{err}");
}

fn seed(file: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed");
    root.join(file).to_string_lossy().into_owned()
}

#[test]
fn lint_flags_the_seed_single_stage_dockerfile() {
    let ctx = TestContext::new();
    let file = seed("Dockerfile.single");
    let out = ctx.run(&["lint", "-f", &file]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    let line = std::fs::read_to_string(&file)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("RUN apt-get"))
        .unwrap()
        + 1;
    for rule in [
        "package-cache-kept",
        "apt-install-recommends",
        "build-tools-in-final-stage",
    ] {
        assert!(
            text.contains(&format!("{file}:{line} {rule} ")),
            "{rule} missing:\n{text}"
        );
    }
    let out = ctx.run(&["lint", "-f", &file, "--format", "json"]);
    assert_eq!(out.status.code(), Some(1));
    let rows: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = rows.as_array().unwrap();
    assert!(rows
        .iter()
        .all(|r| r["line"] == line && r["rule"].is_string() && r["message"].is_string()));
    assert_eq!(rows.len(), 3);
}

#[test]
fn lint_finds_nothing_in_the_seed_multi_stage_dockerfile() {
    let ctx = TestContext::new();
    let out = ctx.run(&["lint", "-f", &seed("Dockerfile.multi")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn lint_flags_the_seed_waste_dockerfile_rm() {
    let ctx = TestContext::new();
    let file = seed("Dockerfile.waste");
    let out = ctx.run(&["lint", "-f", &file]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(&format!("{file}:3 cleanup-in-later-step")),
        "{text}"
    );
}

#[test]
fn lint_reports_a_syntax_error_with_exit_1() {
    let ctx = TestContext::new();
    let file = ctx.write("Dockerfile", "FROM busybox\nRUNN echo\n");
    let err = ctx.fails(&["lint", "-f", file.to_str().unwrap()]);
    assert!(err.starts_with("error:"), "{err}");
}

#[test]
fn seed_rm_dockerfile_wastes_10_mb_added_at_line_2_removed_at_line_3() {
    let ctx = TestContext::new();
    ctx.import_busybox("busybox:latest");
    let dir = ctx.path().join("ctx");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("Dockerfile"),
        "FROM busybox\nRUN dd if=/dev/zero of=/bigfile bs=1M count=10\nRUN rm /bigfile\nRUN echo \"the 10 MB are still shipped\"\n",
    )
    .unwrap();
    ctx.ok(&["build", "-t", "seed-waste:1", dir.to_str().unwrap()]);
    let a = analyze_json(&ctx, "seed-waste:1");
    let wasted = a["wasted"].as_array().unwrap();
    assert_eq!(wasted.len(), 1, "{a:#}");
    assert_eq!(wasted[0]["path"], "/bigfile");
    assert_eq!(wasted[0]["size"], BIG as u64);
    assert_eq!(wasted[0]["added_line"], 2);
    assert_eq!(wasted[0]["removed_line"], 3);
    assert_eq!(a["wasted_bytes"], BIG as u64);

    // `tare history` shows the dead 10 MB at its Dockerfile line, with the longest bar.
    let table = ctx.ok(&["history", "seed-waste:1"]);
    let dd = table
        .lines()
        .find(|l| l.contains("dd if=/dev/zero"))
        .unwrap_or_else(|| panic!("no dd row in\n{table}"));
    assert!(dd.contains("Dockerfile:2"), "{dd}");
    assert!(dd.contains("10.5MB"), "{dd}");
    assert!(dd.contains(&"█".repeat(20)), "{dd}");
    let rm = table.lines().find(|l| l.contains("rm /bigfile")).unwrap();
    assert!(rm.contains("Dockerfile:3") && !rm.contains('█'), "{rm}");
    let rows: Value =
        serde_json::from_str(&ctx.ok(&["history", "seed-waste:1", "--format", "json"])).unwrap();
    let lines: Vec<Value> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].clone())
        .collect();
    assert_eq!(lines[..3], [json!(4), json!(3), json!(2)], "{rows:#}");
}

/// Chromium, headless, with nothing fetched and its profile in `profile`.
pub(crate) fn headless_chromium(profile: &Path) -> std::process::Command {
    let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("chromium is needed for this test (apt-get install -y chromium)");
    let mut cmd = std::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let ctx = TestContext::new();
    waste_image(&ctx, "waste:1");
    let html = ctx.path().join("report.html");
    ctx.ok(&["analyze", "waste:1", "--html", html.to_str().unwrap()]);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("/bigfile") && page.contains("<svg"));
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "the page must not fetch anything"
    );

    let profile = tempfile::tempdir().unwrap();
    let png = ctx.path().join("report.png");
    let status = headless_chromium(profile.path())
        .arg("--hide-scrollbars")
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1200,900")
        .arg(format!("file://{}", html.display()))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "chromium failed");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let bytes = &buf[..info.buffer_size()];
    let channels = info.color_type.samples();
    let mut colours = std::collections::HashSet::new();
    let mut non_white = 0usize;
    for px in bytes.chunks(channels) {
        let rgb = (px[0], px[1], px[2.min(channels - 1)]);
        if rgb != (255, 255, 255) {
            non_white += 1;
        }
        colours.insert(rgb);
    }
    let pixels = bytes.len() / channels;
    assert!(
        colours.len() > 50,
        "only {} colours: the page looks blank",
        colours.len()
    );
    assert!(
        non_white * 10 > pixels,
        "mostly white: {non_white} of {pixels} pixels"
    );
}
