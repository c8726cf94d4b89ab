//! The build cache in a registry (issue 15): three stores with separate roots stand in for
//! three CI runners sharing one loopback `docker-registry`.

use crate::harness::{Proxy, RegistryServer};
use crate::util::cache::{
    assert_every_step_cached, assert_writer_cached, base_at, build, cached_steps, export_at_once,
    get_json, machine, machine_with, writer_dockerfile, WRITERS,
};
use crate::util::TestContext;

/// Item 7 of issue 15: A builds and exports; B, empty, finds every step CACHED, runs no RUN
/// and makes A's image; C changes one file and runs only that COPY and what follows.
#[test]
fn many_machines_share_one_cache() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let cache = format!("{}/cache:build", reg.host());
    let to = format!("type=registry,ref={cache},mode=max");
    let from = format!("type=registry,ref={cache}");

    let a = machine(&base, "bravo\n");
    let (id_a, progress) = build(&a, &["--cache-to", &to, "--cache-from", &from]);
    assert!(
        progress.contains("MARK42") && progress.contains("MARK43"),
        "{progress}"
    );
    assert!(!progress.contains("WARNING"), "{progress}");

    let b = machine(&base, "bravo\n");
    let (id_b, progress) = build(&b, &["--cache-from", &from]);
    assert_every_step_cached(&progress);
    assert_eq!(id_b, id_a, "B made another image than A");
    // The image B stored is complete and runs.
    assert_eq!(b.ok(&["run", "--rm", &id_b]), "bravo\n");
    b.ok(&["check"]);

    let c = machine(&base, "charlie\n");
    let (id_c, progress) = build(&c, &["--cache-from", &from]);
    assert!(
        !progress.contains("MARK42"),
        "the first RUN ran on C:\n{progress}"
    );
    assert!(
        progress.contains("MARK43"),
        "the second RUN did not run on C:\n{progress}"
    );
    // WORKDIR, the first COPY and the first RUN.
    assert_eq!(cached_steps(&progress), 3, "{progress}");
    assert_ne!(id_c, id_a);
    assert_eq!(c.ok(&["run", "--rm", &id_c]), "charlie\n");
}

/// Four builders export four different Dockerfiles to one ref at the same time: every
/// entry is there afterwards, and a fresh store finds every step of each of them.
#[test]
fn four_concurrent_writers_lose_no_entry() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let cache = format!("{}/cache:shared", reg.host());
    let to = format!("type=registry,ref={cache},mode=max");
    let machines: Vec<TestContext> = (0..WRITERS)
        .map(|n| machine_with(&writer_dockerfile(&base, n), ""))
        .collect();
    export_at_once(&machines, &to);
    let listing = machines[0].ok(&["cache", "ls", "--registry", &cache, "--format", "json"]);
    assert_eq!(
        listing.lines().count(),
        8,
        "two entries per Dockerfile:\n{listing}"
    );
    let from = format!("type=registry,ref={cache}");
    for n in 0..WRITERS {
        let fresh = machine_with(&writer_dockerfile(&base, n), "");
        assert_writer_cached(&fresh, n, &from);
    }
}

/// `tare cache ls` lists the entries; `prune --keep-duration` keeps the recent ones and
/// deletes the old through the registry's API.
#[test]
fn cache_ls_and_prune_go_through_the_registry_api() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let cache = format!("{}/cache:gc", reg.host());
    let a = machine(&base, "bravo\n");
    build(&a, &["--cache-to", &format!("type=registry,ref={cache}")]);
    let listing = a.ok(&["cache", "ls", "--registry", &cache]);
    // A header and WORKDIR, two COPYs, two RUNs.
    assert_eq!(listing.lines().count(), 6, "{listing}");
    let out = a.ok(&prune(&cache, "1h"));
    assert!(out.contains("deleted 0 cache entries"), "{out}");
    assert_eq!(
        a.ok(&["cache", "ls", "--registry", &cache]).lines().count(),
        6
    );
    let err = a.fails(&prune(&cache, "1w"));
    assert!(err.contains("unknown unit"), "{err}");
    let out = a.ok(&prune(&cache, "0s"));
    assert!(out.contains("deleted 5 cache entries"), "{out}");
    assert_eq!(
        a.ok(&["cache", "ls", "--registry", &cache]).lines().count(),
        1
    );
    // Both tags of each entry are gone: the key's and the one by parent (format 2).
    let left = registry_tags(&reg, "cache");
    assert!(
        !left
            .iter()
            .any(|t| t.starts_with("tare-cache-") || t.starts_with("tare-child-")),
        "{left:?}"
    );
    // The entries are gone for a builder too: everything runs.
    let b = machine(&base, "bravo\n");
    let (_, progress) = build(&b, &["--cache-from", &format!("type=registry,ref={cache}")]);
    assert_eq!(cached_steps(&progress), 0, "{progress}");
}

/// `tare cache prune --registry CACHE --keep-duration KEEP`.
fn prune<'a>(cache: &'a str, keep: &'a str) -> [&'a str; 6] {
    [
        "cache",
        "prune",
        "--registry",
        cache,
        "--keep-duration",
        keep,
    ]
}

/// A TCP proxy that hangs up every connection once `budget` bytes went one way through it
/// (requests when `upload`, answers otherwise): big blobs never get through whole.
struct DropProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DropProxy {
    fn start(upstream: u16, budget: usize, upload: bool) -> DropProxy {
        use std::io::{Read, Write};
        use std::net::{Shutdown, TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                // One direction is cut after `budget` bytes, the other copied whole.
                let pipe = |mut from: TcpStream, mut to: TcpStream, limit: Option<usize>| {
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 4096];
                        let mut sent = 0usize;
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            let n = limit.map_or(n, |l| n.min(l.saturating_sub(sent)));
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            sent += n;
                            if limit.is_some_and(|l| sent >= l) {
                                break;
                            }
                        }
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    })
                };
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let (up, down) = if upload {
                    (Some(budget), None)
                } else {
                    (None, Some(budget))
                };
                pipe(client, server, up);
                pipe(s2, c2, down);
            }
        });
        DropProxy {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for DropProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The tags of `repo` in the registry (none when it answers 404 or `"tags": null`).
fn registry_tags(reg: &RegistryServer, repo: &str) -> Vec<String> {
    let url = format!("http://{}/v2/{repo}/tags/list", reg.host());
    let out = std::process::Command::new("curl")
        .args(["-s", &url])
        .output()
        .expect("curl");
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    listing["tags"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str().map(str::to_string))
        .collect()
}

/// A registry behind the harness's proxy (whose log the tests read), and the shared base
/// image pushed through the proxy, so every machine names one registry.
pub(crate) fn proxied_registry() -> (RegistryServer, Proxy, String) {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let base = base_at(&proxy.host());
    (reg, proxy, base)
}

/// B, an empty store, builds [`DOCKERFILE`](crate::util::cache::DOCKERFILE) on `base` with
/// `flags` and `--push -t IMAGE`: every step comes from the cache, no RUN runs, and the image
/// is `id_a`, the one A built. Returns B, the proxy's log of B's requests and B's progress.
pub(crate) fn push_from_cache(
    proxy: &Proxy,
    base: &str,
    flags: &[&str],
    image: &str,
    id_a: &str,
) -> (TestContext, Vec<String>, String) {
    let b = machine(base, "bravo\n");
    let before = proxy.log().len();
    let mut args = flags.to_vec();
    args.extend(["--push", "-t", image]);
    let (id_b, progress) = build(&b, &args);
    let log: Vec<String> = proxy.log()[before..].to_vec();
    assert_eq!(id_b, id_a, "B pushed another image than A built");
    assert_every_step_cached(&progress);
    (b, log, progress)
}

/// The OCI manifest `repo:tag` of the registry, read directly (not through a proxy).
pub(crate) fn registry_manifest(reg: &RegistryServer, repo: &str, tag: &str) -> serde_json::Value {
    get_json(&format!("http://{}/v2/{repo}/manifests/{tag}", reg.host()))
}

/// Every entry's manifest in the cache names blobs the registry has: nothing half-pushed.
fn assert_entries_complete(m: &TestContext, reg: &RegistryServer, repo: &str, cache: &str) {
    let listing = m.ok(&["cache", "ls", "--registry", cache, "--format", "json"]);
    for line in listing.lines() {
        let entry: serde_json::Value = serde_json::from_str(line).expect("json");
        let tag = entry["tag"].as_str().expect("tag");
        let manifest = registry_manifest(reg, repo, tag);
        let mut blobs = vec![manifest["config"]["digest"]
            .as_str()
            .expect("config")
            .to_string()];
        for l in manifest["layers"].as_array().expect("layers") {
            blobs.push(l["digest"].as_str().expect("digest").to_string());
        }
        for b in blobs {
            let url = format!("http://{}/v2/{repo}/blobs/{b}", reg.host());
            let head = std::process::Command::new("curl")
                .args(["-sfI", &url])
                .output()
                .expect("curl");
            assert!(
                head.status.success(),
                "{tag} names {b}, which the registry lacks"
            );
        }
    }
}

/// A proxy that drops connections during the export and during the import: the builds
/// succeed (the steps run instead), no entry points at a missing blob, and the stores stay
/// consistent.
#[test]
fn dropped_connections_fall_back_to_running_the_step() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let big: String = (0..40_000).map(|i| format!("{i:07}\n")).collect();

    // Export through a proxy that cuts every request after 64 KiB: the big layer's upload
    // never completes, the small entries may.
    let cut_uploads = DropProxy::start(reg.port, 64 << 10, true);
    let a = machine(&base, &big);
    let cache_via = format!("127.0.0.1:{}/cache:faults", cut_uploads.port);
    let (id_a, progress) = build(
        &a,
        &["--cache-to", &format!("type=registry,ref={cache_via}")],
    );
    assert!(
        progress.contains("the cache was not exported"),
        "{progress}"
    );
    drop(cut_uploads);
    a.ok(&["check"]);
    let cache = format!("{}/cache:faults", reg.host());
    assert_entries_complete(&a, &reg, "cache", &cache);

    // Export again directly, then import through a proxy that cuts every connection's answers
    // after 16 KiB: the big layers cannot be fetched (not even resumed with ranges), so the
    // steps that made them run.
    build(&a, &["--cache-to", &format!("type=registry,ref={cache}")]);
    assert_entries_complete(&a, &reg, "cache", &cache);
    let cut_downloads = DropProxy::start(reg.port, 16 << 10, false);
    let b = machine(&base, &big);
    let from_via = format!(
        "type=registry,ref=127.0.0.1:{}/cache:faults",
        cut_downloads.port
    );
    let (id_b, progress) = build(&b, &["--cache-from", &from_via]);
    assert!(progress.contains("ignored"), "{progress}");
    assert!(
        progress.contains("MARK43"),
        "the step after the lost layer ran:\n{progress}"
    );
    drop(cut_downloads);
    b.ok(&["check"]);
    assert_eq!(
        b.ok(&["run", "--rm", &id_b, "wc", "-c", "/app/b.copy"])
            .trim(),
        "320000 /app/b.copy"
    );
    assert_eq!(
        a.ok(&["run", "--rm", &id_a, "wc", "-c", "/app/b.copy"])
            .trim(),
        "320000 /app/b.copy"
    );
}
