//! `tare login`: check credentials against a registry and keep them in tare's login file.

use std::io::{BufRead, IsTerminal, Read, Write};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{bail, Context as _};
use tare_registry::Credentials;

use super::pull::RegistryArgs;
use crate::Context;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// User name (asked for on a terminal when missing).
    #[arg(short, long)]
    username: Option<String>,
    /// Read the password (or token) from stdin.
    #[arg(long)]
    password_stdin: bool,
    #[command(flatten)]
    registry: RegistryArgs,
    /// The registry: host[:port] (default: docker.io).
    server: Option<String>,
}

pub fn run(_ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let registry = tare_registry::registry_name(args.server.as_deref().unwrap_or("docker.io"));
    let stdin = std::io::stdin();
    let username = match args.username {
        Some(u) => u,
        None if stdin.is_terminal() && !args.password_stdin => {
            eprint!("Username: ");
            let mut line = String::new();
            stdin.lock().read_line(&mut line)?;
            line.trim().to_string()
        }
        None => bail!("no user name: pass -u USER"),
    };
    let password = if args.password_stdin {
        let mut text = String::new();
        stdin
            .lock()
            .read_to_string(&mut text)
            .context("reading the password from stdin")?;
        text.trim_end_matches(['\n', '\r']).to_string()
    } else if stdin.is_terminal() {
        prompt_hidden("Password: ")?
    } else {
        bail!("no password: pass it on stdin with --password-stdin");
    };
    if username.is_empty() || password.is_empty() {
        bail!("the user name and password must not be empty");
    }
    let options = args.registry.options();
    tare_registry::login(&registry, Credentials { username, password }, &options)
        .with_context(|| format!("logging in to {registry}"))?;
    writeln!(
        std::io::stdout(),
        "Login Succeeded (credentials saved in {})",
        options.auth.tare.display()
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Reads a line from the terminal with echo off (through `stty`, so no terminal code here).
fn prompt_hidden(prompt: &str) -> anyhow::Result<String> {
    eprint!("{prompt}");
    let stty = |arg: &str| {
        Command::new("stty")
            .arg(arg)
            .stdin(Stdio::inherit())
            .status()
            .is_ok_and(|s| s.success())
    };
    let hidden = stty("-echo");
    let mut line = String::new();
    let read = std::io::stdin().lock().read_line(&mut line);
    if hidden {
        stty("echo");
    }
    eprintln!();
    read.context("reading the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}
