//! The seccomp filter: the system calls Docker's default profile refuses to a container with
//! Docker's default capabilities, refused with `EPERM` as Docker does.
//!
//! Docker's profile is an allow list (about 350 names); the calls it leaves out are the ones
//! listed here. tare writes the complement as a deny list on top of "allow": the effect on a
//! container is the same for every call Docker names, and a system call added by a newer kernel
//! than this list keeps working instead of failing (Docker returns `EPERM` for those until its
//! profile learns them). One table feeds both the built-in sandbox (compiled to BPF with
//! `seccompiler`) and the `--runtime` bundle (`linux.seccomp` of config.json).

use std::collections::BTreeMap;

use oci_spec::runtime::{
    Arch, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder, LinuxSeccompBuilder,
    LinuxSeccompOperator, LinuxSyscallBuilder,
};

use crate::Error;

/// What a call matching the table gets.
#[derive(Clone, Copy)]
enum Deny {
    /// Always `EPERM`.
    Always,
    /// `EPERM` when argument 0 has any of these bits (clone's namespace flags).
    AnyBit(&'static [u64]),
    /// `EPERM` unless argument 0 is one of these values (personality).
    Except(&'static [u64]),
    /// `ENOSYS`: clone3 passes its flags in memory, where a filter cannot look, so the C
    /// library falls back to clone, whose flags can be checked (Docker does the same).
    NoSys,
}

/// The namespace flags of clone that need CAP_SYS_ADMIN in Docker's profile.
const NAMESPACE_FLAGS: &[u64] = &[
    libc::CLONE_NEWNS as u64,
    libc::CLONE_NEWUTS as u64,
    libc::CLONE_NEWIPC as u64,
    libc::CLONE_NEWUSER as u64,
    libc::CLONE_NEWPID as u64,
    libc::CLONE_NEWNET as u64,
    libc::CLONE_NEWCGROUP as u64,
];

/// The personalities Docker allows: Linux, Linux with UNAME26, with READ_IMPLIES_EXEC... and
/// the query (0xffffffff).
const PERSONALITIES: &[u64] = &[0x0, 0x8, 0x20000, 0x20008, 0xffff_ffff];

macro_rules! calls {
    ($($name:ident => $deny:expr),* $(,)?) => {
        &[$((stringify!($name), libc::$name, $deny)),*]
    };
}

/// Docker's default profile, as the calls it denies. Names without the `SYS_` prefix are the
/// OCI names (`SYS_keyctl` is "keyctl").
const DENIED_COMMON: &[(&str, i64, Deny)] = calls![
    // The kernel keyring is not namespaced: a container would read the host's keys.
    SYS_keyctl => Deny::Always,
    SYS_add_key => Deny::Always,
    SYS_request_key => Deny::Always,
    // Kernel code, tracing and memory policy.
    SYS_bpf => Deny::Always,
    SYS_perf_event_open => Deny::Always,
    SYS_init_module => Deny::Always,
    SYS_finit_module => Deny::Always,
    SYS_delete_module => Deny::Always,
    SYS_kexec_load => Deny::Always,
    SYS_kexec_file_load => Deny::Always,
    SYS_lookup_dcookie => Deny::Always,
    SYS_userfaultfd => Deny::Always,
    SYS_get_mempolicy => Deny::Always,
    SYS_set_mempolicy => Deny::Always,
    SYS_mbind => Deny::Always,
    SYS_move_pages => Deny::Always,
    SYS_kcmp => Deny::Always,
    // The clock and the machine.
    SYS_clock_settime => Deny::Always,
    SYS_clock_adjtime => Deny::Always,
    SYS_settimeofday => Deny::Always,
    SYS_adjtimex => Deny::Always,
    SYS_reboot => Deny::Always,
    SYS_swapon => Deny::Always,
    SYS_swapoff => Deny::Always,
    SYS_acct => Deny::Always,
    SYS_quotactl => Deny::Always,
    SYS_nfsservctl => Deny::Always,
    SYS_vhangup => Deny::Always,
    // Mounts and namespaces need CAP_SYS_ADMIN in Docker's profile, which the default set
    // lacks; the new mount API is not in the profile at all.
    SYS_mount => Deny::Always,
    SYS_umount2 => Deny::Always,
    SYS_pivot_root => Deny::Always,
    SYS_fsopen => Deny::Always,
    SYS_fsconfig => Deny::Always,
    SYS_fsmount => Deny::Always,
    SYS_fspick => Deny::Always,
    SYS_open_tree => Deny::Always,
    SYS_move_mount => Deny::Always,
    SYS_mount_setattr => Deny::Always,
    SYS_unshare => Deny::Always,
    SYS_setns => Deny::Always,
    SYS_clone => Deny::AnyBit(NAMESPACE_FLAGS),
    SYS_clone3 => Deny::NoSys,
    // File handles bypass the mount namespace (CVE-2014-3519, "shocker").
    SYS_open_by_handle_at => Deny::Always,
    SYS_name_to_handle_at => Deny::Always,
    SYS_personality => Deny::Except(PERSONALITIES),
];

/// Calls that exist on x86_64 only.
#[cfg(target_arch = "x86_64")]
const DENIED_ARCH: &[(&str, i64, Deny)] = calls![
    SYS_iopl => Deny::Always,
    SYS_ioperm => Deny::Always,
    SYS_sysfs => Deny::Always,
    SYS__sysctl => Deny::Always,
    SYS_uselib => Deny::Always,
    SYS_ustat => Deny::Always,
];

#[cfg(not(target_arch = "x86_64"))]
const DENIED_ARCH: &[(&str, i64, Deny)] = &[];

fn denied() -> impl Iterator<Item = &'static (&'static str, i64, Deny)> {
    DENIED_COMMON.iter().chain(DENIED_ARCH)
}

/// The x32 ABI reuses the x86_64 audit architecture with this bit set in the call number: a
/// deny list keyed on x86_64 numbers would not see `keyctl` called that way, so every x32 call
/// is refused.
#[cfg(target_arch = "x86_64")]
const X32_SYSCALL_BIT: u32 = 0x4000_0000;

/// A compiled filter, ready for `seccomp(SECCOMP_SET_MODE_FILTER)` in the child.
pub(crate) struct Filter {
    pub program: Vec<libc::sock_filter>,
}

/// Compiles [`DENIED`] for the architecture tare runs on. Calls of another architecture (a
/// 32-bit binary using `int 0x80`) are refused: their numbers differ, so the table cannot be
/// applied to them.
pub(crate) fn filter() -> Result<Filter, Error> {
    use seccompiler::{
        SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter, SeccompRule,
    };
    let invalid = |e: &dyn std::fmt::Display| Error::Invalid {
        what: "seccomp filter",
        value: e.to_string(),
        reason: "cannot be compiled",
    };
    let arch: seccompiler::TargetArch =
        std::env::consts::ARCH.try_into().map_err(|e| invalid(&e))?;
    let eperm = SeccompAction::Errno(libc::EPERM as u32);
    let condition = |op, value| {
        SeccompCondition::new(0, SeccompCmpArgLen::Qword, op, value).map_err(|e| invalid(&e))
    };
    // seccompiler gives one action to every matching rule; ENOSYS for clone3 goes in a second
    // filter of its own, stacked before this one.
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> = BTreeMap::new();
    for (_, nr, deny) in denied() {
        let list = match deny {
            Deny::Always => Vec::new(),
            Deny::NoSys => continue,
            Deny::AnyBit(bits) => bits
                .iter()
                .map(|bit| {
                    SeccompRule::new(vec![condition(SeccompCmpOp::MaskedEq(*bit), *bit)?])
                        .map_err(|e| invalid(&e))
                })
                .collect::<Result<_, _>>()?,
            Deny::Except(values) => {
                let conditions = values
                    .iter()
                    .map(|v| {
                        SeccompCondition::new(0, SeccompCmpArgLen::Dword, SeccompCmpOp::Ne, *v)
                            .map_err(|e| invalid(&e))
                    })
                    .collect::<Result<_, _>>()?;
                vec![SeccompRule::new(conditions).map_err(|e| invalid(&e))?]
            }
        };
        rules.insert(*nr, list);
    }
    let main: seccompiler::BpfProgram =
        SeccompFilter::new(rules, SeccompAction::Allow, eperm, arch)
            .and_then(TryInto::try_into)
            .map_err(|e| invalid(&e))?;
    let nosys: BTreeMap<i64, Vec<SeccompRule>> = denied()
        .filter(|(_, _, deny)| matches!(deny, Deny::NoSys))
        .map(|(_, nr, _)| (*nr, Vec::new()))
        .collect();
    let nosys: seccompiler::BpfProgram = SeccompFilter::new(
        nosys,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .and_then(TryInto::try_into)
    .map_err(|e| invalid(&e))?;

    // One program: the x32 guard, then the ENOSYS filter whose "allow" falls through to the
    // main filter. seccompiler's programs end every path with a return, so they are joined by
    // rewriting the first one's "return allow" into a jump to the next.
    let mut program = x32_guard();
    let allow = libc::SECCOMP_RET_ALLOW;
    let nosys_len = nosys.len();
    for (i, ins) in nosys.into_iter().enumerate() {
        let is_ret = ins.code == (libc::BPF_RET | libc::BPF_K) as u16;
        if is_ret && ins.k == allow {
            // A jump to the instruction right after this program.
            let skip = (nosys_len - i - 1) as u32;
            program.push(libc::sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JA) as u16,
                jt: 0,
                jf: 0,
                k: skip,
            });
        } else {
            program.push(libc::sock_filter {
                code: ins.code,
                jt: ins.jt,
                jf: ins.jf,
                k: ins.k,
            });
        }
    }
    program.extend(main.into_iter().map(|ins| libc::sock_filter {
        code: ins.code,
        jt: ins.jt,
        jf: ins.jf,
        k: ins.k,
    }));
    Ok(Filter { program })
}

#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    // The offset of seccomp_data.nr is 0.
    vec![
        stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, 0),
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: X32_SYSCALL_BIT,
        },
        stmt(
            libc::BPF_RET | libc::BPF_K,
            libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        ),
    ]
}

#[cfg(not(target_arch = "x86_64"))]
fn x32_guard() -> Vec<libc::sock_filter> {
    Vec::new()
}

/// The same profile as an OCI `linux.seccomp` object, for `--runtime`.
pub(crate) fn oci_profile() -> Result<LinuxSeccomp, String> {
    let built = |e: oci_spec::OciSpecError| e.to_string();
    // No list (the runtime's native architecture) where oci-spec has no name for it.
    let architectures = match std::env::consts::ARCH {
        "x86_64" => vec![Arch::ScmpArchX86_64],
        "aarch64" => vec![Arch::ScmpArchAarch64],
        _ => Vec::new(),
    };
    let errno = |names: Vec<String>, errno: i32| {
        LinuxSyscallBuilder::default()
            .names(names)
            .action(LinuxSeccompAction::ScmpActErrno)
            .errno_ret(errno as u32)
    };
    let arg = |value: u64, value_two: Option<u64>, op: LinuxSeccompOperator| {
        let arg = LinuxSeccompArgBuilder::default()
            .index(0usize)
            .value(value)
            .op(op);
        match value_two {
            Some(two) => arg.value_two(two).build(),
            None => arg.build(),
        }
        .map_err(built)
    };
    let always: Vec<String> = denied()
        .filter(|(_, _, d)| matches!(d, Deny::Always))
        .map(|(name, _, _)| oci_name(name).to_string())
        .collect();
    let mut syscalls = vec![errno(always, libc::EPERM).build().map_err(built)?];
    for (name, _, deny) in denied() {
        let names = vec![oci_name(name).to_string()];
        match deny {
            Deny::Always => {}
            Deny::NoSys => syscalls.push(errno(names, libc::ENOSYS).build().map_err(built)?),
            Deny::AnyBit(bits) => {
                for bit in *bits {
                    let args = vec![arg(
                        *bit,
                        Some(*bit),
                        LinuxSeccompOperator::ScmpCmpMaskedEq,
                    )?];
                    let rule = errno(names.clone(), libc::EPERM).args(args);
                    syscalls.push(rule.build().map_err(built)?);
                }
            }
            Deny::Except(values) => {
                let args = values
                    .iter()
                    .map(|v| arg(*v, None, LinuxSeccompOperator::ScmpCmpNe))
                    .collect::<Result<Vec<_>, _>>()?;
                let rule = errno(names, libc::EPERM).args(args);
                syscalls.push(rule.build().map_err(built)?);
            }
        }
    }
    let mut profile = LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActAllow)
        .syscalls(syscalls);
    if !architectures.is_empty() {
        profile = profile.architectures(architectures);
    }
    profile.build().map_err(built)
}

fn oci_name(name: &str) -> &str {
    name.strip_prefix("SYS_").unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filter_compiles_and_every_call_has_a_number() {
        let f = filter().unwrap();
        assert!(f.program.len() > denied().count());
        assert!(
            f.program.len() < 4096,
            "BPF programs are limited to 4096 instructions"
        );
        let names: Vec<&str> = denied().map(|(n, _, _)| oci_name(n)).collect();
        for needed in [
            "keyctl",
            "add_key",
            "request_key",
            "bpf",
            "mount",
            "unshare",
        ] {
            assert!(names.contains(&needed), "{needed} missing");
        }
    }

    #[test]
    fn the_oci_profile_denies_the_same_calls() {
        let profile = serde_json::to_string(&oci_profile().unwrap()).unwrap();
        for (name, _, _) in denied() {
            assert!(
                profile.contains(&format!("\"{}\"", oci_name(name))),
                "{name}"
            );
        }
    }
}
