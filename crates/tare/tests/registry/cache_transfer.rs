//! What a fully cached `--push` moves (issue 15, session 9): bench/cache.sh's workloads c
//! (a big `COPY` from the context) and d (a final stage that `COPY --from`s two stages) in
//! one Dockerfile, on a base image loaded into each store (not pulled from the registry, so
//! only the cache can hold its layer). Three stores stand in for three machines; every
//! request goes through the harness's proxy, whose log is what the assertions read.
//!
//! - A builds and exports (`mode=max`): the cache carries every layer the image needs, the
//!   base's too.
//! - B, a fresh store, runs the CI recipe (`--cache-from` and `--cache-to` on one ref,
//!   `--push`): no RUN runs, no layer blob is downloaded (the stages `COPY --from` reads are
//!   resolved by key alone), and no layer is uploaded: each is mounted from the cache
//!   repository after a `HEAD`, the context's layer too (B remakes it from the context).
//! - C pulls what B pushed and runs it.
//!
//! Also: `--annotation manifest:...` reaches the manifest of a push-only build.

use crate::cache::registry_manifest;
use crate::harness::{Proxy, RegistryServer};
use crate::util::cache::{build, cached_steps, pull_and_run};
use crate::util::TestContext;

const DOCKERFILE: &str = "FROM base:1 AS one\n\
RUN echo \"MARK$((40+1))\" && echo one > /one\n\
FROM base:1 AS two\n\
RUN echo \"MARK$((40+2))\" && echo two > /two\n\
FROM base:1\n\
COPY data /data\n\
COPY --from=one /one /one\n\
COPY --from=two /two /two\n\
CMD [\"cat\", \"/one\", \"/two\", \"/data/f1.txt\"]\n";

/// A machine: its own store with the saved base loaded (the same image ID everywhere), and
/// the context.
fn machine(base_tar: &std::path::Path) -> TestContext {
    let m = TestContext::new();
    m.ok(&["load", "-q", "-i", base_tar.to_str().expect("utf-8")]);
    m.write("ctx/Dockerfile", DOCKERFILE);
    for i in 0..20 {
        m.write(&format!("ctx/data/f{i}.txt"), &format!("file {i}\n"));
    }
    m
}

/// The digests of the layers a manifest in the registry names.
fn layers_of(reg: &RegistryServer, repo: &str, tag: &str) -> Vec<String> {
    registry_manifest(reg, repo, tag)["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["digest"].as_str().expect("digest").to_string())
        .collect()
}

/// Whether the registry's `repo` holds the blob `digest` (asked directly, not through the
/// proxy).
fn registry_has(reg: &RegistryServer, repo: &str, digest: &str) -> bool {
    std::process::Command::new("curl")
        .args(["-sf", "-I"])
        .arg(format!("http://{}/v2/{repo}/blobs/{digest}", reg.host()))
        .output()
        .expect("curl")
        .status
        .success()
}

#[test]
fn a_fully_cached_push_downloads_no_layer_and_mounts_every_one() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let host = proxy.host();
    let seed = TestContext::new();
    seed.import_busybox("base:1");
    let base_tar = seed.path().join("base-image.tar");
    seed.ok(&["save", "-o", base_tar.to_str().expect("utf-8"), "base:1"]);

    let cache = format!("{host}/cache:ci");
    let to = format!("type=registry,ref={cache},mode=max");
    let from = format!("type=registry,ref={cache}");
    let a = machine(&base_tar);
    let (id_a, progress) = build(&a, &["--cache-to", &to]);
    assert!(!progress.contains("WARNING"), "{progress}");

    // The cache carries the base's layer: A's export put it into the cache repository.
    let listing = a.ok(&["cache", "ls", "--registry", &cache, "--format", "json"]);
    let mut entry_layers = Vec::new();
    for line in listing.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("json");
        let tag = entry["tag"].as_str().expect("tag");
        entry_layers.extend(layers_of(&reg, "cache", tag));
    }
    // Two RUNs, three COPYs.
    assert_eq!(entry_layers.len(), 5, "{listing}");
    let a_store = tare_store::Store::open(a.root.path()).expect("store");
    let base_layers: Vec<String> = a_store
        .resolve("base:1")
        .expect("base")
        .layers
        .iter()
        .map(|l| l.digest.to_string())
        .collect();
    drop(a_store);
    for l in &base_layers {
        assert!(registry_has(&reg, "cache", l), "the cache lacks {l}");
    }

    // B: an empty store, the CI recipe.
    let b = machine(&base_tar);
    let image = format!("{host}/app:1");
    let before = proxy.log().len();
    let (id_b, progress) = build(
        &b,
        &[
            "--cache-from",
            &from,
            "--cache-to",
            &to,
            "--push",
            "-t",
            &image,
            "--annotation",
            "manifest:org.example.pushed-by=tare-test",
        ],
    );
    let log: Vec<String> = proxy.log()[before..].to_vec();
    assert_eq!(id_b, id_a, "B pushed another image than A built");
    assert!(!progress.contains("MARK4"), "a RUN ran on B:\n{progress}");
    assert_eq!(cached_steps(&progress), 5, "{progress}");
    assert!(!progress.contains("WARNING"), "{progress}");

    let app_layers = layers_of(&reg, "app", "1");
    assert_eq!(app_layers.len(), base_layers.len() + 3, "{app_layers:?}");
    // No layer blob was downloaded: not the stages' (only `COPY --from` reads them, and it
    // hit), not the image's.
    for line in log.iter().filter(|l| l.starts_with("GET ")) {
        assert!(
            !entry_layers
                .iter()
                .chain(&app_layers)
                .any(|l| line.contains(l.as_str())),
            "a layer was downloaded: {line}\n{log:#?}"
        );
    }
    // No layer was uploaded anywhere: the only blob upload is the image config's.
    assert!(
        !log.iter().any(|l| l.starts_with("PATCH ")),
        "a chunk was uploaded: {log:#?}"
    );
    let uploads: Vec<&String> = log
        .iter()
        .filter(|l| l.starts_with("PUT ") && l.contains("/blobs/uploads/"))
        .collect();
    assert_eq!(uploads.len(), 1, "only the config is uploaded: {log:#?}");
    assert!(
        uploads[0].starts_with("PUT /v2/app/")
            && uploads[0].contains(id_a.trim_start_matches("sha256:")),
        "{uploads:?}"
    );
    // Each of the image's layers: a HEAD in the image's repository, then a mount from the
    // cache repository (the base's and the context's layer too).
    for layer in &app_layers {
        let head = log
            .iter()
            .position(|l| *l == format!("HEAD /v2/app/blobs/{layer}"));
        let mount = log.iter().position(|l| {
            l.starts_with("POST /v2/app/blobs/uploads/?")
                && l.contains(&format!("mount={}", layer.replace(':', "%3A")))
                && l.contains("from=cache")
        });
        match (head, mount) {
            (Some(h), Some(m)) => assert!(h < m, "the mount of {layer} came before its HEAD"),
            _ => panic!("{layer}: HEAD {head:?}, mount {mount:?}\n{log:#?}"),
        }
    }

    // The annotation is in the pushed manifest, and B stored no image.
    let manifest = registry_manifest(&reg, "app", "1");
    assert_eq!(
        manifest["annotations"]["org.example.pushed-by"], "tare-test",
        "{manifest}"
    );
    b.ok(&["check"]);
    assert!(
        !b.ok(&["images"]).contains(&id_a[7..19]),
        "B stored the image"
    );

    // C pulls the pushed image (verifying every layer) and runs it.
    pull_and_run(&image, "one\ntwo\nfile 1\n");
}
