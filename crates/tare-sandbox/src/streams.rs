//! The child's standard streams, and the terminal relay that stands for them with `-t`.

use std::os::fd::{AsFd, OwnedFd};

use crate::plan::TtyPlan;
use crate::{tty, Error, Stdio};

pub(crate) struct TtyParent {
    socket: OwnedFd,
    input: Option<OwnedFd>,
    output: Option<OwnedFd>,
    /// The input is tare's own stdin: put it in raw mode when it is a terminal.
    raw_stdin: bool,
}

/// The child's standard streams, or the terminal relay that stands for them.
pub(crate) struct Streams {
    pub stdio: [Option<OwnedFd>; 3],
    pub null_stdio: [bool; 3],
    pub tty_plan: Option<TtyPlan>,
    pub tty_parent: Option<TtyParent>,
}

impl Streams {
    /// With `tty`, the child opens a terminal and sends its master side through a socket pair
    /// to the parent, which relays it to `stdin` and `stdout`. Otherwise each stream is
    /// duplicated for the child; `/dev/null` is opened by the child itself when `in_container`
    /// (the container's own node).
    pub fn new(tty: bool, in_container: bool, streams: [Stdio; 3]) -> Result<Streams, Error> {
        let mut out = Streams {
            stdio: [None, None, None],
            null_stdio: [false; 3],
            tty_plan: None,
            tty_parent: None,
        };
        let [stdin, stdout, stderr] = streams;
        if tty {
            let (ours, theirs) = rustix::net::socketpair(
                rustix::net::AddressFamily::UNIX,
                rustix::net::SocketType::SEQPACKET,
                rustix::net::SocketFlags::CLOEXEC,
                None,
            )
            .map_err(|e| Error::sys("creating a socket pair", e))?;
            out.tty_plan = Some(TtyPlan {
                socket: theirs,
                winsize: tty::initial_winsize(),
            });
            out.tty_parent = Some(TtyParent {
                socket: ours,
                raw_stdin: matches!(stdin, Stdio::Inherit),
                input: stream_for_relay(stdin, 0)?,
                output: stream_for_relay(stdout, 1)?,
            });
            return Ok(out);
        }
        for (i, s) in [stdin, stdout, stderr].into_iter().enumerate() {
            if in_container && matches!(s, Stdio::Null) {
                out.null_stdio[i] = true;
            } else {
                out.stdio[i] = child_stream(s)?;
            }
        }
        Ok(out)
    }
}

pub(crate) fn relay_terminal(t: &TtyParent) -> Result<(), Error> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    rustix::net::recvmsg(
        &t.socket,
        &mut [std::io::IoSliceMut::new(&mut byte)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )
    .map_err(|e| Error::sys("receiving the terminal", e))?;
    let mut master = None;
    for msg in control.drain() {
        if let RecvAncillaryMessage::ScmRights(fds) = msg {
            master = fds.into_iter().next();
        }
    }
    let Some(master) = master else {
        return Err(Error::sys(
            "receiving the terminal",
            std::io::Error::from(std::io::ErrorKind::UnexpectedEof),
        ));
    };
    let raw = if t.raw_stdin {
        tty::RawMode::enable(rustix::stdio::stdin())
    } else {
        None
    };
    let result = tty::relay(
        &master,
        t.input.as_ref().map(|f| f.as_fd()),
        t.output.as_ref().map(|f| f.as_fd()),
    );
    drop(raw);
    result.map_err(|e| Error::sys("relaying the terminal", e))
}

/// A descriptor for the child's stream `s`, duplicated above 2 (None: inherit).
fn child_stream(s: Stdio) -> Result<Option<OwnedFd>, Error> {
    let fd = match s {
        Stdio::Inherit => return Ok(None),
        Stdio::Null => rustix::fs::open(
            "/dev/null",
            rustix::fs::OFlags::RDWR | rustix::fs::OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
        .map_err(|e| Error::io("/dev/null", e.into()))?,
        Stdio::Fd(fd) => fd,
    };
    let dup = rustix::io::fcntl_dupfd_cloexec(&fd, 3).map_err(|e| Error::sys("dup", e))?;
    Ok(Some(dup))
}

/// The parent's end of a terminal relay for stream `s` (`own` is tare's 0 or 1 for Inherit).
fn stream_for_relay(s: Stdio, own: i32) -> Result<Option<OwnedFd>, Error> {
    match s {
        Stdio::Null => Ok(None),
        Stdio::Fd(fd) => Ok(Some(fd)),
        Stdio::Inherit => {
            // SAFETY: tare's stdin and stdout stay open for the life of the process; only a
            // duplicate is owned.
            let borrowed = unsafe { std::os::fd::BorrowedFd::borrow_raw(own) };
            rustix::io::fcntl_dupfd_cloexec(borrowed, 3)
                .map(Some)
                .map_err(|e| Error::sys("dup", e))
        }
    }
}
