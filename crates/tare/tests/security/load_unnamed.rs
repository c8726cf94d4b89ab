//! `tare load` of hostile unnamed multi-platform OCI archives (`index.json` names an index
//! without a name annotation; tare keeps it whole, found by its digest). An index that lists
//! `index.json` again (a blob holding its bytes: the nearest thing to an index naming itself,
//! which content addressing rules out), indexes nested deep, a manifest blob that is an
//! index, an index none of whose platforms has all its blobs, one listing only attestations:
//! each is refused naming the archive and the digest, nothing is stored (no image, no
//! unnamed index), `tare check` finds the store consistent and the host canary is untouched.

use crate::diff_archives::{raw_tar, sha};
use crate::fs_writes::Canary;
use crate::load_index::{blob, descriptor, image_blobs, index_of, INDEX, MANIFEST};
use crate::util::TestContext;

/// An OCI archive whose `index.json` is `top` (as given, byte for byte), with `blobs`.
fn archive(t: &TestContext, top: &[u8], blobs: &[(String, Vec<u8>)]) -> String {
    let mut entries: Vec<(&str, tar::EntryType, &[u8])> = vec![
        (
            "oci-layout",
            tar::EntryType::Regular,
            br#"{"imageLayoutVersion":"1.0.0"}"#,
        ),
        ("index.json", tar::EntryType::Regular, top),
    ];
    for (path, bytes) in blobs {
        entries.push((path, tar::EntryType::Regular, bytes));
    }
    let path = t.path().join("unnamed.tar");
    std::fs::write(&path, raw_tar(&entries)).unwrap();
    path.to_str().unwrap().to_string()
}

/// `index.json` naming `index` without a name.
fn top_of(media_type: &str, index: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": INDEX,
        "manifests": [{"mediaType": media_type, "digest": sha(index), "size": index.len()}],
    }))
    .unwrap()
}

/// Loads the archive, which must fail with each of `expect` in its error and leave the store
/// as it was, without an unnamed index either.
fn refused(t: &TestContext, canary: &Canary, path: &str, expect: &[&str]) {
    crate::load_index::refused(t, canary, path, expect);
    let kept =
        std::fs::read_to_string(t.root.path().join("unnamed-indexes.json")).unwrap_or_default();
    assert!(!kept.contains("sha256:"), "no unnamed index kept: {kept}");
}

#[test]
fn an_index_listing_index_json_again_is_refused() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let mut blobs = image_blobs();
    // index.json names X; X lists, as its arm64 image, an index whose bytes are what an
    // index.json naming X would be (a loop as far as digests allow).
    let inner = index_of(&[descriptor(MANIFEST, &blobs[2].1, "amd64")]);
    let again = top_of(INDEX, &inner);
    let x = index_of(&[
        descriptor(MANIFEST, &blobs[2].1, "amd64"),
        descriptor(INDEX, &again, "arm64"),
    ]);
    blobs.extend([blob(x.clone()), blob(again.clone()), blob(inner)]);
    let path = archive(&t, &top_of(INDEX, &x), &blobs);
    refused(&t, &canary, &path, &["nested", &sha(&x), &sha(&again)]);
}

#[test]
fn indexes_nested_deep_are_refused_at_the_first_level() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let mut blobs = image_blobs();
    let mut index = index_of(&[descriptor(MANIFEST, &blobs[2].1, "amd64")]);
    for _ in 0..64 {
        let outer = index_of(&[descriptor(INDEX, &index, "amd64")]);
        blobs.push(blob(std::mem::replace(&mut index, outer)));
    }
    blobs.push(blob(index.clone()));
    let path = archive(&t, &top_of(INDEX, &index), &blobs);
    refused(&t, &canary, &path, &["nested", &sha(&index)]);
}

#[test]
fn a_manifest_blob_that_is_an_index_is_refused() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let mut blobs = image_blobs();
    let inner = index_of(&[descriptor(MANIFEST, &blobs[2].1, "amd64")]);
    // Listed by the index as an image manifest.
    let x = index_of(&[descriptor(MANIFEST, &inner, "amd64")]);
    blobs.extend([blob(x.clone()), blob(inner.clone())]);
    let path = archive(&t, &top_of(INDEX, &x), &blobs);
    refused(&t, &canary, &path, &[&sha(&inner), "is an image index"]);
    // Named by index.json itself as an image manifest.
    let path = archive(&t, &top_of(MANIFEST, &inner), &blobs);
    refused(&t, &canary, &path, &[&sha(&inner), "is an image index"]);
}

#[test]
fn an_index_none_of_whose_platforms_is_complete_is_refused() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let good = image_blobs();
    // amd64's layer is missing, arm64's manifest is.
    let ghost = b"{\"not\":\"here\"}".to_vec();
    let x = index_of(&[
        descriptor(MANIFEST, &good[2].1, "amd64"),
        descriptor(MANIFEST, &ghost, "arm64"),
    ]);
    let mut blobs = good[1..].to_vec();
    blobs.push(blob(x.clone()));
    let path = archive(&t, &top_of(INDEX, &x), &blobs);
    refused(
        &t,
        &canary,
        &path,
        &[&sha(&x), "no platform", &sha(&good[0].1), &sha(&ghost)],
    );
}

#[test]
fn an_index_of_attestations_only_is_refused() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let mut blobs = image_blobs();
    let x = index_of(&[descriptor(MANIFEST, &blobs[2].1, "unknown")
        .as_object()
        .map(|d| {
            let mut d = d.clone();
            d["platform"] = serde_json::json!({"os": "unknown", "architecture": "unknown"});
            serde_json::Value::Object(d)
        })
        .unwrap()]);
    blobs.push(blob(x.clone()));
    let path = archive(&t, &top_of(INDEX, &x), &blobs);
    refused(&t, &canary, &path, &[&sha(&x), "lists no image"]);
}

#[test]
fn a_sound_unnamed_index_loads_under_its_digest() {
    // The control: the same archive without a flaw loads, so the refusals above are the
    // flaws', not the builder's.
    let t = TestContext::new();
    let mut blobs = image_blobs();
    let x = index_of(&[descriptor(MANIFEST, &blobs[2].1, "amd64")]);
    blobs.push(blob(x.clone()));
    let path = archive(&t, &top_of(INDEX, &x), &blobs);
    let out = t.ok(&["load", "-i", &path]);
    assert_eq!(out, format!("Loaded image ID: {}\n", sha(&x)));
    assert!(t.ok(&["inspect", &sha(&x)]).contains("\"index\""));
    // Where `refused` looks for unnamed indexes kept.
    let kept = std::fs::read_to_string(t.root.path().join("unnamed-indexes.json")).unwrap();
    assert!(kept.contains(&sha(&x)), "{kept}");
    let check = t.ok(&["check"]);
    assert!(check.starts_with("ok: "), "{check}");
}
