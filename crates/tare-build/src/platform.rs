//! The platforms of a build: the target (`--platform`, default this machine's), the one a
//! stage's `FROM --platform` names, and whether a RUN step of a stage can execute here.

use std::path::Path;

use tare_dockerfile::Stage;
use tare_registry::Platform;
use tare_sandbox::binfmt;
use tare_store::config::ImageConfig;

use crate::context::Build;
use crate::error::Error;

/// The platform whose image a stage starts from: its `FROM --platform` (already expanded
/// with the global and automatic ARGs), else the build's `--platform`. `None` when neither
/// is given: the store's image of that name, whatever its platform, as before `--platform`.
pub(crate) fn stage_platform(build: &Build<'_>, stage: &Stage) -> Result<Option<Platform>, Error> {
    match &stage.platform {
        Some(text) => text
            .parse::<Platform>()
            .map(Some)
            .map_err(|e| Error::FromPlatform {
                file: build.opts.dockerfile_name.clone(),
                line: stage.line,
                value: text.clone(),
                reason: e.to_string(),
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

/// Whether a RUN step of an image of `config`'s platform can execute on this machine: native,
/// or through an enabled binfmt_misc handler for the emulator that has the `F` flag (see
/// [`tare_sandbox::binfmt`]). Otherwise the error says what is missing and how to fix it,
/// instead of letting the sandbox fail with "exec format error".
pub(crate) fn check_runnable(config: &ImageConfig) -> Result<(), Error> {
    check_runnable_with(config, Path::new(binfmt::BINFMT_MISC))
}

fn check_runnable_with(config: &ImageConfig, dir: &Path) -> Result<(), Error> {
    let host = tare_store::config::host_architecture();
    let arch = config.architecture.as_str();
    if arch.is_empty() || arch == host {
        return Ok(());
    }
    let handler = dir.join(format!("qemu-{}", binfmt::qemu_name(arch)));
    let install = format!("`tare binfmt --install {arch}`");
    let missing = match binfmt::status(dir, arch) {
        binfmt::Handler::Ready { .. } => return Ok(()),
        binfmt::Handler::NotMounted => format!(
            "binfmt_misc is not mounted on {} (install Debian's qemu-user-static, then \
             {install} mounts it and registers the handler)",
            dir.display()
        ),
        binfmt::Handler::Missing => format!(
            "no binfmt_misc handler {} (install Debian's qemu-user-static, then run {install})",
            handler.display()
        ),
        binfmt::Handler::Disabled => format!(
            "the binfmt_misc handler {} is disabled (run {install})",
            handler.display()
        ),
        binfmt::Handler::NoFixBinary { interpreter } => format!(
            "the binfmt_misc handler {} lacks the F (fix-binary) flag, so its interpreter \
             {interpreter} is looked up inside the build's root filesystem, where it does not \
             exist (run {install} to register it again with F)",
            handler.display()
        ),
    };
    Err(Error::NeedsEmulation {
        platform: format!("{}/{arch}", config.os),
        host: host.to_string(),
        missing,
    })
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
        let err = || {
            check_runnable_with(&config(foreign), dir.path())
                .unwrap_err()
                .to_string()
        };
        let e = err();
        assert!(e.contains(&format!("linux/{foreign}")), "{e}");
        assert!(e.contains("binfmt_misc is not mounted"), "{e}");
        std::fs::write(dir.path().join("register"), "").unwrap();
        let e = err();
        assert!(e.contains("qemu-user-static"), "{e}");
        assert!(
            e.contains(&format!("tare binfmt --install {foreign}")),
            "{e}"
        );
        let handler = dir
            .path()
            .join(format!("qemu-{}", binfmt::qemu_name(foreign)));
        std::fs::write(&handler, "disabled\ninterpreter /usr/libexec/qemu-binfmt\n").unwrap();
        assert!(err().contains("is disabled"));
        std::fs::write(&handler, "enabled\ninterpreter /q\nflags: P\n").unwrap();
        let e = err();
        assert!(e.contains("lacks the F (fix-binary) flag"), "{e}");
        std::fs::write(&handler, "enabled\ninterpreter /q\nflags: PF\n").unwrap();
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
