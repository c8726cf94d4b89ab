//! The platforms of a build: the target (`--platform`, default this machine's), the one a
//! stage's `FROM --platform` names, and whether a RUN step of a stage can execute here.

use std::path::Path;

use tare_dockerfile::Stage;
use tare_registry::Platform;
use tare_store::config::ImageConfig;

use crate::context::Build;
use crate::error::Error;

/// The platform whose image a stage starts from: its `FROM --platform` (already expanded
/// with the global and automatic ARGs), else the build's `--platform`. `None` when neither
/// is given: the store's image of that name, whatever its platform, as before `--platform`.
pub(crate) fn stage_platform(build: &Build<'_>, stage: &Stage) -> Result<Option<Platform>, Error> {
    match &stage.platform {
        Some(text) => text.parse::<Platform>().map(Some).map_err(|e| {
            Error::Invalid(format!(
                "{}:{}: FROM --platform={text}: {e}",
                build.opts.dockerfile_name, stage.line
            ))
        }),
        None => Ok(build.opts.platform.clone()),
    }
}

/// Sets the platform fields of a config, as BuildKit normalises them (`arm64` has no
/// variant, `arm` is `v7` unless said otherwise).
pub(crate) fn set_config_platform(config: &mut ImageConfig, platform: &Platform) {
    config.os = platform.os.clone();
    config.architecture = platform.architecture.clone();
    config.variant = match (platform.architecture.as_str(), platform.variant.as_deref()) {
        ("arm64", Some("v8")) | ("arm64", None) => None,
        ("arm", None) => Some("v7".to_string()),
        (_, v) => v.map(str::to_string),
    };
}

/// The name of the QEMU user-mode emulator (and its binfmt_misc handler `qemu-NAME`) for an
/// OCI architecture.
fn qemu_name(architecture: &str) -> &str {
    match architecture {
        "amd64" => "x86_64",
        "arm64" => "aarch64",
        "386" => "i386",
        "ppc64le" => "ppc64le",
        "mips64le" => "mips64el",
        other => other,
    }
}

/// Whether a RUN step of an image of `config`'s platform can execute on this machine: native,
/// or through an enabled binfmt_misc handler for the emulator. Otherwise the error says what
/// is missing instead of letting the sandbox fail with "exec format error".
pub(crate) fn check_runnable(config: &ImageConfig) -> Result<(), Error> {
    check_runnable_with(config, Path::new("/proc/sys/fs/binfmt_misc"))
}

fn check_runnable_with(config: &ImageConfig, binfmt: &Path) -> Result<(), Error> {
    let host = tare_store::config::host_architecture();
    if config.architecture.is_empty() || config.architecture == host {
        return Ok(());
    }
    let qemu = qemu_name(&config.architecture);
    let handler = binfmt.join(format!("qemu-{qemu}"));
    // The handler file's first line is `enabled` or `disabled`.
    match std::fs::read_to_string(&handler) {
        Ok(text) if text.lines().next() == Some("enabled") => Ok(()),
        Ok(_) => Err(Error::Invalid(format!(
            "RUN for {}/{} needs emulation on this {host} machine: the binfmt_misc handler {} \
             is disabled (enable it with `update-binfmts --enable qemu-{qemu}`)",
            config.os,
            config.architecture,
            handler.display()
        ))),
        Err(_) => Err(Error::Invalid(format!(
            "RUN for {}/{} needs emulation on this {host} machine: no binfmt_misc handler {} \
             (install Debian's qemu-user-static and binfmt-support, which register it)",
            config.os,
            config.architecture,
            handler.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(arch: &str) -> ImageConfig {
        ImageConfig {
            architecture: arch.to_string(),
            os: "linux".to_string(),
            ..ImageConfig::default()
        }
    }

    #[test]
    fn native_steps_need_no_handler_and_foreign_ones_say_what_is_missing() {
        let dir = tempfile::tempdir().unwrap();
        let host = tare_store::config::host_architecture();
        check_runnable_with(&config(host), dir.path()).unwrap();
        let foreign = if host == "arm64" { "amd64" } else { "arm64" };
        let e = check_runnable_with(&config(foreign), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains(&format!("linux/{foreign}")), "{e}");
        assert!(e.contains("qemu-user-static"), "{e}");
        let qemu = qemu_name(foreign);
        let handler = dir.path().join(format!("qemu-{qemu}"));
        std::fs::write(&handler, "disabled\ninterpreter /usr/libexec/qemu-binfmt\n").unwrap();
        let e = check_runnable_with(&config(foreign), dir.path())
            .unwrap_err()
            .to_string();
        assert!(e.contains("is disabled"), "{e}");
        std::fs::write(&handler, "enabled\ninterpreter /usr/libexec/qemu-binfmt\n").unwrap();
        check_runnable_with(&config(foreign), dir.path()).unwrap();
    }

    #[test]
    fn config_platforms_are_normalised_as_buildkit_writes_them() {
        let mut c = ImageConfig::default();
        set_config_platform(&mut c, &"linux/arm64/v8".parse().unwrap());
        assert_eq!(
            (c.architecture.as_str(), c.variant.as_deref()),
            ("arm64", None)
        );
        set_config_platform(&mut c, &"linux/arm".parse().unwrap());
        assert_eq!(
            (c.architecture.as_str(), c.variant.as_deref()),
            ("arm", Some("v7"))
        );
        set_config_platform(&mut c, &"linux/amd64".parse().unwrap());
        assert_eq!(
            (c.architecture.as_str(), c.variant.as_deref()),
            ("amd64", None)
        );
    }
}
