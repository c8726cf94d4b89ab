//! `RUN --mount=type=secret` and `RUN --mount=type=ssh`: the build's secrets and ssh agents.
//!
//! - `tare build --secret id=ID[,src=PATH|,env=VAR]` ([`SecretSpec`]) says where a secret's
//!   value is; the value itself is read only when a step mounts it, written to a file in the
//!   step's own 0700 directory in the store's temporary area, bind-mounted read-only into the
//!   step (default `/run/secrets/ID`, mode 0400, owner 0:0) and removed with that directory
//!   when the step ends. `env=NAME` on the mount gives it to the step's process as a variable
//!   instead of (or besides) a file. The mount point the sandbox made is removed from the
//!   step's upper directory ([`tare_sandbox::RunSpec::remove_mount_points`]), as BuildKit
//!   removes its mount stubs, so the layer holds no `/run/secrets/ID`.
//! - A value is never in a [`crate::BuildOptions`] (so never in a `Debug` print of it), the
//!   step's cache key (only the mount's id and target are), the history, the progress output
//!   or an error message: errors name the secret's id and its source path or variable, never
//!   what was read.
//! - `tare build --ssh ID[=SOCKET|KEY[,KEY...]]` ([`SshSpec`]): a running agent's socket, or
//!   key files loaded into an `ssh-agent` that tare starts for the build and kills after it
//!   ([`Agents`]). A step's ssh mount gets a socket of its own (owner and mode from the
//!   mount, default 0:0 and 0600) that relays to the agent, so the agent's own socket is
//!   neither exposed nor changed; `SSH_AUTH_SOCK` names the first ssh mount, as in BuildKit.

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tare_dockerfile::{Mount, MountKind};
use tare_sandbox::BindMount;

use crate::error::{io_err, Error};

/// The largest secret BuildKit accepts (500 KiB); a bigger source is refused, and reading
/// stops there, so `/dev/zero` or a huge file cannot exhaust memory.
pub const MAX_SECRET_SIZE: u64 = 500 * 1024;

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file's content (`src=PATH`).
    File(PathBuf),
    /// An environment variable's value (`env=VAR`).
    Env(String),
}

/// One `--secret`: the id steps ask for and where its value is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretSpec {
    /// The id `RUN --mount=type=secret,id=ID` asks for.
    pub id: String,
    /// Where the value is read when a step mounts it.
    pub source: SecretSource,
}

impl SecretSpec {
    /// Docker's forms: `id=ID,src=PATH` (`source=`), `id=ID,env=VAR`, with an optional
    /// `type=file|env` (`type=env,id=X` reads the variable X); a bare `id=X` reads the
    /// variable X when it is set, else the file X.
    pub fn parse(text: &str) -> Result<SecretSpec, Error> {
        let bad = |reason: String| Error::BadOption {
            flag: "--secret",
            value: format!("{text:?}"),
            reason,
        };
        let (mut kind, mut id, mut src, mut env) = (None, None, None, None);
        for field in text.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = field
                .split_once('=')
                .ok_or_else(|| bad(format!("field {field:?} must be a key=value pair")))?;
            match key.to_ascii_lowercase().as_str() {
                "type" => match value {
                    "file" | "env" => kind = Some(value.to_string()),
                    other => return Err(bad(format!("unsupported secret type {other:?}"))),
                },
                "id" => id = Some(value.to_string()),
                "src" | "source" => src = Some(value.to_string()),
                "env" => env = Some(value.to_string()),
                other => return Err(bad(format!("unexpected key {other:?}"))),
            }
        }
        let id = match id.filter(|i| !i.is_empty()) {
            Some(id) => id,
            None => match &src {
                Some(s) => Path::new(s)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| bad("no id".into()))?,
                None => return Err(bad("an id is required".into())),
            },
        };
        let source = match (kind.as_deref(), src, env) {
            (_, Some(_), Some(_)) => return Err(bad("src and env are exclusive".into())),
            (Some("env"), Some(var), None) | (_, None, Some(var)) => SecretSource::Env(var),
            (Some("env"), None, None) => SecretSource::Env(id.clone()),
            (_, Some(path), None) => SecretSource::File(path.into()),
            (Some(_), None, None) => SecretSource::File(id.clone().into()),
            (None, None, None) => {
                if std::env::var_os(&id).is_some() {
                    SecretSource::Env(id.clone())
                } else {
                    SecretSource::File(id.clone().into())
                }
            }
        };
        if let SecretSource::File(p) = &source {
            if p.as_os_str().is_empty() {
                return Err(bad("empty src".into()));
            }
        }
        Ok(SecretSpec { id, source })
    }

    /// The value, read with a bound. The error names the id and the source, not the value.
    fn read(&self) -> Result<Vec<u8>, Error> {
        let id = &self.id;
        match &self.source {
            SecretSource::Env(var) => {
                use std::os::unix::ffi::OsStringExt;
                let value = std::env::var_os(var).ok_or_else(|| Error::Secret {
                    id: id.clone(),
                    reason: format!("the environment variable {var} is not set"),
                })?;
                let value = value.into_vec();
                if value.len() as u64 > MAX_SECRET_SIZE {
                    return Err(too_big(id));
                }
                Ok(value)
            }
            SecretSource::File(path) => {
                // Non-blocking, so a FIFO cannot hang the build; symbolic links are followed
                // (the user named the path, as with docker), but only a regular file is read.
                let file = std::fs::OpenOptions::new()
                    .read(true)
                    .custom_flags(libc_nonblock())
                    .open(path)
                    .map_err(|e| Error::Secret {
                        id: id.clone(),
                        reason: format!("cannot open {}: {e}", path.display()),
                    })?;
                let meta = file.metadata().map_err(io_err(path))?;
                if !meta.file_type().is_file() {
                    return Err(Error::Secret {
                        id: id.clone(),
                        reason: format!("{} is not a regular file", path.display()),
                    });
                }
                let mut value = Vec::new();
                file.take(MAX_SECRET_SIZE + 1)
                    .read_to_end(&mut value)
                    .map_err(io_err(path))?;
                if value.len() as u64 > MAX_SECRET_SIZE {
                    return Err(too_big(id));
                }
                Ok(value)
            }
        }
    }
}

fn too_big(id: &str) -> Error {
    Error::TooLarge {
        what: format!("secret {id:?}"),
        limit: MAX_SECRET_SIZE,
    }
}

fn libc_nonblock() -> i32 {
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

/// Where an ssh id's agent is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SshSource {
    /// A running agent's socket.
    Socket(PathBuf),
    /// Private key files, loaded into an agent tare starts.
    Keys(Vec<PathBuf>),
}

/// One `--ssh`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshSpec {
    /// The id `RUN --mount=type=ssh,id=ID` asks for (`default` when not given).
    pub id: String,
    /// The agent to forward.
    pub source: SshSource,
}

impl SshSpec {
    /// `default` (the caller's `$SSH_AUTH_SOCK`), `ID=SOCKET` or `ID=KEY[,KEY...]`.
    pub fn parse(text: &str) -> Result<SshSpec, Error> {
        let bad = |reason: String| Error::BadOption {
            flag: "--ssh",
            value: format!("{text:?}"),
            reason,
        };
        let (id, paths) = match text.split_once('=') {
            Some((id, paths)) => (id, Some(paths)),
            None => (text, None),
        };
        if id.is_empty() || id.contains(',') {
            return Err(bad("expected ID[=SOCKET|KEY[,KEY...]]".into()));
        }
        let paths: Vec<PathBuf> = match paths {
            Some(p) => p
                .split(',')
                .filter(|p| !p.is_empty())
                .map(PathBuf::from)
                .collect(),
            None => {
                let sock = std::env::var_os("SSH_AUTH_SOCK")
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| bad("SSH_AUTH_SOCK is not set".into()))?;
                vec![PathBuf::from(sock)]
            }
        };
        if paths.is_empty() {
            return Err(bad("no socket or key given".into()));
        }
        let is_socket = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.file_type().is_socket())
                .unwrap_or(false)
        };
        let source = if paths.len() == 1 && is_socket(&paths[0]) {
            SshSource::Socket(paths[0].clone())
        } else {
            for p in &paths {
                if is_socket(p) {
                    return Err(bad(format!(
                        "{} is a socket: give one socket or key files",
                        p.display()
                    )));
                }
                if !p.is_file() {
                    return Err(bad(format!(
                        "{} is neither an agent socket nor a key file",
                        p.display()
                    )));
                }
            }
            SshSource::Keys(paths)
        };
        Ok(SshSpec {
            id: id.to_string(),
            source,
        })
    }
}

/// The build's ssh agents by id: the sockets given, and the `ssh-agent`s started for key
/// files (killed when this is dropped, at the end of the build).
pub(crate) struct Agents {
    sockets: BTreeMap<String, PathBuf>,
    started: Vec<Child>,
    _dir: Option<tare_store::TempDir>,
}

/// How long a started `ssh-agent` may take to create its socket.
const AGENT_START: Duration = Duration::from_secs(10);

impl Agents {
    pub fn start(store: &tare_store::Store, specs: &[SshSpec]) -> Result<Agents, Error> {
        let mut agents = Agents {
            sockets: BTreeMap::new(),
            started: Vec::new(),
            _dir: None,
        };
        for spec in specs {
            let socket = match &spec.source {
                SshSource::Socket(path) => path.clone(),
                SshSource::Keys(keys) => {
                    if agents._dir.is_none() {
                        let dir = store.temp_dir("ssh-")?;
                        restrict(dir.path())?;
                        agents._dir = Some(dir);
                    }
                    let dir = agents._dir.as_ref().map(|d| d.path().to_path_buf());
                    let socket = dir
                        .unwrap_or_default()
                        .join(format!("agent.{}", agents.started.len()));
                    agents.start_agent(&spec.id, &socket, keys)?;
                    socket
                }
            };
            agents.sockets.insert(spec.id.clone(), socket);
        }
        Ok(agents)
    }

    fn start_agent(&mut self, id: &str, socket: &Path, keys: &[PathBuf]) -> Result<(), Error> {
        let failed = |reason: String| Error::BadOption {
            flag: "--ssh",
            value: id.to_string(),
            reason,
        };
        // Under `setpriv --pdeathsig KILL` (util-linux) when there is one, so that the agent
        // ends with tare even when tare is killed.
        let mut cmd = match which("setpriv") {
            Some(setpriv) => {
                let mut c = Command::new(setpriv);
                c.args(["--pdeathsig", "KILL", "--", "ssh-agent"]);
                c
            }
            None => Command::new("ssh-agent"),
        };
        let child = cmd
            .arg("-D")
            .arg("-a")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| failed(format!("cannot start ssh-agent (openssh-client): {e}")))?;
        self.started.push(child);
        let began = Instant::now();
        while !socket.exists() {
            if began.elapsed() > AGENT_START {
                return Err(failed("ssh-agent did not create its socket".into()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for key in keys {
            let out = Command::new("ssh-add")
                .arg(key)
                .env("SSH_AUTH_SOCK", socket)
                .env_remove("SSH_ASKPASS")
                .env_remove("DISPLAY")
                .stdin(Stdio::null())
                .output()
                .map_err(|e| failed(format!("cannot run ssh-add: {e}")))?;
            if !out.status.success() {
                return Err(failed(format!(
                    "ssh-add {} failed: {}",
                    key.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(())
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for child in &mut self.started {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `program` in PATH.
fn which(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn restrict(dir: &Path) -> Result<(), Error> {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(io_err(dir))
}

/// What a step's secret and ssh mounts add to its run: bind mounts, environment entries,
/// and the relays of its agent sockets (stopped when this is dropped).
#[derive(Default)]
pub(crate) struct StepSecrets {
    pub binds: Vec<BindMount>,
    pub env: Vec<String>,
    relays: Vec<Relay>,
}

impl std::fmt::Debug for StepSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The environment holds secret values.
        f.debug_struct("StepSecrets")
            .field("binds", &self.binds)
            .field("env", &format_args!("<{} entries>", self.env.len()))
            .finish()
    }
}

/// The sources of a build's secrets and ssh agents, as a step needs them.
pub(crate) struct Sources<'a> {
    pub secrets: &'a [SecretSpec],
    pub agents: &'a Agents,
}

/// Prepares the secret and ssh mounts among `mounts` (the other kinds are left to the
/// caller). `dir` is the step's private directory (made 0700 here); `workdir` resolves a
/// relative target; `image_env` is the step's environment, to leave an `SSH_AUTH_SOCK` it
/// sets alone.
pub(crate) fn prepare(
    sources: &Sources<'_>,
    mounts: &[Mount],
    dir: &Path,
    workdir: &str,
    image_env: &[String],
) -> Result<StepSecrets, Error> {
    let mut out = StepSecrets::default();
    if !mounts
        .iter()
        .any(|m| matches!(m.kind, MountKind::Secret | MountKind::Ssh))
    {
        return Ok(out);
    }
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    restrict(dir)?;
    let mut ssh_index = 0usize;
    for (n, m) in mounts.iter().enumerate() {
        match m.kind {
            MountKind::Secret => secret(
                sources,
                m,
                &dir.join(format!("secret.{n}")),
                workdir,
                &mut out,
            )?,
            MountKind::Ssh => {
                ssh(
                    sources,
                    m,
                    &dir.join(format!("ssh.{n}")),
                    workdir,
                    ssh_index,
                    image_env,
                    &mut out,
                )?;
                ssh_index += 1;
            }
            _ => {}
        }
    }
    Ok(out)
}

fn secret(
    sources: &Sources<'_>,
    m: &Mount,
    file: &Path,
    workdir: &str,
    out: &mut StepSecrets,
) -> Result<(), Error> {
    let id = m.id.clone().unwrap_or_default();
    let Some(spec) = sources.secrets.iter().rev().find(|s| s.id == id) else {
        if m.required {
            return Err(Error::Secret {
                reason: format!("required but not given (tare build --secret id={id},src=PATH)"),
                id,
            });
        }
        return Ok(());
    };
    let value = spec.read()?;
    if let Some(var) = &m.env {
        if var.is_empty() || var.contains('=') || var.contains('\0') {
            return Err(Error::Secret {
                id,
                reason: format!("invalid variable name {var:?}"),
            });
        }
        if value.contains(&0) {
            return Err(Error::Secret {
                id,
                reason: "contains a NUL byte and cannot be an environment variable".into(),
            });
        }
        let value = String::from_utf8(value.clone()).map_err(|_| Error::Secret {
            id: id.clone(),
            reason: "not UTF-8, so it cannot be an environment variable".into(),
        })?;
        out.env.push(format!("{var}={value}"));
    }
    if m.target.is_empty() {
        return Ok(());
    }
    write_private(file, &value, m.mode.unwrap_or(0o400), m.uid, m.gid)?;
    out.binds.push(BindMount {
        source: file.to_path_buf(),
        target: container_path(workdir, &m.target),
        readonly: true,
    });
    Ok(())
}

/// Writes `value` to a new file (never through an existing one), then sets its owner and mode.
fn write_private(
    file: &Path,
    value: &[u8],
    mode: u32,
    uid: Option<u32>,
    gid: Option<u32>,
) -> Result<(), Error> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(io_err(file))?;
    f.write_all(value).map_err(io_err(file))?;
    own(file, mode, uid, gid)
}

fn own(path: &Path, mode: u32, uid: Option<u32>, gid: Option<u32>) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(uid.unwrap_or(0)), Some(gid.unwrap_or(0)))
        .map_err(io_err(path))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & 0o7777))
        .map_err(io_err(path))
}

fn ssh(
    sources: &Sources<'_>,
    m: &Mount,
    socket: &Path,
    workdir: &str,
    index: usize,
    image_env: &[String],
    out: &mut StepSecrets,
) -> Result<(), Error> {
    let id =
        m.id.clone()
            .filter(|i| !i.is_empty())
            .unwrap_or_else(|| "default".into());
    let Some(agent) = sources.agents.sockets.get(&id) else {
        if m.required {
            return Err(Error::NoSshAgent { id });
        }
        return Ok(());
    };
    // The parser gives every ssh mount without a target BuildKit's first default; the
    // others are numbered in order, as BuildKit does.
    let target = if m.target == "/run/buildkit/ssh_agent.0" {
        format!("/run/buildkit/ssh_agent.{index}")
    } else {
        container_path(workdir, &m.target)
    };
    let relay = Relay::start(socket, agent)?;
    own(socket, m.mode.unwrap_or(0o600), m.uid, m.gid)?;
    out.relays.push(relay);
    if index == 0 && !image_env.iter().any(|e| e.starts_with("SSH_AUTH_SOCK=")) {
        out.env.push(format!("SSH_AUTH_SOCK={target}"));
    }
    out.binds.push(BindMount {
        source: socket.to_path_buf(),
        target,
        readonly: false,
    });
    Ok(())
}

/// An absolute, clean container path: relative targets are under the working directory, and
/// `..` stops at the root (BuildKit cleans them the same way).
fn container_path(workdir: &str, target: &str) -> String {
    tare_layer::path::clean_in(workdir, target)
}

/// A socket of the step's own that forwards each connection to an agent's socket, until
/// dropped.
struct Relay {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(socket: &Path, agent: &Path) -> Result<Relay, Error> {
        let listener = UnixListener::bind(socket).map_err(io_err(socket))?;
        listener.set_nonblocking(true).map_err(io_err(socket))?;
        let stop = Arc::new(AtomicBool::new(false));
        let agent = agent.to_path_buf();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tare-ssh-relay".into())
            .spawn(move || {
                while !flag.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let _ = client.set_nonblocking(false);
                            if let Ok(upstream) = UnixStream::connect(&agent) {
                                splice(client, upstream);
                            }
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
            })
            .map_err(|source| Error::Thread {
                what: "the ssh relay",
                source,
            })?;
        Ok(Relay {
            stop,
            thread: Some(thread),
        })
    }
}

/// Copies both ways between two connected sockets, each direction in a thread of its own.
fn splice(a: UnixStream, b: UnixStream) {
    let pairs = match (a.try_clone(), b.try_clone()) {
        (Ok(a2), Ok(b2)) => [(a, b2), (b, a2)],
        _ => return,
    };
    for (mut from, mut to) in pairs {
        let _ = std::thread::Builder::new()
            .name("tare-ssh-copy".into())
            .spawn(move || {
                let _ = std::io::copy(&mut from, &mut to);
                let _ = to.shutdown(std::net::Shutdown::Write);
            });
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_forms_follow_docker() {
        let s = SecretSpec::parse("id=tok,src=/x/y").unwrap();
        assert_eq!(s.source, SecretSource::File("/x/y".into()));
        let s = SecretSpec::parse("id=tok,env=VAR").unwrap();
        assert_eq!(s.source, SecretSource::Env("VAR".into()));
        let s = SecretSpec::parse("type=env,id=TOK_VAR").unwrap();
        assert_eq!(s.source, SecretSource::Env("TOK_VAR".into()));
        let s = SecretSpec::parse("type=file,id=a,source=/f").unwrap();
        assert_eq!(
            (s.id.as_str(), s.source),
            ("a", SecretSource::File("/f".into()))
        );
        let s = SecretSpec::parse("src=/dir/name.txt").unwrap();
        assert_eq!(s.id, "name.txt");
        assert!(SecretSpec::parse("id=a,src=/f,env=V").is_err());
        assert!(SecretSpec::parse("type=bogus,id=a").is_err());
        assert!(SecretSpec::parse("id=a,what=1").is_err());
    }

    #[test]
    fn targets_are_clean_absolute_paths() {
        assert_eq!(container_path("/w", "/run/secrets/../../etc/x"), "/etc/x");
        assert_eq!(container_path("/w", "../../../a"), "/a");
        assert_eq!(container_path("/w", "s"), "/w/s");
    }
}
