//! Attacks on the sandbox: device nodes (made with mknod, or brought by the image), the kernel
//! keyring, seccomp, host abstract sockets and the network namespace, hostile /etc/passwd
//! files read on the host side, and the mount-point stub cleanup.
//!
//! The container side of most attacks is `probe`, a small static C program compiled for the
//! test (busybox cannot call keyctl or connect to an abstract socket) and put in the image.

use std::io::{Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::util::{self, TestContext};

const PROBE_C: &str = r#"
#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>

#define KEYCTL_READ 11
#define KEYCTL_SEARCH 10
#define KEYCTL_UNLINK 9
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_USER_KEYRING -4

static int fail(const char *what) {
    printf("%s: %s\n", what, strerror(errno));
    return 1;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    const char *cmd = argv[1];
    if (!strcmp(cmd, "open") && argc == 3) {
        /* Opens a file read-write (read-only if that is refused for another reason). */
        int fd = open(argv[2], O_RDWR);
        if (fd < 0 && errno != EACCES && errno != EPERM) fd = open(argv[2], O_RDONLY);
        if (fd < 0) return fail("open");
        printf("opened %s\n", argv[2]);
        return 0;
    }
    if (!strcmp(cmd, "write") && argc == 4) {
        int fd = open(argv[2], O_WRONLY);
        if (fd < 0) return fail("open");
        if (write(fd, argv[3], strlen(argv[3])) < 0) return fail("write");
        fsync(fd);
        printf("wrote %s\n", argv[2]);
        return 0;
    }
    if (!strcmp(cmd, "add-key") && argc == 4) {
        long id = syscall(SYS_add_key, "user", argv[2], argv[3], strlen(argv[3]),
                          KEY_SPEC_USER_KEYRING);
        if (id < 0) return fail("add_key");
        printf("%ld\n", id);
        return 0;
    }
    if (!strcmp(cmd, "unlink-key") && argc == 3) {
        if (syscall(SYS_keyctl, KEYCTL_UNLINK, atol(argv[2]), KEY_SPEC_USER_KEYRING) < 0)
            return fail("keyctl unlink");
        return 0;
    }
    if (!strcmp(cmd, "read-key") && argc == 4) {
        /* read-key user|session DESC: search that keyring for the key and print it. */
        long ring = !strcmp(argv[2], "user") ? KEY_SPEC_USER_KEYRING : KEY_SPEC_SESSION_KEYRING;
        long id = syscall(SYS_keyctl, KEYCTL_SEARCH, ring, "user", argv[3], 0);
        if (id < 0) return fail("keyctl search");
        char buf[256];
        long n = syscall(SYS_keyctl, KEYCTL_READ, id, buf, sizeof buf - 1);
        if (n < 0) return fail("keyctl read");
        buf[n < (long)sizeof buf - 1 ? n : (long)sizeof buf - 1] = 0;
        printf("key: %s\n", buf);
        return 0;
    }
    if (!strcmp(cmd, "unshare-user") && argc == 2) {
        if (unshare(CLONE_NEWUSER) < 0) return fail("unshare");
        printf("unshared\n");
        return 0;
    }
    if (!strcmp(cmd, "abstract") && argc == 3) {
        int s = socket(AF_UNIX, SOCK_STREAM, 0);
        struct sockaddr_un a;
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        size_t n = strlen(argv[2]);
        memcpy(a.sun_path + 1, argv[2], n);
        if (connect(s, (struct sockaddr *)&a, offsetof(struct sockaddr_un, sun_path) + 1 + n) < 0)
            return fail("connect");
        char buf[64] = {0};
        read(s, buf, sizeof buf - 1);
        printf("connected: %s\n", buf);
        return 0;
    }
    if (!strcmp(cmd, "tcp-gateway") && argc == 3) {
        /* Connects to the default gateway (from /proc/net/route) on the given port. */
        FILE *f = fopen("/proc/net/route", "r");
        if (!f) return fail("route");
        char line[256];
        unsigned dest, gw = 0;
        char ifname[64];
        while (fgets(line, sizeof line, f))
            if (sscanf(line, "%63s %x %x", ifname, &dest, &gw) == 3 && dest == 0 && gw) break;
        if (!gw) { printf("no default route\n"); return 1; }
        int s = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a;
        memset(&a, 0, sizeof a);
        a.sin_family = AF_INET;
        a.sin_port = htons(atoi(argv[2]));
        a.sin_addr.s_addr = gw;
        if (connect(s, (struct sockaddr *)&a, sizeof a) < 0) return fail("connect");
        char buf[64] = {0};
        read(s, buf, sizeof buf - 1);
        printf("connected: %s\n", buf);
        return 0;
    }
    return 2;
}
"#;

/// The probe binary, compiled once per test process.
fn probe() -> &'static Path {
    static PROBE: OnceLock<PathBuf> = OnceLock::new();
    PROBE.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("tare-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let src = dir.join("probe.c");
        std::fs::write(&src, PROBE_C).unwrap();
        let bin = dir.join("probe");
        let out = Command::new("cc")
            .args(["-static", "-O1", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("cc (the C compiler Rust links with)");
        assert!(
            out.status.success(),
            "compiling the probe: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        bin
    })
}

/// A busybox image with /bin/probe, plus `extra` to add files to the root before it is
/// packed (device nodes, a hostile /etc/passwd...).
fn image(ctx: &TestContext, name: &str, extra: impl FnOnce(&Path)) {
    let root = ctx.path().join(format!("rootfs-{name}"));
    util::busybox_rootfs(&root);
    std::fs::copy(probe(), root.join("bin/probe")).unwrap();
    extra(&root);
    ctx.import_dir(&root, name);
}

fn output(ctx: &TestContext, args: &[&str]) -> (i32, String) {
    let out = ctx.run(args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// Builds `dockerfile` (FROM probe-image) and returns tare's exit code and output.
fn build(ctx: &TestContext, dockerfile: &str) -> (i32, String) {
    let dir = ctx.path().join("context");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), dockerfile).unwrap();
    output(
        ctx,
        &[
            "build",
            "--progress",
            "plain",
            "--no-cache",
            dir.to_str().unwrap(),
        ],
    )
}

/// A loop device backed by a canary file: writing through the device changes the file.
struct LoopCanary {
    file: PathBuf,
    device: String,
    _dir: tempfile::TempDir,
}

const CANARY: &[u8] = b"canary: the host's disk";

impl LoopCanary {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("disk.img");
        let mut content = CANARY.to_vec();
        content.resize(1 << 20, 0);
        std::fs::write(&file, content).unwrap();
        let out = Command::new("losetup")
            .args(["--find", "--show"])
            .arg(&file)
            .output()
            .expect("losetup");
        assert!(out.status.success(), "losetup: {:?}", out);
        let device = String::from_utf8(out.stdout).unwrap().trim().to_string();
        LoopCanary {
            file,
            device,
            _dir: dir,
        }
    }

    /// `major minor` of the loop device.
    fn numbers(&self) -> (u32, u32) {
        use std::os::unix::fs::MetadataExt;
        let rdev = std::fs::metadata(&self.device).unwrap().rdev();
        (libc_major(rdev), libc_minor(rdev))
    }

    fn assert_untouched(&self) {
        let _ = Command::new("blockdev")
            .args(["--flushbufs", &self.device])
            .status();
        let mut head = vec![0u8; CANARY.len()];
        std::fs::File::open(&self.file)
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        assert_eq!(
            head, CANARY,
            "the container wrote to the host's block device"
        );
    }
}

impl Drop for LoopCanary {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.device]).status();
    }
}

fn libc_major(rdev: u64) -> u32 {
    (((rdev >> 32) & 0xffff_f000) | ((rdev >> 8) & 0xfff)) as u32
}

fn libc_minor(rdev: u64) -> u32 {
    (((rdev >> 12) & 0xffff_ff00) | (rdev & 0xff)) as u32
}

#[test]
fn mknod_of_a_block_device_in_run_cannot_reach_the_host_disk() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let disk = LoopCanary::new();
    let (major, minor) = disk.numbers();
    // mknod itself works (as in Docker, so images can ship device nodes), and so do FIFOs;
    // opening the node does not.
    let (code, out) = build(
        &ctx,
        &format!(
            "FROM probe\nRUN mknod /tmp/fifo p && mknod /tmp/disk b {major} {minor} && \
             probe write /tmp/disk pwned\n"
        ),
    );
    assert_ne!(code, 0, "the RUN step opened the host's disk:\n{out}");
    assert!(out.contains("open: Permission denied"), "{out}");
    disk.assert_untouched();
}

#[test]
fn mknod_in_tare_run_and_on_a_volume_cannot_reach_the_host_disk() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let disk = LoopCanary::new();
    let (major, minor) = disk.numbers();
    let volume = ctx.path().join("volume");
    std::fs::create_dir_all(&volume).unwrap();
    for dir in ["/tmp", "/dev", "/vol"] {
        let script = format!("mknod {dir}/disk b {major} {minor} && probe write {dir}/disk pwned");
        let mount = format!("{}:/vol", volume.display());
        let (code, out) = output(
            &ctx,
            &["run", "--rm", "-v", &mount, "probe", "sh", "-c", &script],
        );
        assert_ne!(
            code, 0,
            "a node made in {dir} opened the host's disk:\n{out}"
        );
        assert!(out.contains("open: Permission denied"), "{dir}: {out}");
    }
    disk.assert_untouched();
    // The default devices still work.
    let out = ctx.ok(&[
        "run",
        "--rm",
        "probe",
        "sh",
        "-c",
        "echo x > /dev/null && head -c 4 /dev/zero | wc -c && head -c 4 /dev/urandom | wc -c",
    ]);
    assert_eq!(out, "4\n4\n");
}

#[test]
fn an_image_supplied_device_node_is_useless_even_as_nobody() {
    let ctx = TestContext::new();
    let disk = LoopCanary::new();
    let (major, minor) = disk.numbers();
    image(&ctx, "probe", |root| {
        let node = root.join("disk");
        let status = Command::new("mknod")
            .arg(&node)
            .args(["b", &major.to_string(), &minor.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let status = Command::new("chmod")
            .arg("0666")
            .arg(&node)
            .status()
            .unwrap();
        assert!(status.success());
    });
    // A read-only root is remounted: the remount must keep nodev.
    for extra in [
        &["--user", "nobody"][..],
        &["--user", "root"],
        &["--read-only"],
    ] {
        let mut args = vec!["run", "--rm"];
        args.extend(extra);
        args.extend(["probe", "probe", "write", "/disk", "pwned"]);
        let (code, out) = output(&ctx, &args);
        assert_ne!(code, 0, "{extra:?} opened the image's device node:\n{out}");
        assert!(out.contains("open: Permission denied"), "{out}");
    }
    disk.assert_untouched();
}

/// A key in host root's user keyring, removed when dropped.
struct HostKey {
    id: String,
    desc: String,
}

impl HostKey {
    fn add(secret: &str) -> Self {
        let desc = format!("tare-canary-{}", std::process::id());
        let out = Command::new(probe())
            .args(["add-key", &desc, secret])
            .output()
            .unwrap();
        assert!(out.status.success(), "add_key on the host: {out:?}");
        HostKey {
            id: String::from_utf8(out.stdout).unwrap().trim().to_string(),
            desc,
        }
    }
}

impl Drop for HostKey {
    fn drop(&mut self) {
        let _ = Command::new(probe())
            .args(["unlink-key", &self.id])
            .status();
    }
}

#[test]
fn a_run_step_cannot_read_the_hosts_keys() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let secret = "host-secret-4711";
    let key = HostKey::add(secret);
    // The host itself can read it (the attack is real).
    let host = Command::new(probe())
        .args(["read-key", "user", &key.desc])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&host.stdout).contains(secret));

    for ring in ["user", "session"] {
        let (code, out) = build(
            &ctx,
            &format!("FROM probe\nRUN probe read-key {ring} {}\n", key.desc),
        );
        assert_ne!(code, 0, "RUN read the host's key through @{ring}:\n{out}");
        assert!(!out.contains(secret), "{out}");
        assert!(
            out.contains("Operation not permitted"),
            "seccomp refuses keyctl: {out}"
        );
    }
    // Without seccomp, the fresh session keyring still does not hold the host's keys.
    let (code, out) = output(
        &ctx,
        &[
            "run",
            "--rm",
            "--security-opt",
            "seccomp=unconfined",
            "probe",
            "probe",
            "read-key",
            "session",
            &key.desc,
        ],
    );
    assert_ne!(code, 0, "{out}");
    assert!(!out.contains(secret), "{out}");
}

#[test]
fn seccomp_refuses_namespaces_and_unconfined_opts_out() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let (code, out) = output(&ctx, &["run", "--rm", "probe", "probe", "unshare-user"]);
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("unshare: Operation not permitted"), "{out}");
    let out = ctx.ok(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "probe",
        "probe",
        "unshare-user",
    ]);
    assert_eq!(out, "unshared\n");
    let out = ctx.ok(&[
        "run",
        "--rm",
        "probe",
        "grep",
        "Seccomp:",
        "/proc/self/status",
    ]);
    assert_eq!(out.split_whitespace().nth(1), Some("2"), "{out}");
    let err = ctx.fails(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=/x.json",
        "probe",
        "true",
    ]);
    assert!(
        err.contains("custom seccomp profiles are not supported"),
        "{err}"
    );
}

#[test]
fn no_new_privileges_is_off_by_default_and_on_with_the_flag() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let field = |args: &[&str]| {
        let out = ctx.ok(args);
        out.split_whitespace().nth(1).map(String::from)
    };
    let base = ["run", "--rm"];
    let cmd = ["probe", "grep", "NoNewPrivs:", "/proc/self/status"];
    let plain: Vec<&str> = base.iter().chain(cmd.iter()).copied().collect();
    assert_eq!(field(&plain).as_deref(), Some("0"));
    let mut nnp: Vec<&str> = base.to_vec();
    nnp.extend(["--security-opt", "no-new-privileges"]);
    nnp.extend(cmd);
    assert_eq!(field(&nnp).as_deref(), Some("1"));
}

/// Listens on a host abstract unix socket and answers "host" to every connection.
fn abstract_listener(name: &str) -> std::os::unix::net::UnixListener {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name).unwrap();
    let listener = std::os::unix::net::UnixListener::bind_addr(&addr).unwrap();
    let clone = listener.try_clone().unwrap();
    std::thread::spawn(move || {
        for mut s in clone.incoming().flatten() {
            let _ = s.write_all(b"host");
        }
    });
    listener
}

#[test]
fn host_abstract_sockets_are_out_of_reach() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let name = format!("tare-canary-{}", std::process::id());
    let _listener = abstract_listener(&name);
    // With the host's network, the socket is there (the attack is real).
    let out = ctx.ok(&[
        "run",
        "--rm",
        "--network",
        "host",
        "probe",
        "probe",
        "abstract",
        &name,
    ]);
    assert_eq!(out, "connected: host\n");
    for network in ["default", "none"] {
        let (code, out) = output(
            &ctx,
            &[
                "run",
                "--rm",
                "--network",
                network,
                "probe",
                "probe",
                "abstract",
                &name,
            ],
        );
        assert_ne!(
            code, 0,
            "--network {network} reached the host socket: {out}"
        );
        assert!(out.contains("connect: Connection refused"), "{out}");
    }
    for flag in ["", "--network=default ", "--network=none "] {
        let (code, out) = build(
            &ctx,
            &format!("FROM probe\nRUN {flag}probe abstract {name}\n"),
        );
        assert_ne!(code, 0, "RUN {flag}reached the host socket: {out}");
        assert!(out.contains("connect: Connection refused"), "{out}");
    }
    // RUN --network=host is the explicit opt-in, with the network.host entitlement.
    let dockerfile = format!("FROM probe\nRUN --network=host probe abstract {name}\n");
    let (code, out) = build(&ctx, &dockerfile);
    assert_ne!(code, 0, "RUN --network=host without --allow: {out}");
    assert!(out.contains("--allow network.host"), "{out}");
    let dir = ctx.path().join("context");
    let (code, out) = output(
        &ctx,
        &[
            "build",
            "--progress",
            "plain",
            "--no-cache",
            "--allow",
            "network.host",
            dir.to_str().unwrap(),
        ],
    );
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("connected: host"), "{out}");
}

/// Two network namespaces made by the test stand for the machine tare runs on ("host") and
/// the network beyond it ("outside"), joined by a veth pair: tests may send traffic only to
/// loopback addresses and to namespaces they made themselves. tare runs in "host".
struct TestNet {
    host: String,
    outside: String,
}

impl TestNet {
    const OUTSIDE_ADDR: &'static str = "10.213.7.2";

    fn new() -> Self {
        let id = std::process::id();
        let net = TestNet {
            host: format!("tare-host-{id}"),
            outside: format!("tare-out-{id}"),
        };
        let (h, o) = (net.host.as_str(), net.outside.as_str());
        let veth_h = format!("th{id}");
        let veth_o = format!("to{id}");
        for args in [
            vec!["netns", "add", h],
            vec!["netns", "add", o],
            vec![
                "link", "add", &veth_h, "netns", h, "type", "veth", "peer", "name", &veth_o,
                "netns", o,
            ],
            vec!["-n", h, "addr", "add", "10.213.7.1/24", "dev", &veth_h],
            vec!["-n", h, "link", "set", &veth_h, "up"],
            vec!["-n", h, "link", "set", "lo", "up"],
            vec![
                "-n",
                h,
                "route",
                "add",
                "default",
                "via",
                Self::OUTSIDE_ADDR,
            ],
            vec!["-n", o, "addr", "add", "10.213.7.2/24", "dev", &veth_o],
            vec!["-n", o, "link", "set", &veth_o, "up"],
            vec!["-n", o, "link", "set", "lo", "up"],
        ] {
            let out = Command::new("ip").args(&args).output().expect("ip");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        net
    }

    /// A one-shot TCP server in namespace `ns` on `addr:port` that answers `word`.
    fn serve(&self, ns: &str, port: u16, word: &str) -> std::process::Child {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, "busybox", "nc", "-l", "-p"])
            .arg(port.to_string())
            .args(["-e", "/bin/echo", word])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("busybox nc");
        std::thread::sleep(Duration::from_millis(300));
        child
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        for ns in [&self.host, &self.outside] {
            let _ = Command::new("ip").args(["netns", "delete", ns]).status();
        }
    }
}

#[test]
fn the_private_network_reaches_the_outside_but_not_the_hosts_loopback() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let net = TestNet::new();
    let port = 7000 + (std::process::id() % 1000) as u16;
    // The same port on the outside's address and on the host's own loopback: the gateway is
    // the outside; pasta must not map it to the host's loopback (its default), which would
    // let a RUN step reach every service the host keeps to itself.
    let mut outside = net.serve(&net.outside, port, "outside");
    let mut host = net.serve(&net.host, port, "host");
    let tare = |args: &[&str]| {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &net.host]);
        cmd.arg(ctx.tare().get_program());
        cmd.args(ctx.tare().get_args());
        cmd.env("NO_COLOR", "1").env_remove("TARE_ROOT");
        let out = cmd
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("spawn tare");
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    };
    let port = port.to_string();
    let seen = tare(&["run", "--rm", "probe", "probe", "tcp-gateway", &port]);
    let _ = outside.kill();
    let _ = host.kill();
    let _ = outside.wait();
    let _ = host.wait();
    assert!(seen.contains("connected: outside"), "{seen}");
    // Its own interfaces, not the host's.
    let inside = ctx.ok(&["run", "--rm", "probe", "ls", "/sys/class/net"]);
    assert!(inside.lines().any(|l| l == "lo"), "{inside}");
}

/// Runs `tare ARGS`, killing it if it has not finished after a minute (a hang is the attack).
fn run_bounded(ctx: &TestContext, args: &[&str]) -> (i32, String) {
    let mut child = ctx
        .tare()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut text = String::new();
            child
                .stdout
                .take()
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut text)
                .unwrap();
            return (status.code().unwrap_or(-1), text);
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tare {args:?} hung on a hostile /etc/passwd");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

const NOT_REGULAR: &str = "invalid image file \"/etc/passwd\": is not a regular file";

/// `tare ARGS` fails (without hanging) and says `needle`.
fn refused(ctx: &TestContext, args: &[&str], needle: &str) {
    let (code, out) = run_bounded(ctx, args);
    assert_ne!(code, 0, "tare {args:?} succeeded:\n{out}");
    assert!(
        out.contains(needle),
        "tare {args:?}: expected {needle:?} in:\n{out}"
    );
}

#[test]
fn a_fifo_passwd_does_not_hang_tare() {
    let ctx = TestContext::new();
    image(&ctx, "fifo", |root| {
        let passwd = root.join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        let status = Command::new("mkfifo").arg(&passwd).status().unwrap();
        assert!(status.success());
        assert!(std::fs::metadata(&passwd).unwrap().file_type().is_fifo());
    });
    for args in [
        &["run", "--rm", "--user", "app", "fifo", "true"][..],
        &["run", "--rm", "fifo", "true"][..],
    ] {
        let (code, out) = run_bounded(&ctx, args);
        assert_ne!(code, 0, "{out}");
        assert!(
            out.contains("invalid image file \"/etc/passwd\": is not a regular file"),
            "{out}"
        );
    }
    let dir = ctx.path().join("context");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Dockerfile"), "FROM fifo\nUSER app\nRUN true\n").unwrap();
    let (code, out) = run_bounded(
        &ctx,
        &["build", "--progress", "plain", dir.to_str().unwrap()],
    );
    assert_ne!(code, 0, "{out}");
    assert!(out.contains("/etc/passwd"), "{out}");
}

#[test]
fn a_device_passwd_is_not_read() {
    let ctx = TestContext::new();
    image(&ctx, "zero", |root| {
        let passwd = root.join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        // /dev/zero: reading it would never end.
        let status = Command::new("mknod")
            .arg(&passwd)
            .args(["c", "1", "5"])
            .status()
            .unwrap();
        assert!(status.success());
    });
    refused(
        &ctx,
        &["run", "--rm", "--user", "app", "zero", "true"],
        NOT_REGULAR,
    );
}

#[test]
fn a_huge_passwd_is_refused() {
    let ctx = TestContext::new();
    image(&ctx, "huge", |root| {
        let f = std::fs::OpenOptions::new()
            .append(true)
            .open(root.join("etc/passwd"))
            .unwrap();
        // Sparse: 5 MiB of zeros after the real entries.
        f.set_len(5 << 20).unwrap();
    });
    refused(
        &ctx,
        &["run", "--rm", "--user", "app", "huge", "true"],
        "invalid image file \"/etc/passwd\": is larger than 4 MiB",
    );
}

#[test]
fn a_passwd_symlink_does_not_read_the_hosts_file() {
    let ctx = TestContext::new();
    let host = tempfile::tempdir().unwrap();
    let host_passwd = host.path().join("passwd");
    std::fs::write(&host_passwd, "evil:x:4242:4242::/:/bin/sh\n").unwrap();
    image(&ctx, "link", |root| {
        let passwd = root.join("etc/passwd");
        std::fs::remove_file(&passwd).unwrap();
        std::os::unix::fs::symlink(&host_passwd, &passwd).unwrap();
    });
    refused(
        &ctx,
        &["run", "--rm", "--user", "evil", "link", "true"],
        "unable to find user evil",
    );
    assert_eq!(
        std::fs::read_to_string(&host_passwd).unwrap(),
        "evil:x:4242:4242::/:/bin/sh\n"
    );
}

#[test]
fn stub_cleanup_does_not_follow_a_container_made_etc_link() {
    let ctx = TestContext::new();
    // No /etc in the image: the run creates it (in the writable layer) to mount
    // /etc/hosts & co. on, and the container can then move it away (a directory of the
    // image could not be renamed: overlayfs refuses without redirect_dir).
    image(&ctx, "noetc", |root| {
        std::fs::remove_dir_all(root.join("etc")).unwrap()
    });
    let host = tempfile::tempdir().unwrap();
    // Empty regular files, exactly what the cleanup removes.
    for name in ["hosts", "hostname", "resolv.conf"] {
        std::fs::write(host.path().join(name), "").unwrap();
    }
    let script = format!("mv /etc /etc.old && ln -s {} /etc", host.path().display());
    ctx.ok(&["run", "--rm", "noetc", "sh", "-c", &script]);
    ctx.ok(&["run", "--name", "kept", "noetc", "sh", "-c", &script]);
    let (code, out) = build(&ctx, &format!("FROM noetc\nRUN {script}\n"));
    assert_eq!(code, 0, "{out}");
    for name in ["hosts", "hostname", "resolv.conf"] {
        assert!(
            host.path().join(name).exists(),
            "the cleanup deleted the host's {name}"
        );
    }
}

#[test]
fn the_runtime_bundles_get_the_same_confinement() {
    let ctx = TestContext::new();
    image(&ctx, "probe", |_| {});
    let key = HostKey::add("host-secret-runtime");
    let disk = LoopCanary::new();
    let (major, minor) = disk.numbers();
    let name = format!("tare-canary-rt-{}", std::process::id());
    let _listener = abstract_listener(&name);
    for runtime in ["runc", "crun"] {
        let attacks = [
            (
                format!("probe read-key user {}", key.desc),
                "keyctl search: Operation not permitted",
            ),
            (
                "probe unshare-user".to_string(),
                "unshare: Operation not permitted",
            ),
            (
                format!("probe abstract {name}"),
                "connect: Connection refused",
            ),
            (
                format!("mknod /tmp/disk b {major} {minor}; probe write /tmp/disk pwned"),
                // runc: the device cgroup; crun: no CAP_MKNOD, so no node at all.
                "open: ",
            ),
        ];
        for (script, expected) in attacks {
            let (code, out) = output(
                &ctx,
                &[
                    "run",
                    "--rm",
                    "--runtime",
                    runtime,
                    "probe",
                    "sh",
                    "-c",
                    &script,
                ],
            );
            assert_ne!(code, 0, "{runtime}: {script}: {out}");
            assert!(out.contains(expected), "{runtime}: {script}: {out}");
            assert!(!out.contains("host-secret"), "{out}");
        }
    }
    disk.assert_untouched();
}
