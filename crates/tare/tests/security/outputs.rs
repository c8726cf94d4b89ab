//! `tare build -o type=local,dest=DIR`: an image whose files are symlinks to the host, with
//! entries below them, hard links to host files and `..` names, must not make tare write
//! anything outside DIR.

use crate::fs_writes::{tar_of, Canary};
use crate::util::TestContext;

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    std::fs::create_dir_all(t.path().join("ctx")).expect("ctx dir");
    t
}

/// Imports a one-layer image holding `entries` as `name`.
fn import(t: &TestContext, name: &str, entries: &[(&str, tar::EntryType, &str)]) {
    let tar = t.path().join(format!("{name}.tar"));
    std::fs::write(&tar, tar_of(entries)).expect("write tar");
    t.ok(&["import", tar.to_str().expect("utf-8"), name]);
}

/// Builds `FROM image` into DIR; returns whether it succeeded and the output.
fn build_local(t: &TestContext, image: &str, dest: &std::path::Path) -> (bool, String) {
    std::fs::write(t.path().join("ctx/Dockerfile"), format!("FROM {image}\n")).expect("write");
    let spec = format!("type=local,dest={}", dest.display());
    let ctx = t.path().join("ctx");
    let out = t.run(&["build", "-q", "-o", &spec, ctx.to_str().expect("utf-8")]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (out.status.success(), stderr)
}

#[test]
fn local_output_writes_below_image_symlinks_inside_dest() {
    let t = setup();
    let canary = Canary::new(&t);
    // The image holds the canary's path as directories of its own, so its links resolve (in
    // the image) and the build succeeds; in DIR, what goes below them must stay in DIR.
    let mut dirs = Vec::new();
    let mut prefix = String::new();
    for comp in canary.path().trim_start_matches('/').split('/') {
        prefix = if prefix.is_empty() {
            comp.to_string()
        } else {
            format!("{prefix}/{comp}")
        };
        dirs.push(format!("{prefix}/"));
    }
    let up = format!("../../../../../../../..{}", canary.path());
    let mut entries: Vec<(&str, tar::EntryType, &str)> = dirs
        .iter()
        .map(|d| (d.as_str(), tar::EntryType::Directory, ""))
        .collect();
    entries.extend([
        ("abs", tar::EntryType::Symlink, canary.path()),
        ("abs/pwned", tar::EntryType::Regular, "owned\n"),
        ("abs/keep", tar::EntryType::Regular, "overwritten\n"),
        ("rel", tar::EntryType::Symlink, up.as_str()),
        ("rel/victim", tar::EntryType::Directory, ""),
        ("rel/victim/inner", tar::EntryType::Regular, "overwritten\n"),
    ]);
    import(&t, "evil-links:1", &entries);
    let dest = t.path().join("out");
    let (ok, stderr) = build_local(&t, "evil-links:1", &dest);
    canary.assert_intact();
    assert!(!canary.dir.join("pwned").exists());
    assert!(ok, "{stderr}");
    // The links stay links in DIR; what went below them is in DIR's copy of the path.
    assert!(std::fs::symlink_metadata(dest.join("abs"))
        .expect("abs")
        .file_type()
        .is_symlink());
    let inside = dest.join(canary.path().trim_start_matches('/'));
    assert_eq!(
        std::fs::read_to_string(inside.join("pwned")).expect("pwned in DIR"),
        "owned\n"
    );
    assert_eq!(
        std::fs::read_to_string(inside.join("victim/inner")).expect("inner in DIR"),
        "overwritten\n"
    );
}

#[test]
fn local_output_refuses_hard_links_and_names_that_leave_dest() {
    let t = setup();
    let canary = Canary::new(&t);
    let keep = canary.dir.join("keep");
    let keep = keep.to_str().expect("utf-8");
    for (i, entries) in [
        vec![("hl", tar::EntryType::Link, keep)],
        vec![("../../../escaped", tar::EntryType::Regular, "x\n")],
        vec![
            ("d", tar::EntryType::Symlink, canary.path()),
            ("hl", tar::EntryType::Link, "d/keep"),
        ],
    ]
    .into_iter()
    .enumerate()
    {
        let name = format!("evil-hard-{i}:1");
        let tar = t.path().join(format!("evil-{i}.tar"));
        std::fs::write(&tar, tar_of(&entries)).expect("write tar");
        let imported = t.run(&["import", tar.to_str().expect("utf-8"), &name]);
        if !imported.status.success() {
            // Refused at the door: nothing to export.
            continue;
        }
        let dest = t.path().join(format!("out-{i}"));
        let (ok, stderr) = build_local(&t, &name, &dest);
        canary.assert_intact();
        assert!(!t.path().join("escaped").exists());
        assert!(!t.path().parent().expect("parent").join("escaped").exists());
        if ok {
            // A hard link made in DIR is never to the host file.
            if let Ok(meta) = std::fs::metadata(dest.join("hl")) {
                let host = std::fs::metadata(keep).expect("keep");
                use std::os::unix::fs::MetadataExt;
                assert_ne!(meta.ino(), host.ino(), "DIR/hl is the host's file");
            }
        } else {
            assert!(!stderr.is_empty());
        }
    }
}
