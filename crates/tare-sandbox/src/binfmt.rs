//! binfmt_misc: whether this kernel can execute programs of a foreign architecture through
//! QEMU's user-mode emulator, and registering Debian's `qemu-user-static` handlers.
//!
//! A RUN step of an arm64 image on an amd64 host executes arm64 programs: the kernel hands
//! them to the interpreter of the matching binfmt_misc handler. The interpreter path
//! (`/usr/libexec/qemu-binfmt/aarch64-binfmt-P`) is a host path that the step's root
//! filesystem does not have, so only a handler registered with the `F` (fix-binary) flag works
//! in a container: the kernel opens the interpreter once, at registration, and uses that open
//! file for every later exec, whatever the process's root. [`status`] tells which case holds;
//! [`install`] registers the handler from the line Debian's package ships in
//! `/usr/lib/binfmt.d/qemu-NAME.conf` (systemd-binfmt's format, the kernel's own register
//! syntax), adding `F` when it is missing.

use std::path::{Path, PathBuf};

use crate::Error;

/// Where the kernel's binfmt_misc filesystem is mounted.
pub const BINFMT_MISC: &str = "/proc/sys/fs/binfmt_misc";

/// Where packages put their handler definitions; `/etc/binfmt.d` overrides a file of the same
/// name, as for systemd-binfmt.
pub const CONF_DIRS: [&str; 2] = ["/etc/binfmt.d", "/usr/lib/binfmt.d"];

/// The name of QEMU's user-mode emulator for an OCI architecture (its handler is
/// `qemu-NAME`).
pub fn qemu_name(architecture: &str) -> &str {
    match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "mips64le" => "mips64el",
        "loong64" => "loongarch64",
        other => other,
    }
}

/// The OCI architecture of a QEMU emulator name: the inverse of [`qemu_name`].
pub(crate) fn oci_architecture(qemu: &str) -> &str {
    match qemu {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "i386" => "386",
        "mips64el" => "mips64le",
        "loongarch64" => "loong64",
        other => other,
    }
}

/// The state of one architecture's handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handler {
    /// binfmt_misc is not mounted at [`BINFMT_MISC`].
    NotMounted,
    /// No handler of that name.
    Missing,
    /// Registered but disabled.
    Disabled,
    /// Registered and enabled, without the `F` flag: it only works where the interpreter's
    /// host path exists, not in a container's root filesystem.
    NoFixBinary {
        /// The emulator's host path.
        interpreter: String,
    },
    /// Enabled with `F`: RUN steps of that architecture can execute.
    Ready {
        /// The emulator's host path (opened at registration, so it need not be in the rootfs).
        interpreter: String,
    },
}

/// The handler of `architecture` (an OCI name, `arm64`) in the binfmt_misc directory `dir`.
pub fn status(dir: &Path, architecture: &str) -> Handler {
    if !dir.join("register").exists() {
        return Handler::NotMounted;
    }
    let file = dir.join(format!("qemu-{}", qemu_name(architecture)));
    // A handler file is a few lines: "enabled", "interpreter PATH", "flags: PF", ...
    let text = match std::fs::read_to_string(&file) {
        Ok(text) => text,
        Err(_) => return Handler::Missing,
    };
    let mut enabled = false;
    let mut interpreter = String::new();
    let mut flags = "";
    for line in text.lines() {
        if line == "enabled" {
            enabled = true;
        } else if let Some(path) = line.strip_prefix("interpreter ") {
            interpreter = path.to_string();
        } else if let Some(f) = line.strip_prefix("flags:") {
            flags = f.trim();
        }
    }
    match (enabled, flags.contains('F')) {
        (false, _) => Handler::Disabled,
        (true, false) => Handler::NoFixBinary { interpreter },
        (true, true) => Handler::Ready { interpreter },
    }
}

/// The architectures (OCI names) that have a `qemu-*.conf` handler definition installed.
pub fn available() -> Vec<String> {
    let mut out = Vec::new();
    for dir in CONF_DIRS {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(qemu) = name
                .strip_prefix("qemu-")
                .and_then(|n| n.strip_suffix(".conf"))
            {
                let arch = oci_architecture(qemu).to_string();
                if !out.contains(&arch) {
                    out.push(arch);
                }
            }
        }
    }
    out.sort();
    out
}

/// The registration line for `architecture` from the first definition file found in
/// `conf_dirs`, with the `F` flag added when missing.
pub(crate) fn registration(conf_dirs: &[&Path], architecture: &str) -> Result<String, Error> {
    let qemu = qemu_name(architecture);
    let file_name = format!("qemu-{qemu}.conf");
    let Some(path) = conf_dirs
        .iter()
        .map(|d| d.join(&file_name))
        .find(|p| p.is_file())
    else {
        return Err(Error::Binfmt {
            reason: format!(
                "no handler definition {file_name} in {}: install Debian's qemu-user-static",
                conf_dirs
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        });
    };
    let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
    let line = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with(';'))
        .unwrap_or_default();
    parse_registration(line, qemu).ok_or_else(|| Error::Binfmt {
        reason: format!(
            "{}: not a binfmt_misc registration for qemu-{qemu} \
             (:qemu-{qemu}:M:OFFSET:MAGIC:MASK:INTERPRETER:FLAGS)",
            path.display()
        ),
    })
}

/// Checks a `:NAME:TYPE:OFFSET:MAGIC:MASK:INTERPRETER:FLAGS` line names `qemu-NAME` and an
/// absolute interpreter, and returns it with `F` among its flags.
fn parse_registration(line: &str, qemu: &str) -> Option<String> {
    let fields: Vec<&str> = line.strip_prefix(':')?.split(':').collect();
    let [name, kind, _offset, _magic, _mask, interpreter, flags] = fields.as_slice() else {
        return None;
    };
    if *name != format!("qemu-{qemu}") || !matches!(*kind, "M" | "E") {
        return None;
    }
    if !interpreter.starts_with('/') {
        return None;
    }
    if flags.contains('F') {
        Some(line.to_string())
    } else {
        Some(format!("{line}F"))
    }
}

/// What [`install`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Installed {
    /// The handler was already enabled with `F`.
    Already,
    /// Registered now (a handler without `F`, or disabled, was removed first).
    Registered,
}

/// Registers the handler of `architecture` in the binfmt_misc directory `dir` from the
/// definitions in `conf_dirs`, mounting binfmt_misc on `dir` first when it is not mounted.
pub fn install(dir: &Path, conf_dirs: &[&Path], architecture: &str) -> Result<Installed, Error> {
    let line = registration(conf_dirs, architecture)?;
    if status(dir, architecture) == Handler::NotMounted {
        rustix::mount::mount(
            "binfmt_misc",
            dir,
            "binfmt_misc",
            rustix::mount::MountFlags::NOSUID
                | rustix::mount::MountFlags::NODEV
                | rustix::mount::MountFlags::NOEXEC,
            None,
        )
        .map_err(|e| Error::Binfmt {
            reason: format!(
                "mounting binfmt_misc on {}: {e} (root is needed, outside a user namespace)",
                dir.display()
            ),
        })?;
    }
    let handler: PathBuf = dir.join(format!("qemu-{}", qemu_name(architecture)));
    match status(dir, architecture) {
        Handler::Ready { .. } => return Ok(Installed::Already),
        Handler::Missing => {}
        Handler::NotMounted => {
            return Err(Error::Binfmt {
                reason: format!("{}: binfmt_misc is not mounted there", dir.display()),
            })
        }
        // Flags cannot be changed in place: remove the handler and register it again.
        Handler::Disabled | Handler::NoFixBinary { .. } => {
            std::fs::write(&handler, "-1").map_err(|e| Error::io(&handler, e))?;
        }
    }
    let register = dir.join("register");
    std::fs::write(&register, &line).map_err(|e| Error::io(&register, e))?;
    Ok(Installed::Registered)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN: &str = ":qemu-aarch64:M::\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/libexec/qemu-binfmt/aarch64-binfmt-P:OPF";

    #[test]
    fn the_handler_state_is_read_from_its_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(status(dir.path(), "arm64"), Handler::NotMounted);
        std::fs::write(dir.path().join("register"), "").unwrap();
        assert_eq!(status(dir.path(), "arm64"), Handler::Missing);
        let file = dir.path().join("qemu-aarch64");
        std::fs::write(&file, "disabled\ninterpreter /q\nflags: PF\n").unwrap();
        assert_eq!(status(dir.path(), "arm64"), Handler::Disabled);
        std::fs::write(&file, "enabled\ninterpreter /q\nflags: P\noffset 0\n").unwrap();
        assert_eq!(
            status(dir.path(), "arm64"),
            Handler::NoFixBinary {
                interpreter: "/q".into()
            }
        );
        std::fs::write(&file, "enabled\ninterpreter /q\nflags: OCF\n").unwrap();
        assert_eq!(
            status(dir.path(), "arm64"),
            Handler::Ready {
                interpreter: "/q".into()
            }
        );
    }

    #[test]
    fn debian_registrations_are_used_with_the_fix_binary_flag() {
        assert_eq!(
            parse_registration(DEBIAN, "aarch64").as_deref(),
            Some(DEBIAN)
        );
        let without_f = DEBIAN.trim_end_matches("OPF").to_string() + "P";
        assert_eq!(
            parse_registration(&without_f, "aarch64"),
            Some(format!("{without_f}F"))
        );
        // Another handler's line, a relative interpreter, a short line: refused.
        assert_eq!(parse_registration(DEBIAN, "arm"), None);
        assert_eq!(
            parse_registration(&DEBIAN.replace(":/usr/libexec", ":usr/libexec"), "aarch64"),
            None
        );
        assert_eq!(parse_registration(":qemu-aarch64:M::", "aarch64"), None);
    }

    #[test]
    fn install_writes_the_registration_and_replaces_a_handler_without_f() {
        let conf = tempfile::tempdir().unwrap();
        std::fs::write(
            conf.path().join("qemu-aarch64.conf"),
            format!("# comment\n{}\n", DEBIAN.trim_end_matches('F')),
        )
        .unwrap();
        // A directory with a `register` file stands in for a mounted binfmt_misc.
        let dir = tempfile::tempdir().unwrap();
        let register = dir.path().join("register");
        std::fs::write(&register, "").unwrap();
        let handler = dir.path().join("qemu-aarch64");
        std::fs::write(&handler, "enabled\ninterpreter /q\nflags: OP\n").unwrap();
        let got = install(dir.path(), &[conf.path()], "arm64").unwrap();
        assert_eq!(got, Installed::Registered);
        assert_eq!(std::fs::read_to_string(&handler).unwrap(), "-1");
        assert_eq!(std::fs::read_to_string(&register).unwrap(), DEBIAN);
        std::fs::write(&handler, "enabled\ninterpreter /q\nflags: OPF\n").unwrap();
        assert_eq!(
            install(dir.path(), &[conf.path()], "arm64").unwrap(),
            Installed::Already
        );
        let e = install(dir.path(), &[conf.path()], "riscv64")
            .unwrap_err()
            .to_string();
        assert!(e.contains("qemu-riscv64.conf"), "{e}");
        assert!(e.contains("qemu-user-static"), "{e}");
    }
}
