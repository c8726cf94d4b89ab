//! `tare completion SHELL` and `tare man DIR`: shell completions (clap_complete) and man pages
//! (clap_mangen), generated from the same command-line types the parser uses.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args as ClapArgs;
use clap_complete::Shell;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// The shell: bash, zsh, fish, elvish or powershell.
    shell: Shell,
}

#[derive(ClapArgs, Debug)]
pub struct ManArgs {
    /// The directory to write tare.1 and one page per subcommand (tare-build.1, ...) into.
    dir: PathBuf,
}

/// Writes the completion script for `shell` to stdout.
pub fn run(mut cli: clap::Command, args: Args) -> anyhow::Result<ExitCode> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cli, "tare", &mut out);
    std::io::Write::write_all(&mut std::io::stdout().lock(), &out)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes the man pages into `dir` (created when missing) and names each page written.
pub fn man(cli: clap::Command, args: ManArgs) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    clap_mangen::generate_to(cli, &args.dir)
        .with_context(|| format!("writing man pages into {}", args.dir.display()))?;
    let mut pages: Vec<String> = std::fs::read_dir(&args.dir)
        .with_context(|| format!("reading {}", args.dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("tare") && n.ends_with(".1"))
        .collect();
    pages.sort();
    for p in pages {
        crate::outln!("{}", args.dir.join(p).display());
    }
    Ok(ExitCode::SUCCESS)
}
