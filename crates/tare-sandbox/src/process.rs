//! The container's process: `clone` into its namespaces, and waiting for it.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::io::Errno;

use crate::plan::Plan;
use crate::{child, Error};

/// Stack for the cloned child: it only runs the set-up code and execve.
const CHILD_STACK: usize = 256 * 1024;

/// `clone(2)` into the new namespaces with all signals blocked, so that no handler of the
/// parent runs in the child before it resets them.
pub(crate) fn clone_child(plan: &mut Plan, flags: i32) -> Result<i32, Error> {
    let mut stack: Vec<u8> = Vec::with_capacity(CHILD_STACK);
    // SAFETY: the sets are initialised by sigfillset / pthread_sigmask before use; clone gets
    // the top of a live, 16-byte aligned stack (the child only runs `child::entry` on it and
    // has its own copy of the memory, as CLONE_VM is not set) and a pointer to the plan,
    // which outlives the call in the parent.
    let pid = unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        let top = stack.as_mut_ptr().add(CHILD_STACK);
        let top = top.sub(top as usize % 16);
        let pid = libc::clone(child::entry, top.cast(), flags, (plan as *mut Plan).cast());
        let err = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        if pid < 0 {
            return Err(Error::sys("clone", err));
        }
        pid
    };
    drop(stack);
    Ok(pid)
}

/// Writes `pid` to `path` whole or not at all (a temporary file renamed over it).
pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<(), Error> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{pid}\n")).map_err(|e| Error::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
}

/// `clone` into the pid namespace of the process behind `container` (a pidfd): `setns` of a
/// pid namespace only sets where this thread's next children go, so it is set for the one
/// `clone` and set back to the thread's own pid namespace right after.
pub(crate) fn clone_into_pid_ns(
    container: &OwnedFd,
    plan: &mut Plan,
    flags: i32,
) -> Result<i32, Error> {
    use rustix::thread::{LinkNameSpaceType, ThreadNameSpaceType};
    let own = std::fs::File::open("/proc/thread-self/ns/pid")
        .map_err(|e| Error::io("/proc/thread-self/ns/pid", e))?;
    rustix::thread::move_into_thread_name_spaces(
        container.as_fd(),
        ThreadNameSpaceType::PROCESS_ID,
    )
    .map_err(|e| Error::sys("joining the container's pid namespace", e))?;
    let cloned = clone_child(plan, flags);
    let back = match rustix::thread::move_into_link_name_space(
        own.as_fd(),
        Some(LinkNameSpaceType::ProcessID),
    ) {
        // Rootless: the host's pid namespace belongs to the host's user namespace, where this
        // process has no capability, so it cannot go back. The process starts no other
        // child or thread after this one (`exec` only waits for it and returns), so there is
        // nothing its setting could misplace.
        Err(rustix::io::Errno::PERM) if plan.rootless => Ok(()),
        other => other,
    };
    let pid = cloned?;
    if let Err(e) = back {
        // This thread's next children would be born in the container: end here instead.
        if let Some(child) = rustix::process::Pid::from_raw(pid) {
            let _ = rustix::process::kill_process(child, rustix::process::Signal::KILL);
        }
        let _ = wait(pid);
        return Err(Error::sys("leaving the container's pid namespace", e));
    }
    Ok(pid)
}

pub(crate) fn wait(pid: i32) -> Result<i32, Error> {
    let pid = rustix::process::Pid::from_raw(pid).ok_or(Error::Invalid {
        what: "pid",
        value: pid.to_string(),
        reason: "not a process id",
    })?;
    loop {
        match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::empty()) {
            Ok(Some((_, status))) => {
                if let Some(code) = status.exit_status() {
                    return Ok(code);
                }
                if let Some(sig) = status.terminating_signal() {
                    return Ok(128 + sig);
                }
            }
            Ok(None) => {}
            Err(Errno::INTR) => {}
            Err(e) => return Err(Error::sys("waiting for the container", e)),
        }
    }
}
