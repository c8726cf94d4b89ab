//! Lazy remote cache hits (issue 15, item 3): a hit records the step as cached without
//! fetching its layer; a push of a fully cached build on a fresh store finds or mounts the
//! layers in the registry and moves no layer byte. Every request goes through the harness's
//! proxy (the base image too, pushed through it, so every machine names one registry),
//! whose log is what the assertions read.

use crate::cache::{proxied_registry, push_from_cache, registry_manifest};
use crate::harness::RegistryServer;
use crate::util::cache::{assert_every_step_cached, build, machine, mounts_from, pull_and_run};

/// The digests of the layers a manifest in the registry names.
fn manifest_layers(reg: &RegistryServer, repo: &str, tag: &str) -> Vec<String> {
    registry_manifest(reg, repo, tag)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

#[test]
fn a_fully_cached_push_on_a_fresh_store_moves_no_layer_bytes() {
    let (reg, proxy, base) = proxied_registry();
    let host = proxy.host();

    let cache = format!("{host}/cache:ci");
    let to = format!("type=registry,ref={cache},mode=max");
    let from = format!("type=registry,ref={cache}");
    let a = machine(&base, "bravo\n");
    let (id_a, _) = build(&a, &["--cache-to", &to]);

    // B: an empty store, the CI recipe (cache from and to one ref, push).
    let image = format!("{host}/app:1");
    let (b, log, progress) = push_from_cache(
        &proxy,
        &base,
        &["--cache-from", &from, "--cache-to", &to],
        &image,
        &id_a,
    );
    assert!(!progress.contains("WARNING"), "{progress}");

    // No layer the build made was downloaded from the cache or uploaded to the image's
    // repository (FROM pulls the base's): the only blob uploaded is the image config.
    let layers = manifest_layers(&reg, "app", "1");
    let base_layers = manifest_layers(&reg, "base", "1");
    let own: Vec<&String> = layers.iter().filter(|l| !base_layers.contains(l)).collect();
    assert_eq!(own.len(), 5, "WORKDIR, two COPYs and two RUNs: {layers:?}");
    for line in &log {
        if line.starts_with("GET ") && line.contains("/blobs/sha256:") {
            assert!(
                !own.iter().any(|l| line.contains(l.as_str())),
                "a layer was downloaded: {line}\n{log:#?}"
            );
        }
        assert!(!line.starts_with("PATCH "), "a chunk was uploaded: {line}");
    }
    let uploads: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/"))
        .collect();
    assert_eq!(uploads.len(), 1, "only the config is uploaded: {log:#?}");
    assert!(
        uploads[0].contains(id_a.trim_start_matches("sha256:")),
        "{uploads:?}"
    );
    // The cache's layers were mounted into the image's repository.
    assert_eq!(mounts_from(&log, "cache"), 5, "{log:#?}");

    // B's store stays consistent and holds no image; the pushed image is complete.
    b.ok(&["check"]);
    assert!(
        !b.ok(&["images"]).contains(&id_a[7..19]),
        "B stored the image"
    );
    pull_and_run(&image, "bravo\n");
}

/// Without `--push` the image must be stored: a fully cached build fetches the layers
/// (verified), and the local cache then answers the next build without the registry.
#[test]
fn a_stored_result_fetches_the_lazy_layers_once() {
    let (_reg, proxy, base) = proxied_registry();
    let host = proxy.host();
    let cache = format!("{host}/cache:stored");
    let a = machine(&base, "bravo\n");
    let (id_a, _) = build(&a, &["--cache-to", &format!("type=registry,ref={cache}")]);

    let b = machine(&base, "bravo\n");
    let from = format!("type=registry,ref={cache}");
    let (id_b, progress) = build(&b, &["--cache-from", &from]);
    assert_eq!(id_b, id_a);
    assert_every_step_cached(&progress);
    assert_eq!(b.ok(&["run", "--rm", &id_b]), "bravo\n");
    b.ok(&["check"]);
    // Again: the local cache answers, nothing is asked of the cache repository.
    let before = proxy.log().len();
    let (id_again, progress) = build(&b, &["--cache-from", &from]);
    assert_eq!(id_again, id_a);
    assert_every_step_cached(&progress);
    let asked: Vec<String> = proxy.log()[before..]
        .iter()
        .filter(|l| l.contains("/v2/cache/"))
        .cloned()
        .collect();
    assert!(asked.is_empty(), "{asked:#?}");
}
