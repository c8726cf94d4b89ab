//! Forwarding the signals tare receives to the containers it runs.
//!
//! Handlers are process-wide, so they are installed when the first concurrent run starts and
//! the previous dispositions are restored when the last one ends. The handler only reads
//! atomics and calls kill(2) and write(2), which are async-signal-safe.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::Mutex;

/// Signals forwarded to (or, in kill mode, ending) the running containers.
pub(crate) const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

const SLOTS: usize = 64;

static PIDS: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
static KILL_MODE: [AtomicBool; SLOTS] = [const { AtomicBool::new(false) }; SLOTS];
static RECEIVED: [AtomicI32; SLOTS] = [const { AtomicI32::new(0) }; SLOTS];
/// Write end of the pipe that tells a terminal relay the window size changed (-1: none).
static WINCH_FD: AtomicI32 = AtomicI32::new(-1);

struct Installed {
    users: usize,
    previous: Vec<(i32, libc::sigaction)>,
}

// SAFETY: `libc::sigaction` is plain data (a handler address, flags and a mask); it is only
// moved between threads under the mutex.
unsafe impl Send for Installed {}

static STATE: Mutex<Installed> = Mutex::new(Installed {
    users: 0,
    previous: Vec::new(),
});

extern "C" fn handler(sig: libc::c_int) {
    // SAFETY: errno is saved and restored so the interrupted code sees its own value.
    let saved = unsafe { *libc::__errno_location() };
    if sig == libc::SIGWINCH {
        let fd = WINCH_FD.load(Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: write(2) of one byte from a valid buffer is async-signal-safe.
            unsafe { libc::write(fd, b"w".as_ptr().cast(), 1) };
        }
    } else {
        for i in 0..SLOTS {
            let pid = PIDS[i].load(Ordering::Acquire);
            if pid <= 0 {
                continue;
            }
            if KILL_MODE[i].load(Ordering::Relaxed) {
                RECEIVED[i].store(sig, Ordering::Release);
                // SAFETY: kill(2) is async-signal-safe.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            } else {
                // SAFETY: as above.
                unsafe { libc::kill(pid, sig) };
            }
        }
    }
    // SAFETY: restoring the saved errno.
    unsafe { *libc::__errno_location() = saved };
}

/// While alive, the forwarded signals reach the registered containers.
pub(crate) struct Forwarding {
    slot: Option<usize>,
}

impl Forwarding {
    /// Installs the handlers (if this is the first concurrent run).
    pub fn install() -> Forwarding {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        if state.users == 0 {
            let mut previous = Vec::new();
            for sig in FORWARDED.iter().copied().chain([libc::SIGWINCH]) {
                // SAFETY: a zeroed sigaction with a valid handler and an empty mask is a valid
                // argument; the old action is written into an initialised value.
                unsafe {
                    let mut action: libc::sigaction = std::mem::zeroed();
                    action.sa_sigaction = handler as *const () as libc::sighandler_t;
                    action.sa_flags = libc::SA_RESTART;
                    libc::sigemptyset(&mut action.sa_mask);
                    let mut old: libc::sigaction = std::mem::zeroed();
                    if libc::sigaction(sig, &action, &mut old) == 0 {
                        previous.push((sig, old));
                    }
                }
            }
            state.previous = previous;
        }
        state.users += 1;
        Forwarding { slot: None }
    }

    /// Starts forwarding to `pid`. Returns false when all slots are taken (the run then goes
    /// on without forwarding).
    pub fn register(&mut self, pid: i32, kill: bool) -> bool {
        for i in 0..SLOTS {
            if PIDS[i]
                .compare_exchange(0, -1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
            {
                KILL_MODE[i].store(kill, Ordering::Relaxed);
                RECEIVED[i].store(0, Ordering::Relaxed);
                PIDS[i].store(pid, Ordering::Release);
                self.slot = Some(i);
                return true;
            }
        }
        false
    }

    /// The signal that ended the container in kill mode, if any.
    pub fn received(&self) -> Option<i32> {
        let slot = self.slot?;
        match RECEIVED[slot].load(Ordering::Acquire) {
            0 => None,
            sig => Some(sig),
        }
    }

    /// Sends window-size notifications to `fd` (a pipe's write end) while the relay runs.
    pub fn notify_winch(fd: i32) {
        WINCH_FD.store(fd, Ordering::Release);
    }
}

impl Drop for Forwarding {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            PIDS[slot].store(0, Ordering::Release);
        }
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        state.users = state.users.saturating_sub(1);
        if state.users == 0 {
            for (sig, old) in state.previous.drain(..) {
                // SAFETY: restores a disposition previously returned by sigaction.
                unsafe { libc::sigaction(sig, &old, std::ptr::null_mut()) };
            }
        }
    }
}
