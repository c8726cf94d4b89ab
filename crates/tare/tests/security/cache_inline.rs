//! Attacks through an image's inline cache (`--cache-to type=inline`, read with `--cache-from
//! type=registry,ref=IMAGE`): whoever can push the image writes the record another builder
//! reads. A forged record must not make tare use a layer whose digest or diffID does not
//! verify, nor read a blob of another repository; the step then runs, with a warning, and
//! nothing reaches the host.

use crate::registry::harness::{Proxy, RegistryServer};
use crate::remote_cache::{evil_layer, put_blob, put_manifest, victim_of, DOCKERFILE};
use crate::util::cache::{get_json, seed_base};

const ANNOTATION: &str = "dev.tare.cache.inline";

/// A registry with the shared base image and `app:1`, the image of DOCKERFILE pushed with
/// its inline cache.
struct Setup {
    reg: RegistryServer,
    base: String,
    image: String,
    /// `app:1`'s manifest and config, and its inline record.
    manifest: serde_json::Value,
    config: serde_json::Value,
    inline: serde_json::Value,
}

fn setup() -> Setup {
    let reg = RegistryServer::open();
    let (seed, base) = seed_base(&reg.host());
    let image = format!("{}/app:1", reg.host());
    seed.write("ctx/Dockerfile", &DOCKERFILE.replace("BASE", &base));
    let ctx = seed.path().join("ctx");
    seed.ok(&[
        "build",
        "--cache-to",
        "type=inline",
        "--push",
        "-t",
        &image,
        ctx.to_str().expect("utf-8"),
    ]);
    let manifest = get_json(&format!("http://{}/v2/app/manifests/1", reg.host()));
    let config_digest = manifest["config"]["digest"].as_str().expect("config");
    let config = get_json(&format!(
        "http://{}/v2/app/blobs/{config_digest}",
        reg.host()
    ));
    let inline: serde_json::Value = serde_json::from_str(
        manifest["annotations"][ANNOTATION]
            .as_str()
            .expect("the pushed manifest has the inline cache"),
    )
    .expect("inline json");
    assert_eq!(
        inline["entries"].as_array().map(Vec::len),
        Some(1),
        "{inline}"
    );
    Setup {
        reg,
        base,
        image,
        manifest,
        config,
        inline,
    }
}

/// Pushes `app:1` again with `inline` (a JSON value, or raw text) as its inline record.
fn forge(s: &Setup, manifest: &serde_json::Value, inline: &str) {
    let mut manifest = manifest.clone();
    manifest["annotations"][ANNOTATION] = inline.into();
    put_manifest(&s.reg, "app", "1", &manifest);
}

/// A fresh builder reads `app:1`'s inline cache (through `via`, a host:port, when given)
/// and runs the RUN; see [`victim_of`].
fn victim(s: &Setup, via: Option<&str>) -> String {
    let image = match via {
        Some(host) => s.image.replace(&s.reg.host(), host),
        None => s.image.clone(),
    };
    victim_of(&s.base, &image)
}

/// The record's one entry with `edit` applied, as the annotation's text.
fn with_entry(s: &Setup, edit: impl FnOnce(&mut serde_json::Value)) -> String {
    let mut inline = s.inline.clone();
    edit(&mut inline["entries"][0]);
    inline.to_string()
}

/// The record points the RUN at a layer of another repository of the same registry (the
/// image does not list it): refused before any request for it, and nothing is read there.
#[test]
fn a_layer_of_another_repository_is_not_read() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = evil_layer(dir.path());
    let digest = put_blob(&s.reg, "other", &bytes, dir.path());
    let forged = with_entry(&s, |e| {
        e["layer"]["digest"] = digest.clone().into();
        e["layer"]["compressed_size"] = bytes.len().into();
        e["layer"]["media_type"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    });
    forge(&s, &s.manifest, &forged);
    let proxy = Proxy::start(s.reg.port, None);
    let progress = victim(&s, Some(&proxy.host()));
    assert!(
        progress.contains("is not a layer of the image"),
        "{progress}"
    );
    let log = proxy.log();
    assert!(
        !log.iter()
            .any(|l| l.contains("/v2/other/") || l.contains(&digest)),
        "a blob outside the image was asked for: {log:#?}"
    );
}

/// The image itself is forged: its manifest lists a gzipped tar of /etc/evil and its
/// config (and the record) claim the honest diffID for it. The layer is fetched, its
/// content does not hash to the diffID, and it is refused.
#[test]
fn a_layer_whose_content_is_not_its_diff_id_is_refused() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = evil_layer(dir.path());
    let digest = put_blob(&s.reg, "app", &bytes, dir.path());
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let mut manifest = s.manifest.clone();
    let last = manifest["layers"].as_array().expect("layers").len() - 1;
    manifest["layers"][last]["digest"] = digest.clone().into();
    manifest["layers"][last]["size"] = bytes.len().into();
    manifest["layers"][last]["mediaType"] = gzip.into();
    // The config keeps the honest diffIDs; its digest is what the manifest names.
    let config = serde_json::to_vec(&s.config).expect("json");
    let config_digest = put_blob(&s.reg, "app", &config, dir.path());
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config.len().into();
    let forged = with_entry(&s, |e| {
        e["layer"]["digest"] = digest.clone().into();
        e["layer"]["compressed_size"] = bytes.len().into();
        e["layer"]["media_type"] = gzip.into();
    });
    forge(&s, &manifest, &forged);
    let progress = victim(&s, None);
    assert!(progress.contains("diffID"), "{progress}");
}

/// The record claims the RUN's key with other inputs (a command of the attacker's): they
/// do not hash to the key, so the entry is refused.
#[test]
fn an_entry_whose_inputs_do_not_hash_to_its_key_is_refused() {
    let s = setup();
    let forged = with_entry(&s, |e| {
        e["inputs"]["run"]["argv"] = serde_json::json!(["/bin/sh", "-c", "evil"]);
    });
    forge(&s, &s.manifest, &forged);
    let progress = victim(&s, None);
    assert!(progress.contains("do not hash to its key"), "{progress}");
}

/// The entry describes an image layer with another media type than the manifest (gzip:
/// the entry's own checks accept it): refused.
#[test]
fn an_entry_that_misdescribes_an_image_layer_is_refused() {
    let s = setup();
    let forged = with_entry(&s, |e| {
        e["layer"]["media_type"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    });
    forge(&s, &s.manifest, &forged);
    let progress = victim(&s, None);
    assert!(
        progress.contains("not described as the image"),
        "{progress}"
    );
}

/// Malformed, future-format and huge records are ignored with a warning.
#[test]
fn malformed_future_and_huge_records_are_ignored() {
    let s = setup();
    forge(&s, &s.manifest, "{\"format\": 1, \"entries\": [");
    let progress = victim(&s, None);
    assert!(progress.contains("inline cache is not valid"), "{progress}");

    let mut future = s.inline.clone();
    future["format"] = 99.into();
    forge(&s, &s.manifest, &future.to_string());
    let progress = victim(&s, None);
    assert!(progress.contains("inline cache format 99"), "{progress}");

    // Over the 3 MiB a record may have (the manifest stays under the registry's 4 MiB).
    let mut huge = s.inline.clone();
    huge["pad"] = "a".repeat(3 << 20).into();
    forge(&s, &s.manifest, &huge.to_string());
    let progress = victim(&s, None);
    assert!(progress.contains("more than 3145728"), "{progress}");
}
