//! The `tare` binary: command-line types, one module per subcommand, and the printers.
//!
//! Libraries never print; this crate turns their results and reports into text, tables and
//! JSON, and turns errors into `error: ...` lines with exit code 1.
#![forbid(unsafe_code)]

mod cmd;
mod context;
mod epoch;
mod format;
mod gotmpl;
mod progress;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser, Subcommand};

pub use context::Context;

/// tare: a daemonless container image builder that treats image size as a first-class quantity.
#[derive(Parser, Debug)]
#[command(name = "tare", version, about, propagate_version = true)]
struct Cli {
    /// Directory of the image store.
    ///
    /// Defaults to /var/lib/tare for root and $XDG_DATA_HOME/tare otherwise.
    #[arg(long, global = true, env = "TARE_ROOT", value_name = "DIR")]
    root: Option<std::path::PathBuf>,

    /// More diagnostics on stderr (-v info, -vv debug, -vvv trace); RUST_LOG also works.
    ///
    /// Give it before the subcommand (`tare -v build .`): after it, `-v` is docker's
    /// `--volume` for `tare run`.
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Developer tools: inspect how tare reads its inputs.
    #[command(subcommand)]
    Debug(cmd::debug::Command),
    /// Where an image's bytes go: wasted files with the steps that made them, efficiency, HTML.
    Analyze(cmd::analyze::Args),
    /// Check a Dockerfile against the size rules (no build needed); exit 1 on findings.
    Lint(cmd::lint::Args),
    /// What changed between two images: files, layers, config and sizes; --why for the bytes.
    Diff(cmd::diff::Args),
    /// Merge an image's layers into one, dead files gone, config and history kept.
    Squash(cmd::squash::Args),
    /// Keep only the files a traced run of the image opens (plus what they need), verified.
    Slim(cmd::slim::Args),
    /// Build an image from a Dockerfile.
    // Boxed: its flags make it much larger than the other commands.
    Build(Box<cmd::build::Args>),
    /// Import a rootfs tar (plain, gzip or zstd) as a one-layer image.
    Import(cmd::import::Args),
    /// Load images from a docker archive, OCI archive or OCI layout.
    Load(cmd::load::Args),
    /// Save images to a docker archive or an OCI layout tar.
    Save(cmd::save::Args),
    /// List images with their sizes.
    Images(cmd::images::Args),
    /// Show an image's history with layer sizes.
    History(cmd::history::Args),
    /// Show an image as JSON.
    Inspect(cmd::inspect::Args),
    /// Write a container's or an image's filesystem as one tar.
    ///
    /// A container (name, ID or unique ID prefix) is looked for first, like `docker export`;
    /// when none matches, the argument names an image. NAME:TAG, NAME@DIGEST and sha256:ID
    /// always name images.
    Export(cmd::export::Args),
    /// Make an image from a container's changes: one more layer on its image.
    Commit(cmd::commit::Args),
    /// Give an image another name.
    Tag(cmd::tag::Args),
    /// Remove image tags (and images left without one).
    Rmi(cmd::rmi::Args),
    /// Remove blobs and snapshots no image uses.
    Prune(cmd::prune::Args),
    /// Verify every blob and reference in the store.
    Check(cmd::check::Args),
    /// Run a command in a new container from an image.
    Run(Box<cmd::run::Args>),
    /// List containers.
    Ps(cmd::ps::Args),
    /// Remove containers.
    Rm(cmd::rm::Args),
    /// Print a detached container's output (`tare run -d`).
    Logs(cmd::detach::LogsArgs),
    /// Stop running containers: the image's STOPSIGNAL, then SIGKILL after -t seconds.
    Stop(cmd::detach::StopArgs),
    /// Wait for containers to exit and print their exit codes.
    Wait(cmd::detach::WaitArgs),
    /// Run a command in a running container (its namespaces, environment and user).
    Exec(cmd::exec::Args),
    /// Pull an image from a registry into the store.
    Pull(cmd::pull::Args),
    /// Push an image from the store to a registry.
    Push(cmd::push::Args),
    /// Log in to a registry (credentials are checked, then saved for pull and push).
    Login(cmd::login::Args),
    /// Forget the credentials saved by `tare login`.
    Logout(cmd::logout::Args),
    /// Manage images (docker's `image ls|rm|prune|inspect|history|tag|save|load|...`).
    #[command(subcommand)]
    Image(cmd::manage::ImageCommand),
    /// Manage containers (docker's `container ls|rm|run|export|commit|prune`).
    #[command(subcommand)]
    Container(cmd::manage::ContainerCommand),
    /// Manage the build cache (docker's `builder prune`).
    #[command(subcommand)]
    Builder(cmd::manage::BuilderCommand),
    /// The store as a whole (docker's `system prune`).
    #[command(subcommand)]
    System(cmd::manage::SystemCommand),
    /// A build cache in a registry (`build --cache-to type=registry`): ls, prune.
    #[command(subcommand)]
    Cache(cmd::cache::CacheCommand),
    /// Print a shell completion script (`tare completion bash > /etc/bash_completion.d/tare`).
    Completion(cmd::completion::Args),
    /// Write the man pages into a directory (`tare man /usr/local/share/man/man1`).
    Man(cmd::completion::ManArgs),
    /// Show how tare runs here: user, ID mapping, overlay, network, seccomp, cgroups, store,
    /// and what blocks rootless use with its fix.
    Info(cmd::info::Args),
    /// Show which foreign architectures RUN steps can execute through QEMU; --install
    /// registers Debian's qemu-user-static handlers (with the F flag containers need).
    Binfmt(cmd::binfmt::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Before anything starts a thread: a non-root user moves into a user namespace of its
    // own here (rootless tare, see tare_sandbox::userns). `tare info` reports on it instead,
    // and `tare exec` joins the running container's user namespace instead, once it knows the
    // container (tare_sandbox::join_user_namespace): a namespace of its own would have no
    // rights over the container's.
    if !matches!(cli.command, Command::Info(_) | Command::Exec(_)) {
        if let Err(err) = tare_sandbox::userns::enter() {
            return report(&anyhow::Error::new(err));
        }
    }
    init_tracing(cli.verbose);
    if let Some(r) = tare_sandbox::userns::rootless() {
        tracing::info!(
            user = %r.user,
            subordinate = r.subordinate,
            "rootless: running in a user namespace ({}); the first RUN step says which \
             snapshots are used (`tare info` probes overlayfs)",
            if r.subordinate { "subordinate ID range" } else { "single-ID mapping" }
        );
    }
    let ctx = Context::new(cli.root);
    let result = match cli.command {
        Command::Debug(c) => cmd::debug::run(&ctx, c),
        Command::Analyze(a) => cmd::analyze::run(&ctx, a),
        Command::Lint(a) => cmd::lint::run(&ctx, a),
        Command::Diff(a) => cmd::diff::run(&ctx, a),
        Command::Squash(a) => cmd::squash::run(&ctx, a),
        Command::Slim(a) => cmd::slim::run(&ctx, a),
        Command::Build(a) => cmd::build::run(&ctx, *a),
        Command::Import(a) => cmd::import::run(&ctx, a),
        Command::Load(a) => cmd::load::run(&ctx, a),
        Command::Save(a) => cmd::save::run(&ctx, a),
        Command::Images(a) => cmd::images::run(&ctx, a),
        Command::History(a) => cmd::history::run(&ctx, a),
        Command::Inspect(a) => cmd::inspect::run(&ctx, a),
        Command::Export(a) => cmd::export::run(&ctx, a),
        Command::Commit(a) => cmd::commit::run(&ctx, a),
        Command::Tag(a) => cmd::tag::run(&ctx, a),
        Command::Rmi(a) => cmd::rmi::run(&ctx, a),
        Command::Prune(a) => cmd::prune::run(&ctx, a),
        Command::Check(a) => cmd::check::run(&ctx, a),
        Command::Run(a) => cmd::run::run(&ctx, *a),
        Command::Ps(a) => cmd::ps::run(&ctx, a),
        Command::Rm(a) => cmd::rm::run(&ctx, a),
        Command::Logs(a) => cmd::detach::logs(&ctx, a),
        Command::Stop(a) => cmd::detach::stop(&ctx, a),
        Command::Wait(a) => cmd::detach::wait(&ctx, a),
        Command::Exec(a) => cmd::exec::run(&ctx, a),
        Command::Pull(a) => cmd::pull::run(&ctx, a),
        Command::Push(a) => cmd::push::run(&ctx, a),
        Command::Login(a) => cmd::login::run(&ctx, a),
        Command::Logout(a) => cmd::logout::run(&ctx, a),
        Command::Image(c) => cmd::manage::image(&ctx, c),
        Command::Container(c) => cmd::manage::container(&ctx, c),
        Command::Builder(c) => cmd::manage::builder(&ctx, c),
        Command::System(c) => cmd::manage::system(&ctx, c),
        Command::Cache(c) => cmd::cache::run(c),
        Command::Completion(a) => cmd::completion::run(Cli::command(), a),
        Command::Man(a) => cmd::completion::man(Cli::command(), a),
        Command::Info(a) => cmd::info::run(&ctx, a),
        Command::Binfmt(a) => cmd::binfmt::run(&ctx, a),
    };
    match result {
        Ok(code) => code,
        Err(err) => report(&err),
    }
}

/// Prints an error chain as `error: ...` lines and picks the exit code.
///
/// A closed stdout (`tare images | head -1`) is not a failure: exit 0 like other Unix tools.
fn report(err: &anyhow::Error) -> ExitCode {
    if err.chain().any(|cause| {
        let kind = match cause.downcast_ref::<std::io::Error>() {
            Some(e) => Some(e.kind()),
            // serde_json's writers wrap the io error without exposing it as a source.
            None => cause
                .downcast_ref::<serde_json::Error>()
                .and_then(serde_json::Error::io_error_kind),
        };
        kind == Some(std::io::ErrorKind::BrokenPipe)
    }) {
        return ExitCode::SUCCESS;
    }
    let mut stderr = std::io::stderr().lock();
    let mut first = true;
    for cause in err.chain() {
        let text = cause.to_string();
        // miette-rendered diagnostics arrive pre-formatted over several lines.
        if first {
            let _ = writeln!(stderr, "error: {text}");
        } else {
            let _ = writeln!(stderr, "  caused by: {text}");
        }
        first = false;
    }
    if let Some(snippet) = dockerfile_snippet(err) {
        let _ = writeln!(stderr, "{snippet}");
    }
    ExitCode::from(1)
}

/// The offending Dockerfile lines with the error's label under them, when a cause of `err`
/// is a located Dockerfile error (from `tare build`, `tare lint`, `tare debug`, ...).
fn dockerfile_snippet(err: &anyhow::Error) -> Option<String> {
    err.chain().find_map(|cause| {
        // Behind a transparent variant the Dockerfile error is not a cause of its own.
        let e = if let Some(tare_build::Error::Dockerfile(e)) = cause.downcast_ref() {
            e
        } else if let Some(tare_size::Error::Dockerfile(e)) = cause.downcast_ref() {
            e
        } else {
            cause.downcast_ref::<tare_dockerfile::Error>()?
        };
        e.snippet()
    })
}

fn init_tracing(verbose: u8) {
    use tracing_subscriber::EnvFilter;
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .without_time()
        .init();
}
