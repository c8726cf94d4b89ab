//! `tare diff` of archives: the archive is read through `tare load`'s reader into a temporary
//! store. Hostile archives (entries and manifest paths leaving the archive, links to host
//! files, blobs that are not their digest, layers whose entries climb out or whiteout host
//! paths, oversized configs) must be refused naming the archive, or compared harmlessly; the
//! host and the user's store stay as they were.

use std::path::Path;

use sha2::Digest as _;

use crate::fs_writes::Canary;
use crate::util::TestContext;

/// A tar with raw names (the tar crate refuses `..` and absolute names) and binary contents.
pub(crate) fn raw_tar(entries: &[(&str, tar::EntryType, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(*kind);
        h.set_mode(0o644);
        h.set_mtime(1_600_000_000);
        let name = path.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        if matches!(kind, tar::EntryType::Symlink | tar::EntryType::Link) {
            h.as_old_mut().linkname[..data.len()].copy_from_slice(data);
            h.set_size(0);
            h.set_cksum();
            b.append(&h, std::io::empty()).expect("append");
        } else {
            h.set_size(data.len() as u64);
            h.set_cksum();
            b.append(&h, *data).expect("append");
        }
    }
    b.into_inner().expect("tar")
}

pub(crate) fn sha(bytes: &[u8]) -> String {
    format!("sha256:{:x}", sha2::Sha256::digest(bytes))
}

/// The config of a one-layer image whose diffID is that of `layer`.
pub(crate) fn config_for(layer: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha(layer)]},
    }))
    .expect("json")
}

/// A docker archive: `manifest.json` naming `config` and `layers`, then `extra` entries.
fn docker_archive(
    config: &str,
    layers: &[&str],
    files: &[(&str, tar::EntryType, &[u8])],
) -> Vec<u8> {
    let manifest = serde_json::to_vec(&serde_json::json!([
        {"Config": config, "RepoTags": ["hostile:1"], "Layers": layers}
    ]))
    .expect("json");
    let mut entries: Vec<(&str, tar::EntryType, &[u8])> =
        vec![("manifest.json", tar::EntryType::Regular, &manifest)];
    entries.extend_from_slice(files);
    raw_tar(&entries)
}

/// Writes a docker archive of one image: `config.json` and `layer.tar`.
fn write_one_image(path: &Path, config: &[u8], layer: &[u8]) {
    let files: [(&str, tar::EntryType, &[u8]); 2] = [
        ("config.json", tar::EntryType::Regular, config),
        ("layer.tar", tar::EntryType::Regular, layer),
    ];
    std::fs::write(path, docker_archive("config.json", &["layer.tar"], &files)).expect("write");
}

/// The user's store: its images and the names in its temporary directory.
fn store_state(t: &TestContext) -> (String, Vec<String>) {
    let images = t.ok(&["images", "-a", "-q", "--no-trunc"]);
    let mut names = Vec::new();
    for owner in std::fs::read_dir(t.root.path().join("tmp"))
        .into_iter()
        .flatten()
        .flatten()
    {
        for e in std::fs::read_dir(owner.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            names.push(e.file_name().to_string_lossy().into_owned());
        }
    }
    (images, names)
}

/// Runs `tare diff ARCHIVE base:1` (and `--why`): refused naming the archive, no panic.
fn assert_refused(t: &TestContext, archive: &Path, expect: &str) {
    let path = archive.to_str().expect("utf-8");
    for why in [false, true] {
        let mut args = vec!["diff"];
        if why {
            args.push("--why");
        }
        args.extend([path, "base:1"]);
        let out = t.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{path} was accepted: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains(path),
            "the error does not name {path}: {stderr}"
        );
        assert!(stderr.contains(expect), "expected {expect:?}: {stderr}");
    }
}

fn setup() -> (TestContext, Canary) {
    let t = TestContext::new();
    let root = t.path().join("rootfs");
    std::fs::create_dir_all(root.join("etc")).expect("mkdir");
    std::fs::write(root.join("etc/conf"), "x\n").expect("write");
    t.import_dir(&root, "base:1");
    let canary = Canary::new(&t);
    (t, canary)
}

#[test]
fn archives_whose_paths_leave_them_or_lie_about_digests_are_refused_naming_the_file() {
    let (t, canary) = setup();
    let before = store_state(&t);
    let keep = canary.dir.join("keep");
    let keep_s = keep.to_str().expect("utf-8");
    let up = format!("../../../../../../../..{keep_s}");
    let layer = raw_tar(&[("f", tar::EntryType::Regular, b"hello")]);
    let config = config_for(&layer);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        // The manifest names a host file as the layer, through `..` and absolutely.
        (
            "dotdot-layer.tar",
            docker_archive(
                "config.json",
                &[&up],
                &[("config.json", tar::EntryType::Regular, &config)],
            ),
            "",
        ),
        (
            "absolute-config.tar",
            docker_archive(keep_s, &["layer.tar"], &[]),
            "",
        ),
        // An archive entry that climbs out.
        (
            "slip.tar",
            docker_archive(
                "config.json",
                &["layer.tar"],
                &[
                    ("config.json", tar::EntryType::Regular, &config),
                    ("layer.tar", tar::EntryType::Regular, &layer),
                    (&up, tar::EntryType::Regular, b"pwned\n"),
                ],
            ),
            "leaves the archive",
        ),
        // The layer is a symlink to the host file, and a hard link to it.
        (
            "symlink-layer.tar",
            docker_archive(
                "config.json",
                &["layer.tar"],
                &[
                    ("config.json", tar::EntryType::Regular, &config),
                    ("layer.tar", tar::EntryType::Symlink, keep_s.as_bytes()),
                ],
            ),
            // An absolute target is a path inside the archive, which is not there.
            "not in the archive",
        ),
        (
            "hardlink-layer.tar",
            docker_archive(
                "config.json",
                &["layer.tar"],
                &[
                    ("config.json", tar::EntryType::Regular, &config),
                    ("layer.tar", tar::EntryType::Link, up.as_bytes()),
                ],
            ),
            "leaves the archive",
        ),
    ];
    for (name, bytes, expect) in cases {
        let path = t.path().join(name);
        std::fs::write(&path, bytes).expect("write");
        assert_refused(&t, &path, expect);
        canary.assert_intact();
        assert_eq!(store_state(&t), before, "{name} changed the store");
    }

    // An OCI archive whose blob is not its digest.
    let index = serde_json::json!({"schemaVersion": 2, "manifests": []});
    let wrong = "0".repeat(64);
    let oci = raw_tar(&[
        (
            "oci-layout",
            tar::EntryType::Regular,
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        (
            "index.json",
            tar::EntryType::Regular,
            &serde_json::to_vec(&index).expect("json"),
        ),
        (
            &format!("blobs/sha256/{wrong}"),
            tar::EntryType::Regular,
            b"not that digest",
        ),
    ]);
    let path = t.path().join("lying-blob.tar");
    std::fs::write(&path, oci).expect("write");
    assert_refused(&t, &path, "");
    canary.assert_intact();
    assert_eq!(store_state(&t), before);
}

#[test]
fn a_config_larger_than_the_limit_is_refused_and_nothing_is_kept() {
    let (t, canary) = setup();
    let before = store_state(&t);
    let layer = raw_tar(&[("f", tar::EntryType::Regular, b"hello")]);
    let mut config = config_for(&layer);
    // A valid JSON config padded with 20 MB of spaces.
    config.splice(1..1, vec![b' '; 20 << 20]);
    let path = t.path().join("huge-config.tar");
    write_one_image(&path, &config, &layer);
    assert_refused(&t, &path, "");
    canary.assert_intact();
    assert_eq!(store_state(&t), before);
}

#[test]
fn layers_that_climb_out_or_whiteout_host_paths_are_only_compared() {
    let (t, canary) = setup();
    let before = store_state(&t);
    let keep = canary.dir.join("keep");
    let victim = canary.dir.join("victim");
    let up = |p: &Path| format!("../../../../../../../..{}", p.display());
    let wh_parent = canary.dir.display().to_string();
    let whiteout = format!("../../../../../../..{wh_parent}/.wh.keep");
    let opaque = format!("../../../../../../..{}/.wh..wh..opq", victim.display());
    let up_keep = up(&keep);
    let layer = raw_tar(&[
        (&up_keep, tar::EntryType::Regular, b"pwned\n"),
        (&whiteout, tar::EntryType::Regular, b""),
        (&opaque, tar::EntryType::Regular, b""),
        (
            "link",
            tar::EntryType::Symlink,
            keep.to_str().expect("utf-8").as_bytes(),
        ),
        ("link/inner", tar::EntryType::Regular, b"through the link\n"),
        ("etc/conf", tar::EntryType::Link, up_keep.as_bytes()),
    ]);
    let config = config_for(&layer);
    let path = t.path().join("climbing-layer.tar");
    write_one_image(&path, &config, &layer);
    let archive = path.to_str().expect("utf-8");
    // The loader may refuse such a layer or compare it; either way nothing is written.
    for args in [
        vec!["diff", "base:1", archive],
        vec!["diff", "--why", "base:1", archive],
        vec!["diff", "--html", "/dev/null", "base:1", archive],
    ] {
        let out = t.run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        if !out.status.success() {
            assert!(stderr.contains(archive), "{stderr}");
        }
        canary.assert_intact();
        assert_eq!(store_state(&t), before);
    }
}
