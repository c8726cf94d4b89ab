//! Attacks through a build cache in a registry (`--cache-from type=registry`): whoever can
//! push to the cache ref writes entries another builder reads. Forged entries must be
//! refused or ignored with a warning, the step then runs, and nothing reaches the host.

use std::process::Command;

use sha2::{Digest as _, Sha256};

use crate::registry::harness::{Proxy, RegistryServer};
use crate::util::cache::{build, get_json, seed_base};
use crate::util::TestContext;

pub(crate) const DOCKERFILE: &str = "FROM BASE\nRUN echo \"MARK$((40+2))\" > /out && cat /out\n";

fn sha256(bytes: &[u8]) -> String {
    format!("sha256:{:x}", Sha256::digest(bytes))
}

fn curl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("curl")
        .arg("-sf")
        .args(args)
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl {args:?} failed");
    out.stdout
}

/// Uploads a blob to `repo` (POST, then PUT with the digest); returns its digest.
pub(crate) fn put_blob(
    reg: &RegistryServer,
    repo: &str,
    bytes: &[u8],
    dir: &std::path::Path,
) -> String {
    let digest = sha256(bytes);
    let file = dir.join("blob");
    std::fs::write(&file, bytes).expect("blob file");
    let head = curl(&[
        "-i",
        "-X",
        "POST",
        &format!("http://{}/v2/{repo}/blobs/uploads/", reg.host()),
    ]);
    let head = String::from_utf8_lossy(&head);
    let location = head
        .lines()
        .find_map(|l| {
            l.strip_prefix("Location: ")
                .or_else(|| l.strip_prefix("location: "))
        })
        .expect("upload location")
        .trim()
        .to_string();
    let sep = if location.contains('?') { '&' } else { '?' };
    let url = if location.starts_with("http") {
        format!("{location}{sep}digest={digest}")
    } else {
        format!("http://{}{location}{sep}digest={digest}", reg.host())
    };
    curl(&[
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/octet-stream",
        "--data-binary",
        &format!("@{}", file.display()),
        &url,
    ]);
    digest
}

/// PUTs `manifest` as `repo:tag` (the body on curl's standard input: a manifest may be
/// larger than an argument can be).
pub(crate) fn put_manifest(
    reg: &RegistryServer,
    repo: &str,
    tag: &str,
    manifest: &serde_json::Value,
) {
    use std::io::Write as _;
    let url = format!("http://{}/v2/{repo}/manifests/{tag}", reg.host());
    let mut child = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.manifest.v1+json",
            "--data-binary",
            "@-",
            &url,
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("curl");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(manifest.to_string().as_bytes())
        .expect("manifest to curl");
    assert!(child.wait().expect("curl").success(), "PUT {url} failed");
}

/// A registry with the shared base image and an honest cache of DOCKERFILE's one RUN.
struct Setup {
    reg: RegistryServer,
    base: String,
    cache: String,
    /// The RUN's entry: its tag, manifest and config.
    tag: String,
    manifest: serde_json::Value,
    config: serde_json::Value,
}

fn setup() -> Setup {
    let reg = RegistryServer::open();
    let (seed, base) = seed_base(&reg.host());
    let cache = format!("{}/cache:x", reg.host());
    let ctx = seed.path().join("ctx");
    seed.write("ctx/Dockerfile", &DOCKERFILE.replace("BASE", &base));
    seed.ok(&[
        "build",
        "--cache-to",
        &format!("type=registry,ref={cache}"),
        ctx.to_str().expect("utf-8"),
    ]);
    let listing = seed.ok(&["cache", "ls", "--registry", &cache, "--format", "json"]);
    let entry: serde_json::Value =
        serde_json::from_str(listing.lines().next().expect("one entry")).expect("json");
    let tag = entry["tag"].as_str().expect("tag").to_string();
    let manifest = get_json(&format!("http://{}/v2/cache/manifests/{tag}", reg.host()));
    let config_digest = manifest["config"]["digest"].as_str().expect("config");
    let config = get_json(&format!(
        "http://{}/v2/cache/blobs/{config_digest}",
        reg.host()
    ));
    Setup {
        reg,
        base,
        cache,
        tag,
        manifest,
        config,
    }
}

/// Replaces the RUN's entry with one whose config is `config` (bytes).
fn forge(s: &Setup, config: &[u8], dir: &std::path::Path) {
    let digest = put_blob(&s.reg, "cache", config, dir);
    let mut manifest = s.manifest.clone();
    manifest["config"]["digest"] = digest.into();
    manifest["config"]["size"] = config.len().into();
    put_manifest(&s.reg, "cache", &s.tag, &manifest);
}

/// A fresh builder reads the cache (through `via`, a host:port, when given); see
/// [`victim_of`].
fn victim(s: &Setup, via: Option<&str>) -> String {
    let cache = match via {
        Some(host) => s.cache.replace(&s.reg.host(), host),
        None => s.cache.clone(),
    };
    victim_of(&s.base, &cache)
}

/// A fresh builder builds DOCKERFILE on `base` with `--cache-from type=registry,ref=FROM`:
/// the build succeeds, the RUN runs, a warning says why the entry was not used, the image
/// is right (no forged /etc/evil in it), the store is consistent and the canary outside it
/// untouched. Returns the progress.
pub(crate) fn victim_of(base: &str, from: &str) -> String {
    let b = TestContext::new();
    let canary = b.write("canary", "canary\n");
    b.write("ctx/Dockerfile", &DOCKERFILE.replace("BASE", base));
    let (id, progress) = build(&b, &["--cache-from", &format!("type=registry,ref={from}")]);
    assert!(
        progress.contains("MARK42"),
        "the forged entry answered the RUN:\n{progress}"
    );
    assert!(progress.contains("WARNING: --cache-from"), "{progress}");
    assert_eq!(b.ok(&["run", "--rm", &id, "cat", "/out"]), "MARK42\n");
    let evil = "test -e /etc/evil && echo evil || echo clean";
    assert_eq!(
        b.ok(&["run", "--rm", &id, "sh", "-c", evil]),
        "clean\n",
        "a forged layer reached the image"
    );
    b.ok(&["check"]);
    assert_eq!(std::fs::read_to_string(canary).expect("canary"), "canary\n");
    progress
}

#[test]
fn an_entry_claiming_another_parent_is_refused() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = s.config.clone();
    config["parent"] = "0".repeat(64).into();
    forge(&s, &serde_json::to_vec(&config).expect("json"), dir.path());
    let progress = victim(&s, None);
    assert!(progress.contains("claims the parent"), "{progress}");
}

#[test]
fn an_entry_whose_inputs_do_not_hash_to_its_key_is_refused() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = s.config.clone();
    config["inputs"]["run"]["argv"] = serde_json::json!(["/bin/sh", "-c", "evil"]);
    forge(&s, &serde_json::to_vec(&config).expect("json"), dir.path());
    let progress = victim(&s, None);
    assert!(progress.contains("do not hash to its key"), "{progress}");
}

#[test]
fn malformed_and_huge_entry_configs_are_ignored() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    forge(&s, b"{\"format\": 1, \"key\": [", dir.path());
    let progress = victim(&s, None);
    assert!(progress.contains("is not an entry"), "{progress}");

    // 9 MiB of valid JSON: over the 8 MiB limit, refused before it is read.
    let mut huge = b"{\"pad\": \"".to_vec();
    huge.resize(9 << 20, b'a');
    huge.extend_from_slice(b"\"}");
    forge(&s, &huge, dir.path());
    let progress = victim(&s, None);
    assert!(progress.contains("more than 8388608"), "{progress}");
}

/// A gzipped layer with one file, /etc/evil (made in `dir`).
pub(crate) fn evil_layer(dir: &std::path::Path) -> Vec<u8> {
    let evil = dir.join("evil");
    std::fs::create_dir_all(evil.join("etc")).expect("dir");
    std::fs::write(evil.join("etc/evil"), "evil\n").expect("file");
    let tgz = dir.join("evil.tgz");
    let status = Command::new("tar")
        .arg("-czf")
        .arg(&tgz)
        .arg("-C")
        .arg(&evil)
        .arg("etc")
        .status()
        .expect("tar");
    assert!(status.success());
    std::fs::read(&tgz).expect("tgz")
}

/// An entry whose layer claims the honest diffID but whose blob holds another tar (gzip, so
/// the digest alone does not give it away): the fetched layer's content does not match.
#[test]
fn a_layer_whose_content_is_not_its_diff_id_is_refused() {
    let s = setup();
    let dir = tempfile::tempdir().expect("tmp");
    let bytes = evil_layer(dir.path());
    let digest = put_blob(&s.reg, "cache", &bytes, dir.path());
    let mut config = s.config.clone();
    config["layer"]["digest"] = digest.clone().into();
    config["layer"]["compressed_size"] = bytes.len().into();
    config["layer"]["media_type"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    let config = serde_json::to_vec(&config).expect("json");
    let config_digest = put_blob(&s.reg, "cache", &config, dir.path());
    let mut manifest = s.manifest.clone();
    manifest["config"]["digest"] = config_digest.into();
    manifest["config"]["size"] = config.len().into();
    manifest["layers"][0]["digest"] = digest.into();
    manifest["layers"][0]["size"] = bytes.len().into();
    manifest["layers"][0]["mediaType"] = "application/vnd.oci.image.layer.v1.tar+gzip".into();
    put_manifest(&s.reg, "cache", &s.tag, &manifest);
    let progress = victim(&s, None);
    assert!(progress.contains("diffID"), "{progress}");
}

/// A registry (here a proxy) that flips a byte in every blob it serves: nothing it sends is
/// used, every step runs.
#[test]
fn blob_bytes_that_do_not_match_their_digest_are_refused() {
    let s = setup();
    let proxy = Proxy::start(s.reg.port, None);
    proxy
        .state
        .blob_corrupt
        .store(true, std::sync::atomic::Ordering::SeqCst);
    // The base image comes from the registry itself: only the cache goes through the proxy.
    let progress = victim(&s, Some(&proxy.host()));
    assert!(progress.contains("digest mismatch"), "{progress}");
}
