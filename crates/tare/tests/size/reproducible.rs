//! Reproducible images: `SOURCE_DATE_EPOCH` (environment, `--build-arg`, `--source-date-epoch`)
//! sets `created` in the config and this build's history entries, `--rewrite-timestamp`
//! clamps the mtimes of the layers the build makes, and the same Dockerfile and context built
//! on two stores at different times gives the same image ID, manifest digest and archive bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::TestContext;

/// 2023-11-14T22:13:20Z: earlier than every file this test writes.
const EPOCH: &str = "1700000000";
const EPOCH_RFC3339: &str = "2023-11-14T22:13:20Z";

fn inspect(t: &TestContext, image: &str) -> Value {
    serde_json::from_str(&t.ok(&["inspect", image])).unwrap()
}

/// The mtimes of one layer's entries (path -> mtime), read from a `tare save` docker archive.
fn layer_mtimes(t: &TestContext, image: &str, index: usize) -> BTreeMap<String, u64> {
    let archive = t
        .path()
        .join(format!("{}.tar", image.replace([':', '/'], "_")));
    t.ok(&["save", "-o", archive.to_str().unwrap(), image]);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut outer = tar::Archive::new(std::fs::File::open(&archive).unwrap());
    for e in outer.entries().unwrap() {
        let mut e = e.unwrap();
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let mut bytes = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut bytes).unwrap();
        files.insert(path, bytes);
    }
    let manifest: Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    let layer = manifest[0]["Layers"][index].as_str().unwrap();
    let mut inner = tar::Archive::new(&files[layer][..]);
    inner
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let path = e.path().unwrap().to_string_lossy().into_owned();
            (path, e.header().mtime().unwrap())
        })
        .collect()
}

/// A context with a Dockerfile on the busybox base: a COPY, a WORKDIR and a RUN whose output
/// (file contents) is deterministic but whose mtimes are the time of the build.
fn context(t: &TestContext) -> PathBuf {
    t.write("ctx/app.txt", "hello\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nCOPY app.txt /app/\nWORKDIR /work/dir\nRUN echo built > /work/out && mkdir -p /var/made\nENV MODE=prod\n",
    );
    t.path().join("ctx")
}

#[test]
fn epoch_sets_created_of_config_and_of_this_builds_history_only() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let base = inspect(&t, "busybox");
    let base_created = base["config"]["history"][0]["created"].clone();
    let ctx = context(&t);
    // From the environment, as buildx passes it on.
    let out = t
        .tare()
        .args(["build", "-q", "-t", "env:1", ctx.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let img = inspect(&t, "env:1");
    assert_eq!(img["config"]["created"], EPOCH_RFC3339);
    let history = img["config"]["history"].as_array().unwrap();
    assert_eq!(history.len(), 5, "{history:?}");
    // The base image's entry keeps its time (imported now, so later than the epoch).
    assert_eq!(history[0]["created"], base_created);
    assert_ne!(history[0]["created"], EPOCH_RFC3339);
    for h in &history[1..] {
        assert_eq!(h["created"], EPOCH_RFC3339, "{h}");
    }

    // The flag and the build arg give the same; an earlier epoch gives an earlier time.
    t.ok(&[
        "build",
        "-q",
        "-t",
        "flag:1",
        "--source-date-epoch",
        "1600000000",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(
        inspect(&t, "flag:1")["config"]["created"],
        "2020-09-13T12:26:40Z"
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "arg:1",
        "--build-arg",
        "SOURCE_DATE_EPOCH=1600000000",
        ctx.to_str().unwrap(),
    ]);
    let arg = inspect(&t, "arg:1");
    assert_eq!(arg["config"]["created"], "2020-09-13T12:26:40Z");
    // The cache answered every step: only the times differ, and they are not in the keys.
    assert_eq!(
        arg["config"]["rootfs"], img["config"]["rootfs"],
        "an epoch without --rewrite-timestamp must not change the layers"
    );
}

#[test]
fn bad_epochs_are_refused_with_their_source() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let ctx = context(&t);
    let err = t.fails(&[
        "build",
        "--source-date-epoch",
        "yesterday",
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("--source-date-epoch"), "{err}");
    assert!(err.contains("yesterday"), "{err}");
    let err = t.fails(&[
        "build",
        "--build-arg",
        "SOURCE_DATE_EPOCH=-5",
        ctx.to_str().unwrap(),
    ]);
    assert!(err.contains("SOURCE_DATE_EPOCH"), "{err}");
    let out = t
        .tare()
        .args(["build", ctx.to_str().unwrap()])
        .env("SOURCE_DATE_EPOCH", "1.5")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("environment"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let tar = t.path().join("bb.tar");
    crate::util::busybox_rootfs_tar(&tar);
    let err = t.fails(&[
        "import",
        "--source-date-epoch",
        "99999999999999",
        tar.to_str().unwrap(),
    ]);
    assert!(err.contains("99999999999999"), "{err}");
    assert!(
        t.ok(&["images", "-q"]).lines().count() == 1,
        "nothing was stored"
    );
}

#[test]
fn rewrite_timestamp_clamps_this_builds_layers_and_keeps_the_base() {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    let ctx = context(&t);
    t.ok(&["build", "-q", "-t", "plain:1", ctx.to_str().unwrap()]);
    t.ok(&[
        "build",
        "-q",
        "-t",
        "clamped:1",
        "--source-date-epoch",
        EPOCH,
        "--rewrite-timestamp",
        ctx.to_str().unwrap(),
    ]);
    let plain = inspect(&t, "plain:1");
    let clamped = inspect(&t, "clamped:1");
    let epoch: u64 = EPOCH.parse().unwrap();
    // The base layer is the same blob; every later layer was rewritten (its files were
    // written now, after the epoch), so the cache did not answer with the unclamped layers.
    assert_eq!(plain["layers"][0]["digest"], clamped["layers"][0]["digest"]);
    for i in 1..4 {
        assert_ne!(
            plain["layers"][i]["digest"], clamped["layers"][i]["digest"],
            "layer {i}"
        );
    }
    let base = layer_mtimes(&t, "clamped:1", 0);
    assert!(
        base.values().all(|m| *m > epoch),
        "the base layer keeps its mtimes: {base:?}"
    );
    for i in 1..4 {
        let mtimes = layer_mtimes(&t, "clamped:1", i);
        assert!(!mtimes.is_empty(), "layer {i}");
        assert!(
            mtimes.values().all(|m| *m == epoch),
            "layer {i}: {mtimes:?}"
        );
        let unclamped = layer_mtimes(&t, "plain:1", i);
        assert!(
            unclamped.values().any(|m| *m > epoch),
            "layer {i} without the flag keeps the build's times: {unclamped:?}"
        );
    }
    // A file older than the epoch keeps its mtime.
    let old = ctx.join("old.txt");
    std::fs::write(&old, "old\n").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000_000))
        .unwrap();
    t.write("ctx/Dockerfile", "FROM busybox\nCOPY old.txt /old.txt\n");
    t.ok(&[
        "build",
        "-q",
        "-t",
        "old:1",
        "--source-date-epoch",
        EPOCH,
        "--rewrite-timestamp",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(layer_mtimes(&t, "old:1", 1)["old.txt"], 1_000_000_000);
    // The snapshot (what `tare run` and later steps see) matches the layer it became.
    let out = t.ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        "clamped:1",
        "stat",
        "-c",
        "%Y",
        "/work/out",
    ]);
    assert_eq!(out.trim(), EPOCH);
}

/// Builds `ctx` into a fresh store at the given TMPDIR; returns (store, image ID, manifest
/// digest, sha256 of `save --format oci`).
fn build_on_fresh_store(
    busybox: &Path,
    ctx: &Path,
    extra: &[&str],
    tmpdir: &Path,
) -> (TestContext, String, String, String) {
    let t = TestContext::new();
    let run = |args: &[&str]| {
        let out = t.tare().args(args).env("TMPDIR", tmpdir).output().unwrap();
        assert!(
            out.status.success(),
            "tare {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&[
        "import",
        "--source-date-epoch",
        EPOCH,
        busybox.to_str().unwrap(),
        "busybox:latest",
    ]);
    let mut args = vec![
        "build",
        "-q",
        "--network",
        "none",
        "--source-date-epoch",
        EPOCH,
        "--rewrite-timestamp",
        "-t",
        "repro:1",
    ];
    args.extend(extra);
    args.push(ctx.to_str().unwrap());
    let id = run(&args).trim().to_string();
    let img: Value = serde_json::from_str(&run(&["inspect", "repro:1"])).unwrap();
    let oci = t.path().join("repro.oci.tar");
    run(&[
        "save",
        "--format",
        "oci",
        "-o",
        oci.to_str().unwrap(),
        "repro:1",
    ]);
    let sum = sha256_file(&oci);
    let manifest = img["manifest_digest"].as_str().unwrap().to_string();
    (t, id, manifest, sum)
}

fn sha256_file(path: &Path) -> String {
    use sha2::Digest as _;
    let bytes = std::fs::read(path).unwrap();
    format!("{:x}", sha2::Sha256::digest(&bytes))
}

/// The same busybox rootfs tar for every store.
fn shared_busybox() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let tar = dir.path().join("busybox.tar");
    crate::util::busybox_rootfs_tar(&tar);
    (dir, tar)
}

#[test]
fn import_with_an_epoch_gives_the_same_id_on_two_stores() {
    let (_keep, busybox) = shared_busybox();
    let ids: Vec<String> = (0..2)
        .map(|i| {
            if i == 1 {
                std::thread::sleep(std::time::Duration::from_millis(1100));
            }
            let t = TestContext::new();
            let out = t
                .tare()
                .args(["import", busybox.to_str().unwrap(), "bb:1"])
                .env("SOURCE_DATE_EPOCH", EPOCH)
                .output()
                .unwrap();
            assert!(out.status.success());
            String::from_utf8(out.stdout).unwrap().trim().to_string()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

/// The seed demo's multi-stage shape (build in one stage, copy the program into a fresh one)
/// on busybox: the same image ID, manifest digest and OCI archive bytes from two stores built
/// 1.1 s apart with different TMPDIRs.
#[test]
fn multi_stage_build_is_identical_on_two_stores() {
    let (_keep, busybox) = shared_busybox();
    let t = TestContext::new();
    t.write("ctx/hello.c", "int main(void) { return 0; }\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS build\n\
         WORKDIR /src\n\
         COPY hello.c .\n\
         RUN cp hello.c hello && chmod 755 hello && mkdir -p obj && echo o > obj/hello.o\n\
         \n\
         FROM busybox\n\
         COPY --from=build /src/hello /usr/local/bin/hello\n\
         CMD [\"/usr/local/bin/hello\"]\n",
    );
    let ctx = t.path().join("ctx");
    let tmp_a = tempfile::tempdir().unwrap();
    let tmp_b = tempfile::tempdir().unwrap();
    let (_a, id_a, manifest_a, oci_a) = build_on_fresh_store(&busybox, &ctx, &[], tmp_a.path());
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let (_b, id_b, manifest_b, oci_b) = build_on_fresh_store(&busybox, &ctx, &[], tmp_b.path());
    assert_eq!(id_a, id_b);
    assert_eq!(manifest_a, manifest_b);
    assert_eq!(oci_a, oci_b, "the OCI archives differ");
}

/// Differential cases whose result is deterministic once mtimes are clamped: those without
/// RUN, and these whose RUN writes the same bytes every time.
const DETERMINISTIC_RUN_CASES: &[&str] = &[
    "arg-basic",
    "arg-build-arg-override",
    "arg-env-precedence",
    "arg-global",
    "arg-stage-scope",
];

fn deterministic_cases() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/conformance/cases");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("Dockerfile").is_file() && !p.join("expect-fail").exists())
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            // As bytes: a case may hold bytes that are not UTF-8 (s9-dockerfile-latin1-bytes).
            let text =
                String::from_utf8_lossy(&std::fs::read(p.join("Dockerfile")).unwrap()).into_owned();
            let has_run = text
                .lines()
                .any(|l| l.trim_start().to_ascii_uppercase().starts_with("RUN"));
            !has_run || DETERMINISTIC_RUN_CASES.contains(&name.as_str())
        })
        .collect();
    cases.sort();
    cases
}

fn case_args(case: &Path) -> Vec<String> {
    std::fs::read_to_string(case.join("args"))
        .map(|s| {
            s.lines()
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Every deterministic differential case, built on two stores 1.1 s apart with different
/// TMPDIRs and the same epoch: the same image ID and manifest digest each time.
#[test]
fn differential_cases_build_identically_on_two_stores() {
    let (_keep, busybox) = shared_busybox();
    let cases = deterministic_cases();
    assert!(cases.len() > 100, "only {} cases", cases.len());
    let tmp_a = tempfile::tempdir().unwrap();
    let tmp_b = tempfile::tempdir().unwrap();
    let stores = [TestContext::new(), TestContext::new()];
    let mut results: [BTreeMap<String, (String, String)>; 2] = Default::default();
    for (i, (t, tmp)) in stores.iter().zip([&tmp_a, &tmp_b]).enumerate() {
        if i == 1 {
            std::thread::sleep(std::time::Duration::from_millis(1100));
        }
        let run = |args: &[&str]| {
            t.tare()
                .args(args)
                .env("TMPDIR", tmp.path())
                .output()
                .unwrap()
        };
        let out = run(&[
            "import",
            "--source-date-epoch",
            EPOCH,
            busybox.to_str().unwrap(),
            "busybox:latest",
        ]);
        assert!(out.status.success());
        for case in &cases {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            let tag = format!("repro/{name}:1");
            let extra = case_args(case);
            let mut args = vec![
                "build",
                "-q",
                "--network",
                "none",
                "--source-date-epoch",
                EPOCH,
                "--rewrite-timestamp",
                "-t",
                &tag,
            ];
            args.extend(extra.iter().map(String::as_str));
            let case_arg = case.to_string_lossy();
            args.push(&case_arg);
            let out = run(&args);
            assert!(
                out.status.success(),
                "{name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let img: Value = serde_json::from_slice(&run(&["inspect", &tag]).stdout).unwrap();
            results[i].insert(
                name,
                (
                    img["id"].as_str().unwrap().to_string(),
                    img["manifest_digest"].as_str().unwrap().to_string(),
                ),
            );
        }
    }
    let differ: Vec<&String> = results[0]
        .iter()
        .filter(|(name, r)| results[1].get(*name) != Some(r))
        .map(|(name, _)| name)
        .collect();
    assert!(differ.is_empty(), "not reproducible: {differ:?}");
}

#[test]
fn squash_with_an_epoch_gives_the_same_image_on_two_stores() {
    // One base tar, imported by both stores with the epoch: both start from one image.
    let base = tempfile::tempdir().unwrap();
    let tar = base.path().join("busybox.tar");
    crate::util::busybox_rootfs_tar(&tar);
    let squashed = |epoch_flag: bool| {
        let t = TestContext::new();
        let mut import = t.tare();
        import.env("SOURCE_DATE_EPOCH", "1700000000").args([
            "import",
            tar.to_str().unwrap(),
            "busybox",
        ]);
        assert!(import.status().unwrap().success());
        t.write(
            "ctx/Dockerfile",
            "FROM busybox\nRUN echo one > /one\nRUN echo two > /two\n",
        );
        let ctx = t.path().join("ctx");
        let mut build = t.tare();
        build
            .env("SOURCE_DATE_EPOCH", "1700000000")
            .args(["build", "-q", "--rewrite-timestamp", "-t", "app"])
            .arg(&ctx);
        assert!(build.status().unwrap().success());
        let mut squash = t.tare();
        squash.args([
            "squash",
            "--all",
            "--compression",
            "none",
            "app",
            "-t",
            "flat",
        ]);
        if epoch_flag {
            squash.args(["--source-date-epoch", "1700000000"]);
        } else {
            squash.env("SOURCE_DATE_EPOCH", "1700000000");
        }
        let out = squash.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let config = inspect(&t, "flat");
        let last = config["config"]["history"]
            .as_array()
            .unwrap()
            .last()
            .unwrap()
            .clone();
        assert_eq!(last["created"], "2023-11-14T22:13:20Z", "{last}");
        config["id"].as_str().unwrap().to_string()
    };
    // The flag and the environment, on two stores at two times: one image.
    assert_eq!(squashed(true), squashed(false));
}
