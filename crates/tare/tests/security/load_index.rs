//! `tare load` of hostile multi-platform OCI archives: an index naming blobs the archive does
//! not hold, an index listing another index, an index listing thousands of images. Each is
//! refused naming the archive and the digest, before any image is stored: the store keeps
//! the images it had and `tare check` finds it consistent; the host canary is untouched.

use crate::diff_archives::{config_for, raw_tar, sha};
use crate::fs_writes::Canary;
use crate::util::TestContext;

pub(crate) const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";

/// One blob of an archive: its `blobs/sha256/HEX` path and bytes.
pub(crate) fn blob(bytes: Vec<u8>) -> (String, Vec<u8>) {
    (
        format!("blobs/sha256/{}", sha(&bytes).trim_start_matches("sha256:")),
        bytes,
    )
}

pub(crate) fn descriptor(media_type: &str, bytes: &[u8], arch: &str) -> serde_json::Value {
    serde_json::json!({
        "mediaType": media_type,
        "digest": sha(bytes),
        "size": bytes.len(),
        "platform": {"os": "linux", "architecture": arch},
    })
}

/// A one-layer image (a tar with `/hi`): its layer, config and manifest blobs.
pub(crate) fn image_blobs() -> Vec<(String, Vec<u8>)> {
    let layer = raw_tar(&[("hi", tar::EntryType::Regular, b"hi\n")]);
    let config = config_for(&layer);
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": sha(&config), "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": sha(&layer), "size": layer.len()}],
    }))
    .unwrap();
    vec![blob(layer), blob(config), blob(manifest)]
}

/// An OCI archive whose `index.json` names `index` as `hostile:1`, with `blobs`.
fn archive(t: &TestContext, index: &[u8], blobs: &[(String, Vec<u8>)]) -> String {
    let top = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": INDEX,
            "digest": sha(index),
            "size": index.len(),
            "annotations": {"org.opencontainers.image.ref.name": "hostile:1"},
        }],
    }))
    .unwrap();
    let index_blob = blob(index.to_vec());
    let mut entries: Vec<(&str, tar::EntryType, &[u8])> = vec![
        (
            "oci-layout",
            tar::EntryType::Regular,
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        ("index.json", tar::EntryType::Regular, &top),
        (&index_blob.0, tar::EntryType::Regular, &index_blob.1),
    ];
    for (path, bytes) in blobs {
        entries.push((path, tar::EntryType::Regular, bytes));
    }
    let path = t.path().join("hostile.tar");
    std::fs::write(&path, raw_tar(&entries)).unwrap();
    path.to_str().unwrap().to_string()
}

pub(crate) fn index_of(entries: &[serde_json::Value]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2, "mediaType": INDEX, "manifests": entries,
    }))
    .unwrap()
}

/// Loads the archive, which must fail with `expect` in its error and leave the store as it
/// was.
pub(crate) fn refused(t: &TestContext, canary: &Canary, path: &str, expect: &[&str]) {
    let before = t.ok(&["images", "-a", "-q", "--no-trunc"]);
    let err = t.fails(&["load", "-i", path]);
    assert!(err.contains(path), "names the archive: {err}");
    for e in expect {
        assert!(err.contains(e), "{e:?} in: {err}");
    }
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        t.ok(&["images", "-a", "-q", "--no-trunc"]),
        before,
        "no image kept"
    );
    assert!(t.run(&["inspect", "hostile:1"]).status.code() != Some(0));
    let check = t.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");
    canary.assert_intact();
}

#[test]
fn an_index_naming_missing_blobs_is_refused_before_any_image_is_stored() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let good = image_blobs();
    // amd64 is complete; the arm64 entry's manifest is not in the archive.
    let ghost = b"{\"not\":\"here\"}".to_vec();
    let index = index_of(&[
        descriptor(MANIFEST, &good[2].1, "amd64"),
        descriptor(MANIFEST, &ghost, "arm64"),
    ]);
    let path = archive(&t, &index, &good);
    refused(&t, &canary, &path, &[&sha(&ghost), "not in the archive"]);
    // The manifest is there but its layer is not.
    let index = index_of(&[descriptor(MANIFEST, &good[2].1, "amd64")]);
    let path = archive(&t, &index, &good[1..]);
    refused(
        &t,
        &canary,
        &path,
        &[&sha(&good[0].1), "layer", "not in the archive"],
    );
    // The index itself is missing: index.json names a blob nobody wrote.
    let top_only = raw_tar(&[(
        "index.json",
        tar::EntryType::Regular,
        &serde_json::to_vec(&serde_json::json!({"schemaVersion": 2, "manifests": [{
            "mediaType": INDEX, "digest": sha(b"nothing"), "size": 7,
            "annotations": {"org.opencontainers.image.ref.name": "hostile:1"}}]}))
        .unwrap(),
    )]);
    let path = t.path().join("top-only.tar");
    std::fs::write(&path, top_only).unwrap();
    refused(&t, &canary, path.to_str().unwrap(), &[&sha(b"nothing")]);
}

#[test]
fn a_nested_index_is_refused() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let mut blobs = image_blobs();
    let inner = index_of(&[descriptor(MANIFEST, &blobs[2].1, "amd64")]);
    let outer = index_of(&[
        descriptor(MANIFEST, &blobs[2].1, "amd64"),
        descriptor(INDEX, &inner, "arm64"),
    ]);
    blobs.push(blob(inner.clone()));
    let path = archive(&t, &outer, &blobs);
    refused(&t, &canary, &path, &["nested", &sha(&inner)]);
}

#[test]
fn an_index_listing_thousands_of_images_is_refused() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let blobs = image_blobs();
    let entries = vec![descriptor(MANIFEST, &blobs[2].1, "amd64"); 20_000];
    let index = index_of(&entries);
    let path = archive(&t, &index, &blobs);
    refused(&t, &canary, &path, &["20000 images", "256"]);
}

#[test]
fn a_sound_index_archive_loads_as_one_index() {
    // The control: the same archive without a flaw loads, so the refusals above are the
    // flaws', not the builder's.
    let t = TestContext::new();
    let blobs = image_blobs();
    let index = index_of(&[descriptor(MANIFEST, &blobs[2].1, "amd64")]);
    let path = archive(&t, &index, &blobs);
    t.ok(&["load", "-i", &path]);
    assert!(t.ok(&["inspect", "hostile:1"]).contains("\"index\""));
    let check = t.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");
}
