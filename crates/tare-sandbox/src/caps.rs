//! Docker's default capabilities, for the sandbox's child and the OCI runtime's config.

use rustix::thread::CapabilitySet;

/// Docker's default capabilities, the one definition of the set: the sandbox keeps these bits
/// and the OCI runtime's `config.json` lists their names ([`capability_names`]).
pub(crate) const DEFAULT_CAPS: CapabilitySet = CapabilitySet::CHOWN
    .union(CapabilitySet::DAC_OVERRIDE)
    .union(CapabilitySet::FOWNER)
    .union(CapabilitySet::FSETID)
    .union(CapabilitySet::KILL)
    .union(CapabilitySet::SETGID)
    .union(CapabilitySet::SETUID)
    .union(CapabilitySet::SETPCAP)
    .union(CapabilitySet::NET_BIND_SERVICE)
    .union(CapabilitySet::NET_RAW)
    .union(CapabilitySet::SYS_CHROOT)
    .union(CapabilitySet::MKNOD)
    .union(CapabilitySet::AUDIT_WRITE)
    .union(CapabilitySet::SETFCAP);

/// The OCI names (`CAP_CHOWN`, ...) of the capabilities in `set` that the kernel headers name,
/// in bit order.
pub(crate) fn capability_names(set: CapabilitySet) -> Vec<String> {
    set.iter_names()
        .map(|(name, _)| format!("CAP_{name}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_capabilities_are_dockers_fourteen_by_name_and_bit() {
        let mut names = capability_names(DEFAULT_CAPS);
        names.sort();
        let mut docker = [
            "CAP_AUDIT_WRITE",
            "CAP_CHOWN",
            "CAP_DAC_OVERRIDE",
            "CAP_FOWNER",
            "CAP_FSETID",
            "CAP_KILL",
            "CAP_MKNOD",
            "CAP_NET_BIND_SERVICE",
            "CAP_NET_RAW",
            "CAP_SETFCAP",
            "CAP_SETGID",
            "CAP_SETPCAP",
            "CAP_SETUID",
            "CAP_SYS_CHROOT",
        ];
        docker.sort();
        assert_eq!(names, docker);
        // The kernel's numbers (capability.h): CHOWN 0, SETUID 7, NET_RAW 13, SETFCAP 31.
        let bits = DEFAULT_CAPS.bits();
        assert_eq!(bits & 0xffff_ffff, bits, "{bits:#x}");
        assert!(
            bits & (1 << 0 | 1 << 7 | 1 << 13 | 1 << 31) == (1 << 0 | 1 << 7 | 1 << 13 | 1 << 31)
        );
        assert_eq!(bits.count_ones(), 14);
        // A privileged runtime config lists all 41 the headers name, CAP_CHECKPOINT_RESTORE (40) last.
        let all = capability_names(CapabilitySet::all());
        assert_eq!(all.len(), 41);
        assert_eq!(
            all.last().map(String::as_str),
            Some("CAP_CHECKPOINT_RESTORE")
        );
    }
}
