//! The tracer of `tare slim`: every file a container's processes open or execute, recorded by
//! the kernel with fanotify while the container runs.
//!
//! # How
//!
//! The parent creates a fanotify group (`FAN_CLASS_NOTIF`, non-blocking) before the clone.
//! The child inherits the descriptor and, right after `pivot_root`, while it is still root with
//! every capability and before it mounts /proc, /dev or volumes, marks the filesystem of its
//! new `/` with `FAN_MARK_FILESYSTEM` (the `child` module calls `fanotify::mark_root`). The mark
//! is on the container's own overlay superblock, which no other process uses: every event is
//! the container's, and none comes from /proc, /dev, the /etc bind mounts or volumes. A root
//! that is a bound directory (copy-based snapshots, on the host's filesystem) gets a mark on
//! its mount instead (`FAN_MARK_MOUNT`), which only the container uses. The descriptor is
//! close-on-exec, so the container's command never holds it.
//!
//! Events: `FAN_OPEN | FAN_OPEN_EXEC` on files and directories (`FAN_ONDIR`). `execve` opens
//! the program and the kernel opens the ELF interpreter, both report `FAN_OPEN_EXEC`; the
//! dynamic loader opens every library it maps. `FAN_ACCESS` (one event per `read`) is not
//! asked for: a file is always opened before it is read or mapped, so it would only add load.
//!
//! How an event becomes a path depends on the group (the `fanotify` module): as root, each
//! event carries a descriptor of the opened file, whose `/proc/self/fd` link reads as the path
//! inside the container. In a user namespace (rootless tare) the kernel gives only groups that
//! report file handles, and only inode marks on the container's tree: the child then waits
//! after `pivot_root` while the parent, through `/proc/PID/root`, marks every directory of the
//! tree and maps its handle to its path; each event names a directory handle and a file name
//! in it. The two give the same paths for the files of the image. They differ for directories
//! made during the run (not marked: their files are counted in [`Traced::unresolved`], never
//! recorded) and for directories renamed during it (recorded under their first name); neither
//! holds image files at the start of the run.
//!
//! Stat-only lookups (`access`, `stat`, a failed `open`) are invisible to fanotify: that is
//! why `tare slim` verifies the slim image by running the probes again.
//!
//! Memory is bounded: the kernel's queue is bounded (an overflow is an error, never a silent
//! loss), and the set of distinct paths is capped ([`TraceOptions::max_paths`]), as is the
//! number of directories marked in the handle mode.

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::fanotify::{self, DirMap, Reporting};
use crate::plan::Mode;
use crate::spawn::{execute_with, prepare};
use crate::{Error, RunSpec};

/// The largest HTTP response body kept by an HTTP probe.
const MAX_BODY: u64 = 16 << 20;

/// An HTTP probe: `GET path` on `127.0.0.1:port` inside the container's network namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpProbe {
    /// The TCP port on the container's loopback address.
    pub port: u16,
    /// The request path, starting with `/`.
    pub path: String,
}

/// What an HTTP probe got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpAnswer {
    /// The probe this answers, as it was given.
    pub probe: HttpProbe,
    /// The status line's code and the body, or why there was none.
    pub result: Result<(u16, Vec<u8>), String>,
}

/// How a traced run behaves.
#[derive(Debug, Clone)]
pub struct TraceOptions {
    /// The longest the container may run: then it is killed ([`Traced::stopped`]).
    pub duration: Duration,
    /// HTTP probes, sent in order once the port answers; the container is killed after the
    /// last one (a server does not end by itself). They need [`crate::Network::None`] (a
    /// loopback-only namespace of the run's own).
    pub http: Vec<HttpProbe>,
    /// The most distinct paths recorded before the run is refused.
    pub max_paths: usize,
}

impl Default for TraceOptions {
    fn default() -> Self {
        TraceOptions {
            duration: Duration::from_secs(30),
            http: Vec::new(),
            max_paths: 1_000_000,
        }
    }
}

/// The result of a traced run.
#[derive(Debug, Clone)]
pub struct Traced {
    /// The exit code (128 + signal when killed).
    pub code: i32,
    /// Whether tare ended the container (duration reached, or HTTP probes done).
    pub stopped: bool,
    /// Absolute paths inside the container of every file and directory opened or executed
    /// on its root filesystem.
    pub paths: BTreeSet<String>,
    /// Events of the file-handle mode (a user namespace) whose directory was not in the tree
    /// when the run started (made during the run): their files are not image files. Always 0
    /// with descriptors.
    pub unresolved: u64,
    /// The answers to the [`TraceOptions::http`] probes, one each in their order (none when
    /// the container could not be watched).
    pub http: Vec<HttpAnswer>,
}

/// Runs `spec` like [`crate::run`] while recording the files its processes open. See the
/// module documentation.
pub fn run_traced(spec: RunSpec, options: &TraceOptions) -> Result<Traced, Error> {
    if !options.http.is_empty() && spec.network != crate::Network::None {
        return Err(Error::Trace {
            reason: "HTTP probes need the run's own loopback-only network (Network::None)".into(),
        });
    }
    let (group, reporting) = fanotify::open_group()?;
    let mut prepared = prepare(spec, Mode::Container)?;
    prepared.plan.trace_fd = group.as_raw_fd();
    // Handle mode: the child waits after pivot_root while the parent marks the tree.
    let mut handshake = match reporting {
        Reporting::Descriptors => None,
        Reporting::Handles => {
            let pipe = || {
                rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                    .map_err(|e| Error::sys("creating a pipe", e))
            };
            let (ready_read, ready_write) = pipe()?;
            let (go_read, go_write) = pipe()?;
            prepared.plan.trace_ready = ready_write.as_raw_fd();
            prepared.plan.trace_go = go_read.as_raw_fd();
            let marks = group
                .try_clone()
                .map_err(|e| Error::sys("duplicating the fanotify descriptor", e))?;
            Some(Handshake {
                ready_read,
                ready_write,
                go_read,
                go_write,
                group: marks,
            })
        }
    };
    let netns = match &prepared._none_net {
        Some(fd) => Some(
            fd.try_clone()
                .map_err(|e| Error::sys("duplicating the network namespace", e))?,
        ),
        None => None,
    };

    let done = Arc::new(AtomicBool::new(false));
    let (map_tx, map_rx) = mpsc::channel::<DirMap>();
    let reader = {
        let done = Arc::clone(&done);
        let max = options.max_paths;
        let names = match reporting {
            Reporting::Descriptors => Names::Descriptors,
            Reporting::Handles => Names::Handles(map_rx),
        };
        std::thread::Builder::new()
            .name("tare-trace".into())
            .spawn(move || read_events(group, &done, max, names))
            .map_err(|e| Error::sys("starting the tracer thread", e))?
    };

    let (finished_tx, finished_rx) = mpsc::channel::<()>();
    let watcher: Slot<Watched> = Arc::default();
    let marker: Slot<Result<(), Error>> = Arc::default();
    let deadline = Instant::now() + options.duration;
    let max_dirs = options.max_paths;
    let result = execute_with(prepared, |pid| {
        if let Some(h) = handshake.take() {
            // The child holds its own copies: end of file on `ready` now means it ended.
            let Handshake {
                ready_read,
                ready_write,
                go_read,
                go_write,
                group,
            } = h;
            drop((ready_write, go_read));
            let handle = std::thread::Builder::new()
                .name("tare-trace-marks".into())
                .spawn(move || mark_container(pid, ready_read, go_write, group, max_dirs, map_tx));
            if let Ok(h) = handle {
                *marker.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
            }
        }
        let http = options.http.clone();
        let handle = std::thread::Builder::new()
            .name("tare-trace-watch".into())
            .spawn(move || watch(pid, deadline, netns, http, finished_rx));
        if let Ok(h) = handle {
            *watcher.lock().unwrap_or_else(|e| e.into_inner()) = Some(h);
        }
    });
    let _ = finished_tx.send(());
    let watched = watcher
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .and_then(|h| h.join().ok())
        .unwrap_or_default();
    let marked = marker
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .map(|h| {
            h.join().unwrap_or_else(|_| {
                Err(Error::Trace {
                    reason: "the tracer's marking thread panicked".into(),
                })
            })
        })
        .unwrap_or(Ok(()));
    done.store(true, Ordering::SeqCst);
    let events = reader.join().map_err(|_| Error::Trace {
        reason: "the tracer thread panicked".into(),
    })?;
    // A failed marking made the child fail too ("broken pipe"): the marking's error says why.
    marked?;
    let code = result?;
    let (paths, unresolved) = events?;
    Ok(Traced {
        code,
        stopped: watched.stopped,
        paths,
        unresolved,
        http: watched.http,
    })
}

/// Where the run's callback leaves a thread it started.
type Slot<T> = Arc<Mutex<Option<std::thread::JoinHandle<T>>>>;

/// The pipes of handle mode's wait (see [`Plan::trace_ready`]) and the group to mark on.
struct Handshake {
    ready_read: OwnedFd,
    ready_write: OwnedFd,
    go_read: OwnedFd,
    go_write: OwnedFd,
    group: OwnedFd,
}

/// Handle mode, in the parent: once the child's root is in place, marks every directory of
/// it and hands the map to the reader, then lets the child go on. Returning without writing
/// to `go` (an error) makes the child fail instead of running untraced.
fn mark_container(
    pid: i32,
    ready: OwnedFd,
    go: OwnedFd,
    group: OwnedFd,
    max: usize,
    names: mpsc::Sender<DirMap>,
) -> Result<(), Error> {
    let mut byte = [0u8; 1];
    loop {
        match rustix::io::read(&ready, &mut byte) {
            Ok(1) => break,
            // The child ended before its root was in place; it reports why.
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(Error::sys("waiting for the container's root", e)),
        }
    }
    let root = rustix::fs::openat(
        rustix::fs::CWD,
        format!("/proc/{pid}/root"),
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| Error::sys("opening the container's root", e))?;
    let map = fanotify::mark_tree(group.as_fd(), root, max)?;
    // Nothing of the container has run yet: anything queued is the walk's own opens.
    let mut buf = vec![0u8; 64 * 1024];
    while matches!(rustix::io::read(&group, &mut buf), Ok(n) if n > 0) {}
    names.send(map).map_err(|_| Error::Trace {
        reason: "the tracer thread ended early".into(),
    })?;
    loop {
        match rustix::io::write(&go, b"g") {
            Ok(_) => return Ok(()),
            Err(rustix::io::Errno::INTR) => {}
            // The child is gone (killed): it reports why.
            Err(_) => return Ok(()),
        }
    }
}

/// How the reader turns events into paths.
enum Names {
    /// The `/proc/self/fd` link of each event's descriptor.
    Descriptors,
    /// The directory map, once the marking thread has built it.
    Handles(mpsc::Receiver<DirMap>),
}

/// Reads events until `done` is set and the queue is empty. Returns the paths and the number
/// of handle-mode events that named no known directory.
fn read_events(
    group: OwnedFd,
    done: &AtomicBool,
    max: usize,
    names: Names,
) -> Result<(BTreeSet<String>, u64), Error> {
    let mut paths = BTreeSet::new();
    let mut unresolved = 0u64;
    let dirs = match names {
        Names::Descriptors => None,
        Names::Handles(rx) => loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(map) => break Some(map),
                Err(mpsc::RecvTimeoutError::Timeout) if !done.load(Ordering::SeqCst) => {}
                // No map: the marking failed or the child never got that far.
                Err(_) => return Ok((paths, 0)),
            }
        },
    };
    let mut buf = vec![0u8; 64 * 1024];
    let mut failure = None;
    loop {
        let finishing = done.load(Ordering::SeqCst);
        let n = match rustix::io::read(&group, &mut buf) {
            Ok(n) => n,
            Err(rustix::io::Errno::AGAIN) => {
                if finishing {
                    break;
                }
                let mut fds = [rustix::event::PollFd::new(
                    &group,
                    rustix::event::PollFlags::IN,
                )];
                let timeout = rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                };
                let _ = rustix::event::poll(&mut fds, Some(&timeout));
                continue;
            }
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(Error::sys("reading fanotify events", e)),
        };
        let mut at = 0;
        while at + EVENT_HEADER <= n {
            let event = Event::parse(&buf[at..n]);
            if event.len < EVENT_HEADER || at + event.len > n {
                break;
            }
            let bytes = &buf[at..at + event.len];
            at += event.len;
            if event.mask & libc::FAN_Q_OVERFLOW != 0 {
                failure.get_or_insert_with(|| {
                    "the kernel's event queue overflowed: some opened files were not recorded"
                        .to_string()
                });
            }
            let path = match &dirs {
                Some(dirs) => match dirs.resolve(bytes) {
                    Some(path) => path,
                    None => {
                        unresolved += 1;
                        continue;
                    }
                },
                None => {
                    if event.fd < 0 {
                        continue;
                    }
                    // SAFETY: the kernel installed this descriptor in our table for this
                    // event; no one else knows it, so we own it and close it here.
                    let file = unsafe { OwnedFd::from_raw_fd(event.fd) };
                    let Some(path) = fd_path(&file) else { continue };
                    path
                }
            };
            if paths.len() >= max && !paths.contains(&path) {
                failure.get_or_insert_with(|| {
                    format!("the container opened more than {max} distinct files")
                });
                continue;
            }
            paths.insert(path);
        }
    }
    match failure {
        Some(reason) => Err(Error::Trace { reason }),
        None => Ok((paths, unresolved)),
    }
}

/// `struct fanotify_event_metadata`: event_len u32, vers u8, reserved u8, metadata_len u16,
/// mask u64, fd i32, pid i32.
const EVENT_HEADER: usize = 24;

struct Event {
    len: usize,
    mask: u64,
    fd: i32,
}

impl Event {
    fn parse(b: &[u8]) -> Event {
        let u32_at = |i: usize| u32::from_ne_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let mut mask = [0u8; 8];
        mask.copy_from_slice(&b[8..16]);
        Event {
            len: u32_at(0) as usize,
            mask: u64::from_ne_bytes(mask),
            fd: u32_at(16) as i32,
        }
    }
}

/// The path of an event's file inside the container; `None` for a deleted file.
fn fd_path(file: &OwnedFd) -> Option<String> {
    let link = format!("/proc/self/fd/{}", file.as_fd().as_raw_fd());
    let target = rustix::fs::readlink(link.as_str(), Vec::new()).ok()?;
    let path = target.into_string().ok()?;
    if !path.starts_with('/') || path.ends_with(" (deleted)") {
        return None;
    }
    Some(path)
}

#[derive(Default)]
struct Watched {
    stopped: bool,
    http: Vec<HttpAnswer>,
}

/// Ends the container at the deadline, or after the HTTP probes; returns early when it ends
/// by itself (`finished`).
fn watch(
    pid: i32,
    deadline: Instant,
    netns: Option<OwnedFd>,
    http: Vec<HttpProbe>,
    finished: mpsc::Receiver<()>,
) -> Watched {
    let mut watched = Watched::default();
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return watched;
    };
    // The child is not reaped before the run returns, so the pidfd names it and only it.
    let Ok(pidfd) = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()) else {
        return watched;
    };
    let ended = |wait: Duration| {
        !matches!(
            finished.recv_timeout(wait),
            Err(mpsc::RecvTimeoutError::Timeout)
        )
    };
    if !http.is_empty() {
        let entered = netns.as_ref().is_some_and(|ns| {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .is_ok()
        });
        for probe in http {
            let result = if entered {
                http_get(&probe, deadline, &ended)
            } else {
                Err("cannot enter the container's network namespace".to_string())
            };
            watched.http.push(HttpAnswer { probe, result });
        }
        if !ended(Duration::ZERO) {
            watched.stopped = true;
            let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
        }
        return watched;
    }
    let left = deadline.saturating_duration_since(Instant::now());
    if !ended(left) {
        watched.stopped = true;
        let _ = rustix::process::pidfd_send_signal(&pidfd, rustix::process::Signal::KILL);
    }
    watched
}

/// `GET path HTTP/1.0` on 127.0.0.1:port, retried until the server listens or the deadline.
fn http_get(
    probe: &HttpProbe,
    deadline: Instant,
    ended: &dyn Fn(Duration) -> bool,
) -> Result<(u16, Vec<u8>), String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], probe.port));
    let mut stream = loop {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)) {
            Ok(s) => break s,
            Err(e) => {
                if Instant::now() >= deadline {
                    return Err(format!("port {} never answered: {e}", probe.port));
                }
                if ended(Duration::from_millis(50)) {
                    return Err(format!(
                        "the container ended before port {} answered",
                        probe.port
                    ));
                }
            }
        }
    };
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_secs(1));
    let _ = stream.set_read_timeout(Some(left));
    let _ = stream.set_write_timeout(Some(left));
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: localhost\r\nUser-Agent: tare-slim\r\nConnection: close\r\n\r\n",
        probe.path
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("sending the request: {e}"))?;
    let mut response = Vec::new();
    stream
        .take(MAX_BODY + 64 * 1024)
        .read_to_end(&mut response)
        .map_err(|e| format!("reading the response: {e}"))?;
    parse_response(&response)
}

/// The status code and body of an HTTP/1.x response.
fn parse_response(response: &[u8]) -> Result<(u16, Vec<u8>), String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("the response has no end of headers")?;
    let head = String::from_utf8_lossy(&response[..end]);
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse::<u16>().ok())
        .ok_or_else(|| format!("bad status line {:?}", head.lines().next().unwrap_or("")))?;
    Ok((status, response[end + 4..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_parse_status_and_body() {
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\nServer: x\r\n\r\nhello"),
            Ok((200, b"hello".to_vec()))
        );
        assert!(parse_response(b"garbage").is_err());
        assert!(parse_response(b"HTTP/1.0 abc\r\n\r\n").is_err());
    }

    #[test]
    fn event_headers_parse() {
        let mut b = vec![0u8; 24];
        b[0..4].copy_from_slice(&24u32.to_ne_bytes());
        b[8..16].copy_from_slice(&libc::FAN_OPEN.to_ne_bytes());
        b[16..20].copy_from_slice(&7i32.to_ne_bytes());
        let e = Event::parse(&b);
        assert_eq!((e.len, e.mask, e.fd), (24, libc::FAN_OPEN, 7));
    }
}
