//! The differential cases rootless: every case under `tests/conformance/cases` is built by tare
//! as root and by tare as `tare-rootless` (an ordinary user with a subordinate ID range, through
//! `setpriv`, see `tests/util/rootless.rs`), and the two images must be the same image.
//!
//! BuildKit is not run again: `tare_builds_what_buildkit_builds` already compares root tare with
//! it, so root tare is the reference here and the extra CI time is two tare builds per case.
//!
//! What "the same" means, per case:
//! - the image IDs are equal, or
//! - they differ only because of the build's clock, which is the one known non-determinism:
//!   a step that makes a layer stamps `created` in the config and its history with the time it
//!   ran, and the files and directories it makes (a RUN's new files, the parents COPY and
//!   WORKDIR create) get that time as their mtime, so the diff ID changes too. Then the configs
//!   must be equal once every `created` and the diff IDs are removed, and each layer must hold
//!   the same entries (path, type, mode, uid, gid, size, content, link, xattrs; no times),
//!   whiteouts included. An image that made no layer of its own must have the same ID.
//! - a case both must refuse is refused by both, naming the same location.

#[path = "../util/rootless.rs"]
pub(super) mod user;

use std::path::Path;
use std::process::Command;

use user::RootlessUser;

use crate::util::TestContext;

/// The image record as `tare inspect` prints it.
fn inspect(out: &str) -> serde_json::Value {
    serde_json::from_str(out).expect("inspect json")
}

/// The config without the build's clock (every `created`) and without the diff IDs, which
/// [`layers`] compares without times instead. Returns it and the number of layers the build
/// added on top of its base.
fn timeless(image: &serde_json::Value) -> (serde_json::Value, usize) {
    let mut config = image["config"].clone();
    config.as_object_mut().expect("config").remove("created");
    let mut own_layers = 0;
    if let Some(hs) = config["history"].as_array_mut() {
        for h in hs {
            // The base's layers (an import) carry no BuildKit comment.
            if !h["empty_layer"].as_bool().unwrap_or(false)
                && h["comment"].as_str() == Some("buildkit.dockerfile.v0")
            {
                own_layers += 1;
            }
            if let Some(o) = h.as_object_mut() {
                o.remove("created");
            }
        }
    }
    if let Some(ids) = config["rootfs"]["diff_ids"].as_array_mut() {
        let n = ids.len();
        *ids = vec![serde_json::Value::from(n)];
    }
    (config, own_layers)
}

/// Each layer of `image` as a flattened tree without times (`tare save --compression none`,
/// the layer tars as they are, whiteout files included).
fn layers(tare: Command, image: &str, scratch: &Path) -> Vec<super::Tree> {
    let saved = scratch.join("rootless-layers.tar");
    let mut tare = tare;
    let out = tare
        .args(["save", "--compression", "none", "-o"])
        .arg(&saved)
        .arg(image)
        .output()
        .expect("spawn tare save");
    assert!(
        out.status.success(),
        "tare save {image}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = std::collections::BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(&saved).expect("open save"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let path = entry.path().expect("path").to_string_lossy().into_owned();
        let mut data = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut data).expect("read");
        files.insert(path, data);
    }
    let _ = std::fs::remove_file(&saved);
    let manifest: serde_json::Value =
        serde_json::from_slice(&files["manifest.json"]).expect("manifest.json");
    let mut trees = Vec::new();
    for layer in manifest[0]["Layers"].as_array().expect("Layers") {
        let one = scratch.join("rootless-layer.tar");
        std::fs::write(&one, &files[layer.as_str().expect("layer path")]).expect("write layer");
        trees.push(super::flatten(&one));
        let _ = std::fs::remove_file(&one);
    }
    trees
}

/// Copies a case into the user's scratch directory (times kept), owned by the user, so that both
/// builds read the same context and the user can read all of it.
fn case_copy(u: &RootlessUser, case: &Path) -> std::path::PathBuf {
    let dest = u.path().join("case");
    let _ = std::fs::remove_dir_all(&dest);
    let status = Command::new("cp")
        .arg("-a")
        .arg(case)
        .arg(&dest)
        .status()
        .expect("cp");
    assert!(status.success(), "cp -a {}", case.display());
    let status = Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", u.uid, u.gid))
        .arg(&dest)
        .status()
        .expect("chown");
    assert!(status.success(), "chown {}", dest.display());
    dest
}

/// Builds one case as root and as the user; `Ok(true)` when the image IDs are equal, `Err`
/// says how the two differ.
fn rootless_case(
    root: &TestContext,
    u: &RootlessUser,
    case: &Path,
    snapshotter: &str,
) -> Result<bool, String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let dir = case_copy(u, case);
    let dir = dir.to_str().expect("utf-8 path");
    let tag = format!("conf-rootless/{name}:latest");
    let mut args = vec!["build", "-q", "-t", &tag];
    let extra = super::case_args(case);
    args.extend(extra.iter().map(String::as_str));
    args.push(dir);
    // Both from the test's directory: a case's `args` may name files relative to it.
    let cwd = std::env::current_dir().expect("cwd");
    let want = root.run(&args);
    let got = u
        .tare()
        .current_dir(&cwd)
        .env("TARE_SNAPSHOTTER", snapshotter)
        .args(&args)
        .output()
        .expect("spawn rootless tare");
    let (want_err, got_err) = (
        String::from_utf8_lossy(&want.stderr),
        String::from_utf8_lossy(&got.stderr),
    );
    if got_err.contains("panicked") {
        return Err(format!("rootless tare panicked:\n{got_err}"));
    }
    if let Some(location) = super::expected_failure(case) {
        return match (want.status.success(), got.status.success()) {
            (false, false) if got_err.contains(&location) => Ok(false),
            (false, false) => Err(format!(
                "rootless error does not name {location}:\n{got_err}"
            )),
            _ => Err(format!(
                "expect-fail: root built it: {}, rootless built it: {}",
                want.status.success(),
                got.status.success()
            )),
        };
    }
    match (want.status.success(), got.status.success()) {
        (true, true) => {}
        (true, false) => return Err(format!("rootless build failed:\n{got_err}")),
        (false, _) => return Err(format!("root build failed:\n{want_err}")),
    }
    let (want_id, got_id) = (
        String::from_utf8_lossy(&want.stdout).trim().to_string(),
        String::from_utf8_lossy(&got.stdout).trim().to_string(),
    );
    if want_id == got_id {
        return Ok(true);
    }
    let mut problems = Vec::new();
    let (want_cfg, own) = timeless(&inspect(&root.ok(&["inspect", &tag])));
    let (got_cfg, _) = timeless(&inspect(&u.ok(&["inspect", &tag])));
    if own == 0 {
        problems.push(format!(
            "no layer of its own, yet the IDs differ: root {want_id}, rootless {got_id}"
        ));
    }
    if want_cfg != got_cfg {
        problems.push(format!(
            "config (without times) differs:\n      root     {want_cfg}\n      rootless {got_cfg}"
        ));
    }
    let mut want_cmd = root.tare();
    want_cmd.stdin(std::process::Stdio::null());
    let want_layers = layers(want_cmd, &tag, root.path());
    let got_layers = layers(u.tare(), &tag, u.path());
    if want_layers.len() != got_layers.len() {
        problems.push(format!(
            "layer count: root {}, rootless {}",
            want_layers.len(),
            got_layers.len()
        ));
    }
    for (n, (w, g)) in want_layers.iter().zip(&got_layers).enumerate() {
        problems.extend(super::diff_trees(w, g).into_iter().map(|d| {
            let d = d.replace("only in tare", "only in rootless");
            let d = d.replace("docker", "root").replace("tare   ", "rootless ");
            format!("layer {n}: {d}")
        }));
    }
    if problems.is_empty() {
        Ok(false)
    } else {
        Err(problems.join("\n    "))
    }
}

/// A store for root and one for the user, with the same busybox base image.
fn stores() -> (TestContext, RootlessUser) {
    let root = TestContext::new();
    super::prepare_tare_base(&root);
    let u = user_with_base(&root);
    (root, u)
}

/// The user with a subordinate range, and in its store root's `busybox:latest`.
pub(super) fn user_with_base(root: &TestContext) -> RootlessUser {
    let u = RootlessUser::ranged();
    // One base for both: an import records its time, so the user loads root's.
    let saved = u.path().join("base-saved.tar");
    root.ok(&["save", "busybox:latest", "-o", saved.to_str().unwrap()]);
    std::fs::set_permissions(&saved, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    u.ok(&["load", "-i", saved.to_str().unwrap()]);
    let _ = std::fs::remove_file(&saved);
    u
}

#[test]
fn rootless_tare_builds_what_root_tare_builds() {
    let (root, u) = stores();
    let filter = std::env::var("CONFORMANCE_FILTER").unwrap_or_default();
    let cases = super::all_cases();
    assert!(
        !filter.is_empty() || cases.len() >= 150,
        "expected at least 150 cases, found {}",
        cases.len()
    );
    let (mut passed, mut same_id, mut failures) = (0, 0, Vec::new());
    for case in cases
        .iter()
        .filter(|c| c.to_string_lossy().contains(&filter))
    {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        match rootless_case(&root, &u, case, "auto") {
            Ok(same) => {
                passed += 1;
                same_id += usize::from(same);
            }
            Err(e) => failures.push(format!("{name}:\n    {e}")),
        }
    }
    println!(
        "rootless conformance: {passed} passed, {} failed ({same_id} with the same image ID)",
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "rootless tare differs from root tare:\n{}",
        failures.join("\n")
    );
    // The user's store holds nothing owned outside its IDs.
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}

/// The copy fallback (`TARE_SNAPSHOTTER=copy`, what tare uses where overlayfs is refused):
/// the cases of RUN steps (`run-*`: whiteouts, opaque directories, links, modes, owners,
/// special files) built rootless with copies must give root's overlay images.
#[test]
fn rootless_copy_snapshots_build_what_overlay_builds() {
    let (root, u) = stores();
    let filter = std::env::var("CONFORMANCE_FILTER").unwrap_or_default();
    let cases: Vec<_> = super::all_cases()
        .into_iter()
        .filter(|c| {
            c.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("run-"))
                && c.to_string_lossy().contains(&filter)
        })
        .collect();
    assert!(
        !filter.is_empty() || cases.len() >= 20,
        "{} run-* cases",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = rootless_case(&root, &u, case, "copy") {
            let name = case.file_name().unwrap().to_string_lossy().into_owned();
            failures.push(format!("{name}:\n    {e}"));
        }
    }
    println!(
        "rootless copy snapshots: {} passed, {} failed",
        cases.len() - failures.len(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "copy snapshots differ from overlay:\n{}",
        failures.join("\n")
    );

    // -v says which snapshots a build uses.
    let ctx = u.write("verbose/Dockerfile", b"FROM busybox\nRUN echo v > /v\n");
    let out = u
        .tare()
        .env("TARE_SNAPSHOTTER", "copy")
        .args(["-v", "build", "-q", "--no-cache"])
        .arg(ctx.parent().unwrap())
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("snapshots: copies (TARE_SNAPSHOTTER=copy)"),
        "{err}"
    );
    let out = u
        .tare()
        .args(["-v", "build", "-q", "--no-cache"])
        .arg(ctx.parent().unwrap())
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("snapshots: native overlayfs (userxattr"),
        "{err}"
    );
    let out = u
        .tare()
        .env("TARE_SNAPSHOTTER", "fuse")
        .args(["build", "-q", "--no-cache"])
        .arg(ctx.parent().unwrap())
        .output()
        .expect("spawn");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("TARE_SNAPSHOTTER=fuse: use overlay, copy or auto"),
        "{err}"
    );
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
