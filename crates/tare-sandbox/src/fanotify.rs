//! fanotify for `tare slim`'s trace (see the `trace` module): opening the group, marking the
//! container's tree, and turning events into paths inside the container.
//!
//! Two ways, chosen by the kernel's answer to `fanotify_init`:
//!
//! - **Descriptors** (root in the initial user namespace): the child marks the filesystem of
//!   its new `/` ([`mark_root`]); each event carries a descriptor of the opened file, whose
//!   `/proc/self/fd` link is its path inside the container.
//! - **File handles** (a user namespace: rootless tare, or root in a pod with
//!   `hostUsers: false`): `fanotify_init` without `FAN_REPORT_FID` is `EPERM` there. The group
//!   reports `FAN_REPORT_FID | FAN_REPORT_DFID_NAME`: each event names the directory the file
//!   was opened in by its file handle, plus the file's name in it. Filesystem and mount marks
//!   are refused (an overlay mounted in a user namespace cannot decode file handles:
//!   `EOPNOTSUPP`; a plain directory of the host's filesystem belongs to the initial
//!   namespace: `EPERM`), so the parent puts an inode mark with `FAN_EVENT_ON_CHILD` on every
//!   directory of the container's tree while the child waits after `pivot_root`
//!   ([`mark_tree`]), and records each directory's handle (`name_to_handle_at` with
//!   `AT_HANDLE_FID`, the encoding the events use) with its path: a [`DirMap`].
//!   `open_by_handle_at` would turn a handle back into a file, but it needs
//!   `CAP_DAC_READ_SEARCH` in the initial namespace.

use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::fs::{self as rfs, AtFlags, OFlags};
use rustix::io::Errno;

use crate::Error;

/// The events recorded.
const MASK: u64 = libc::FAN_OPEN | libc::FAN_OPEN_EXEC | libc::FAN_ONDIR;

/// `AT_HANDLE_FID` (Linux 6.5): a handle only for comparing, never for opening; the encoding
/// fanotify uses for filesystems that cannot decode handles (overlayfs in a user namespace).
const AT_HANDLE_FID: i32 = 0x200;

/// The deepest directory the file-handle mode marks: one descriptor per level is open.
const MAX_DEPTH: usize = 512;

/// How a group reports the opened files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reporting {
    /// Each event carries a descriptor (root in the initial user namespace).
    Descriptors,
    /// Each event carries the directory's file handle and the name (a user namespace).
    Handles,
}

/// Opens a notification group: with descriptors when the kernel allows it, else with file
/// handles. Errors carry the kernel's reasons.
pub(crate) fn open_group() -> Result<(OwnedFd, Reporting), Error> {
    let base = libc::FAN_CLASS_NOTIF | libc::FAN_CLOEXEC | libc::FAN_NONBLOCK;
    let event_flags =
        (libc::O_RDONLY | libc::O_CLOEXEC | libc::O_LARGEFILE | libc::O_NONBLOCK) as libc::c_uint;
    let with_fds = init(base, event_flags);
    let denied = match with_fds {
        Ok(fd) => return Ok((fd, Reporting::Descriptors)),
        Err(e) if e == Errno::PERM => e,
        Err(e) => {
            return Err(Error::Trace {
                reason: format!("fanotify_init: {e} (needs a kernel with fanotify)"),
            })
        }
    };
    let handles = base | libc::FAN_REPORT_FID | libc::FAN_REPORT_DFID_NAME;
    match init(handles, libc::O_RDONLY as libc::c_uint) {
        Ok(fd) => Ok((fd, Reporting::Handles)),
        Err(e) => Err(Error::Trace {
            reason: format!(
                "fanotify refuses to trace in this user namespace: fanotify_init is \
                 {denied} without FAN_REPORT_FID (descriptors in events need CAP_SYS_ADMIN in \
                 the initial user namespace) and {e} with FAN_REPORT_FID | FAN_REPORT_DFID_NAME \
                 (unprivileged groups need Linux 5.13 or later, and room under \
                 fs.fanotify.max_user_groups and user.max_fanotify_groups); run tare slim as \
                 root"
            ),
        }),
    }
}

fn init(flags: libc::c_uint, event_flags: libc::c_uint) -> Result<OwnedFd, Errno> {
    // SAFETY: plain system call with integer arguments.
    let fd = unsafe { libc::fanotify_init(flags, event_flags) };
    if fd < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    // SAFETY: `fd` was just returned by fanotify_init and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Called by the child after `pivot_root` (descriptor mode): marks `/` on the inherited
/// fanotify group. An overlay root is a superblock of the container's own, so its whole
/// filesystem is marked. A bound directory (copy-based snapshots) lives on the host's
/// filesystem, whose mark would report every other process's opens there too: only the
/// container's root mount is marked (`FAN_MARK_MOUNT`; the container's other mounts are
/// not of its root filesystem anyway). Only a system call: safe after `clone`.
pub(crate) fn mark_root(fd: i32, bound: bool) -> rustix::io::Result<()> {
    let scope = if bound {
        libc::FAN_MARK_MOUNT
    } else {
        libc::FAN_MARK_FILESYSTEM
    };
    let flags = libc::FAN_MARK_ADD | scope;
    // SAFETY: `fd` is the fanotify descriptor the parent opened and the child inherited; the
    // path is a valid NUL-terminated string; the call touches no memory of ours otherwise.
    let r = unsafe { libc::fanotify_mark(fd, flags, MASK, libc::AT_FDCWD, c"/".as_ptr()) };
    if r < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// A file handle as fanotify and `name_to_handle_at` report it: type and bytes.
type Handle = (i32, Vec<u8>);

/// The directories of a container's tree by file handle (handle mode).
#[derive(Debug, Default)]
pub(crate) struct DirMap {
    dirs: HashMap<Handle, String>,
    /// Handles two directories reported (never expected; resolved as unknown).
    ambiguous: std::collections::HashSet<Handle>,
}

impl DirMap {
    /// The number of directories mapped.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.dirs.len()
    }

    fn insert(&mut self, handle: Handle, path: String) {
        if self.ambiguous.contains(&handle) {
            return;
        }
        if self.dirs.insert(handle.clone(), path).is_some() {
            self.dirs.remove(&handle);
            self.ambiguous.insert(handle);
        }
    }

    /// The path inside the container of the file one event (`event`: the whole event,
    /// metadata included) names; `None` for a handle outside the map (a directory made during
    /// the run) or a malformed record.
    pub(crate) fn resolve(&self, event: &[u8]) -> Option<String> {
        let (dir, name) = fid_of(event)?;
        let path = self.dirs.get(&dir)?;
        match name {
            None | Some(".") => Some(path.clone()),
            Some(name) if name.is_empty() || name == ".." || name.contains('/') => None,
            Some(name) if path == "/" => Some(format!("/{name}")),
            Some(name) => Some(format!("{path}/{name}")),
        }
    }
}

/// `struct fanotify_event_info_fid` and what follows it: the record's type, the handle and,
/// for `FAN_EVENT_INFO_TYPE_DFID_NAME`, the name.
struct FidRecord<'a> {
    kind: u8,
    handle: Handle,
    name: Option<&'a str>,
}

/// The directory handle and name of a handle-mode event: its `DFID_NAME` record (the
/// directory and the name in it; `.` for the directory itself), else a `DFID` or `FID` record
/// (a directory's own handle). Every length is checked against the event's.
fn fid_of(event: &[u8]) -> Option<(Handle, Option<&str>)> {
    let len = u32::from_ne_bytes(event.get(0..4)?.try_into().ok()?) as usize;
    let meta = u16::from_ne_bytes(event.get(6..8)?.try_into().ok()?) as usize;
    let event = event.get(..len)?;
    let mut at = meta;
    let mut own = None;
    while at + 4 <= event.len() {
        let rec_len = u16::from_ne_bytes([event[at + 2], event[at + 3]]) as usize;
        if rec_len < 4 {
            return None;
        }
        let record = event.get(at..at + rec_len)?;
        at += rec_len;
        let Some(r) = fid_record(record) else {
            continue;
        };
        match r.kind {
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME => return Some((r.handle, r.name)),
            libc::FAN_EVENT_INFO_TYPE_DFID | libc::FAN_EVENT_INFO_TYPE_FID => {
                own.get_or_insert(r.handle);
            }
            _ => {}
        }
    }
    own.map(|h| (h, None))
}

/// One info record: header (type u8, pad u8, len u16), fsid (8 bytes), `struct file_handle`
/// (handle_bytes u32, handle_type i32, bytes), then for DFID_NAME a NUL-terminated name.
fn fid_record(r: &[u8]) -> Option<FidRecord<'_>> {
    let kind = r[0];
    if !matches!(
        kind,
        libc::FAN_EVENT_INFO_TYPE_FID
            | libc::FAN_EVENT_INFO_TYPE_DFID_NAME
            | libc::FAN_EVENT_INFO_TYPE_DFID
    ) {
        return None;
    }
    let bytes = u32::from_ne_bytes(r.get(12..16)?.try_into().ok()?) as usize;
    let kind_of_handle = i32::from_ne_bytes(r.get(16..20)?.try_into().ok()?);
    if bytes > libc::MAX_HANDLE_SZ as usize {
        return None;
    }
    let handle = r.get(20..20 + bytes)?.to_vec();
    let name = if kind == libc::FAN_EVENT_INFO_TYPE_DFID_NAME {
        let rest = r.get(20 + bytes..)?;
        let end = rest.iter().position(|&b| b == 0)?;
        Some(std::str::from_utf8(&rest[..end]).ok()?)
    } else {
        None
    };
    Some(FidRecord {
        kind,
        handle: (kind_of_handle, handle),
        name,
    })
}

/// `struct file_handle` with room for the largest handle.
#[repr(C)]
struct HandleBuf {
    bytes: u32,
    kind: i32,
    data: [u8; libc::MAX_HANDLE_SZ as usize],
}

/// The handle of the directory `dir` in the encoding fanotify reports.
fn handle_of(dir: BorrowedFd<'_>) -> Result<Handle, Errno> {
    let mut buf = HandleBuf {
        bytes: libc::MAX_HANDLE_SZ as u32,
        kind: 0,
        data: [0; libc::MAX_HANDLE_SZ as usize],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `buf` is a `struct file_handle` whose `handle_bytes` says how much room follows
    // (MAX_HANDLE_SZ, the kernel's own limit); the empty path with AT_EMPTY_PATH names `dir`
    // itself; `mount_id` is a valid out-parameter. The kernel writes only inside them.
    let r = unsafe {
        libc::name_to_handle_at(
            dir.as_raw_fd(),
            c"".as_ptr(),
            (&mut buf as *mut HandleBuf).cast::<libc::file_handle>(),
            &mut mount_id,
            libc::AT_EMPTY_PATH | AT_HANDLE_FID,
        )
    };
    if r < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    let n = (buf.bytes as usize).min(buf.data.len());
    Ok((buf.kind, buf.data[..n].to_vec()))
}

/// An inode mark on `dir` reporting opens of the directory and of its entries.
fn mark_dir(group: BorrowedFd<'_>, dir: BorrowedFd<'_>) -> Result<(), Errno> {
    let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_INODE;
    let mask = MASK | libc::FAN_EVENT_ON_CHILD;
    // SAFETY: both descriptors are open; a NULL path with FAN_MARK_INODE marks `dir` itself.
    let r = unsafe {
        libc::fanotify_mark(
            group.as_raw_fd(),
            flags,
            mask,
            dir.as_raw_fd(),
            std::ptr::null(),
        )
    };
    if r < 0 {
        return Err(Errno::from_raw_os_error(last_errno()));
    }
    Ok(())
}

/// One directory being walked: its descriptor, path and the subdirectories still to visit.
struct Frame {
    fd: OwnedFd,
    path: String,
    pending: Vec<String>,
}

/// Handle mode: marks every directory of the tree under `root` (the container's `/`, opened
/// through `/proc/PID/root`) on `group`, and maps each one's handle to its path inside the
/// container. Never follows a link (each step is one name, `O_NOFOLLOW`) and never leaves
/// `root`'s mount (mount points such as /proc are skipped). Directories are marked after
/// their subtree (post-order), so the walk's own opens happen before any mark that would
/// report them. At most `max` directories and [`MAX_DEPTH`] levels; more is an error naming
/// the path, never a silent loss.
pub(crate) fn mark_tree(group: BorrowedFd<'_>, root: OwnedFd, max: usize) -> Result<DirMap, Error> {
    let fail = |what: &str, path: &str, e: Errno| Error::Trace {
        reason: format!("{what} of {path} in the container: {e}"),
    };
    let too_many = || Error::Trace {
        reason: format!("the container has more than {max} directories"),
    };
    let mount = mount_id(root.as_fd()).map_err(|e| fail("statx", "/", e))?;
    let mut map = DirMap::default();
    let pending = subdirectories(root.as_fd(), max)
        .map_err(|e| fail("reading", "/", e))?
        .ok_or_else(too_many)?;
    let mut stack = vec![Frame {
        fd: root,
        path: "/".into(),
        pending,
    }];
    let mut seen = 1usize;
    while let Some(top) = stack.last_mut() {
        let Some(name) = top.pending.pop() else {
            let Some(done) = stack.pop() else { break };
            let handle = handle_of(done.fd.as_fd()).map_err(|e| {
                fail(
                    "name_to_handle_at(AT_HANDLE_FID) (Linux 6.5 or later)",
                    &done.path,
                    e,
                )
            })?;
            mark_dir(group, done.fd.as_fd()).map_err(|e| match e {
                Errno::NOSPC => Error::Trace {
                    reason: format!(
                        "the container has more directories ({seen}) than \
                         fs.fanotify.max_user_marks allows to watch"
                    ),
                },
                e => fail("fanotify_mark(FAN_MARK_INODE)", &done.path, e),
            })?;
            map.insert(handle, done.path);
            continue;
        };
        let path = if top.path == "/" {
            format!("/{name}")
        } else {
            format!("{}/{name}", top.path)
        };
        let flags = OFlags::RDONLY
            | OFlags::DIRECTORY
            | OFlags::NOFOLLOW
            | OFlags::CLOEXEC
            | OFlags::NOCTTY
            | OFlags::NONBLOCK;
        let fd = match rfs::openat(&top.fd, name.as_str(), flags, rfs::Mode::empty()) {
            Ok(fd) => fd,
            // Not a directory after all, or gone: nothing to mark.
            Err(Errno::NOTDIR | Errno::LOOP | Errno::NOENT) => continue,
            Err(e) => return Err(fail("opening", &path, e)),
        };
        if mount_id(fd.as_fd()).map_err(|e| fail("statx", &path, e))? != mount {
            continue;
        }
        seen += 1;
        if seen > max {
            return Err(too_many());
        }
        if stack.len() >= MAX_DEPTH {
            return Err(Error::Trace {
                reason: format!("{path} is nested deeper than {MAX_DEPTH} directories"),
            });
        }
        let pending = subdirectories(fd.as_fd(), max)
            .map_err(|e| fail("reading", &path, e))?
            .ok_or_else(too_many)?;
        stack.push(Frame { fd, path, pending });
    }
    Ok(map)
}

/// The names of `dir`'s entries that are (or may be) directories, in UTF-8 (a path that is
/// not is not recorded in the descriptor mode either); `None` past `max` of them.
fn subdirectories(dir: BorrowedFd<'_>, max: usize) -> Result<Option<Vec<String>>, Errno> {
    let mut names = Vec::new();
    for entry in rfs::Dir::read_from(dir)? {
        let entry = entry?;
        let kind = entry.file_type();
        if !matches!(kind, rfs::FileType::Directory | rfs::FileType::Unknown) {
            continue;
        }
        let bytes = entry.file_name().to_bytes();
        if bytes == b"." || bytes == b".." {
            continue;
        }
        if let Ok(name) = std::str::from_utf8(bytes) {
            if names.len() >= max {
                return Ok(None);
            }
            names.push(name.to_string());
        }
    }
    Ok(Some(names))
}

fn mount_id(fd: BorrowedFd<'_>) -> Result<u64, Errno> {
    let st = rfs::statx(fd, c"", AtFlags::EMPTY_PATH, rfs::StatxFlags::MNT_ID)?;
    Ok(st.stx_mnt_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event of `records` after a 24-byte metadata header.
    fn event(records: &[Vec<u8>]) -> Vec<u8> {
        let body: Vec<u8> = records.concat();
        let mut e = vec![0u8; 24];
        e[0..4].copy_from_slice(&((24 + body.len()) as u32).to_ne_bytes());
        e[4] = 3;
        e[6..8].copy_from_slice(&24u16.to_ne_bytes());
        e[8..16].copy_from_slice(&libc::FAN_OPEN.to_ne_bytes());
        e[16..20].copy_from_slice(&(-1i32).to_ne_bytes());
        e.extend(body);
        e
    }

    fn record(kind: u8, handle: &[u8], name: Option<&[u8]>) -> Vec<u8> {
        let mut r = vec![kind, 0, 0, 0];
        r.extend([7u8; 8]);
        r.extend((handle.len() as u32).to_ne_bytes());
        r.extend(129i32.to_ne_bytes());
        r.extend(handle);
        if let Some(name) = name {
            r.extend(name);
            r.push(0);
        }
        while r.len() % 4 != 0 {
            r.push(0);
        }
        let len = r.len() as u16;
        r[2..4].copy_from_slice(&len.to_ne_bytes());
        r
    }

    fn map() -> DirMap {
        let mut m = DirMap::default();
        m.insert((129, vec![1; 12]), "/".into());
        m.insert((129, vec![2; 12]), "/usr/bin".into());
        m
    }

    #[test]
    fn names_in_known_directories_resolve() {
        let m = map();
        let dfid = libc::FAN_EVENT_INFO_TYPE_DFID_NAME;
        let fid = libc::FAN_EVENT_INFO_TYPE_FID;
        let e = event(&[
            record(dfid, &[2; 12], Some(b"env")),
            record(fid, &[9; 12], None),
        ]);
        assert_eq!(m.resolve(&e).as_deref(), Some("/usr/bin/env"));
        let e = event(&[record(dfid, &[1; 12], Some(b"etc"))]);
        assert_eq!(m.resolve(&e).as_deref(), Some("/etc"));
        let e = event(&[record(dfid, &[2; 12], Some(b"."))]);
        assert_eq!(m.resolve(&e).as_deref(), Some("/usr/bin"));
        let e = event(&[record(fid, &[1; 12], None)]);
        assert_eq!(m.resolve(&e).as_deref(), Some("/"));
    }

    #[test]
    fn hostile_records_resolve_to_nothing() {
        let m = map();
        let dfid = libc::FAN_EVENT_INFO_TYPE_DFID_NAME;
        // Unknown directory, names that would leave it, a name without its NUL.
        for e in [
            event(&[record(dfid, &[3; 12], Some(b"x"))]),
            event(&[record(dfid, &[2; 12], Some(b".."))]),
            event(&[record(dfid, &[2; 12], Some(b"a/b"))]),
            event(&[record(dfid, &[2; 12], Some(b""))]),
        ] {
            assert_eq!(m.resolve(&e), None);
        }
        let mut e = event(&[record(dfid, &[2; 12], Some(b"abc"))]);
        let n = e.len();
        for b in &mut e[n - 4..] {
            *b = b'z';
        }
        assert_eq!(m.resolve(&e), None);
        // A handle length past the record, past MAX_HANDLE_SZ; a record length past the event
        // or under the header; an event length past the buffer.
        let good = event(&[record(dfid, &[2; 12], Some(b"env"))]);
        assert_eq!(m.resolve(&good).as_deref(), Some("/usr/bin/env"));
        for (at, bytes) in [
            (24 + 12, 1000u32.to_ne_bytes().to_vec()),
            (24 + 12, 200u32.to_ne_bytes().to_vec()),
            (24 + 2, 400u16.to_ne_bytes().to_vec()),
            (24 + 2, 2u16.to_ne_bytes().to_vec()),
            (0, 4096u32.to_ne_bytes().to_vec()),
        ] {
            let mut e = good.clone();
            e[at..at + bytes.len()].copy_from_slice(&bytes);
            assert_eq!(m.resolve(&e), None, "{at}: {bytes:?}");
        }
        assert_eq!(m.resolve(&[0u8; 3]), None);
    }

    #[test]
    fn a_handle_two_directories_report_is_not_trusted() {
        let mut m = map();
        m.insert((129, vec![2; 12]), "/other".into());
        m.insert((129, vec![2; 12]), "/third".into());
        let e = event(&[record(
            libc::FAN_EVENT_INFO_TYPE_DFID_NAME,
            &[2; 12],
            Some(b"env"),
        )]);
        assert_eq!(m.resolve(&e), None);
        assert_eq!(m.len(), 1);
    }
}
