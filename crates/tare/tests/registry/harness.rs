//! What the registry tests run against: Debian's `docker-registry` (distribution 2.8) on a
//! loopback port it picks itself (its log says which), with its own storage (optionally with
//! htpasswd auth or TLS), and a proxy of our own in front of it that can play a bearer-token
//! server and inject faults.
//!
//! Every loop here is bounded (the registry is ready when its log says where it listens, or
//! has failed when its log ends; accept loops end when the owner drops), and all traffic
//! stays on 127.0.0.1.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;

/// The longest the registry may take to say where it listens. Only a guard against a
/// registry that hangs: readiness is its log line, not this time.
const START_GUARD: Duration = Duration::from_secs(120);

/// Reads the registry's log (its standard error) until it says where it listens, and
/// returns that port; the rest of the log is copied to `log` by a thread, so the registry
/// never blocks on a full pipe. distribution logs "listening on ADDR" once its socket is
/// bound and just before it serves, so the port is the registry's own and it accepts
/// connections. `Err` says why there is none: the registry ended first (the log says why),
/// or it hung.
///
/// Why not pick a free port first and wait until it accepts connections: another process
/// may take the port between the two (the registry then fails to bind, and the wait finds
/// the other process's listener), and a connect to a port nobody listens on can connect to
/// itself (TCP simultaneous open). Both happen more often the longer the registry takes to
/// start, that is, under load.
fn listening_port(stderr: std::process::ChildStderr, log: &Path) -> Result<u16, String> {
    use std::io::BufRead;
    let mut file = std::fs::File::create(log).expect("registry log");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = std::io::BufReader::new(stderr);
        let mut line = String::new();
        let port = loop {
            line.clear();
            // End of file: the registry exited.
            match lines.read_line(&mut line) {
                Ok(0) | Err(_) => break None,
                Ok(_) => {}
            }
            let _ = file.write_all(line.as_bytes());
            if let Some(rest) = line.split_once("msg=\"listening on ").map(|x| x.1) {
                let addr = rest.split([',', '"']).next().unwrap_or_default();
                break addr
                    .rsplit_once(':')
                    .and_then(|(_, p)| p.parse::<u16>().ok());
            }
        };
        let _ = tx.send(port);
        let _ = std::io::copy(&mut lines, &mut file);
    });
    match rx.recv_timeout(START_GUARD) {
        Ok(Some(port)) => Ok(port),
        Ok(None) => Err("it ended without listening".into()),
        Err(_) => Err(format!("it did not listen within {START_GUARD:?}")),
    }
}

/// A running `docker-registry`, killed on drop.
pub struct RegistryServer {
    pub port: u16,
    child: Child,
    pub dir: tempfile::TempDir,
}

/// How the registry is set up.
#[derive(Default)]
pub struct RegistryConfig {
    /// htpasswd basic auth with this user and password.
    pub basic: Option<(String, String)>,
    /// TLS with this certificate and key (PEM files).
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl RegistryServer {
    pub fn start(config: RegistryConfig) -> RegistryServer {
        let dir = tempfile::tempdir().expect("registry dir");
        let mut yaml = format!(
            "version: 0.1\nlog:\n  level: info\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n",
            dir.path().join("data").display()
        );
        if let Some((cert, key)) = &config.tls {
            yaml.push_str(&format!(
                "  tls:\n    certificate: {}\n    key: {}\n",
                cert.display(),
                key.display()
            ));
        }
        if let Some((user, pass)) = &config.basic {
            let hash = bcrypt::hash(pass, 5).expect("bcrypt");
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, format!("{user}:{hash}\n")).expect("htpasswd");
            yaml.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: tare-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, yaml).expect("registry config");
        let log = dir.path().join("registry.log");
        let mut child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("registry.out")).expect("log"))
            .stderr(Stdio::piped())
            .spawn()
            .expect("run docker-registry (apt-get install docker-registry)");
        let stderr = child.stderr.take().expect("the registry's stderr");
        let port = match listening_port(stderr, &log) {
            Ok(port) => port,
            Err(why) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "docker-registry did not start: {why}:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
        };
        RegistryServer { port, child, dir }
    }

    pub fn open() -> RegistryServer {
        RegistryServer::start(RegistryConfig::default())
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for RegistryServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A CA and a server certificate for 127.0.0.1 signed by it (made with the openssl CLI).
pub struct TestCerts {
    pub dir: tempfile::TempDir,
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

pub fn make_certs() -> TestCerts {
    let dir = tempfile::tempdir().expect("cert dir");
    let p = |n: &str| dir.path().join(n);
    let run = |args: &[&str]| {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir.path())
            .output()
            .expect("run openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut args = vec!["req", "-x509"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "2",
        "-subj",
        "/CN=tare test CA",
    ]);
    run(&args);
    let mut args = vec!["req"];
    args.extend(ec);
    args.extend([
        "-keyout",
        "srv.key",
        "-out",
        "srv.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    run(&args);
    std::fs::write(
        p("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext");
    run(&[
        "x509",
        "-req",
        "-in",
        "srv.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "srv.crt",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    TestCerts {
        ca: p("ca.crt"),
        cert: p("srv.crt"),
        key: p("srv.key"),
        dir,
    }
}

/// Faults the proxy injects, and what it saw.
#[derive(Default)]
pub struct ProxyState {
    /// Answer the next N blob downloads with 500.
    pub blob_500: AtomicUsize,
    /// Cut the first download of every blob after half its body.
    pub blob_drop_once: AtomicBool,
    /// Blobs already cut.
    cut: Mutex<Vec<String>>,
    /// Flip a byte in every blob download.
    pub blob_corrupt: AtomicBool,
    /// Send blob downloads at about this many KiB a second (0: at once), so that a
    /// transfer lasts long enough to be watched.
    pub blob_kib_per_sec: AtomicUsize,
    /// Read request bodies (uploads) at this many KiB a second; 0 for full speed.
    pub upload_kib_per_sec: AtomicUsize,
    /// Flip a byte in every manifest download.
    pub manifest_corrupt: AtomicBool,
    /// Answer the next N chunk uploads (`PATCH`) with 500 without forwarding them.
    pub patch_500: AtomicUsize,
    /// Requests seen: `METHOD path?query [range]`.
    pub log: Mutex<Vec<String>>,
    /// Query strings the token endpoint was asked with.
    pub token_requests: Mutex<Vec<String>>,
    /// Requests that carried an `Authorization` header: `METHOD path?query`.
    pub authorized: Mutex<Vec<String>>,
    /// Rewrite the `Location` of upload answers (202) to this `scheme://host:port`, as a
    /// registry with a separate upload host does.
    pub upload_location: Mutex<Option<String>>,
    /// Answer blob downloads with `307` to this `scheme://host:port` + the same path, as a
    /// registry that serves blobs from a storage host does.
    pub blob_redirect: Mutex<Option<String>>,
    /// Answer every request with 401 and a basic challenge, after reading all of it: a host
    /// that wants credentials.
    pub refuse_401: AtomicBool,
    /// Forward cross-repository mounts (`POST ...?mount=D&from=R`) without their query, so
    /// the registry answers 202 and an upload location, as distribution does when it
    /// cannot mount.
    pub refuse_mount: AtomicBool,
}

/// A bearer-token gate: `/v2/` needs `Bearer TOKEN`, which `/token` hands out (to `user` only,
/// when set).
pub struct Bearer {
    pub token: String,
    pub user: Option<(String, String)>,
    /// An OAuth2 refresh token the token endpoint also accepts (POST, refresh grant).
    pub refresh: Option<String>,
}

/// An HTTP proxy in front of a registry: one request per connection.
pub struct Proxy {
    pub port: u16,
    addr: std::net::SocketAddr,
    pub state: Arc<ProxyState>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    pub fn start(upstream: u16, bearer: Option<Bearer>) -> Proxy {
        Proxy::start_on("127.0.0.1", upstream, bearer)
    }

    /// A proxy listening on `ip` (a loopback address such as 127.0.0.2).
    pub fn start_on(ip: &str, upstream: u16, bearer: Option<Bearer>) -> Proxy {
        let listener = TcpListener::bind((ip, 0)).expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let port = addr.port();
        let state = Arc::new(ProxyState::default());
        let stop = Arc::new(AtomicBool::new(false));
        let bearer = Arc::new(bearer);
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(conn) = conn else { continue };
                    let (state, bearer) = (state.clone(), bearer.clone());
                    std::thread::spawn(move || {
                        let _ = handle(conn, upstream, port, &state, &bearer);
                    });
                }
            })
        };
        Proxy {
            port,
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().expect("log").clone()
    }

    /// The requests that carried an `Authorization` header.
    pub fn authorized(&self) -> Vec<String> {
        self.state.authorized.lock().expect("authorized").clone()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn respond(conn: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n",
        body.len()
    );
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = conn.write_all(head.as_bytes());
    let _ = conn.write_all(body);
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn handle(
    mut conn: TcpStream,
    upstream: u16,
    own_port: u16,
    state: &ProxyState,
    bearer: &Option<Bearer>,
) -> std::io::Result<()> {
    conn.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 << 10];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 << 10 {
            return Ok(());
        }
        let n = conn.read(&mut chunk)?;
        // A TLS handshake (a client trying HTTPS first): hang up, as a plain server would fail it.
        if n == 0 || (buf.is_empty() && chunk[0] == 0x16) {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let length: usize = header("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    let upload_rate = state.upload_kib_per_sec.load(Ordering::SeqCst);
    while body.len() < length {
        let n = conn.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
        if upload_rate > 0 {
            // Throttled: each read waits as long as its bytes take at the rate.
            let micros = n as u64 * 1_000_000 / (upload_rate as u64 * 1024);
            std::thread::sleep(std::time::Duration::from_micros(micros));
        }
    }
    let range = header("range")
        .map(|r| format!(" [{r}]"))
        .unwrap_or_default();
    state
        .log
        .lock()
        .expect("log")
        .push(format!("{method} {target}{range}"));
    if header("authorization").is_some() {
        state
            .authorized
            .lock()
            .expect("authorized")
            .push(format!("{method} {target}"));
    }
    if state.refuse_401.load(Ordering::SeqCst) {
        respond(
            &mut conn,
            "401 Unauthorized",
            &[("WWW-Authenticate", "Basic realm=\"tare-test\"".into())],
            b"",
        );
        return Ok(());
    }

    if let Some(b) = bearer {
        if target.starts_with("/token") {
            state.token_requests.lock().expect("token log").push(
                target
                    .split_once('?')
                    .map(|x| x.1)
                    .unwrap_or("")
                    .to_string(),
            );
            // The OAuth2 refresh grant (identity tokens): the form in the body.
            let form = String::from_utf8_lossy(&body).to_string();
            if method == "POST" {
                state
                    .token_requests
                    .lock()
                    .expect("token log")
                    .push(form.clone());
            }
            let refresh_ok = method == "POST"
                && b.refresh.as_deref().is_some_and(|r| {
                    form.split('&').any(|kv| kv == format!("refresh_token={r}"))
                        && form.contains("grant_type=refresh_token")
                });
            let allowed = refresh_ok
                || match &b.user {
                    None => method == "GET",
                    Some((u, p)) => {
                        let want = format!(
                            "Basic {}",
                            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
                        );
                        header("authorization").as_deref() == Some(want.as_str())
                    }
                };
            if allowed {
                let json = format!(
                    "{{\"token\":\"{0}\",\"access_token\":\"{0}\",\"expires_in\":300}}",
                    b.token
                );
                respond(
                    &mut conn,
                    "200 OK",
                    &[("Content-Type", "application/json".into())],
                    json.as_bytes(),
                );
            } else {
                respond(
                    &mut conn,
                    "401 Unauthorized",
                    &[],
                    b"{\"details\":\"bad credentials\"}",
                );
            }
            return Ok(());
        }
        if header("authorization").as_deref() != Some(format!("Bearer {}", b.token).as_str()) {
            let challenge =
                format!("Bearer realm=\"http://127.0.0.1:{own_port}/token\",service=\"tare-test\"");
            respond(
                &mut conn,
                "401 Unauthorized",
                &[
                    ("WWW-Authenticate", challenge),
                    ("Content-Type", "application/json".into()),
                    ("Docker-Distribution-Api-Version", "registry/2.0".into()),
                ],
                br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
            );
            return Ok(());
        }
    }

    let is_blob_get =
        method == "GET" && target.contains("/blobs/sha256:") && !target.contains("/uploads/");
    if is_blob_get && take_one(&state.blob_500) {
        respond(&mut conn, "500 Internal Server Error", &[], b"injected");
        return Ok(());
    }
    if let Some(base) = state.blob_redirect.lock().expect("redirect").clone() {
        if is_blob_get {
            respond(
                &mut conn,
                "307 Temporary Redirect",
                &[("Location", format!("{base}{target}"))],
                b"",
            );
            return Ok(());
        }
    }
    if method == "PATCH" && take_one(&state.patch_500) {
        respond(&mut conn, "500 Internal Server Error", &[], b"injected");
        return Ok(());
    }

    // Forward, one request per upstream connection.
    let mut up = TcpStream::connect(("127.0.0.1", upstream))?;
    let request_line = if state.refuse_mount.load(Ordering::SeqCst)
        && method == "POST"
        && target.contains("mount=")
    {
        let path = target.split_once('?').map_or(target.as_str(), |(p, _)| p);
        request_line.replacen(&target, path, 1)
    } else {
        request_line
    };
    let mut out = format!("{request_line}\r\n");
    for (k, v) in &headers {
        if k == "connection" || (bearer.is_some() && k == "authorization") {
            continue;
        }
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("connection: close\r\n\r\n");
    up.write_all(out.as_bytes())?;
    up.write_all(&body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let Some(resp_head) = find(&resp, b"\r\n\r\n").map(|i| i + 4) else {
        return Ok(());
    };
    if resp.starts_with(b"HTTP/1.1 202") {
        if let Some(base) = state.upload_location.lock().expect("location").clone() {
            resp = rewrite_location(&resp[..resp_head], &base, &resp[resp_head..]);
        }
    }
    let Some(resp_head) = find(&resp, b"\r\n\r\n").map(|i| i + 4) else {
        return Ok(());
    };
    let ok = resp.starts_with(b"HTTP/1.1 200") || resp.starts_with(b"HTTP/1.1 206");
    let is_manifest_get = method == "GET" && target.contains("/manifests/");
    if is_manifest_get
        && ok
        && resp.len() > resp_head
        && state.manifest_corrupt.load(Ordering::SeqCst)
    {
        // Inside the JSON text: a changed letter keeps the framing intact.
        let mid = resp_head + (resp.len() - resp_head) / 2;
        resp[mid] = if resp[mid] == b'a' { b'b' } else { b'a' };
    }
    if is_blob_get && ok && resp.len() > resp_head {
        if state.blob_corrupt.load(Ordering::SeqCst) {
            let mid = resp_head + (resp.len() - resp_head) / 2;
            resp[mid] ^= 0xff;
        }
        let first_cut = state.blob_drop_once.load(Ordering::SeqCst) && {
            let mut cut = state.cut.lock().expect("cut list");
            let fresh = !cut.contains(&target);
            if fresh {
                cut.push(target.clone());
            }
            fresh
        };
        if first_cut {
            let cut = resp_head + (resp.len() - resp_head) / 2;
            conn.write_all(&resp[..cut])?;
            conn.flush()?;
            let _ = conn.shutdown(Shutdown::Both);
            return Ok(());
        }
        let rate = state.blob_kib_per_sec.load(Ordering::SeqCst);
        if rate > 0 {
            // Ten chunks a second.
            let chunk = (rate * 1024 / 10).max(1);
            conn.write_all(&resp[..resp_head])?;
            for part in resp[resp_head..].chunks(chunk) {
                conn.write_all(part)?;
                conn.flush()?;
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            let _ = conn.shutdown(Shutdown::Write);
            return Ok(());
        }
    }
    conn.write_all(&resp)?;
    let _ = conn.shutdown(Shutdown::Write);
    Ok(())
}

/// The response with its `Location` header's `scheme://host:port` replaced by `base`.
fn rewrite_location(head: &[u8], base: &str, body: &[u8]) -> Vec<u8> {
    let head = String::from_utf8_lossy(head);
    let mut out = String::new();
    for line in head.split_inclusive("\r\n") {
        match line.split_once(':') {
            Some((name, value)) if name.eq_ignore_ascii_case("location") => {
                let value = value.trim();
                // Absolute (`http://host:port/path`) or relative (`/path`).
                let path = match value.split_once("://") {
                    Some((_, rest)) => rest.find('/').map_or("/", |i| &rest[i..]),
                    None => value,
                };
                out.push_str(&format!("Location: {base}{path}\r\n"));
            }
            _ => out.push_str(line),
        }
    }
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

fn take_one(counter: &AtomicUsize) -> bool {
    counter
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}
