//! Attacks through a build cache in a directory (`--cache-from type=local,src=DIR`,
//! `--cache-to type=local,dest=DIR`): whoever can write the directory writes entries another
//! builder reads. Symlinks, fifos, bytes that are not their digest and layers that are not
//! their diffID must be refused with a warning, the step then runs, and nothing outside the
//! store is read into an image or written.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest as _, Sha256};

use crate::util::TestContext;

const DOCKERFILE: &str = "FROM busybox\nRUN echo \"MARK$((40+2))\" > /out && cat /out\n";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

/// A cache directory holding an honest entry for DOCKERFILE's RUN, made by a seed store.
struct Setup {
    seed: TestContext,
    dir: PathBuf,
    /// The RUN entry's manifest, its digest, and its config and layer digests.
    manifest: serde_json::Value,
    manifest_digest: String,
    config_digest: String,
    layer_digest: String,
}

fn blob(dir: &Path, digest: &str) -> PathBuf {
    dir.join("blobs/sha256")
        .join(digest.strip_prefix("sha256:").expect("sha256"))
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).expect("read")).expect("json")
}

/// A store with the seed's busybox (an import dates the image, so two imports differ).
fn store_like(seed: &TestContext) -> TestContext {
    let t = TestContext::new();
    let tar = seed.path().join("base.tar");
    t.ok(&["load", "-i", tar.to_str().expect("utf-8")]);
    t
}

fn setup() -> Setup {
    let seed = TestContext::new();
    seed.import_busybox("busybox:latest");
    let tar = seed.path().join("base.tar");
    seed.ok(&["save", "busybox:latest", "-o", tar.to_str().expect("utf-8")]);
    seed.write("ctx/Dockerfile", DOCKERFILE);
    let dir = seed.path().join("cache");
    let ctx = seed.path().join("ctx");
    seed.ok(&[
        "build",
        "--cache-to",
        &format!("type=local,dest={}", dir.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let mut index = read_json(&dir.join("index.json"));
    // Only the entry's tag is kept (format 2 entries also have a second, tare-child- tag),
    // so the attacks below forge the descriptor a lookup reads.
    let manifests: Vec<serde_json::Value> = index["manifests"]
        .as_array()
        .expect("manifests")
        .iter()
        .filter(|d| {
            d["annotations"]["org.opencontainers.image.ref.name"]
                .as_str()
                .is_some_and(|t| t.starts_with("tare-cache-"))
        })
        .cloned()
        .collect();
    assert_eq!(manifests.len(), 1, "{index}");
    index["manifests"] = serde_json::Value::Array(manifests.clone());
    std::fs::write(dir.join("index.json"), index.to_string()).expect("index");
    let manifest_digest = manifests[0]["digest"].as_str().expect("digest").to_string();
    let manifest = read_json(&blob(&dir, &manifest_digest));
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .expect("config")
        .to_string();
    let layer_digest = manifest["layers"][0]["digest"]
        .as_str()
        .expect("layer")
        .to_string();
    Setup {
        seed,
        dir,
        manifest,
        manifest_digest,
        config_digest,
        layer_digest,
    }
}

/// Writes `bytes` as a blob of `dir`; returns its digest.
fn put_blob(dir: &Path, bytes: &[u8]) -> String {
    let digest = sha256(bytes);
    std::fs::write(blob(dir, &digest), bytes).expect("blob");
    digest
}

/// Points the RUN's index entry at `manifest` (written as a blob).
fn forge_manifest(s: &Setup, manifest: &serde_json::Value) {
    let bytes = serde_json::to_vec(manifest).expect("json");
    let digest = put_blob(&s.dir, &bytes);
    let path = s.dir.join("index.json");
    let mut index = read_json(&path);
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = bytes.len().into();
    std::fs::write(&path, index.to_string()).expect("index");
}

/// Replaces a file of the cache with a symlink to `target`.
fn symlink_over(path: &Path, target: &Path) {
    std::fs::remove_file(path)
        .or_else(|_| std::fs::remove_dir_all(path))
        .expect("remove");
    std::os::unix::fs::symlink(target, path).expect("symlink");
}

/// A fresh builder reads the cache: the build succeeds, the RUN runs, a warning says why the
/// entry was not used, the image is right, the store is consistent and the canary untouched.
/// Returns the progress.
fn victim(s: &Setup) -> String {
    let progress = victim_quiet(s);
    assert!(progress.contains("WARNING:"), "{progress}");
    progress
}

/// [`victim`] without the warning: an entry that is not there at all is a plain miss.
fn victim_quiet(s: &Setup) -> String {
    let b = store_like(&s.seed);
    let canary = b.write("canary", "canary\n");
    b.write("ctx/Dockerfile", DOCKERFILE);
    let ctx = b.path().join("ctx");
    let iid = b.path().join("iid");
    let out = b.run(&[
        "build",
        "--progress",
        "plain",
        "--iidfile",
        iid.to_str().expect("utf-8"),
        "--cache-from",
        &format!("type=local,src={}", s.dir.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let progress = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{progress}");
    assert!(
        progress.contains("MARK42"),
        "the forged entry answered the RUN:\n{progress}"
    );
    let id = std::fs::read_to_string(&iid).expect("iid");
    assert_eq!(b.ok(&["run", "--rm", id.trim(), "cat", "/out"]), "MARK42\n");
    b.ok(&["check"]);
    assert_eq!(std::fs::read_to_string(canary).expect("canary"), "canary\n");
    progress
}

/// The honest entry is used (so each attack below is what makes the RUN run).
#[test]
fn an_honest_local_cache_answers_the_run() {
    let s = setup();
    let b = store_like(&s.seed);
    b.write("ctx/Dockerfile", DOCKERFILE);
    let ctx = b.path().join("ctx");
    let out = b.run(&[
        "build",
        "--progress",
        "plain",
        "--cache-from",
        &format!("type=local,src={}", s.dir.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{progress}");
    assert!(!progress.contains("MARK42"), "{progress}");
    assert!(progress.contains(" CACHED"), "{progress}");
}

/// A layer blob that is a symlink to a file outside the directory holding the very bytes the
/// entry names: following it would "work", and is refused all the same.
#[test]
fn a_blob_that_is_a_symlink_out_of_the_directory_is_refused() {
    let s = setup();
    let outside = tempfile::tempdir().expect("tmp");
    let copy = outside.path().join("layer");
    std::fs::copy(blob(&s.dir, &s.layer_digest), &copy).expect("copy");
    symlink_over(&blob(&s.dir, &s.layer_digest), &copy);
    let progress = victim(&s);
    assert!(progress.contains(&s.layer_digest), "{progress}");
}

#[test]
fn a_blobs_directory_that_is_a_symlink_is_refused() {
    let s = setup();
    let outside = tempfile::tempdir().expect("tmp");
    let moved = outside.path().join("sha256");
    let status = Command::new("cp")
        .arg("-a")
        .arg(s.dir.join("blobs/sha256"))
        .arg(&moved)
        .status()
        .expect("cp");
    assert!(status.success());
    symlink_over(&s.dir.join("blobs/sha256"), &moved);
    let progress = victim(&s);
    assert!(progress.contains("--cache-from"), "{progress}");
}

#[test]
fn an_index_that_is_a_symlink_fifo_or_huge_is_not_used() {
    let s = setup();
    let outside = tempfile::tempdir().expect("tmp");
    let index = s.dir.join("index.json");
    let copy = outside.path().join("index.json");
    std::fs::copy(&index, &copy).expect("copy");
    symlink_over(&index, &copy);
    let progress = victim(&s);
    assert!(progress.contains("index.json"), "{progress}");

    std::fs::remove_file(&index).expect("rm");
    let status = Command::new("mkfifo").arg(&index).status().expect("mkfifo");
    assert!(status.success());
    let progress = victim(&s);
    assert!(progress.contains("not a regular file"), "{progress}");

    // 65 MiB (sparse): over the 64 MiB limit.
    std::fs::remove_file(&index).expect("rm");
    let f = std::fs::File::create(&index).expect("create");
    f.set_len(65 << 20).expect("set_len");
    let progress = victim(&s);
    assert!(progress.contains("larger than"), "{progress}");
}

#[test]
fn a_config_blob_that_is_a_fifo_does_not_hang_the_build() {
    let s = setup();
    let config = blob(&s.dir, &s.config_digest);
    std::fs::remove_file(&config).expect("rm");
    let status = Command::new("mkfifo")
        .arg(&config)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    let progress = victim(&s);
    assert!(progress.contains("not a regular file"), "{progress}");
}

#[test]
fn blobs_whose_bytes_are_not_their_digest_are_refused() {
    let s = setup();
    // The config: same size, one byte changed.
    let config = blob(&s.dir, &s.config_digest);
    let mut bytes = std::fs::read(&config).expect("config");
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&config, &bytes).expect("write");
    let progress = victim(&s);
    assert!(progress.contains("hashes to"), "{progress}");

    // The layer (the config is honest again): the blob is refused when it is fetched.
    let s = setup();
    let layer = blob(&s.dir, &s.layer_digest);
    let mut bytes = std::fs::read(&layer).expect("layer");
    bytes[0] ^= 1;
    std::fs::write(&layer, &bytes).expect("write");
    let progress = victim(&s);
    assert!(progress.contains(&s.layer_digest), "{progress}");
}

/// An entry whose layer claims the honest diffID but whose blob (named by its own digest)
/// holds another tar, gzipped so the digest alone does not give it away.
#[test]
fn a_layer_whose_content_is_not_its_diff_id_is_refused() {
    let s = setup();
    let work = tempfile::tempdir().expect("tmp");
    let bytes = crate::remote_cache::evil_layer(work.path());
    let digest = put_blob(&s.dir, &bytes);
    let gzip = "application/vnd.oci.image.layer.v1.tar+gzip";
    let mut config = read_json(&blob(&s.dir, &s.config_digest));
    config["layer"]["digest"] = digest.clone().into();
    config["layer"]["compressed_size"] = bytes.len().into();
    config["layer"]["media_type"] = gzip.into();
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = put_blob(&s.dir, &config);
    let mut manifest = s.manifest.clone();
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config.len().into();
    manifest["layers"][0]["digest"] = digest.into();
    manifest["layers"][0]["size"] = bytes.len().into();
    manifest["layers"][0]["mediaType"] = gzip.into();
    forge_manifest(&s, &manifest);
    let progress = victim(&s);
    assert!(progress.contains("diffID"), "{progress}");
}

/// Digests that are paths: never opened.
#[test]
fn index_digests_that_are_paths_are_ignored() {
    let s = setup();
    let path = s.dir.join("index.json");
    let mut index = read_json(&path);
    index["manifests"][0]["digest"] = "sha256:../../../../etc/passwd".into();
    std::fs::write(&path, index.to_string()).expect("index");
    // The entry is not listed at all: the RUN simply misses.
    let progress = victim_quiet(&s);
    assert!(!progress.contains("passwd"), "{progress}");
    assert_ne!(index["manifests"][0]["digest"], s.manifest_digest.as_str());
}

/// An export into a directory someone else prepared: a blob name that is a symlink to a
/// file outside is replaced, never written through; a `blobs` that is a symlink is refused.
#[test]
fn an_export_never_writes_through_symlinks_in_the_destination() {
    let s = setup();
    let outside = tempfile::tempdir().expect("tmp");
    let canary = outside.path().join("canary");
    std::fs::write(&canary, "canary\n").expect("canary");
    let layer = blob(&s.dir, &s.layer_digest);
    let size = std::fs::metadata(&layer).expect("layer").len();
    // Same size as the layer, so a size check alone would take it for the blob.
    std::fs::write(&canary, vec![b'c'; size as usize]).expect("canary");
    symlink_over(&layer, &canary);
    std::fs::remove_file(s.dir.join("index.json")).expect("rm index");

    // The seed store exports again: its RUN is cached, so its layer is that blob.
    let b = &s.seed;
    let ctx = b.path().join("ctx");
    b.ok(&[
        "build",
        "--cache-to",
        &format!("type=local,dest={}", s.dir.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    assert_eq!(
        std::fs::read(&canary).expect("canary"),
        vec![b'c'; size as usize]
    );
    let meta = std::fs::symlink_metadata(&layer).expect("layer");
    assert!(meta.file_type().is_file(), "the layer is still a symlink");
    assert_eq!(
        sha256(&std::fs::read(&layer).expect("layer")),
        s.layer_digest
    );

    // `blobs` itself a symlink to a directory outside: the export fails with a warning.
    let dest = b.path().join("dest");
    std::fs::create_dir_all(&dest).expect("dest");
    let out_blobs = outside.path().join("blobs");
    std::fs::create_dir_all(&out_blobs).expect("blobs");
    std::os::unix::fs::symlink(&out_blobs, dest.join("blobs")).expect("symlink");
    let out = b.run(&[
        "build",
        "--progress",
        "plain",
        "--cache-to",
        &format!("type=local,dest={}", dest.display()),
        ctx.to_str().expect("utf-8"),
    ]);
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{progress}");
    assert!(
        progress.contains("WARNING: --cache-to") && progress.contains("blobs"),
        "{progress}"
    );
    assert_eq!(
        std::fs::read_dir(&out_blobs).expect("outside").count(),
        0,
        "the export wrote outside the destination"
    );
    assert!(!dest.join("index.json").exists());
}
