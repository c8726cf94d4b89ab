//! `--cgroup-parent`: a run in a cgroup of its own under a parent the caller names, as
//! `docker build --cgroup-parent` puts BuildKit's RUN steps.
//!
//! For each run, a cgroup `PARENT/tare-ID` is made in every mounted hierarchy: each cgroup v1
//! hierarchy (memory, pids, cpu... and systemd's named one) and the cgroup2 one (the only one
//! on a pure v2 host, the empty `unified` one on a hybrid host), the way runc's cgroupfs
//! driver joins them all. PARENT is taken from each hierarchy's root, as BuildKit joins it to
//! `/`, so `/proc/self/cgroup` in the step shows `/PARENT/tare-ID`. The parent makes the
//! directories and opens each `cgroup.procs` before the clone; the child writes `0` (itself)
//! to them as its first act, so the command and everything it starts are inside before the
//! exec. The `tare-ID` directories are removed after the run; PARENT stays, as with docker.
//!
//! The directories are made with `mkdirat`/`openat` from the hierarchy's mount point down,
//! one component at a time and without following links, and PARENT may not hold `..`: a
//! cgroup is never made outside the hierarchy (`/sys/fs/cgroup` itself is a writable tmpfs).

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self as rfs, AtFlags, Mode, OFlags};
use rustix::io::Errno;

use crate::Error;

/// A checked `--cgroup-parent`: a cgroupfs path, relative to each hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupParent {
    text: String,
    parts: Vec<String>,
}

impl CgroupParent {
    /// `build/ci` or `/build/ci` (the same: both start at the hierarchy's root). Refused: `..`
    /// (it would leave the hierarchy), systemd's `NAME.slice:PREFIX:NAME` notation, a NUL
    /// byte, a component over 255 bytes, and a path that names no cgroup (`/`).
    pub fn parse(text: &str) -> Result<CgroupParent, Error> {
        let invalid = |reason| Error::Invalid {
            what: "cgroup parent",
            value: text.to_string(),
            reason,
        };
        if text.contains(':') {
            return Err(invalid(
                "systemd's slice notation (NAME.slice:PREFIX:NAME) is not supported: give a \
                 cgroupfs path such as ci/builds",
            ));
        }
        if text.contains('\0') {
            return Err(invalid("it holds a NUL byte"));
        }
        let parts: Vec<String> = text
            .split('/')
            .filter(|p| !p.is_empty() && *p != ".")
            .map(str::to_string)
            .collect();
        if parts.iter().any(|p| p == "..") {
            return Err(invalid(
                "`..` is refused: the cgroup must stay under the hierarchy's root",
            ));
        }
        if parts.iter().any(|p| p.len() > 255) {
            return Err(invalid("a component is longer than 255 bytes"));
        }
        if parts.is_empty() {
            return Err(invalid("it names no cgroup below the hierarchy's root"));
        }
        Ok(CgroupParent {
            text: text.to_string(),
            parts,
        })
    }

    /// The path as given.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn relative(&self) -> PathBuf {
        self.parts.iter().collect()
    }
}

/// A mounted cgroup hierarchy.
#[derive(Debug, PartialEq, Eq)]
struct Hierarchy {
    mount: PathBuf,
    /// A v1 cpuset hierarchy: a new cgroup there takes no process until its `cpuset.cpus`
    /// and `cpuset.mems` are set (copied from its parent).
    cpuset: bool,
}

/// Every cgroup hierarchy of `/proc/self/mountinfo`, each once (a hierarchy mounted twice
/// has one device number).
fn hierarchies(mountinfo: &str) -> Vec<Hierarchy> {
    let mut seen = Vec::new();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((mount, fs)) = line.split_once(" - ") else {
            continue;
        };
        let fields: Vec<&str> = mount.split(' ').collect();
        let fs: Vec<&str> = fs.split(' ').collect();
        let (Some(device), Some(point), Some(fstype)) = (fields.get(2), fields.get(4), fs.first())
        else {
            continue;
        };
        if *fstype != "cgroup" && *fstype != "cgroup2" {
            continue;
        }
        if seen.contains(device) {
            continue;
        }
        seen.push(device);
        let cpuset = *fstype == "cgroup"
            && fs
                .get(2)
                .is_some_and(|o| o.split(',').any(|o| o == "cpuset"));
        out.push(Hierarchy {
            mount: PathBuf::from(unescape(point)),
            cpuset,
        });
    }
    out
}

/// A mountinfo path: spaces, tabs, newlines and backslashes come as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The cgroups of one run: made before the clone, removed when this is dropped (after the
/// run is reaped).
pub(crate) struct Joined {
    /// Each `PARENT` directory that holds a `tare-ID`, and that `tare-ID`'s path for
    /// messages.
    leaves: Vec<(OwnedFd, PathBuf)>,
    name: String,
    /// Each new cgroup's `cgroup.procs`, open for writing: the child writes `0` to each.
    pub procs: Vec<OwnedFd>,
}

/// Makes `PARENT/tare-ID` in every hierarchy and opens their `cgroup.procs`.
pub(crate) fn create(parent: &CgroupParent) -> Result<Joined, Error> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .map_err(|e| Error::io("/proc/self/mountinfo", e))?;
    let list = hierarchies(&text);
    if list.is_empty() {
        return Err(failed(parent, "no cgroup hierarchy is mounted".into()));
    }
    let mut joined = Joined {
        leaves: Vec::new(),
        name: format!(
            "tare-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ),
        procs: Vec::new(),
    };
    for h in &list {
        let dir = open_parent(parent, h)?;
        let path = h.mount.join(parent.relative()).join(&joined.name);
        make_dir(&dir, &joined.name, parent, &path)?;
        let leaf = open_dir(&dir, &joined.name).map_err(|e| cannot(parent, "open", &path, e))?;
        // From here the drop removes it.
        joined.leaves.push((dir, path.clone()));
        if h.cpuset {
            let above = &joined.leaves[joined.leaves.len() - 1].0;
            inherit_cpuset(above, &leaf).map_err(|e| cannot(parent, "set up", &path, e))?;
        }
        let procs = rfs::openat(
            &leaf,
            "cgroup.procs",
            OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .map_err(|e| cannot(parent, "open", &path.join("cgroup.procs"), e))?;
        joined.procs.push(procs);
    }
    Ok(joined)
}

/// Opens (making what is missing) PARENT under the hierarchy's mount point.
fn open_parent(parent: &CgroupParent, h: &Hierarchy) -> Result<OwnedFd, Error> {
    let mut dir = rfs::open(
        &h.mount,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| cannot(parent, "open", &h.mount, e))?;
    let mut path = h.mount.clone();
    for part in &parent.parts {
        path.push(part);
        make_dir(&dir, part, parent, &path)?;
        let next = open_dir(&dir, part).map_err(|e| cannot(parent, "open", &path, e))?;
        if h.cpuset {
            inherit_cpuset(&dir, &next).map_err(|e| cannot(parent, "set up", &path, e))?;
        }
        dir = next;
    }
    Ok(dir)
}

fn make_dir(dir: &OwnedFd, name: &str, parent: &CgroupParent, path: &Path) -> Result<(), Error> {
    match rfs::mkdirat(dir, name, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(Errno::EXIST) => Ok(()),
        Err(e) => Err(cannot(parent, "create", path, e)),
    }
}

fn open_dir(dir: &OwnedFd, name: &str) -> rustix::io::Result<OwnedFd> {
    rfs::openat(
        dir,
        name,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
        Mode::empty(),
    )
}

/// A new v1 cpuset cgroup starts with no cpus and no memory nodes: it gets its parent's, as
/// runc does, unless it has some already.
fn inherit_cpuset(parent: &OwnedFd, child: &OwnedFd) -> rustix::io::Result<()> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        if !read_small(child, file)?.trim_ascii().is_empty() {
            continue;
        }
        let value = read_small(parent, file)?;
        let fd = rfs::openat(child, file, OFlags::WRONLY | OFlags::CLOEXEC, Mode::empty())?;
        rustix::io::write(&fd, value.trim_ascii())?;
    }
    Ok(())
}

fn read_small(dir: &OwnedFd, file: &str) -> rustix::io::Result<Vec<u8>> {
    let fd = rfs::openat(dir, file, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?;
    let mut buf = vec![0u8; 4096];
    let n = rustix::io::read(&fd, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn cannot(parent: &CgroupParent, what: &str, path: &Path, e: Errno) -> Error {
    let hint = if matches!(e, Errno::ACCESS | Errno::PERM | Errno::ROFS) {
        ": tare must be able to write that hierarchy (as root; rootless tare cannot make \
         cgroups in hierarchies its user namespace does not own)"
    } else {
        ""
    };
    failed(
        parent,
        format!(
            "cannot {what} {}: {}{hint}",
            path.display(),
            std::io::Error::from(e)
        ),
    )
}

fn failed(parent: &CgroupParent, reason: String) -> Error {
    Error::CgroupParent {
        parent: parent.text.clone(),
        reason,
    }
}

/// The name of the container's cgroup an OCI runtime makes inside the run's `tare-ID`.
const RUNTIME_CGROUP: &str = "runtime";

impl Joined {
    /// `linux.cgroupsPath` for an OCI runtime: `/PARENT/tare-ID/runtime`, absolute (from each
    /// hierarchy's root, as runc's cgroupfs driver reads it), inside the cgroup the runtime
    /// itself has joined. Without it runc puts the container beside its own cgroup in the v1
    /// hierarchies but at the root of the cgroup2 one, outside PARENT. A child of `tare-ID`
    /// rather than `tare-ID` itself: runc removes the container's cgroup when it exits,
    /// which it cannot while it sits in that cgroup.
    pub(crate) fn runtime_path(&self, parent: &CgroupParent) -> String {
        format!("/{}/{}/{RUNTIME_CGROUP}", parent.parts.join("/"), self.name)
    }
}

impl Drop for Joined {
    /// Removes each `tare-ID` (and the runtime's cgroup in it, if a killed runtime left it).
    /// The run is reaped, but its last processes may still be leaving the cgroup for a
    /// moment (EBUSY): retried for up to a second.
    fn drop(&mut self) {
        let runtime = format!("{}/{RUNTIME_CGROUP}", self.name);
        for (dir, _path) in &self.leaves {
            let _ = rfs::unlinkat(dir, runtime.as_str(), AtFlags::REMOVEDIR);
            for _ in 0..100 {
                match rfs::unlinkat(dir, self.name.as_str(), AtFlags::REMOVEDIR) {
                    Err(Errno::BUSY) => std::thread::sleep(std::time::Duration::from_millis(10)),
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_stay_under_the_root() {
        for bad in [
            "..",
            "../x",
            "a/../../b",
            "/../etc",
            "a/..",
            "/",
            "",
            "a.slice:b:c",
            "a\0b",
        ] {
            assert!(CgroupParent::parse(bad).is_err(), "{bad:?} accepted");
        }
        let p = CgroupParent::parse("/ci//./builds/").unwrap();
        assert_eq!(p.relative(), PathBuf::from("ci/builds"));
        assert_eq!(p.as_str(), "/ci//./builds/");
    }

    #[test]
    fn hybrid_and_pure_v2_hierarchies_are_found() {
        let hybrid = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime shared:9 - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
99 31 0:32 / /mnt/mem\\040again rw,relatime - cgroup cgroup rw,memory
";
        let found = hierarchies(hybrid);
        let mounts: Vec<_> = found.iter().map(|h| h.mount.to_str().unwrap()).collect();
        assert_eq!(
            mounts,
            [
                "/sys/fs/cgroup/cpu",
                "/sys/fs/cgroup/cpuset",
                "/sys/fs/cgroup/memory",
                "/sys/fs/cgroup/systemd",
                "/sys/fs/cgroup/unified"
            ]
        );
        let cpuset: Vec<bool> = found.iter().map(|h| h.cpuset).collect();
        assert_eq!(cpuset, [false, true, false, false, false]);
        let v2 = "25 20 0:22 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            hierarchies(v2),
            [Hierarchy {
                mount: "/sys/fs/cgroup".into(),
                cpuset: false
            }]
        );
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
    }
}
