//! A registry that will not mount across repositories (issue 15): it answers the mount
//! `POST` with 202 and an upload location, as distribution does when it cannot mount (the
//! source repository is not readable, or mounts are off). A fully cached `--push` on a
//! fresh store then still succeeds: each lazy hit's layer is fetched from the cache
//! repository, verified by digest, and uploaded into the image's repository.

use crate::cache::{proxied_registry, push_from_cache, registry_manifest};
use crate::util::cache::{build, machine, mounts_from, pull_and_run};

#[test]
fn a_push_uploads_the_layers_a_registry_refuses_to_mount() {
    let (reg, proxy, base) = proxied_registry();
    let host = proxy.host();
    let cache = format!("{host}/cache:ci");
    let a = machine(&base, "bravo\n");
    let (id_a, _) = build(
        &a,
        &["--cache-to", &format!("type=registry,ref={cache},mode=max")],
    );

    proxy
        .state
        .refuse_mount
        .store(true, std::sync::atomic::Ordering::SeqCst);
    let image = format!("{host}/app:1");
    let (b, log, _) = push_from_cache(
        &proxy,
        &base,
        &["--cache-from", &format!("type=registry,ref={cache}")],
        &image,
        &id_a,
    );
    // Mounts were asked for and refused; the layers were read from the cache repository
    // and uploaded into the image's.
    assert_eq!(mounts_from(&log, "cache"), 5, "{log:#?}");
    let fetched = log
        .iter()
        .filter(|l| l.starts_with("GET /v2/cache/blobs/sha256:"))
        .count();
    assert!(fetched >= 5, "{log:#?}");
    let uploads = log
        .iter()
        .filter(|l| l.starts_with("PUT /v2/app/blobs/uploads/"))
        .count();
    // The five layers, the image config, and the base's layers (their mounts from the base
    // repository are refused too).
    let base_layers = registry_manifest(&reg, "base", "1")["layers"]
        .as_array()
        .expect("layers")
        .len();
    assert_eq!(uploads, 6 + base_layers, "{log:#?}");
    b.ok(&["check"]);

    // The pushed image is complete: a third store pulls it (verifying every layer) and runs it.
    pull_and_run(&image, "bravo\n");
}
