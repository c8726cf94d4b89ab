//! Container records: what `tare run` keeps of a container without `--rm`, for `tare ps`,
//! `tare rm`, `tare export` and `tare commit`.
//!
//! Layout under the store root:
//!
//! ```text
//! containers/<id>/container.json   the record (below)
//! containers/<id>/diff/            the container's writable layer (overlay upper directory)
//! containers/<id>/work/            overlayfs's work directory
//! containers/<id>/rootfs/          the merged copy of the image a container on copy-based
//!                                  snapshots runs on (while it runs)
//! containers/<id>/rootfs.stamps    what identified each path of the copy when it started
//! containers/<id>/changes-XXXXXX/  a running copy's changes as hard links, while read
//! containers/names/<name>          an empty file reserving a name (created with O_EXCL)
//! ```
//!
//! The container's filesystem is the image's layers (`image_layers`, diffIDs, bottom first)
//! with `diff/` on top, in overlay format (whiteouts as 0/0 character devices, opaque
//! directories with the `trusted.overlay.opaque` attribute).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Error;

/// One container.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Container {
    /// 64 hexadecimal digits; `ps` shows the first 12.
    pub id: String,
    /// `--name`, or a generated `adjective_name` as Docker makes them.
    pub name: String,
    /// The image as the user named it.
    pub image: String,
    /// The image's id (`sha256:...` of its config).
    pub image_id: String,
    /// The image's layers as diffIDs, bottom first.
    pub image_layers: Vec<String>,
    /// The command line that ran (entrypoint and command combined).
    pub command: Vec<String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// The tare process that runs the container while it runs.
    pub owner_pid: Option<u32>,
    /// Set when the container has exited.
    pub exit_code: Option<i32>,
    /// Seconds since the epoch, when exited.
    pub finished: Option<u64>,
    /// What `tare exec` starts from (records written before it existed have the defaults).
    #[serde(default)]
    pub exec: ExecDefaults,
}

/// The container's settings a `tare exec` process inherits, as docker's exec does: the
/// environment, user and working directory of the container's process, and its confinement.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecDefaults {
    /// The container process's environment (`KEY=VALUE`).
    pub env: Vec<String>,
    /// The container's `--user` (or the image's USER); `None` is root.
    pub user: Option<String>,
    /// The container's working directory; `None` is `/`.
    pub workdir: Option<String>,
    /// Started with `--security-opt seccomp=unconfined`.
    pub seccomp_unconfined: bool,
    /// Started with `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// Started through an OCI runtime (`--runtime`): tare cannot join it.
    pub runtime: Option<String>,
}

/// A container's state as `ps` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Recorded, never started (or its owner has not started it yet).
    Created,
    /// Its owning tare process is alive.
    Running,
    /// Ended (137 when its owner died without recording the code).
    Exited {
        /// The exit code (128 + signal number when killed).
        code: i32,
        /// Seconds since the epoch.
        finished: u64,
    },
}

impl Container {
    /// Whether it runs, from the record and whether its owner process is alive.
    pub fn status(&self) -> Status {
        match (self.exit_code, self.owner_pid) {
            (Some(code), _) => Status::Exited {
                code,
                finished: self.finished.unwrap_or(self.created),
            },
            (None, Some(pid)) if process_alive(pid) => Status::Running,
            // The tare process that ran it died without recording an exit code (killed): the
            // container died with it (parent-death signal).
            (None, Some(_)) => Status::Exited {
                code: 137,
                finished: self.created,
            },
            (None, None) => Status::Created,
        }
    }

    /// The first 12 digits of the id.
    pub fn short_id(&self) -> &str {
        self.id.get(..12).unwrap_or(&self.id)
    }
}

fn process_alive(pid: u32) -> bool {
    Path::new("/proc").join(pid.to_string()).exists()
}

/// The containers of one store.
#[derive(Debug, Clone)]
pub struct Containers {
    dir: PathBuf,
}

impl Containers {
    /// The records under `store_root/containers` (created when missing).
    pub fn open(store_root: &Path) -> Result<Containers, Error> {
        let dir = store_root.join("containers");
        let names = dir.join("names");
        std::fs::create_dir_all(&names).map_err(|e| Error::io(&names, e))?;
        Ok(Containers { dir })
    }

    /// A container's directory.
    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// A container's writable layer (overlay upper directory).
    pub fn upper_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join("diff")
    }

    /// The file holding the pid of a running container's first process.
    pub fn pid_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("init.pid")
    }

    /// The pid of a running container's first process, as its owner recorded it.
    pub fn init_pid(&self, record: &Container) -> Result<u32, Error> {
        let path = self.pid_path(&record.id);
        let text = std::fs::read_to_string(&path).map_err(|e| Error::io(&path, e))?;
        text.trim().parse().map_err(|_| Error::Invalid {
            what: "pid file",
            value: path.display().to_string(),
            reason: "does not hold a process id",
        })
    }

    /// A container's overlay work directory.
    pub fn work_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join("work")
    }

    /// A running container's root filesystem where overlayfs is refused: a merged copy of its
    /// image's layers, whose changes move into [`Containers::upper_dir`] when it ends.
    pub fn copy_root_dir(&self, id: &str) -> PathBuf {
        self.dir(id).join("rootfs")
    }

    /// The "before" stamps of a running container's copy ([`Containers::copy_root_dir`]), for
    /// `tare ps -s`, `commit` and `export` of it while it runs (`tare_layer::copy_snapshot`).
    pub fn stamps_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("rootfs.stamps")
    }

    /// Creates a record with a fresh id and its directories. `name` is reserved, or a random
    /// name is generated when `None`.
    pub fn create(&self, mut record: Container, name: Option<&str>) -> Result<Container, Error> {
        record.id = random_id()?;
        record.name = match name {
            Some(name) => {
                check_name(name)?;
                self.reserve(name)?;
                name.to_string()
            }
            None => self.reserve_random()?,
        };
        for dir in [self.upper_dir(&record.id), self.work_dir(&record.id)] {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        }
        self.save(&record)?;
        Ok(record)
    }

    /// Writes a record (atomically: temporary file, then rename).
    pub fn save(&self, record: &Container) -> Result<(), Error> {
        let dir = self.dir(&record.id);
        let tmp = dir.join("container.json.tmp");
        let path = dir.join("container.json");
        let text = serde_json::to_vec_pretty(record).map_err(|e| Error::Runtime {
            runtime: "containers".into(),
            reason: format!("encoding {}: {e}", record.id),
        })?;
        std::fs::write(&tmp, text).map_err(|e| Error::io(&tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io(&path, e))
    }

    /// All records, newest first. Unreadable records are skipped.
    pub fn list(&self) -> Result<Vec<Container>, Error> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::io(&self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(&self.dir, e))?;
            let path = entry.path().join("container.json");
            let Ok(text) = std::fs::read(&path) else {
                continue;
            };
            if let Ok(record) = serde_json::from_slice::<Container>(&text) {
                out.push(record);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created).then(a.id.cmp(&b.id)));
        Ok(out)
    }

    /// Finds a container by name, full id or unique id prefix.
    pub fn find(&self, key: &str) -> Result<Container, Error> {
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.name == key || c.id == key) {
            return Ok(c.clone());
        }
        let mut matches = all
            .iter()
            .filter(|c| !key.is_empty() && c.id.starts_with(key));
        match (matches.next(), matches.next()) {
            (Some(c), None) => Ok(c.clone()),
            _ => Err(Error::NoSuchContainer(key.to_string())),
        }
    }

    /// Removes a container's record, writable layer and name.
    pub fn remove(&self, record: &Container) -> Result<(), Error> {
        let dir = self.dir(&record.id);
        // The record goes first, so that a half-removed container is not listed.
        let json = dir.join("container.json");
        match std::fs::remove_file(&json) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(json, e)),
        }
        std::fs::remove_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
        let name = self.dir.join("names").join(&record.name);
        let _ = std::fs::remove_file(name);
        Ok(())
    }

    /// Kills a running container: its owner (the `tare` process that runs it) gets SIGKILL,
    /// and the container dies with it (parent-death signal). Waits up to 10 seconds.
    pub fn kill(&self, record: &Container) -> Result<(), Error> {
        let Some(pid) = record
            .owner_pid
            .and_then(|p| rustix::process::Pid::from_raw(p as i32))
        else {
            return Ok(());
        };
        if record.status() != Status::Running {
            return Ok(());
        }
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while record.status() == Status::Running {
            if std::time::Instant::now() > deadline {
                return Err(Error::sys(
                    "killing the container",
                    std::io::Error::from(std::io::ErrorKind::TimedOut),
                ));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(())
    }

    /// The file a detached container's output goes to (`tare logs`).
    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir(id).join("container.log")
    }

    /// Reads a record again (its state changes while it runs).
    pub fn load(&self, id: &str) -> Result<Container, Error> {
        let path = self.dir(id).join("container.json");
        let text = std::fs::read(&path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => Error::NoSuchContainer(id.to_string()),
            _ => Error::io(&path, e),
        })?;
        serde_json::from_slice(&text).map_err(|e| Error::Runtime {
            runtime: "containers".into(),
            reason: format!("reading {}: {e}", path.display()),
        })
    }

    /// Sends a signal to a running container: its owner, the `tare` process that runs it,
    /// forwards it to the container's first process (or dies of SIGKILL, and the container
    /// with it). Only the signals the owner forwards are accepted ([`stop_signal`]).
    pub fn signal(&self, record: &Container, signal: i32) -> Result<(), Error> {
        let (Some(pid), Status::Running) = (record.owner_pid, record.status()) else {
            return Ok(());
        };
        let pid = rustix::process::Pid::from_raw(pid as i32).ok_or_else(|| {
            Error::sys("signalling the container", std::io::ErrorKind::InvalidInput)
        })?;
        let sig = rustix::process::Signal::from_named_raw(signal).ok_or_else(|| {
            Error::sys("signalling the container", std::io::ErrorKind::InvalidInput)
        })?;
        rustix::process::kill_process(pid, sig)
            .map_err(|e| Error::sys("signalling the container", e))
    }

    /// Waits until the container no longer runs, up to `timeout` (no limit when `None`);
    /// returns its record then, or `None` when the time ran out.
    pub fn wait(
        &self,
        id: &str,
        timeout: Option<std::time::Duration>,
    ) -> Result<Option<Container>, Error> {
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        loop {
            let record = self.load(id)?;
            if record.status() != Status::Running {
                return Ok(Some(record));
            }
            if deadline.is_some_and(|d| std::time::Instant::now() >= d) {
                return Ok(None);
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    fn reserve(&self, name: &str) -> Result<(), Error> {
        let path = self.dir.join("names").join(name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                Err(Error::NameInUse(name.to_string()))
            }
            Err(e) => Err(Error::io(path, e)),
        }
    }

    fn reserve_random(&self) -> Result<String, Error> {
        const LEFT: [&str; 16] = [
            "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry",
            "nimble", "proud", "quiet", "sharp", "tender", "vivid", "witty",
        ];
        const RIGHT: [&str; 16] = [
            "babbage", "curie", "darwin", "euler", "fermat", "gauss", "hopper", "kepler",
            "lovelace", "noether", "pascal", "ritchie", "shannon", "thompson", "turing", "wozniak",
        ];
        let mut last = None;
        for _ in 0..64 {
            let bytes = random_bytes::<2>()?;
            let name = format!(
                "{}_{}",
                LEFT[bytes[0] as usize % LEFT.len()],
                RIGHT[bytes[1] as usize % RIGHT.len()]
            );
            match self.reserve(&name) {
                Ok(()) => return Ok(name),
                Err(Error::NameInUse(n)) => last = Some(n),
                Err(e) => return Err(e),
            }
        }
        // Crowded: add digits.
        let n = u32::from_le_bytes(random_bytes::<4>()?);
        let name = format!("{}_{n}", last.unwrap_or_else(|| "tare".into()));
        self.reserve(&name)?;
        Ok(name)
    }
}

/// The signal number of a STOPSIGNAL value (`SIGTERM`, `TERM`, `15`), among those a
/// container's owner forwards, plus SIGKILL.
pub fn stop_signal(name: &str) -> Result<i32, Error> {
    let upper = name.trim().to_ascii_uppercase();
    let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
    let known = [
        ("INT", libc::SIGINT),
        ("TERM", libc::SIGTERM),
        ("HUP", libc::SIGHUP),
        ("QUIT", libc::SIGQUIT),
        ("USR1", libc::SIGUSR1),
        ("USR2", libc::SIGUSR2),
        ("KILL", libc::SIGKILL),
    ];
    let found = match bare.parse::<i32>() {
        Ok(n) => known.iter().find(|(_, s)| *s == n),
        Err(_) => known.iter().find(|(k, _)| *k == bare),
    };
    found.map(|(_, s)| *s).ok_or(Error::Invalid {
        what: "stop signal",
        value: name.to_string(),
        reason: "tare forwards SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1 and SIGUSR2, or kills",
    })
}

/// Starts a new session for this process, detached from the terminal (`tare run -d`'s
/// supervisor).
pub fn new_session() -> Result<(), Error> {
    rustix::process::setsid()
        .map(|_| ())
        .map_err(|e| Error::sys("starting a new session", e))
}

/// Docker's rule for names: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn check_name(name: &str) -> Result<(), Error> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            what: "container name",
            value: name.to_string(),
            reason: "only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed",
        })
    }
}

fn random_bytes<const N: usize>() -> Result<[u8; N], Error> {
    use std::io::Read;
    let mut buf = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(|e| Error::io("/dev/urandom", e))?;
    Ok(buf)
}

fn random_id() -> Result<String, Error> {
    Ok(random_bytes::<32>()?
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> Container {
        Container {
            id: String::new(),
            name: String::new(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            image_layers: vec![],
            command: vec!["true".into()],
            created: 1,
            owner_pid: None,
            exit_code: None,
            finished: None,
            exec: Default::default(),
        }
    }

    #[test]
    fn create_find_list_remove() {
        let tmp = tempfile::tempdir().unwrap();
        let cs = Containers::open(tmp.path()).unwrap();
        let a = cs.create(record(), Some("web")).unwrap();
        let b = cs.create(record(), None).unwrap();
        assert_eq!(a.id.len(), 64);
        assert!(cs.upper_dir(&a.id).is_dir());
        assert_eq!(cs.find("web").unwrap().id, a.id);
        assert_eq!(cs.find(&b.id[..12]).unwrap().name, b.name);
        assert!(matches!(
            cs.create(record(), Some("web")),
            Err(Error::NameInUse(_))
        ));
        assert!(matches!(
            cs.create(record(), Some("-bad")),
            Err(Error::Invalid { .. })
        ));
        assert_eq!(cs.list().unwrap().len(), 2);
        cs.remove(&a).unwrap();
        assert!(matches!(cs.find("web"), Err(Error::NoSuchContainer(_))));
        assert!(!cs.dir(&a.id).exists());
        // The name is free again.
        cs.create(record(), Some("web")).unwrap();
    }

    #[test]
    fn status_follows_the_record() {
        let mut c = record();
        assert_eq!(c.status(), Status::Created);
        c.owner_pid = Some(std::process::id());
        assert_eq!(c.status(), Status::Running);
        c.exit_code = Some(3);
        c.finished = Some(9);
        assert_eq!(
            c.status(),
            Status::Exited {
                code: 3,
                finished: 9
            }
        );
    }
}
