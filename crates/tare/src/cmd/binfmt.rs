//! `tare binfmt`: which foreign architectures RUN steps can execute through QEMU, and
//! `--install` to register Debian's qemu-user-static handlers with the F flag (see
//! `tare_sandbox::binfmt`).

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use tare_sandbox::binfmt::{self, Handler, Installed};

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Register the handlers (mounting binfmt_misc when needed) instead of only showing them.
    #[arg(long)]
    install: bool,
    /// Architectures in OCI's names (arm64, arm, riscv64, ppc64le, s390x...); default: every
    /// one with a qemu-user-static definition in /usr/lib/binfmt.d.
    #[arg(value_name = "ARCH")]
    architectures: Vec<String>,
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let dir = Path::new(binfmt::BINFMT_MISC);
    let architectures = if args.architectures.is_empty() {
        binfmt::available()
    } else {
        args.architectures.clone()
    };
    if architectures.is_empty() {
        anyhow::bail!(
            "no qemu-*.conf handler definitions in {}: install Debian's qemu-user-static",
            binfmt::CONF_DIRS.join(" or ")
        );
    }
    if args.install {
        let conf_dirs: Vec<&Path> = binfmt::CONF_DIRS.iter().map(Path::new).collect();
        for arch in &architectures {
            let done = binfmt::install(dir, &conf_dirs, arch)
                .with_context(|| format!("registering the handler for {arch}"))?;
            let what = match done {
                Installed::Already => "already registered",
                Installed::Registered => "registered",
            };
            crate::outln!("{arch}\t{what}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    let mut ready = true;
    crate::outln!("ARCH\tSTATUS");
    for arch in &architectures {
        let problem = match binfmt::status(dir, arch) {
            Handler::Ready { interpreter } => {
                crate::outln!("{arch}\tready ({interpreter})");
                continue;
            }
            Handler::NotMounted => format!("binfmt_misc not mounted on {}", dir.display()),
            Handler::Missing => "no handler".to_string(),
            Handler::Disabled => "disabled".to_string(),
            Handler::NoFixBinary { interpreter } => {
                format!("no F flag: unusable in a container ({interpreter})")
            }
        };
        ready = false;
        crate::outln!("{arch}\t{problem}");
    }
    if !ready {
        eprintln!("run `tare binfmt --install [ARCH...]` to register the missing handlers");
    }
    Ok(ExitCode::SUCCESS)
}
