//! The private network ([`crate::Network::Private`]): a network namespace of its own, connected
//! to the outside by `pasta` (package passt), shared by every run of this tare process.
//!
//! A new network namespace makes the host's abstract unix sockets, its interfaces and its
//! loopback services unreachable (abstract sockets belong to a network namespace). pasta
//! copies the host's addresses and routes into the namespace and carries its TCP, UDP and ICMP
//! traffic through ordinary sockets of the host, so `apt-get` works as on the host network.
//!
//! Why one namespace per process and not one per run: starting pasta and letting it configure
//! the namespace costs 60 to 80 ms here, four times a whole RUN step. Steps of one build then
//! share a namespace (as steps of a BuildKit build share its network), each step still gets
//! its own mount, pid, ipc and uts namespaces, and none of them has CAP_NET_ADMIN to change the
//! namespace's interfaces or routes.
//!
//! pasta runs as root (it needs to enter the namespace, which a process without
//! CAP_SYS_ADMIN cannot), keeps only CAP_NET_ADMIN, CAP_NET_BIND_SERVICE and CAP_SYS_ADMIN,
//! and sandboxes itself with its own seccomp filter. It runs in the foreground as a child of a
//! thread that lives as long as tare, with the parent-death signal set, so it ends with tare
//! even when tare is killed. Port forwarding is off in both directions (`-t none -u none
//! -T none -U none`). pasta's "gateway mapping" is off (`--no-map-gw`): by default pasta
//! maps connections to the gateway address onto the host's loopback, which would let a RUN
//! step reach every service the host keeps to itself on 127.0.0.1 (Docker's bridge does not
//! reach them either, and rootless Docker turns slirp4netns's host-loopback off for the same
//! reason). A registry or proxy on the host's loopback needs `--network host`.
//!
//! When the host has no route to the outside, pasta refuses to start; the runs then get the
//! namespace with only its loopback interface up, which is what they could reach anyway.

use std::io::Read;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Error;

/// The address inside the namespace where pasta answers DNS queries with the host's resolver
/// (every container of the private network names it in its resolv.conf: see
/// `etc::private_resolv_conf`).
pub(crate) const DNS_FORWARD: &str = "169.254.1.1";

/// How long pasta may take to configure the namespace.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The shared namespace.
pub(crate) struct PrivateNet {
    /// A descriptor of the namespace (`/proc/thread-self/ns/net` of the thread that made it).
    pub ns: OwnedFd,
}

static NET: Mutex<Option<&'static PrivateNet>> = Mutex::new(None);

/// The process's private network, made on first use.
pub(crate) fn private() -> Result<&'static PrivateNet, Error> {
    let mut slot = NET.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(net) = *slot {
        return Ok(net);
    }
    let net: &'static PrivateNet = Box::leak(Box::new(create()?));
    *slot = Some(net);
    Ok(net)
}

fn create() -> Result<PrivateNet, Error> {
    let pasta = find_pasta().ok_or_else(|| Error::Network {
        reason: "pasta not found: install the passt package, or use --network host".into(),
    })?;
    // A thread enters a new namespace, brings its loopback up and hands out a descriptor of it;
    // it then waits there to watch pasta configure it.
    let (ns_tx, ns_rx) = mpsc::channel::<Result<OwnedFd, Error>>();
    let (go_tx, go_rx) = mpsc::channel::<bool>();
    let (ready_tx, ready_rx) = mpsc::channel::<bool>();
    let exited = Arc::new(AtomicBool::new(false));
    let watched = exited.clone();
    std::thread::Builder::new()
        .name("tare-netns".into())
        .spawn(move || {
            let made = enter_new_namespace();
            let ok = made.is_ok();
            let _ = ns_tx.send(made);
            if !ok || !go_rx.recv().unwrap_or(false) {
                return;
            }
            let _ = ready_tx.send(wait_for_route(&watched));
        })
        .map_err(|e| Error::sys("starting the network thread", e))?;
    let ns = ns_rx.recv().map_err(|_| Error::Network {
        reason: "the network thread ended early".into(),
    })??;

    // pasta's parent is a thread that never ends, so that its parent-death signal only fires
    // when tare itself ends.
    let (spawn_tx, spawn_rx) = mpsc::channel::<Result<(), Error>>();
    let fd = ns.as_raw_fd();
    std::thread::Builder::new()
        .name("tare-pasta".into())
        .spawn(move || keep_pasta(pasta, fd, spawn_tx, exited))
        .map_err(|e| Error::sys("starting the network thread", e))?;
    let spawned = spawn_rx.recv().unwrap_or_else(|_| {
        Err(Error::Network {
            reason: "pasta's thread ended early".into(),
        })
    });
    let _ = go_tx.send(spawned.is_ok());
    spawned?;
    // Not ready (no route to the outside): the runs get the loopback-only namespace.
    let _connected = ready_rx.recv().unwrap_or(false);
    Ok(PrivateNet { ns })
}

fn find_pasta() -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into());
    std::env::split_paths(&path)
        .chain([
            std::path::PathBuf::from("/usr/bin"),
            std::path::PathBuf::from("/usr/sbin"),
        ])
        .map(|d| d.join("pasta"))
        .find(|p| p.is_file())
}

/// Runs pasta for the namespace behind `fd` and waits for it for the rest of the process.
fn keep_pasta(
    pasta: std::path::PathBuf,
    fd: i32,
    spawned: mpsc::Sender<Result<(), Error>>,
    exited: Arc<AtomicBool>,
) {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(&pasta);
    cmd.args([
        "--config-net",
        "--foreground",
        "--quiet",
        "--no-map-gw",
        "--runas",
        "0",
        "-t",
        "none",
        "-u",
        "none",
        "-T",
        "none",
        "-U",
        "none",
        "--dns-forward",
        DNS_FORWARD,
        "--netns",
    ])
    .arg(format!("/proc/self/fd/{fd}"))
    .stdin(Stdio::null())
    .stdout(Stdio::null())
    .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only makes two async-signal-safe system calls
    // (fcntl, prctl) on values copied into it; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            // The namespace descriptor is close-on-exec in tare; pasta opens it by number.
            rustix::io::fcntl_setfd(BorrowedFd::borrow_raw(fd), rustix::io::FdFlags::empty())?;
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))?;
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => {
            let _ = spawned.send(Err(Error::io(&pasta, e)));
            return;
        }
    };
    let _ = spawned.send(Ok(()));
    // pasta's messages go to syslog; stderr only says why it stopped. Drain it so that pasta
    // never blocks on a full pipe.
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = pipe.read_to_string(&mut stderr);
    }
    let _ = child.wait();
    exited.store(true, Ordering::SeqCst);
}

/// A new network namespace of its own with only the loopback interface, up, for
/// [`crate::Network::None`]: what runc gives a container without a network (BuildKit's
/// `--network=none`), so `ip link` inside shows `lo` as UP. Made in a short-lived thread, so
/// tare's own threads stay in the host's namespace; the descriptor keeps it alive.
pub(crate) fn loopback_only() -> Result<OwnedFd, Error> {
    std::thread::Builder::new()
        .name("tare-netns-none".into())
        .spawn(enter_new_namespace)
        .map_err(|e| Error::sys("starting the network thread", e))?
        .join()
        .map_err(|_| Error::Network {
            reason: "the network thread panicked".into(),
        })?
}

/// Enters a new network namespace (this thread only) and brings its loopback interface up.
fn enter_new_namespace() -> Result<OwnedFd, Error> {
    // SAFETY: CLONE_NEWNET changes only this thread's network namespace; no descriptor table
    // or memory is unshared.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWNET) }
        .map_err(|e| Error::sys("creating a network namespace", e))?;
    loopback_up()?;
    rustix::fs::open(
        "/proc/thread-self/ns/net",
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::io("/proc/thread-self/ns/net", e.into()))
}

/// `ip link set lo up` in this thread's namespace.
fn loopback_up() -> Result<(), Error> {
    let sock = rustix::net::socket(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        None,
    )
    .map_err(|e| Error::sys("bringing up the loopback interface", e))?;
    // SAFETY: ifreq is plain data; it is zeroed, its name filled with "lo" (NUL-terminated by
    // the zeroing) and passed to SIOCGIFFLAGS/SIOCSIFFLAGS, which read and write only it.
    let rc = unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        for (i, b) in b"lo".iter().enumerate() {
            req.ifr_name[i] = *b as libc::c_char;
        }
        let fd = sock.as_raw_fd();
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) < 0 {
            -1
        } else {
            req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS, &req)
        }
    };
    if rc < 0 {
        return Err(Error::sys(
            "bringing up the loopback interface",
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Waits (in the namespace's thread) until pasta has given it a default route. False when
/// pasta gave up (a host without a route to the outside) or took too long.
fn wait_for_route(pasta_exited: &AtomicBool) -> bool {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT && !pasta_exited.load(Ordering::SeqCst) {
        if has_default_route() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

fn has_default_route() -> bool {
    let v4 = std::fs::read_to_string("/proc/thread-self/net/route").unwrap_or_default();
    // Iface Destination Gateway ...: a default route has destination 00000000.
    let v4 = v4
        .lines()
        .skip(1)
        .any(|l| l.split_whitespace().nth(1) == Some("00000000"));
    let v6 = std::fs::read_to_string("/proc/thread-self/net/ipv6_route").unwrap_or_default();
    let v6 = v6.lines().any(|l| {
        let f: Vec<&str> = l.split_whitespace().collect();
        f.len() >= 10 && f[0] == "00000000000000000000000000000000" && f[1] == "00" && f[9] != "lo"
    });
    v4 || v6
}
