//! The parent's side of `-t`: the host terminal in raw mode, bytes relayed between it and the
//! container's pseudo-terminal, window size changes passed on.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::event::{poll, PollFd, PollFlags};
use rustix::io::Errno;
use rustix::termios::{self, OptionalActions, Termios, Winsize};

use crate::signals::Forwarding;

/// The window size to start with: the host terminal's, or 24x80.
pub(crate) fn initial_winsize() -> Winsize {
    for fd in [rustix::stdio::stdout(), rustix::stdio::stdin()] {
        if let Ok(ws) = termios::tcgetwinsize(fd) {
            if ws.ws_row > 0 {
                return ws;
            }
        }
    }
    Winsize {
        ws_row: 24,
        ws_col: 80,
        ws_xpixel: 0,
        ws_ypixel: 0,
    }
}

/// Puts a terminal in raw mode and restores it when dropped.
pub(crate) struct RawMode {
    fd: BorrowedFd<'static>,
    saved: Termios,
}

impl RawMode {
    pub fn enable(fd: BorrowedFd<'static>) -> Option<RawMode> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        raw.make_raw();
        termios::tcsetattr(fd, OptionalActions::Now, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, OptionalActions::Now, &self.saved);
    }
}

/// Copies the container's output from `master` to `out` (None: discard) and `input` to
/// `master`, until the container side is closed.
pub(crate) fn relay(
    master: &OwnedFd,
    input: Option<BorrowedFd<'_>>,
    out: Option<BorrowedFd<'_>>,
) -> Result<(), Errno> {
    let (winch_read, winch_write) = rustix::pipe::pipe_with(
        rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
    )?;
    Forwarding::notify_winch(std::os::fd::AsRawFd::as_raw_fd(&winch_write));
    let result = relay_loop(master, input, out, &winch_read);
    Forwarding::notify_winch(-1);
    result
}

fn relay_loop(
    master: &OwnedFd,
    mut input: Option<BorrowedFd<'_>>,
    out: Option<BorrowedFd<'_>>,
    winch: &OwnedFd,
) -> Result<(), Errno> {
    let mut buf = [0u8; 16384];
    loop {
        let mut fds = vec![
            PollFd::new(master, PollFlags::IN),
            PollFd::new(winch, PollFlags::IN),
        ];
        if let Some(fd) = input {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        }
        match poll(&mut fds, None) {
            Ok(_) => {}
            Err(Errno::INTR) => continue,
            Err(e) => return Err(e),
        }
        let master_ready = !fds[0].revents().is_empty();
        let winch_ready = !fds[1].revents().is_empty();
        let input_ready = fds.get(2).is_some_and(|f| !f.revents().is_empty());
        drop(fds);

        if winch_ready {
            let _ = rustix::io::read(winch, &mut buf);
            let ws = initial_winsize();
            let _ = termios::tcsetwinsize(master, ws);
        }
        if input_ready {
            if let Some(fd) = input {
                match rustix::io::read(fd, &mut buf) {
                    Ok(0) | Err(_) => input = None,
                    Ok(n) => write_all(master.as_fd(), &buf[..n])?,
                }
            }
        }
        if master_ready {
            match rustix::io::read(master, &mut buf) {
                Ok(0) => return Ok(()),
                // EIO: every slave descriptor is closed, the container is gone.
                Err(Errno::IO) => return Ok(()),
                Err(Errno::INTR) | Err(Errno::AGAIN) => {}
                Err(e) => return Err(e),
                Ok(n) => {
                    if let Some(out) = out {
                        write_all(out, &buf[..n])?;
                    }
                }
            }
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) -> Result<(), Errno> {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) => data = &data[n..],
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
