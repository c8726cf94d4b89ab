//! Attacks of this class: see the suite's overview in main.rs.
//!
//! A registry that tries to get credentials sent elsewhere (upload `Location`s and blob
//! redirects naming another host or port), and a registry whose answers never end (manifest,
//! token, error body, the `/v2/` probe). All servers listen on loopback addresses only, and
//! every loop is bounded.

#[path = "../registry/harness.rs"]
pub(crate) mod harness;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use harness::{Bearer, Proxy, RegistryConfig, RegistryServer};

use crate::util::TestContext;

const USER: &str = "alice";
const PASSWORD: &str = "pw-do-not-leak";
const TOKEN: &str = "token-do-not-leak";

/// Files outside the store that no registry answer may touch.
struct Canaries {
    _dir: tempfile::TempDir,
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Canaries {
    fn plant() -> Canaries {
        let dir = tempfile::tempdir().expect("canary dir");
        let files: Vec<(PathBuf, Vec<u8>)> = ["canary", "auth.json.bak"]
            .iter()
            .map(|name| {
                let path = dir.path().join(name);
                let content = format!("canary {name}").into_bytes();
                std::fs::write(&path, &content).expect("write canary");
                (path, content)
            })
            .collect();
        Canaries { _dir: dir, files }
    }

    fn untouched(&self) {
        for (path, content) in &self.files {
            assert_eq!(
                std::fs::read(path).expect("canary still there"),
                *content,
                "{} changed",
                path.display()
            );
        }
    }
}

/// `tare` with credentials and certificates isolated in the test's directory.
fn tare(ctx: &TestContext, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = ctx
        .tare()
        .env("TARE_AUTH_FILE", ctx.path().join("auth.json"))
        .env("DOCKER_CONFIG", ctx.path().join("docker-config"))
        .env("TARE_CERTS_D", ctx.path().join("certs.d"))
        .env_remove("TARE_INSECURE_REGISTRIES")
        .env_remove("TARE_PUSH_CHUNK_SIZE")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tare");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("wait for tare")
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn login(ctx: &TestContext, host: &str) {
    let out = tare(
        ctx,
        &["login", "-u", USER, "--password-stdin", host],
        Some(&format!("{PASSWORD}\n")),
    );
    assert!(out.status.success(), "login failed\n{}", text(&out));
}

fn bearer() -> Option<Bearer> {
    Some(Bearer {
        token: TOKEN.into(),
        user: Some((USER.into(), PASSWORD.into())),
        refresh: None,
    })
}

/// Where the second listener (the one that must never see credentials) lives, and the host
/// name the registry's answers use for it: another address, another name, another port.
const ELSEWHERE: [(&str, &str); 3] = [
    ("127.0.0.2", "127.0.0.2"),
    ("127.0.0.1", "localhost"),
    ("127.0.0.1", "127.0.0.1"),
];

/// `other` saw requests matching `wanted` and none with credentials; `registry` did get them
/// (so the check would notice a test in which none were sent at all).
fn assert_only_registry_authorized(
    registry: &Proxy,
    other: &Proxy,
    name: &str,
    wanted: impl Fn(&str) -> bool,
) {
    let seen = other.log();
    assert!(
        seen.iter().any(|r| wanted(r)),
        "the expected requests did not reach {name}:{}: {seen:?}",
        other.port
    );
    assert_eq!(
        other.authorized(),
        Vec::<String>::new(),
        "credentials sent to {name}:{}",
        other.port
    );
    assert!(!registry.authorized().is_empty());
}

#[test]
fn push_sends_no_token_to_an_upload_location_on_another_host() {
    let canaries = Canaries::plant();
    let registry = RegistryServer::open();
    for (n, (bind, name)) in ELSEWHERE.into_iter().enumerate() {
        // A store and a repository of their own per round: the listeners' ports may repeat
        // from one round to the next (the kernel hands out freed ports again), and then a
        // store that remembers where it pushed (`registry/sources.json`, by host and port)
        // mounts the blobs from the last round's repository, or the registry already holds
        // them there: no upload, so nothing would reach the upload host.
        let ctx = TestContext::new();
        ctx.import_busybox("app:1");
        let elsewhere = Proxy::start_on(bind, registry.port, None);
        let front = Proxy::start(registry.port, bearer());
        *front.state.upload_location.lock().unwrap() =
            Some(format!("http://{name}:{}", elsewhere.port));
        login(&ctx, &front.host());
        let dest = format!("{}/leak-{n}:1", front.host());
        let out = tare(&ctx, &["push", "app:1", &dest], None);
        assert!(out.status.success(), "push to {dest}\n{}", text(&out));
        assert_only_registry_authorized(&front, &elsewhere, name, |r| r.starts_with("PUT "));
    }
    canaries.untouched();
}

#[test]
fn push_sends_no_password_to_an_upload_location_on_another_host() {
    let canaries = Canaries::plant();
    let ctx = TestContext::new();
    ctx.import_busybox("app:1");
    let registry = RegistryServer::start(RegistryConfig {
        basic: Some((USER.into(), PASSWORD.into())),
        tls: None,
    });
    for (bind, name) in ELSEWHERE {
        let elsewhere = Proxy::start_on(bind, registry.port, None);
        // Like the registry, the upload host wants the password: it must not get it.
        elsewhere.state.refuse_401.store(true, Ordering::SeqCst);
        let front = Proxy::start(registry.port, None);
        *front.state.upload_location.lock().unwrap() =
            Some(format!("http://{name}:{}", elsewhere.port));
        login(&ctx, &front.host());
        let dest = format!("{}/leak:1", front.host());
        let out = tare(&ctx, &["push", "app:1", &dest], None);
        // The upload host wants the password it was not given: a clear refusal, not a leak.
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "push to {dest}\n{}", text(&out));
        assert!(
            stderr.contains(&format!("pushing {dest}"))
                && stderr.contains(&format!("unauthorized: {}", front.host())),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_only_registry_authorized(&front, &elsewhere, name, |r| r.starts_with("PUT "));
    }
    canaries.untouched();
}

#[test]
fn pull_follows_blob_redirects_without_credentials() {
    let canaries = Canaries::plant();
    let registry = RegistryServer::open();
    let seed = TestContext::new();
    seed.import_busybox("app:1");
    let out = tare(
        &seed,
        &["push", "app:1", &format!("{}/app:1", registry.host())],
        None,
    );
    assert!(out.status.success(), "{}", text(&out));
    for (bind, name) in ELSEWHERE {
        let storage = Proxy::start_on(bind, registry.port, None);
        let front = Proxy::start(registry.port, bearer());
        *front.state.blob_redirect.lock().unwrap() =
            Some(format!("http://{name}:{}", storage.port));
        let ctx = TestContext::new();
        login(&ctx, &front.host());
        let reference = format!("{}/app:1", front.host());
        let out = tare(&ctx, &["pull", &reference], None);
        assert!(out.status.success(), "pull {reference}\n{}", text(&out));
        assert_only_registry_authorized(&front, &storage, name, |r| r.contains("/blobs/sha256:"));
    }
    canaries.untouched();
}

/// What a hostile registry answers without end.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Endless {
    /// The body of `GET /v2/`.
    Probe,
    /// A manifest.
    Manifest,
    /// The token server's answer.
    Token,
    /// The body of an error (500) answer to the manifest request.
    ErrorBody,
}

/// A registry on 127.0.0.1 that streams one endless answer, and keeps the most it wrote in one
/// answer. Each answer stops after `CAP` bytes even if nobody hangs up.
struct Hostile {
    port: u16,
    most_written: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const CAP: u64 = 1 << 30;

impl Hostile {
    fn start(kind: Endless) -> Hostile {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let written = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (written, stop) = (written.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let written = written.clone();
                    std::thread::spawn(move || {
                        let _ = serve(conn, kind, port, &written);
                    });
                }
            })
        };
        Hostile {
            port,
            most_written: written,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Hostile {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    mut conn: TcpStream,
    kind: Endless,
    port: u16,
    written: &AtomicU64,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && head.len() < 64 << 10 {
        if conn.read(&mut byte)? == 0 {
            return Ok(());
        }
        // A TLS hello (tare tries HTTPS first): hang up like a plain server.
        if head.is_empty() && byte[0] == 0x16 {
            return Ok(());
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&head);
    let target = head.split(' ').nth(1).unwrap_or("").to_string();
    let endless = |conn: &mut TcpStream, status: &str, extra: &str, unit: &[u8]| {
        let _ = conn
            .write_all(format!("HTTP/1.1 {status}\r\n{extra}Connection: close\r\n\r\n").as_bytes());
        let mut sent = 0u64;
        while sent < CAP {
            if conn.write_all(unit).is_err() {
                break;
            }
            sent += unit.len() as u64;
        }
        written.fetch_max(sent, Ordering::Relaxed);
    };
    let short = |conn: &mut TcpStream, status: &str, extra: &str| {
        let _ = conn.write_all(
            format!("HTTP/1.1 {status}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
    };
    let unit = vec![b'a'; 64 << 10];
    match (kind, target.as_str()) {
        (Endless::Probe, "/v2/") => endless(&mut conn, "200 OK", "", &unit),
        (Endless::Token, "/v2/") => short(
            &mut conn,
            "401 Unauthorized",
            &format!("WWW-Authenticate: Bearer realm=\"http://127.0.0.1:{port}/token\",service=\"x\"\r\n"),
        ),
        (Endless::Token, t) if t.starts_with("/token") => endless(
            &mut conn,
            "200 OK",
            "Content-Type: application/json\r\n",
            &unit,
        ),
        (_, "/v2/") => short(&mut conn, "200 OK", ""),
        (Endless::Manifest, t) if t.contains("/manifests/") => endless(
            &mut conn,
            "200 OK",
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
            &unit,
        ),
        (Endless::ErrorBody, t) if t.contains("/manifests/") => endless(
            &mut conn,
            "500 Internal Server Error",
            "Content-Type: application/json\r\n",
            &unit,
        ),
        _ => short(&mut conn, "404 Not Found", ""),
    }
    Ok(())
}

#[test]
fn endless_registry_answers_end_in_a_clear_error_with_bounded_reads() {
    let canaries = Canaries::plant();
    for (kind, expected) in [
        (
            Endless::Manifest,
            "the manifest of {REF} is larger than 4194304 bytes",
        ),
        (
            Endless::Token,
            "the token answer of {HOST} is larger than 1048576 bytes",
        ),
        (Endless::ErrorBody, "the registry answered 500"),
        (Endless::Probe, "not found: {REF}"),
    ] {
        let hostile = Hostile::start(kind);
        let ctx = TestContext::new();
        let host = format!("127.0.0.1:{}", hostile.port);
        let reference = format!("{host}/evil:latest");
        let out = tare(&ctx, &["pull", &reference], None);
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!out.status.success(), "{}", text(&out));
        let expected = expected
            .replace("{REF}", &reference)
            .replace("{HOST}", &host);
        assert!(
            stderr.contains(&expected),
            "want {expected:?} in:\n{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
        // tare stopped reading: what the registry managed to write in one answer is the limit
        // plus what the loopback socket buffers hold, nowhere near the gigabyte it offered.
        let written = hostile.most_written.load(Ordering::Relaxed);
        assert!(
            written < 32 << 20,
            "{kind:?}: the registry wrote {written} bytes in one answer before tare hung up"
        );
        drop(hostile);
        // The store holds nothing from the hostile registry.
        let images = Command::new(env!("CARGO_BIN_EXE_tare"))
            .arg("--root")
            .arg(ctx.root.path())
            .args(["images", "--format", "json"])
            .output()
            .expect("tare images");
        assert!(images.status.success());
        assert!(
            !String::from_utf8_lossy(&images.stdout).contains("evil"),
            "{}",
            String::from_utf8_lossy(&images.stdout)
        );
    }
    canaries.untouched();
}
