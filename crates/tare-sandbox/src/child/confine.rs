//! The child's confinement: capabilities, user and groups, session keyring, seccomp.

use rustix::io::Errno;
use rustix::thread::CapabilitySet;

use super::{errno, At, StepResult};
use crate::caps::DEFAULT_CAPS;
use crate::plan::{Plan, Step};

pub(super) fn drop_capabilities(plan: &Plan) -> StepResult {
    use rustix::thread::CapabilitySets;
    // Privileged: every capability tare itself holds (all that the kernel knows, for root on
    // a host; fewer inside a container that limits tare) stays in the bounding set and, for
    // root, in the effective and permitted sets.
    let keep = if plan.privileged {
        let known = u64::MAX >> (63 - plan.last_cap.min(63));
        rustix::thread::capabilities(None)
            .at(Step::Capabilities)?
            .permitted
            .bits()
            & known
    } else {
        DEFAULT_CAPS.bits()
    };
    for cap in 0..=plan.last_cap.min(63) {
        if keep & (1 << cap) == 0 {
            rustix::thread::remove_capability_from_bounding_set(CapabilitySet::from_bits_retain(
                1 << cap,
            ))
            .at(Step::Capabilities)?;
        }
    }
    // Ambient capabilities may be unsupported; nothing to clear then.
    let _ = rustix::thread::clear_ambient_capability_set();
    if plan.setgroups {
        rustix::thread::set_thread_groups(&plan.groups).at(Step::Groups)?;
    }
    let gid = rustix::fs::Gid::from_raw(plan.gid);
    rustix::thread::set_thread_res_gid(gid, gid, gid).at(Step::SetGid)?;
    let uid = rustix::fs::Uid::from_raw(plan.uid);
    rustix::thread::set_thread_res_uid(uid, uid, uid).at(Step::SetUid)?;
    if plan.uid == 0 {
        let default = CapabilitySet::from_bits_retain(keep);
        rustix::thread::set_capabilities(
            None,
            CapabilitySets {
                effective: default,
                permitted: default,
                inheritable: CapabilitySet::empty(),
            },
        )
        .at(Step::Capabilities)?;
    }
    Ok(())
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL)`: a new, empty, anonymous session keyring for
/// the container's process tree, so that it does not share tare's (and through it, possibly
/// the host user's keys). Done before the seccomp filter refuses keyctl.
pub(super) fn join_session_keyring() -> rustix::io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: a raw system call with a null name pointer, which the kernel accepts to mean
    // "anonymous"; async-signal-safe.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_keyctl,
            KEYCTL_JOIN_SESSION_KEYRING,
            std::ptr::null::<libc::c_char>(),
        )
    };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, 0, &prog)` with the program the parent compiled.
pub(super) fn install_seccomp(program: &[libc::sock_filter]) -> rustix::io::Result<()> {
    let prog = libc::sock_fprog {
        len: program.len() as libc::c_ushort,
        filter: program.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `program`, which the plan keeps alive; the kernel copies it.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0 as libc::c_uint,
            &prog as *const libc::sock_fprog,
        )
    };
    if rc < 0 {
        return Err(Errno::from_raw_os_error(errno()));
    }
    Ok(())
}
