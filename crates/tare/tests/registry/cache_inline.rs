//! The inline cache (issue 15): `--cache-to type=inline` puts the final image's steps into
//! the manifest of the image the build makes, and `--cache-from type=registry,ref=IMAGE`
//! on another machine finds them in that plain image.

use crate::cache::registry_manifest;
use crate::harness::RegistryServer;
use crate::util::cache::{base_at, build, cached_steps, machine};
use crate::util::TestContext;

const ANNOTATION: &str = "dev.tare.cache.inline";

/// The steps of the inline record in the manifest of `repo:tag`.
fn inline_steps(reg: &RegistryServer, repo: &str, tag: &str) -> usize {
    let manifest = registry_manifest(reg, repo, tag);
    let text = manifest["annotations"][ANNOTATION]
        .as_str()
        .unwrap_or_else(|| panic!("no inline cache in {repo}:{tag}: {manifest}"));
    let inline: serde_json::Value = serde_json::from_str(text).expect("inline json");
    assert_eq!(inline["format"], 1, "{inline}");
    inline["entries"].as_array().expect("entries").len()
}

/// Machine A pushes its image with the inline cache; machine B, with an empty store, builds
/// the same Dockerfile from it: every step CACHED, no RUN runs, A's image ID. B pushes with
/// the inline cache too, so the next runner reads B's image (the CI recipe).
#[test]
fn a_pushed_image_carries_its_cache_to_a_fresh_machine() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let image = format!("{}/app:1", reg.host());

    let a = machine(&base, "bravo\n");
    let (id_a, progress) = build(&a, &["--cache-to", "type=inline", "--push", "-t", &image]);
    assert!(
        progress.contains("MARK42") && progress.contains("MARK43"),
        "{progress}"
    );
    assert!(!progress.contains("WARNING"), "{progress}");
    // WORKDIR, two COPYs, two RUNs.
    assert_eq!(inline_steps(&reg, "app", "1"), 5);

    let b = machine(&base, "bravo\n");
    let from = format!("type=registry,ref={image}");
    let next = format!("{}/app:2", reg.host());
    let (id_b, progress) = build(
        &b,
        &[
            "--cache-from",
            &from,
            "--cache-to",
            "type=inline",
            "--push",
            "-t",
            &next,
        ],
    );
    assert!(!progress.contains("MARK4"), "a RUN ran on B:\n{progress}");
    assert_eq!(cached_steps(&progress), 5, "{progress}");
    assert!(!progress.contains("WARNING"), "{progress}");
    assert_eq!(id_b, id_a, "B made another image than A");
    assert_eq!(inline_steps(&reg, "app", "2"), 5);
    b.ok(&["check"]);

    // C stores the result (no push): every step from B's image, fetched and verified.
    let c = machine(&base, "bravo\n");
    let (id_c, progress) = build(&c, &["--cache-from", &format!("type=registry,ref={next}")]);
    assert!(!progress.contains("MARK4"), "a RUN ran on C:\n{progress}");
    assert_eq!(cached_steps(&progress), 5, "{progress}");
    assert_eq!(id_c, id_a);
    assert_eq!(c.ok(&["run", "--rm", &id_c]), "bravo\n");
    c.ok(&["check"]);
}

/// Without a push the record is written into the stored image's manifest, as BuildKit
/// writes its inline cache into every image it exports: a later `tare push` carries it.
/// A changed file misses from the COPY on, as with a registry cache.
#[test]
fn a_stored_image_carries_its_cache_when_pushed_later() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let image = format!("{}/app:later", reg.host());
    let a = machine(&base, "bravo\n");
    let (id_a, _) = build(&a, &["--cache-to", "type=inline", "-t", &image]);
    a.ok(&["push", &image]);
    assert_eq!(inline_steps(&reg, "app", "later"), 5);

    let c = machine(&base, "charlie\n");
    let (id_c, progress) = build(&c, &["--cache-from", &format!("type=registry,ref={image}")]);
    assert!(
        !progress.contains("MARK42"),
        "the first RUN ran:\n{progress}"
    );
    assert!(
        progress.contains("MARK43"),
        "the second RUN did not run:\n{progress}"
    );
    assert_eq!(cached_steps(&progress), 3, "{progress}");
    assert_ne!(id_c, id_a);
    assert_eq!(c.ok(&["run", "--rm", &id_c]), "charlie\n");
}

/// mode=max cannot ride in an image (its intermediate stages are not in it): refused,
/// naming the flag. type=inline is no `--cache-from` source.
#[test]
fn inline_refuses_mode_max_and_is_no_source() {
    let m = TestContext::new();
    m.write("ctx/Dockerfile", "FROM scratch\nCOPY Dockerfile /\n");
    let ctx = m.path().join("ctx");
    let ctx = ctx.to_str().expect("utf-8");
    let err = m.fails(&["build", "--cache-to", "type=inline,mode=max", ctx]);
    assert!(
        err.contains("--cache-to") && err.contains("mode=min"),
        "{err}"
    );
    let err = m.fails(&["build", "--cache-from", "type=inline", ctx]);
    assert!(
        err.contains("--cache-from") && err.contains("type=registry,ref=IMAGE"),
        "{err}"
    );
}
