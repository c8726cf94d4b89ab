//! Detached containers without a daemon: `tare run -d` starts a supervising `tare run` in a
//! session of its own, whose output goes to the container's log file; `tare logs`, `stop` and
//! `wait` work from the container's record and that file.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write as _};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args as ClapArgs;
use tare_sandbox::containers::{stop_signal, Container, Containers, Status};

use crate::{outln, Context};

/// The environment variable that makes a `tare run` the supervisor of an existing container.
pub(crate) const SUPERVISE_ENV: &str = "TARE_SUPERVISE";

/// How long `tare run -d` waits for its supervisor to start the container.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Starts the supervisor: this same `tare` with the same arguments, in the background, with
/// [`SUPERVISE_ENV`] naming the container. Prints the ID once the supervisor owns the
/// container and has started it, like `docker run -d`. A command that cannot be executed is not an error here
/// (docker's is): the container exits with 127 and `tare logs` says why.
pub(crate) fn start(containers: &Containers, record: &Container) -> anyhow::Result<ExitCode> {
    let log_path = containers.log_path(&record.id);
    let log = File::options()
        .create_new(true)
        .write(true)
        .open(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut child = Command::new("/proc/self/exe")
        .args(std::env::args_os().skip(1))
        .env(SUPERVISE_ENV, &record.id)
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file")?)
        .stderr(log)
        .spawn()
        .context("starting the container's supervisor")?;
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        let now = containers.load(&record.id)?;
        // Started: its first process exists (`tare exec` can join it), or it has ended.
        let started = now.owner_pid.is_some() && containers.pid_path(&record.id).exists();
        if started || now.exit_code.is_some() {
            break;
        }
        if let Some(status) = child.try_wait()? {
            // It ended before adopting the container: its error is in the log.
            let _ = containers.remove(&now);
            bail!(
                "the container's supervisor failed ({status}): {}",
                log_head(&log_path).trim()
            );
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            bail!("the container's supervisor did not start it within {START_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    outln!("{}", record.id);
    Ok(ExitCode::SUCCESS)
}

/// The first 64 KiB of a log, for an error message.
fn log_head(path: &std::path::Path) -> String {
    let mut head = Vec::new();
    if let Ok(f) = File::open(path) {
        let _ = f.take(64 << 10).read_to_end(&mut head);
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// The supervisor takes over the container `tare run -d` made for it.
pub(crate) fn adopt(containers: &Containers, id: &str) -> anyhow::Result<Container> {
    let mut record = containers
        .load(id)
        .with_context(|| format!("{SUPERVISE_ENV}={id}: no such container"))?;
    if record.status() != Status::Created {
        bail!("{SUPERVISE_ENV}={id}: the container was already started");
    }
    record.owner_pid = Some(std::process::id());
    containers.save(&record)?;
    Ok(record)
}

#[derive(ClapArgs, Debug)]
pub struct LogsArgs {
    /// Keep printing new output until the container exits.
    #[arg(short, long)]
    follow: bool,
    /// Print only the last N lines (`all` for everything).
    #[arg(short = 'n', long, value_name = "N", default_value = "all")]
    tail: String,
    /// The container: name, ID or unique ID prefix.
    container: String,
}

/// `tare logs`: the output of a detached container (stdout and stderr, interleaved).
pub fn logs(ctx: &Context, args: LogsArgs) -> anyhow::Result<ExitCode> {
    let containers = Containers::open(&ctx.root)?;
    let tail: Option<usize> = match args.tail.as_str() {
        "all" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("bad --tail {n:?}: a number or all"))?,
        ),
    };
    let record = containers.find(&args.container)?;
    let path = containers.log_path(&record.id);
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "container {} was not started with -d: tare keeps the output of detached \
             containers only",
            args.container
        ),
        Err(e) => return Err(e).with_context(|| format!("opening {}", path.display())),
    };
    // The log is the container's to fill: stream it, never hold it in memory. Without
    // --follow the output ends where the log ended when `logs` looked, so `--tail N` prints N
    // lines even while the container keeps writing.
    let end = file
        .seek(SeekFrom::End(0))
        .with_context(|| format!("reading {}", path.display()))?;
    let start = match tail {
        None => 0,
        Some(n) => {
            tail_start(&mut file, n).with_context(|| format!("reading {}", path.display()))?
        }
    };
    file.seek(SeekFrom::Start(start))?;
    let mut out = std::io::stdout().lock();
    if !args.follow {
        std::io::copy(&mut (&mut file).take(end.saturating_sub(start)), &mut out)?;
        out.flush()?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut offset = start + std::io::copy(&mut file, &mut out)?;
    out.flush()?;
    loop {
        let running = containers.load(&record.id)?.status() == Status::Running;
        file.seek(SeekFrom::Start(offset))?;
        offset += std::io::copy(&mut file, &mut out)?;
        out.flush()?;
        if !running {
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The offset where the last `n` lines of a file start, read backwards in blocks.
fn tail_start<R: Read + Seek>(file: &mut R, n: usize) -> std::io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    if n == 0 {
        return Ok(len);
    }
    let mut end = len;
    let mut seen = 0;
    // A final newline ends the last line rather than starting an empty one.
    let mut skip_final = true;
    let mut block = vec![0u8; 64 << 10];
    while end > 0 {
        let size = (end as usize).min(block.len());
        let begin = end - size as u64;
        file.seek(SeekFrom::Start(begin))?;
        file.read_exact(&mut block[..size])?;
        for i in (0..size).rev() {
            if block[i] != b'\n' {
                skip_final = false;
                continue;
            }
            if std::mem::take(&mut skip_final) && begin + i as u64 == len - 1 {
                continue;
            }
            seen += 1;
            if seen == n {
                return Ok(begin + i as u64 + 1);
            }
        }
        end = begin;
    }
    Ok(0)
}

#[derive(ClapArgs, Debug)]
pub struct StopArgs {
    /// Seconds to wait after the stop signal before killing.
    #[arg(short = 't', long = "time", default_value_t = 10)]
    time: u64,
    /// Containers: names, IDs or unique ID prefixes.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `tare stop`: the image's STOPSIGNAL (SIGTERM by default), then SIGKILL after `-t`.
pub fn stop(ctx: &Context, args: StopArgs) -> anyhow::Result<ExitCode> {
    let containers = Containers::open(&ctx.root)?;
    let store = ctx.store()?;
    for key in &args.containers {
        let record = containers.find(key)?;
        if record.status() == Status::Running {
            let name = store
                .resolve(&record.image_id)
                .ok()
                .and_then(|img| img.config.config.stop_signal.clone())
                .unwrap_or_else(|| "SIGTERM".to_string());
            let signal = stop_signal(&name)
                .with_context(|| format!("stopping {key}: the image's STOPSIGNAL"))?;
            if signal != libc_sigkill() {
                containers.signal(&record, signal)?;
            }
            if containers
                .wait(&record.id, Some(Duration::from_secs(args.time)))?
                .is_none()
            {
                containers
                    .kill(&record)
                    .with_context(|| format!("killing {key}"))?;
            }
        }
        outln!("{key}");
    }
    Ok(ExitCode::SUCCESS)
}

fn libc_sigkill() -> i32 {
    stop_signal("KILL").unwrap_or(9)
}

#[derive(ClapArgs, Debug)]
pub struct WaitArgs {
    /// Containers: names, IDs or unique ID prefixes.
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `tare wait`: blocks until each container exits, and prints its exit code.
pub fn wait(ctx: &Context, args: WaitArgs) -> anyhow::Result<ExitCode> {
    let containers = Containers::open(&ctx.root)?;
    for key in &args.containers {
        let record = containers.find(key)?;
        let done = containers
            .wait(&record.id, None)?
            .context("waiting for the container")?;
        match done.status() {
            Status::Exited { code, .. } => outln!("{code}"),
            // Never started: docker waits for it to run; tare cannot start it later.
            Status::Created => bail!("container {key} was created but never started"),
            Status::Running => unreachable!("wait returns once the container stops running"),
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_counts_lines_from_the_end() {
        let start = |text: &[u8], n| {
            let mut c = std::io::Cursor::new(text.to_vec());
            let at = tail_start(&mut c, n).unwrap() as usize;
            text[at..].to_vec()
        };
        assert_eq!(start(b"a\nb\nc\n", 2), b"b\nc\n");
        assert_eq!(start(b"a\nb\nc\n", 5), b"a\nb\nc\n");
        assert_eq!(start(b"a\nb\nc\n", 0), b"");
        assert_eq!(start(b"x\ny", 1), b"y");
        // Lines longer than a block, and a blank last line.
        let long = [
            vec![b'x'; 100_000],
            b"\n".to_vec(),
            vec![b'y'; 70_000],
            b"\n\n".to_vec(),
        ]
        .concat();
        assert_eq!(start(&long, 1), b"\n");
        assert_eq!(start(&long, 2).len(), 70_002);
    }
}
