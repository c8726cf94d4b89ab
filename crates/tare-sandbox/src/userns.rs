//! Rootless tare: the whole process moves into a user namespace of its own at start.
//!
//! An ordinary user cannot mount, chown or make namespaces for a container in the host's user
//! namespace. Inside a user namespace that maps "root" (uid 0) to the user, it can: the
//! process has every capability over the namespaces it creates there, overlayfs mounts with
//! `userxattr`, and files it creates belong to the user on the host.
//!
//! [`enter`] is called by the binary before anything else (the process must be
//! single-threaded for `unshare(CLONE_NEWUSER)`). It does not re-execute: the process keeps its
//! pid, terminal and signals, and from then on runs as uid 0 of the new namespace. The store,
//! layer extraction and every sandbox run happen inside it, so ownership goes through the
//! mapping: a layer file owned by 1000 in the image is owned by the subordinate ID that 1000
//! maps to on the host.
//!
//! The mapping:
//! - With a range for the user in `/etc/subuid` and `/etc/subgid` and the setuid helpers
//!   `newuidmap`/`newgidmap` (package uidmap): 0 is the user, 1..=65536 (or fewer when the range
//!   is smaller) the start of the range. A forked helper runs the two programs for this
//!   process once it has unshared, because they must run from the parent namespace.
//! - Otherwise: a single-ID mapping (0 is the user, nothing else exists), written by the
//!   process itself; `setgroups` is denied then, as the kernel requires. An image or step that
//!   needs another ID gets [`Error::Unmapped`], naming the ID and how to add a range.
//!
//! tare has no setuid helper of its own: only the distribution's newuidmap/newgidmap.

use std::ffi::OsString;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Error;

/// IDs mapped from a subordinate range: the container's 0..=65535 plus one (65536 IDs after
/// root, like rootless Docker's and Podman's default ranges).
pub(crate) const SUBORDINATE_IDS: u32 = 65536;

/// One line of a `uid_map` or `gid_map`: `count` IDs from `inside` are `outside` on the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct IdRange {
    /// The first ID inside the namespace.
    pub inside: u32,
    /// The host ID that `inside` is.
    pub outside: u32,
    /// How many consecutive IDs the line maps.
    pub count: u32,
}

/// How the user namespace of a rootless tare maps IDs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rootless {
    /// The host user's name (from /etc/passwd), or its uid as text.
    pub user: String,
    /// The host uid tare runs as (root inside the namespace).
    pub uid: u32,
    /// The host gid tare runs as.
    pub gid: u32,
    /// The namespace's `uid_map` lines.
    pub uid_map: Vec<IdRange>,
    /// The namespace's `gid_map` lines.
    pub gid_map: Vec<IdRange>,
    /// True when a subordinate range is mapped (through newuidmap and newgidmap).
    pub subordinate: bool,
}

impl Rootless {
    /// True when the container uid `id` exists in the namespace.
    pub(crate) fn maps_uid(&self, id: u32) -> bool {
        maps(&self.uid_map, id)
    }

    /// True when the container gid `id` exists in the namespace.
    pub(crate) fn maps_gid(&self, id: u32) -> bool {
        maps(&self.gid_map, id)
    }

    /// The text that tells a user how to get more IDs.
    pub fn range_fix(&self) -> String {
        range_fix(&self.user)
    }
}

fn maps(map: &[IdRange], id: u32) -> bool {
    map.iter()
        .any(|r| id >= r.inside && (id - r.inside) < r.count)
}

/// How to give `user` a subordinate range.
pub(crate) fn range_fix(user: &str) -> String {
    format!(
        "add a subordinate ID range for {user} to /etc/subuid and /etc/subgid \
         (as root: usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}) \
         and install newuidmap/newgidmap (package uidmap)"
    )
}

static ROOTLESS: OnceLock<Rootless> = OnceLock::new();

/// The mapping this process runs under, when [`enter`] moved it into a user namespace.
pub fn rootless() -> Option<&'static Rootless> {
    ROOTLESS.get()
}

/// What [`enter`] would do for the current user: the plan of the mapping, without entering.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The mapping [`enter`] would set up.
    pub rootless: Rootless,
    /// newuidmap and newgidmap, when found.
    pub helpers: Option<(PathBuf, PathBuf)>,
    /// A subordinate range was found for uid and gid, but the helpers are missing.
    pub range_without_helpers: bool,
}

/// Works out the mapping for the calling user (not root): the subordinate ranges from
/// `/etc/subuid` and `/etc/subgid`, and whether the helpers exist.
pub fn plan() -> Plan {
    let uid = rustix::process::geteuid().as_raw();
    let gid = rustix::process::getegid().as_raw();
    let user = user_name(uid).unwrap_or_else(|| uid.to_string());
    let sub_uid = subordinate_range(Path::new("/etc/subuid"), &user, uid);
    let sub_gid = subordinate_range(Path::new("/etc/subgid"), &user, uid);
    let helpers = match (find_program("newuidmap"), find_program("newgidmap")) {
        (Some(u), Some(g)) => Some((u, g)),
        _ => None,
    };
    let own = |id: u32| IdRange {
        inside: 0,
        outside: id,
        count: 1,
    };
    let sub = |(start, count): (u32, u32)| IdRange {
        inside: 1,
        outside: start,
        count: count.min(SUBORDINATE_IDS),
    };
    let (subordinate, uid_map, gid_map) = match (sub_uid, sub_gid, &helpers) {
        (Some(u), Some(g), Some(_)) => (true, vec![own(uid), sub(u)], vec![own(gid), sub(g)]),
        _ => (false, vec![own(uid)], vec![own(gid)]),
    };
    Plan {
        range_without_helpers: sub_uid.is_some() && sub_gid.is_some() && helpers.is_none(),
        rootless: Rootless {
            user,
            uid,
            gid,
            uid_map,
            gid_map,
            subordinate,
        },
        helpers,
    }
}

/// Moves a non-root process into a new user namespace where it is root (see the module
/// overview). Does nothing for root. Must be called while the process has one thread.
pub fn enter() -> Result<Option<&'static Rootless>, Error> {
    if rustix::process::geteuid().is_root() {
        // A tare started by a rootless tare (the supervisor of `tare run -d`) is already in
        // its namespace: it takes the mapping over instead of acting as the host's root.
        let inherited = std::env::var(INHERITED_ENV)
            .ok()
            .and_then(|u| inherited(&u));
        return Ok(inherited.map(|r| ROOTLESS.get_or_init(|| r)));
    }
    if let Some(done) = ROOTLESS.get() {
        return Ok(Some(done));
    }
    single_threaded()?;
    let plan = plan();
    match &plan.helpers {
        Some((newuidmap, newgidmap)) if plan.rootless.subordinate => {
            enter_with_helpers(&plan.rootless, newuidmap, newgidmap)?
        }
        _ => enter_single(&plan.rootless)?,
    }
    // Still single-threaded: children that tare starts of itself know where they run.
    std::env::set_var(INHERITED_ENV, &plan.rootless.user);
    Ok(Some(ROOTLESS.get_or_init(|| plan.rootless)))
}

/// Refuses a process with more than one thread: the kernel lets only a single-threaded
/// process make or join a user namespace.
fn single_threaded() -> Result<(), Error> {
    let threads = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Threads:"))
                .and_then(|n| n.trim().parse::<u32>().ok())
        })
        .unwrap_or(1);
    if threads != 1 {
        return Err(Error::Rootless {
            reason: format!("the process has {threads} threads; a user namespace needs one"),
        });
    }
    Ok(())
}

/// Moves a non-root process into the user namespace of the process `container` (a pidfd)
/// instead of a new one: `tare exec` of a rootless tare, whose container runs in the user
/// namespace of the `tare run` that started it. A namespace made by this user is the only
/// kind the kernel lets it join (it has every capability there); another user's is EPERM
/// and the host's own EINVAL, both refused here with the reason. Must be called while the
/// process has one thread, instead of [`enter`].
pub(crate) fn join(container: std::os::fd::BorrowedFd<'_>) -> Result<&'static Rootless, Error> {
    if let Some(done) = ROOTLESS.get() {
        return Ok(done);
    }
    single_threaded()?;
    let uid = rustix::process::geteuid().as_raw();
    rustix::thread::move_into_thread_name_spaces(
        container,
        rustix::thread::ThreadNameSpaceType::USER,
    )
    .map_err(|e| Error::Rootless {
        reason: match e {
            rustix::io::Errno::INVAL => format!(
                "cannot join the container's user namespace ({e}): the process shares the \
                 host's user namespace, so it is not a container of a rootless tare"
            ),
            rustix::io::Errno::PERM => format!(
                "cannot join the container's user namespace ({e}): it was not made by uid \
                 {uid}, so it is not a container of this user's tare"
            ),
            _ => format!("cannot join the container's user namespace: {e}"),
        },
    })?;
    let user = user_name(uid).unwrap_or_else(|| uid.to_string());
    let joined = inherited(&user).ok_or_else(|| Error::Rootless {
        reason: "the container's user namespace has no mapping for its root".into(),
    })?;
    Ok(ROOTLESS.get_or_init(|| joined))
}

/// Set by a rootless tare for the tare processes it starts (they inherit its namespace).
const INHERITED_ENV: &str = "TARE_ROOTLESS_USER";

/// The mapping of the user namespace this process was started in, when it is not the
/// host's (whose map is the identity of all IDs).
fn inherited(user: &str) -> Option<Rootless> {
    let read = |file: &str| -> Option<Vec<IdRange>> {
        let text = std::fs::read_to_string(file).ok()?;
        text.lines()
            .map(|l| {
                let f: Vec<u32> = l
                    .split_whitespace()
                    .map(|n| n.parse().ok())
                    .collect::<Option<_>>()?;
                match f[..] {
                    [inside, outside, count] => Some(IdRange {
                        inside,
                        outside,
                        count,
                    }),
                    _ => None,
                }
            })
            .collect()
    };
    let (uid_map, gid_map) = (read("/proc/self/uid_map")?, read("/proc/self/gid_map")?);
    let host = [IdRange {
        inside: 0,
        outside: 0,
        count: u32::MAX,
    }];
    if uid_map == host {
        return None;
    }
    let root_of = |map: &[IdRange]| map.iter().find(|r| r.inside == 0).map(|r| r.outside);
    Some(Rootless {
        user: user.to_string(),
        uid: root_of(&uid_map)?,
        gid: root_of(&gid_map)?,
        subordinate: uid_map.len() > 1,
        uid_map,
        gid_map,
    })
}

fn unshare_user() -> Result<(), Error> {
    // SAFETY: a new user namespace changes no file descriptor table or memory the process
    // relies on; `enter` checked that no other thread shares the credentials.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWUSER) }.map_err(|e| {
        Error::Rootless {
            reason: format!(
                "cannot create a user namespace ({e}): {}",
                userns_blocker().unwrap_or_else(|| "unprivileged user namespaces are refused \
                     by the kernel or a security module"
                    .into())
            ),
        }
    })
}

/// The single-ID mapping, written by the process itself.
fn enter_single(r: &Rootless) -> Result<(), Error> {
    unshare_user()?;
    let write =
        |file: &str, text: String| std::fs::write(file, text).map_err(|e| Error::io(file, e));
    write("/proc/self/setgroups", "deny".into())?;
    write("/proc/self/uid_map", map_text(&r.uid_map))?;
    write("/proc/self/gid_map", map_text(&r.gid_map))?;
    Ok(())
}

fn map_text(map: &[IdRange]) -> String {
    map.iter()
        .map(|r| format!("{} {} {}\n", r.inside, r.outside, r.count))
        .collect()
}

/// A forked helper waits for this process to unshare, then runs newuidmap and newgidmap on
/// it from the parent namespace (they refuse to work from inside the new one).
fn enter_with_helpers(r: &Rootless, newuidmap: &Path, newgidmap: &Path) -> Result<(), Error> {
    let pid = std::process::id().to_string();
    let args = |map: &[IdRange]| -> Vec<OsString> {
        let mut a = vec![OsString::from(&pid)];
        for m in map {
            for n in [m.inside, m.outside, m.count] {
                a.push(n.to_string().into());
            }
        }
        a
    };
    let commands = [
        (newuidmap.to_path_buf(), args(&r.uid_map)),
        (newgidmap.to_path_buf(), args(&r.gid_map)),
    ];
    let (go_read, go_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating a pipe", e))?;
    let (err_read, err_write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| Error::sys("creating a pipe", e))?;
    // SAFETY: the process is single-threaded (checked by `enter`), so the child is a complete
    // copy that may allocate and spawn; it never returns from `helper`.
    let child = unsafe { libc::fork() };
    if child < 0 {
        return Err(Error::sys("fork", std::io::Error::last_os_error()));
    }
    if child == 0 {
        drop((go_write, err_read));
        helper(go_read, err_write, &commands);
    }
    drop((go_read, err_write));
    let unshared = unshare_user();
    // One byte: go ahead. End of file (unshare failed): the helper exits without mapping.
    if unshared.is_ok() {
        let _ = rustix::io::write(&go_write, b"g");
    }
    drop(go_write);
    let mut message = String::new();
    let _ = std::fs::File::from(err_read).read_to_string(&mut message);
    // The helper's exit status, as the sandbox waits for its containers.
    let status = crate::process::wait(child)?;
    unshared?;
    if status != 0 || !message.is_empty() {
        return Err(Error::Rootless {
            reason: format!("mapping the subordinate IDs failed: {}", message.trim_end()),
        });
    }
    Ok(())
}

/// The forked helper: wait for the go byte, run the two programs, report their errors.
fn helper(go: OwnedFd, err: OwnedFd, commands: &[(PathBuf, Vec<OsString>); 2]) -> ! {
    let mut byte = [0u8; 1];
    let code = match rustix::io::read(&go, &mut byte) {
        Ok(1) => {
            let mut code = 0;
            for (program, args) in commands {
                match std::process::Command::new(program).args(args).output() {
                    Ok(out) if out.status.success() => {}
                    Ok(out) => {
                        let text = format!(
                            "{} {}: {}",
                            program.display(),
                            out.status,
                            String::from_utf8_lossy(&out.stderr).trim_end()
                        );
                        let _ = rustix::io::write(err.as_fd(), text.as_bytes());
                        code = 1;
                        break;
                    }
                    Err(e) => {
                        let text = format!("{}: {e}", program.display());
                        let _ = rustix::io::write(err.as_fd(), text.as_bytes());
                        code = 1;
                        break;
                    }
                }
            }
            code
        }
        _ => 0,
    };
    // SAFETY: _exit ends the forked copy without running the parent's exit handlers.
    unsafe { libc::_exit(code) }
}

/// `(start, count)` of the first range for `user` (by name or uid) in a subuid/subgid file.
pub(crate) fn subordinate_range(file: &Path, user: &str, uid: u32) -> Option<(u32, u32)> {
    let text = std::fs::read_to_string(file).ok()?;
    parse_subordinate(&text, user, uid)
}

fn parse_subordinate(text: &str, user: &str, uid: u32) -> Option<(u32, u32)> {
    let uid = uid.to_string();
    text.lines().find_map(|line| {
        let mut parts = line.trim().split(':');
        let (name, start, count) = (parts.next()?, parts.next()?, parts.next()?);
        if name != user && name != uid {
            return None;
        }
        let (start, count) = (start.parse().ok()?, count.parse::<u32>().ok()?);
        (count > 0).then_some((start, count))
    })
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut parts = line.split(':');
        let name = parts.next()?;
        let id = parts.nth(1)?;
        (id.parse::<u32>().ok()? == uid).then(|| name.to_string())
    })
}

/// A program on PATH or in /usr/bin, /usr/sbin, /bin.
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/usr/sbin", "/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What blocks unprivileged user namespaces on this host, with the fix, when something does.
pub fn userns_blocker() -> Option<String> {
    let read = |p: &str| {
        std::fs::read_to_string(p)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some(
            "user.max_user_namespaces is 0: as root, sysctl -w user.max_user_namespaces=15000"
                .into(),
        );
    }
    if read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0") {
        return Some(
            "kernel.unprivileged_userns_clone is 0: as root, sysctl -w kernel.unprivileged_userns_clone=1"
                .into(),
        );
    }
    if read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        return Some(
            "AppArmor restricts unprivileged user namespaces \
             (kernel.apparmor_restrict_unprivileged_userns=1): as root, give tare an AppArmor \
             profile with `userns,` or sysctl -w kernel.apparmor_restrict_unprivileged_userns=0"
                .into(),
        );
    }
    None
}

/// Mounts an overlay of scratch directories made in `dir` (which must exist, on the
/// filesystem of the store) in a thread's private mount namespace and takes it down again:
/// whether RUN steps can have native overlay snapshots here. `userxattr` when rootless.
pub fn probe_overlay(dir: &Path) -> Result<&'static str, Error> {
    for sub in ["lower", "upper", "work", "merged"] {
        let p = dir.join(sub);
        std::fs::create_dir_all(&p).map_err(|e| Error::io(&p, e))?;
    }
    let userxattr = rootless().is_some();
    let options = format!(
        "lowerdir={},upperdir={},workdir={}{}",
        dir.join("lower").display(),
        dir.join("upper").display(),
        dir.join("work").display(),
        if userxattr { ",userxattr" } else { "" }
    );
    let options = std::ffi::CString::new(options).map_err(|_| Error::Invalid {
        what: "path",
        value: dir.display().to_string(),
        reason: "contains a NUL byte",
    })?;
    let merged = dir.join("merged");
    let result = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), Error> {
            use rustix::mount::{self, MountFlags, MountPropagationFlags};
            use rustix::thread::UnshareFlags;
            // SAFETY: only this thread's filesystem context and mount namespace change; the
            // thread ends right after, taking the namespace and its mount with it.
            unsafe { rustix::thread::unshare_unsafe(UnshareFlags::FS | UnshareFlags::NEWNS) }
                .map_err(|e| Error::sys("unshare(CLONE_NEWNS)", e))?;
            mount::mount_change(
                c"/",
                MountPropagationFlags::REC | MountPropagationFlags::PRIVATE,
            )
            .map_err(|e| Error::sys("making mounts private", e))?;
            mount::mount(
                "overlay",
                &merged,
                "overlay",
                MountFlags::NODEV,
                options.as_c_str(),
            )
            .map_err(|e| Error::sys("mounting an overlay", e))?;
            let _ = mount::unmount(&merged, mount::UnmountFlags::DETACH);
            Ok(())
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::Rootless {
                reason: "the overlay probe thread panicked".into(),
            })
        })
    });
    let _ = std::fs::remove_dir_all(dir);
    result.map(|()| {
        if userxattr {
            "native overlayfs (userxattr: whiteouts and opaque marks in user.overlay.*)"
        } else {
            "native overlayfs"
        }
    })
}

/// False in a user namespace whose `setgroups` is denied (a single-ID mapping).
pub(crate) fn setgroups_allowed() -> bool {
    std::fs::read_to_string("/proc/self/setgroups").map_or(true, |s| s.trim() != "deny")
}

/// A rootless run can only switch to IDs its user namespace maps: refuse the others here, with
/// the fix, rather than fail with EINVAL in the child.
pub(crate) fn check_mapped(r: &Rootless, user: &crate::User) -> Result<(), Error> {
    let unmapped = |kind: &'static str, id: u32, map: &[IdRange]| {
        let mapped = map
            .iter()
            .map(|m| match m.count {
                1 => m.inside.to_string(),
                n => format!("{}-{}", m.inside, m.inside + (n - 1)),
            })
            .collect::<Vec<_>>()
            .join(", ");
        Error::Unmapped {
            kind,
            id,
            mapped,
            fix: r.range_fix(),
        }
    };
    if !r.maps_uid(user.uid) {
        return Err(unmapped("uid", user.uid, &r.uid_map));
    }
    if let Some(g) = std::iter::once(&user.gid)
        .chain(&user.groups)
        .find(|g| !r.maps_gid(**g))
    {
        return Err(unmapped("gid", *g, &r.gid_map));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subordinate_ranges_match_by_name_or_uid_and_skip_empty_ones() {
        let text = "alice:100000:65536\n1001:200000:0\n1001:300000:1000\nbob:x:1\n";
        assert_eq!(
            parse_subordinate(text, "alice", 1000),
            Some((100000, 65536))
        );
        assert_eq!(parse_subordinate(text, "carol", 1001), Some((300000, 1000)));
        assert_eq!(parse_subordinate(text, "bob", 1002), None);
    }

    #[test]
    fn a_single_id_mapping_maps_only_root() {
        let r = Rootless {
            user: "u".into(),
            uid: 1000,
            gid: 1000,
            uid_map: vec![IdRange {
                inside: 0,
                outside: 1000,
                count: 1,
            }],
            gid_map: vec![
                IdRange {
                    inside: 0,
                    outside: 1000,
                    count: 1,
                },
                IdRange {
                    inside: 1,
                    outside: 100000,
                    count: 65536,
                },
            ],
            subordinate: false,
        };
        assert!(r.maps_uid(0) && !r.maps_uid(1) && !r.maps_uid(1000));
        assert!(r.maps_gid(65536) && !r.maps_gid(65537));
        assert_eq!(map_text(&r.gid_map), "0 1000 1\n1 100000 65536\n");
    }
}
