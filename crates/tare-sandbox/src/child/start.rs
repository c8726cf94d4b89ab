//! The child's last steps: its terminal, its standard streams and `execve`.

use std::ffi::c_int;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use rustix::fs::{self as rfs, Mode as FsMode, OFlags};
use rustix::io::Errno;

use super::{dup2, errno, unblock_signals, At, StepResult};
use crate::plan::{Plan, Step};

/// Opens a pseudo-terminal from the container's own devpts (so that `tty` inside names a
/// device that exists there), makes it the controlling terminal and stdio, and sends the
/// master side to the parent.
pub(super) fn open_terminal(
    socket: BorrowedFd<'_>,
    winsize: rustix::termios::Winsize,
) -> StepResult {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
    use rustix::pty::OpenptFlags;
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags).at(Step::Terminal)?;
    rustix::pty::unlockpt(&master).at(Step::Terminal)?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).at(Step::Terminal)?;
    rustix::termios::tcsetwinsize(&master, winsize).at(Step::Terminal)?;
    rustix::process::ioctl_tiocsctty(&slave).at(Step::Terminal)?;

    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [master.as_fd()];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        socket,
        &[std::io::IoSlice::new(b"t")],
        &mut control,
        SendFlags::empty(),
    )
    .at(Step::Terminal)?;
    drop(master);
    for target in 0..3 {
        dup2(slave.as_raw_fd(), target).at(Step::Terminal)?;
    }
    Ok(())
}

pub(super) fn install_stdio(plan: &Plan) -> StepResult {
    for (target, null) in plan.null_stdio.iter().enumerate() {
        if *null {
            let fd = rfs::open(c"/dev/null", OFlags::RDWR, FsMode::empty()).at(Step::Stdio)?;
            dup2(fd.as_raw_fd(), target as c_int).at(Step::Stdio)?;
        }
    }
    for (target, fd) in plan.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            dup2(fd.as_raw_fd(), target as c_int).at(Step::Stdio)?;
        }
    }
    Ok(())
}

/// Execs the prepared argv directly (runtime mode: argv[0] is an absolute path).
pub(super) fn exec_direct(plan: &Plan) -> StepResult<std::convert::Infallible> {
    install_stdio(plan)?;
    unblock_signals();
    exec_direct_after_setup(plan)
}

pub(super) const PATH_BUF: usize = 4096;

/// execvpe with the container's PATH: ENOENT means not found anywhere, EACCES that a
/// candidate existed but could not be executed (Docker's 127 and 126).
pub(super) fn exec_search(plan: &Plan) -> StepResult<std::convert::Infallible> {
    let name = plan.argv[0].to_bytes();
    if name.contains(&b'/') {
        return exec_direct_after_setup(plan);
    }
    let mut buf = [0u8; PATH_BUF];
    let mut denied = false;
    let mut last = Errno::NOENT;
    for dir in plan.path.split(|b| *b == b':') {
        let dir: &[u8] = if dir.is_empty() { b"." } else { dir };
        let len = dir.len() + 1 + name.len();
        if len + 1 > buf.len() {
            continue;
        }
        buf[..dir.len()].copy_from_slice(dir);
        buf[dir.len()] = b'/';
        buf[dir.len() + 1..len].copy_from_slice(name);
        buf[len] = 0;
        // SAFETY: `buf` holds a NUL-terminated path; the arrays are NULL-terminated.
        unsafe {
            libc::execve(
                buf.as_ptr().cast(),
                plan.argv_ptrs.as_ptr(),
                plan.envp_ptrs.as_ptr(),
            )
        };
        let err = Errno::from_raw_os_error(errno());
        match err {
            Errno::ACCESS => denied = true,
            Errno::NOENT | Errno::NOTDIR => {}
            other => last = other,
        }
    }
    let err = if denied { Errno::ACCESS } else { last };
    Err((Step::Exec, err))
}

/// Execs argv[0] as it is (a path), stdio and the signal mask already set up.
fn exec_direct_after_setup(plan: &Plan) -> StepResult<std::convert::Infallible> {
    // SAFETY: NULL-terminated arrays of pointers into CStrings the plan keeps alive.
    unsafe {
        libc::execve(
            plan.argv_ptrs[0],
            plan.argv_ptrs.as_ptr(),
            plan.envp_ptrs.as_ptr(),
        )
    };
    Err((Step::Exec, Errno::from_raw_os_error(errno())))
}
