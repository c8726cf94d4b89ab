//! `tare pull`, `push`, `login` and `logout` against a real registry (Debian's
//! `docker-registry`, distribution 2.8) started on 127.0.0.1 by each test, with and without
//! htpasswd auth and TLS, behind a fault-injecting proxy and a bearer-token gate of our own;
//! and interop with docker and skopeo both ways.

#[path = "../util/tmux.rs"]
mod tmux;
#[path = "../util/mod.rs"]
mod util;

mod harness;
mod kubernetes;
mod multiplatform;
mod progress_cache;
mod progress_push;
mod progress_tty;

mod buildx_pipeline;
mod cache;
mod cache_explain;
mod cache_inline;
mod cache_lazy;
mod cache_nomount;
mod cache_transfer;

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::Ordering;

use harness::{make_certs, Bearer, Proxy, RegistryConfig, RegistryServer};
use tare_layer::{Compression, LayerSink};
use tare_store::config::ImageConfig;
use tare_store::{Reference, Store};
use util::TestContext;

/// Makes an image in the test's store, without going through any tare subcommand: a busybox
/// base layer and a layer with `/hello` holding `hello`; CMD prints it.
fn make_image(ctx: &TestContext, name: &str, hello: &str, extra_bytes: usize) {
    make_image_with(ctx, name, hello, extra_bytes, Compression::Gzip)
}

fn make_image_with(
    ctx: &TestContext,
    name: &str,
    hello: &str,
    extra_bytes: usize,
    compression: Compression,
) {
    let store = Store::open(ctx.root.path()).expect("open store");
    let rootfs = tempfile::tempdir().expect("rootfs");
    util::busybox_rootfs(rootfs.path());
    let base = layer(&store, compression, |b| {
        b.append_dir_all(".", rootfs.path()).expect("tar rootfs");
    });
    let top = layer(&store, compression, |b| {
        append_file(b, "hello", hello.as_bytes());
        if extra_bytes > 0 {
            // Incompressible, so the blob is as big as asked.
            let mut data = vec![0u8; extra_bytes];
            let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
            for byte in data.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *byte = x as u8;
            }
            append_file(b, "big.bin", &data);
        }
    });
    let mut config = ImageConfig::new_for_host();
    config.config.cmd = Some(vec!["cat".into(), "/hello".into()]);
    config.rootfs.diff_ids = vec![base.diff_id, top.diff_id];
    config.created = Some("2024-01-01T00:00:00Z".into());
    store
        .commit_image(
            &config,
            &[base, top],
            &[Reference::parse(name).expect("name")],
            None,
        )
        .expect("commit image");
}

fn layer(
    store: &Store,
    compression: Compression,
    fill: impl FnOnce(&mut tar::Builder<&mut LayerSink>),
) -> tare_store::LayerInfo {
    let mut sink = LayerSink::new(store, compression).expect("sink");
    {
        let mut b = tar::Builder::new(&mut sink);
        b.follow_symlinks(false);
        fill(&mut b);
        b.finish().expect("finish tar");
    }
    sink.finish().expect("finish layer")
}

fn append_file<W: Write>(b: &mut tar::Builder<W>, path: &str, data: &[u8]) {
    let mut h = tar::Header::new_gnu();
    h.set_size(data.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    b.append_data(&mut h, path, data).expect("append file");
}

/// The image ID `tare` reports for a stored reference.
fn image_id(ctx: &TestContext, name: &str) -> String {
    let store = Store::open(ctx.root.path()).expect("open store");
    store.resolve(name).expect("resolve").id.to_string()
}

/// A `tare` command with credentials and certificates isolated in the test's directory.
fn tare(ctx: &TestContext, args: &[&str]) -> std::process::Output {
    tare_cmd(ctx)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run tare")
}

fn tare_cmd(ctx: &TestContext) -> Command {
    let mut cmd = ctx.tare();
    cmd.env("TARE_AUTH_FILE", ctx.path().join("auth.json"))
        .env("DOCKER_CONFIG", ctx.path().join("docker-config"))
        .env("TARE_CERTS_D", ctx.path().join("certs.d"))
        .env_remove("TARE_INSECURE_REGISTRIES")
        .env_remove("TARE_PUSH_CHUNK_SIZE");
    cmd
}

fn ok(ctx: &TestContext, args: &[&str]) -> (String, String) {
    check(tare(ctx, args), args)
}

fn check(out: std::process::Output, args: &[&str]) -> (String, String) {
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        out.status.success(),
        "tare {args:?} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

fn fails(ctx: &TestContext, args: &[&str]) -> String {
    let out = tare(ctx, args);
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(
        !out.status.success(),
        "tare {args:?} succeeded but should have failed\nstderr:\n{stderr}"
    );
    stderr
}

fn login(ctx: &TestContext, host: &str, user: &str, pass: &str) -> std::process::Output {
    let mut child = tare_cmd(ctx)
        .args(["login", "-u", user, "--password-stdin", host])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tare login");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(format!("{pass}\n").as_bytes())
        .expect("write password");
    child.wait_with_output().expect("wait tare login")
}

#[test]
fn push_then_pull_into_an_empty_store_gives_the_same_image() {
    let reg = RegistryServer::open();
    let a = TestContext::new();
    make_image(&a, "app:1", "hello from tare", 0);
    let dest = format!("{}/app:1", reg.host());
    let (out, err) = ok(&a, &["push", "app:1", &dest]);
    assert!(
        out.contains(&format!("{}/app@sha256:", reg.host())),
        "{out}"
    );
    assert!(err.contains("pushing layer"), "{err}");

    let b = TestContext::new();
    let (out, _) = ok(&b, &["pull", &dest]);
    assert!(out.contains("Digest: sha256:"), "{out}");
    assert_eq!(image_id(&a, "app:1"), image_id(&b, &dest));
    // The manifest keeps its bytes: the same digest on both sides.
    let store_a = Store::open(a.root.path()).unwrap();
    let store_b = Store::open(b.root.path()).unwrap();
    assert_eq!(
        store_a.resolve("app:1").unwrap().manifest_digest,
        store_b.resolve(&dest).unwrap().manifest_digest
    );

    // By digest: verified against the digest itself, and found by it afterwards.
    let digest = store_a.resolve("app:1").unwrap().manifest_digest;
    let pinned = format!("{}/app@{digest}", reg.host());
    let c = TestContext::new();
    ok(&c, &["pull", &pinned]);
    assert_eq!(image_id(&c, &pinned), image_id(&a, "app:1"));

    // Again: nothing moves either way.
    let (_, err) = ok(&b, &["pull", &dest]);
    assert_eq!(err.matches("already in the store").count(), 2, "{err}");
    let (_, err) = ok(&a, &["push", "app:1", &dest]);
    assert_eq!(err.matches("already in the registry").count(), 3, "{err}");
    assert!(!err.contains("pushing"), "{err}");
}

#[test]
fn missing_images_say_not_found() {
    let reg = RegistryServer::open();
    let ctx = TestContext::new();
    let err = fails(&ctx, &["pull", &format!("{}/nope:1", reg.host())]);
    assert!(
        err.contains(&format!("not found: {}/nope:1", reg.host())),
        "{err}"
    );
    let err = fails(&ctx, &["push", "absent:1", &format!("{}/x:1", reg.host())]);
    assert!(err.contains("absent"), "{err}");
}

#[test]
fn basic_auth_needs_login_and_logout_forgets_it() {
    let reg = RegistryServer::start(RegistryConfig {
        basic: Some(("tester".into(), "s3cret-pw".into())),
        ..Default::default()
    });
    let ctx = TestContext::new();
    make_image(&ctx, "app:1", "basic", 0);
    let dest = format!("{}/app:1", reg.host());
    let err = fails(&ctx, &["push", "app:1", &dest]);
    assert!(err.contains(&format!("tare login {}", reg.host())), "{err}");

    let out = login(&ctx, &reg.host(), "tester", "wrong");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("login"), "{err}");
    assert!(!err.contains("wrong"), "the password leaked: {err}");

    let (out, _) = check(login(&ctx, &reg.host(), "tester", "s3cret-pw"), &["login"]);
    assert!(out.contains("Login Succeeded"), "{out}");
    let saved = std::fs::read_to_string(ctx.path().join("auth.json")).unwrap();
    assert!(saved.contains(&reg.host()), "{saved}");
    let (_, err) = ok(&ctx, &["push", "app:1", &dest]);
    assert!(!err.contains("s3cret"), "{err}");

    let other = TestContext::new();
    std::fs::copy(ctx.path().join("auth.json"), other.path().join("auth.json")).unwrap();
    ok(&other, &["pull", &dest]);

    let (out, _) = ok(&other, &["logout", &reg.host()]);
    assert!(out.contains("Removed login credentials"), "{out}");
    let err = fails(&other, &["pull", &dest]);
    assert!(err.contains("log in"), "{err}");
    let (out, _) = ok(&other, &["logout", &reg.host()]);
    assert!(out.contains("Not logged in"), "{out}");
}

#[test]
fn docker_config_and_credential_helpers_supply_credentials() {
    let reg = RegistryServer::start(RegistryConfig {
        basic: Some(("dockeruser".into(), "dockerpass".into())),
        ..Default::default()
    });
    let ctx = TestContext::new();
    make_image(&ctx, "app:1", "creds", 0);
    let dest = format!("{}/app:1", reg.host());
    let config_dir = ctx.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    // auths, as `docker login` writes them (base64 of user:password).
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"http://{}":{{"auth":"ZG9ja2VydXNlcjpkb2NrZXJwYXNz"}}}}}}"#,
            reg.host()
        ),
    )
    .unwrap();
    ok(&ctx, &["push", "app:1", &dest]);

    // A credential helper on PATH, named in credHelpers.
    let bin = ctx.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-taretest");
    std::fs::write(
        &helper,
        "#!/bin/sh\nread server\necho \"$server\" > \"$(dirname \"$0\")/asked\"\necho '{\"ServerURL\":\"x\",\"Username\":\"dockeruser\",\"Secret\":\"dockerpass\"}'\n",
    )
    .unwrap();
    Command::new("chmod")
        .arg("755")
        .arg(&helper)
        .status()
        .unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"taretest"}}}}"#, reg.host()),
    )
    .unwrap();
    let other = TestContext::new();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = tare_cmd(&other);
    cmd.env("DOCKER_CONFIG", &config_dir).env("PATH", path);
    check(
        cmd.args(["pull", &dest])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        &["pull"],
    );
    assert_eq!(
        std::fs::read_to_string(bin.join("asked")).unwrap().trim(),
        reg.host()
    );
}

#[test]
fn bearer_tokens_come_from_the_token_server_with_the_right_scopes() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(
        reg.port,
        Some(Bearer {
            token: "tok-123".into(),
            user: Some(("alice".into(), "pw-alice".into())),
            refresh: Some("refresh-xyz".into()),
        }),
    );
    let ctx = TestContext::new();
    make_image(&ctx, "app:1", "bearer", 0);
    let dest = format!("{}/team/app:1", proxy.host());
    let err = fails(&ctx, &["push", "app:1", &dest]);
    assert!(err.contains("tare login"), "{err}");
    let out = login(&ctx, &proxy.host(), "alice", "not-her-password");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("rejected"), "{err}");
    assert!(
        !ctx.path().join("auth.json").exists(),
        "a failed login saved credentials"
    );
    check(login(&ctx, &proxy.host(), "alice", "pw-alice"), &["login"]);
    ok(&ctx, &["push", "app:1", &dest]);
    let b = TestContext::new();
    std::fs::copy(ctx.path().join("auth.json"), b.path().join("auth.json")).unwrap();
    ok(&b, &["pull", &dest]);
    let scopes = proxy.state.token_requests.lock().unwrap().clone();
    assert!(
        scopes
            .iter()
            .any(|q| q.contains("scope=repository%3Ateam%2Fapp%3Apull%2Cpush")),
        "{scopes:?}"
    );
    assert!(
        scopes
            .iter()
            .any(|q| q.ends_with("scope=repository%3Ateam%2Fapp%3Apull")),
        "{scopes:?}"
    );
    assert!(scopes.iter().all(|q| q.contains("service=tare-test")));

    // An identity token in docker's config.json: the OAuth2 refresh grant.
    let c = TestContext::new();
    let config_dir = c.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        format!(
            r#"{{"auths":{{"{}":{{"auth":"","identitytoken":"refresh-xyz"}}}}}}"#,
            proxy.host()
        ),
    )
    .unwrap();
    ok(&c, &["pull", &dest]);
    let forms = proxy.state.token_requests.lock().unwrap().clone();
    assert!(
        forms.iter().any(|f| f.contains("grant_type=refresh_token")
            && f.contains("scope=repository%3Ateam%2Fapp%3Apull")),
        "{forms:?}"
    );
}

#[test]
fn tls_registries_are_trusted_through_certs_d() {
    let certs = make_certs();
    let reg = RegistryServer::start(RegistryConfig {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        ..Default::default()
    });
    let ctx = TestContext::new();
    make_image(&ctx, "app:1", "tls", 0);
    let dest = format!("{}/app:1", reg.host());
    let err = fails(&ctx, &["push", "app:1", &dest]);
    assert!(
        err.contains(&format!(
            "the TLS certificate of {} is not trusted: add its CA as {}",
            reg.host(),
            ctx.path()
                .join("certs.d")
                .join(reg.host())
                .join("ca.crt")
                .display()
        )),
        "{err}"
    );

    let dir = ctx.path().join("certs.d").join(reg.host());
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(&certs.ca, dir.join("ca.crt")).unwrap();
    ok(&ctx, &["push", "app:1", &dest]);
    let b = TestContext::new();
    let bdir = b.path().join("certs.d").join(reg.host());
    std::fs::create_dir_all(&bdir).unwrap();
    std::fs::copy(&certs.ca, bdir.join("ca.crt")).unwrap();
    ok(&b, &["pull", &dest]);
    assert_eq!(image_id(&ctx, "app:1"), image_id(&b, &dest));
}

#[test]
fn downloads_survive_500s_and_dropped_connections() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let a = TestContext::new();
    make_image(&a, "app:1", "faults", 300_000);
    let dest = format!("{}/app:1", proxy.host());
    ok(&a, &["push", "app:1", &dest]);

    // The config is fetched first and takes the two 500s; then every blob's first download is
    // cut halfway, and the layers resume with a Range request.
    proxy.state.blob_500.store(2, Ordering::SeqCst);
    proxy.state.blob_drop_once.store(true, Ordering::SeqCst);
    let b = TestContext::new();
    let (_, err) = ok(&b, &["pull", &dest]);
    assert_eq!(image_id(&a, "app:1"), image_id(&b, &dest));
    let log = proxy.log();
    assert!(err.contains("retrying"), "{err}\n{log:#?}");
    assert!(
        log.iter()
            .any(|l| l.starts_with("GET") && l.contains("[bytes=")),
        "no resumed download in {log:?}"
    );
}

#[test]
fn a_corrupt_blob_fails_naming_digest_and_registry_and_stores_nothing() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let a = TestContext::new();
    make_image(&a, "app:1", "corrupt", 100_000);
    let dest = format!("{}/app:1", proxy.host());
    ok(&a, &["push", "app:1", &dest]);
    proxy.state.blob_corrupt.store(true, Ordering::SeqCst);
    let b = TestContext::new();
    let err = fails(&b, &["pull", &dest]);
    assert!(err.contains("digest mismatch"), "{err}");
    assert!(err.contains(&proxy.host()), "{err}");
    assert!(err.contains("sha256:"), "{err}");
    let store = Store::open(b.root.path()).unwrap();
    assert!(store.images().unwrap().is_empty());
    let blobs = std::fs::read_dir(b.root.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0, "a corrupt pull left blobs behind");

    // A manifest that does not match the registry's Docker-Content-Digest, or the digest
    // pinned in the reference.
    proxy.state.blob_corrupt.store(false, Ordering::SeqCst);
    proxy.state.manifest_corrupt.store(true, Ordering::SeqCst);
    let err = fails(&b, &["pull", &dest]);
    assert!(err.contains("digest mismatch for manifest"), "{err}");
    let pinned = format!(
        "{}/app@{}",
        proxy.host(),
        Store::open(a.root.path())
            .unwrap()
            .resolve("app:1")
            .unwrap()
            .manifest_digest
    );
    let err = fails(&b, &["pull", &pinned]);
    assert!(err.contains("digest mismatch for manifest"), "{err}");
    assert!(Store::open(b.root.path())
        .unwrap()
        .images()
        .unwrap()
        .is_empty());
}

#[test]
fn big_layers_go_up_in_chunks_and_resume_after_a_failed_chunk() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let a = TestContext::new();
    make_image(&a, "app:1", "chunks", 1_000_000);
    let dest = format!("{}/app:1", proxy.host());
    proxy.state.patch_500.store(1, Ordering::SeqCst);
    let mut cmd = tare_cmd(&a);
    cmd.env("TARE_PUSH_CHUNK_SIZE", "262144");
    check(
        cmd.args(["push", "app:1", &dest])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        &["push"],
    );
    let log = proxy.log();
    let patches = log.iter().filter(|l| l.starts_with("PATCH")).count();
    assert!(patches >= 4, "expected chunked uploads in {log:?}");
    let b = TestContext::new();
    ok(&b, &["pull", &dest]);
    assert_eq!(image_id(&a, "app:1"), image_id(&b, &dest));
}

#[test]
fn a_second_repository_gets_blobs_by_cross_repo_mount() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let a = TestContext::new();
    make_image(&a, "app:1", "mount", 0);
    ok(
        &a,
        &["push", "app:1", &format!("{}/one/app:1", proxy.host())],
    );
    let (_, err) = ok(
        &a,
        &["push", "app:1", &format!("{}/two/app:1", proxy.host())],
    );
    assert_eq!(err.matches("mounted from one/app").count(), 3, "{err}");
    assert!(proxy
        .log()
        .iter()
        .any(|l| l.starts_with("POST /v2/two/app/blobs/uploads/?mount=")));
    let b = TestContext::new();
    ok(&b, &["pull", &format!("{}/two/app:1", proxy.host())]);
}

#[test]
fn insecure_registry_flag_accepts_an_untrusted_certificate() {
    let certs = make_certs();
    let reg = RegistryServer::start(RegistryConfig {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        ..Default::default()
    });
    let ctx = TestContext::new();
    make_image(&ctx, "app:1", "insecure", 0);
    let dest = format!("{}/app:1", reg.host());
    fails(&ctx, &["push", "app:1", &dest]);
    ok(
        &ctx,
        &["push", "--insecure-registry", &reg.host(), "app:1", &dest],
    );
    let b = TestContext::new();
    let mut cmd = tare_cmd(&b);
    cmd.env("TARE_INSECURE_REGISTRIES", reg.host());
    check(
        cmd.args(["pull", &dest])
            .stdin(Stdio::null())
            .output()
            .unwrap(),
        &["pull"],
    );
}

/// Runs skopeo, asserting success; its standard output.
fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

#[test]
fn zstd_oci_images_from_skopeo_and_uncompressed_layers_pull_to_the_same_image() {
    let reg = RegistryServer::open();
    let a = TestContext::new();
    make_image(&a, "app:1", "formats", 10_000);
    let host = reg.host();
    ok(&a, &["push", "app:1", &format!("{host}/app:1")]);
    let src = format!("docker://{host}/app:1");
    skopeo(&[
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
        "--format",
        "oci",
        "--dest-compress-format",
        "zstd",
        &src,
        &format!("docker://{host}/zstd:1"),
    ]);
    // Uncompressed layers: skopeo and docker always compress for a registry, so tare pushes
    // an image whose layers are plain tars.
    let plain = TestContext::new();
    make_image_with(&plain, "plain:1", "formats", 10_000, Compression::None);
    ok(&plain, &["push", "plain:1", &format!("{host}/plain:1")]);
    for (name, want) in [
        ("zstd:1", image_id(&a, "app:1")),
        ("plain:1", image_id(&plain, "plain:1")),
    ] {
        let b = TestContext::new();
        ok(&b, &["pull", &format!("{host}/{name}")]);
        let store = Store::open(b.root.path()).unwrap();
        let img = store.resolve(&format!("{host}/{name}")).unwrap();
        assert_eq!(img.id.to_string(), want, "{name}");
        let media: Vec<&str> = img.layers.iter().map(|l| l.media_type.as_str()).collect();
        let expect = if name == "zstd:1" {
            tare_store::MEDIA_TYPE_LAYER_ZSTD
        } else {
            tare_store::MEDIA_TYPE_LAYER_TAR
        };
        assert!(media.iter().all(|m| *m == expect), "{name}: {media:?}");
    }
}

#[test]
fn an_index_resolves_to_the_host_or_the_requested_platform() {
    let reg = RegistryServer::open();
    let host = reg.host();
    let a = TestContext::new();
    make_image(&a, "amd:1", "amd64 image", 0);
    make_image(&a, "arm:1", "arm64 image", 0);
    ok(&a, &["push", "amd:1", &format!("{host}/multi:amd")]);
    ok(&a, &["push", "arm:1", &format!("{host}/multi:arm")]);
    let store = Store::open(a.root.path()).unwrap();
    let desc = |name: &str, arch: &str, variant: &str| {
        let img = store.resolve(name).unwrap();
        let size = store.blob_size(&img.manifest_digest).unwrap();
        format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":{size},"platform":{{"os":"linux","architecture":"{arch}"{variant}}}}}"#,
            img.manifest_digest
        )
    };
    let host_arch = tare_store::config::host_architecture();
    let other_arch = if host_arch == "arm64" {
        "amd64"
    } else {
        "arm64"
    };
    let index = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{},{}]}}"#,
        desc(
            "arm:1",
            other_arch,
            if other_arch == "arm64" {
                r#","variant":"v8""#
            } else {
                ""
            }
        ),
        desc("amd:1", host_arch, ""),
    );
    let index_file = a.path().join("index.json");
    std::fs::write(&index_file, &index).unwrap();
    let out = Command::new("curl")
        .args([
            "-sf",
            "-X",
            "PUT",
            "-H",
            "Content-Type: application/vnd.oci.image.index.v1+json",
            "--data-binary",
        ])
        .arg(format!("@{}", index_file.display()))
        .arg(format!("http://{host}/v2/multi/manifests/latest"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let b = TestContext::new();
    let (_, err) = ok(&b, &["pull", &format!("{host}/multi")]);
    assert!(err.contains(&format!("for linux/{host_arch}")), "{err}");
    assert_eq!(
        image_id(&b, &format!("{host}/multi")),
        image_id(&a, "amd:1")
    );
    let c = TestContext::new();
    ok(
        &c,
        &[
            "pull",
            "--platform",
            &format!("linux/{other_arch}"),
            &format!("{host}/multi"),
        ],
    );
    assert_eq!(
        image_id(&c, &format!("{host}/multi")),
        image_id(&a, "arm:1")
    );
    let err = fails(
        &c,
        &[
            "pull",
            "--platform",
            "linux/s390x",
            &format!("{host}/multi"),
        ],
    );
    assert!(err.contains("no image for platform linux/s390x"), "{err}");
}

fn docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

#[test]
fn docker_pulls_and_runs_what_tare_pushed_and_tare_pulls_what_docker_pushed() {
    if util::docker_disabled() {
        eprintln!("skipped: TARE_TEST_NO_DOCKER=1");
        return;
    }
    let reg = RegistryServer::open();
    let host = reg.host();
    let a = TestContext::new();
    make_image(&a, "app:1", "made by tare", 0);
    let name = format!("{host}/interop:tare");
    ok(&a, &["push", "app:1", &name]);
    docker(&["pull", &name]);
    let out = docker(&["run", "--rm", "--network", "none", &name]);
    assert_eq!(out.trim(), "made by tare");

    // docker's own image, pushed by docker, pulled by tare.
    let tar = a.path().join("rootfs.tar");
    util::busybox_rootfs_tar(&tar);
    let docker_name = format!("{host}/interop:docker");
    docker(&[
        "import",
        "--change",
        "CMD [\"echo\", \"from docker\"]",
        tar.to_str().unwrap(),
        &docker_name,
    ]);
    docker(&["push", &docker_name]);
    let b = TestContext::new();
    ok(&b, &["pull", &docker_name]);
    let store = Store::open(b.root.path()).unwrap();
    let img = store.resolve(&docker_name).unwrap();
    assert_eq!(
        img.config.config.cmd,
        Some(vec!["echo".to_string(), "from docker".to_string()])
    );
    let docker_id = docker(&["image", "inspect", "--format", "{{.Id}}", &docker_name]);
    assert_eq!(docker_id.trim(), img.id.to_string());
    let _ = Command::new("docker")
        .args(["rmi", "-f", &name, &docker_name])
        .output();
}

/// Not a test of tare: keeps the harness's TLS helper honest (curl trusts the CA we made).
#[test]
fn the_test_ca_signs_a_certificate_curl_accepts() {
    let certs = make_certs();
    let reg = RegistryServer::start(RegistryConfig {
        tls: Some((certs.cert.clone(), certs.key.clone())),
        ..Default::default()
    });
    let status = Command::new("curl")
        .args(["-sf", "--cacert"])
        .arg(&certs.ca)
        .arg(format!("https://{}/v2/", reg.host()))
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn a_build_from_a_registry_image_starts_from_an_empty_store() {
    let reg = RegistryServer::open();
    let host = reg.host();
    let a = TestContext::new();
    make_image(&a, "base:1", "from the registry", 0);
    ok(&a, &["push", "base:1", &format!("{host}/base:1")]);

    let b = TestContext::new();
    b.write(
        "ctx/Dockerfile",
        &format!(
            "FROM {host}/base:1\nRUN cat /hello > /copied && echo built >> /copied\nCOPY --from={host}/base:1 /hello /again\n"
        ),
    );
    let ctx_dir = b.path().join("ctx");
    ok(
        &b,
        &["build", "-q", "-t", "built:1", ctx_dir.to_str().unwrap()],
    );
    let store = Store::open(b.root.path()).unwrap();
    let base = store
        .resolve(&format!("{host}/base:1"))
        .expect("the base was pulled");
    assert_eq!(base.id.to_string(), image_id(&a, "base:1"));
    let built = store.resolve("built:1").unwrap();
    assert_eq!(built.layers[..base.layers.len()], base.layers[..]);
    assert_eq!(built.layers.len(), base.layers.len() + 2);
    drop(store);

    // And back out: the base layers are mounted from the repository the build pulled them
    // from; the new ones are uploaded.
    let dest = format!("{host}/built:1");
    let (_, err) = ok(&b, &["push", "built:1", &dest]);
    assert_eq!(err.matches("mounted from base").count(), 2, "{err}");
    assert_eq!(err.matches("pushing layer").count(), 2, "{err}");
    let c = TestContext::new();
    ok(&c, &["pull", &dest]);
    assert_eq!(image_id(&c, &dest), image_id(&b, "built:1"));
}

#[test]
fn build_push_sends_each_tag_to_its_registry() {
    let reg = RegistryServer::open();
    let host = reg.host();
    let a = TestContext::new();
    a.import_busybox("busybox:latest");
    a.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN echo pushed > /pushed\n",
    );
    let ctx_dir = a.path().join("ctx");
    let dest = format!("{host}/pushed:1");
    let (out, _) = ok(
        &a,
        &["build", "--push", "-t", &dest, ctx_dir.to_str().unwrap()],
    );
    assert!(out.contains(&format!("pushed {dest}")), "{out}");
    let b = TestContext::new();
    ok(&b, &["pull", &dest]);
    assert_eq!(image_id(&b, &dest), image_id(&a, &dest));
    // Without a name there is nothing to push to.
    let err = fails(&a, &["build", "--push", ctx_dir.to_str().unwrap()]);
    assert!(err.contains("--push needs a name"), "{err}");
}
