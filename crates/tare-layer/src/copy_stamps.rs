//! The "before" stamps of a copy-based snapshot: what identifies each path of the merged
//! directory as it was when the step or container started, and their file form.
//!
//! A detached container on copies is read by other processes while it runs (`tare ps -s`,
//! `tare commit`, `tare export`), so its stamps are saved next to its copy. The file is
//! hostile input to those readers: it is opened without following a symlink, must be a
//! regular file of at most [`MAX_BYTES`], and every path in it must be relative, made of plain
//! names, listed after its parent directory and only once. The paths are only ever compared
//! with the names a walk of the copy finds (and used as whiteout names for the ones it does
//! not find), never opened.
//!
//! Format (little-endian): the magic line `tare-copy-stamps 1\n`, then one record per path:
//! `u32` path length, the path's bytes, `u8` flags (1: directory, 2: birth time known),
//! `u64` inode, `i64` + `u32` birth time, `i64` + `i64` ctime.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rustix::fs::{self as rfs, AtFlags, FileType, FlockOperation, Mode, OFlags, StatxFlags};

use crate::error::{Error, Result};

/// What identifies an unchanged entry: its inode and its ctime. The birth time tells a
/// directory from a new one that got the inode number of a removed one (`rm -rf d && mkdir
/// d` often does: the new one must be opaque, not a list of whiteouts).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub(crate) ino: u64,
    pub(crate) born: Option<(i64, u32)>,
    pub(crate) ctime: (i64, i64),
    pub(crate) dir: bool,
}

impl Stamp {
    pub(crate) fn same_inode(&self, other: &Stamp) -> bool {
        self.ino == other.ino && self.born == other.born
    }
}

/// The stamp of `name` in the directory `dir`, without following a symlink.
pub(crate) fn stamp_at(dir: impl AsFd, name: &OsStr) -> rustix::io::Result<Stamp> {
    let st = rfs::statx(
        dir,
        name,
        AtFlags::SYMLINK_NOFOLLOW,
        StatxFlags::BASIC_STATS | StatxFlags::BTIME,
    )?;
    let born = (st.stx_mask & StatxFlags::BTIME.bits() != 0)
        .then_some((st.stx_btime.tv_sec, st.stx_btime.tv_nsec));
    Ok(Stamp {
        ino: st.stx_ino,
        born,
        ctime: (st.stx_ctime.tv_sec, i64::from(st.stx_ctime.tv_nsec)),
        dir: FileType::from_raw_mode(u32::from(st.stx_mode)) == FileType::Directory,
    })
}

const MAGIC: &[u8] = b"tare-copy-stamps 1\n";

/// The largest stamps file read (about two million paths).
pub(crate) const MAX_BYTES: u64 = 256 << 20;

/// The longest path a record may hold (Linux's `PATH_MAX`).
const MAX_PATH: usize = 4096;

/// The stamps in file form; `order` lists the paths parents first.
pub(crate) fn encode(order: &[&PathBuf], before: &HashMap<PathBuf, Stamp>) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAGIC.len() + order.len() * 80);
    out.extend_from_slice(MAGIC);
    for path in order {
        let st = &before[*path];
        let bytes = path.as_os_str().as_bytes();
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(bytes);
        out.push(u8::from(st.dir) | (u8::from(st.born.is_some()) << 1));
        out.extend_from_slice(&st.ino.to_le_bytes());
        let (bs, bn) = st.born.unwrap_or((0, 0));
        out.extend_from_slice(&bs.to_le_bytes());
        out.extend_from_slice(&bn.to_le_bytes());
        out.extend_from_slice(&st.ctime.0.to_le_bytes());
        out.extend_from_slice(&st.ctime.1.to_le_bytes());
    }
    out
}

/// Opens the stamps file `path` without following a symlink; `None` when there is none.
fn open_file(path: &Path) -> Result<Option<OwnedFd>> {
    match rfs::open(
        path,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(rustix::io::Errno::LOOP) => Err(Error::BadStamps {
            path: path.to_path_buf(),
            reason: "is a symlink".into(),
        }),
        Err(e) => Err(Error::Io {
            op: "opening",
            path: path.to_path_buf(),
            source: e.into(),
        }),
    }
}

fn lock(fd: &OwnedFd, op: FlockOperation, path: &Path) -> Result<()> {
    rfs::flock(fd, op).map_err(|e| Error::Io {
        op: "locking",
        path: path.to_path_buf(),
        source: e.into(),
    })
}

/// Reads the stamps file `path` written by [`encode`] under a shared lock, refusing a
/// symlink, a special or oversized file and any record that breaks the rules of the module's
/// doc, naming `path`. `None` when there is no such file, or it was retired ([`retire`])
/// while this waited for the lock. The lock is held as long as the descriptor returned.
pub(crate) fn open(path: &Path) -> Result<Option<(OwnedFd, HashMap<PathBuf, Stamp>)>> {
    let bad = |reason: String| Error::BadStamps {
        path: path.to_path_buf(),
        reason,
    };
    let Some(fd) = open_file(path)? else {
        return Ok(None);
    };
    let st = rfs::fstat(&fd).map_err(|e| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err(bad("is not a regular file".into()));
    }
    if st.st_size as u64 > MAX_BYTES {
        return Err(bad(format!("larger than {MAX_BYTES} bytes")));
    }
    lock(&fd, FlockOperation::LockShared, path)?;
    let st = rfs::fstat(&fd).map_err(|e| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source: e.into(),
    })?;
    if st.st_nlink == 0 {
        return Ok(None);
    }
    let mut bytes = Vec::new();
    std::fs::File::from(fd.try_clone().map_err(|source| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })?)
    .take(MAX_BYTES + 1)
    .read_to_end(&mut bytes)
    .map_err(|source| Error::Io {
        op: "reading",
        path: path.to_path_buf(),
        source,
    })?;
    if bytes.len() as u64 > MAX_BYTES {
        return Err(bad(format!("larger than {MAX_BYTES} bytes")));
    }
    Ok(Some((fd, decode(&bytes).map_err(bad)?)))
}

/// Removes the stamps file `path` once no reader holds it (an exclusive lock, kept as long as
/// the descriptor returned): readers that come later find none.
pub(crate) fn retire(path: &Path) -> Result<Option<OwnedFd>> {
    let Some(fd) = open_file(path)? else {
        return Ok(None);
    };
    lock(&fd, FlockOperation::LockExclusive, path)?;
    std::fs::remove_file(path).map_err(|source| Error::Io {
        op: "removing",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(Some(fd))
}

/// A cursor over the bytes of a stamps file.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> std::result::Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err("truncated record".into());
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> std::result::Result<[u8; N], String> {
        Ok(self.take(N)?.try_into().expect("N bytes"))
    }
}

fn decode(bytes: &[u8]) -> std::result::Result<HashMap<PathBuf, Stamp>, String> {
    let rest = bytes
        .strip_prefix(MAGIC)
        .ok_or("not a stamps file (bad magic line)")?;
    let mut cur = Cursor(rest);
    let mut out: HashMap<PathBuf, Stamp> = HashMap::new();
    while !cur.0.is_empty() {
        let n = out.len();
        let len = u32::from_le_bytes(cur.array()?) as usize;
        if len == 0 || len > MAX_PATH {
            return Err(format!("record {n}: path length {len}"));
        }
        let path = check_path(cur.take(len)?).map_err(|r| format!("record {n}: {r}"))?;
        let [flags] = cur.array()?;
        if flags & !3 != 0 {
            return Err(format!("record {n}: bad flags {flags}"));
        }
        let ino = u64::from_le_bytes(cur.array()?);
        let born = (
            i64::from_le_bytes(cur.array()?),
            u32::from_le_bytes(cur.array()?),
        );
        let ctime = (
            i64::from_le_bytes(cur.array()?),
            i64::from_le_bytes(cur.array()?),
        );
        let stamp = Stamp {
            ino,
            born: (flags & 2 != 0).then_some(born),
            ctime,
            dir: flags & 1 != 0,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            if !out.get(parent).is_some_and(|p| p.dir) {
                return Err(format!(
                    "record {n}: {} comes before its directory",
                    path.display()
                ));
            }
        }
        if out.insert(path.clone(), stamp).is_some() {
            return Err(format!("record {n}: {} twice", path.display()));
        }
    }
    Ok(out)
}

/// A relative path of plain names: no leading `/`, no empty, `.` or `..` part, no NUL.
fn check_path(raw: &[u8]) -> std::result::Result<PathBuf, String> {
    let shown = String::from_utf8_lossy(raw);
    if raw.contains(&0) {
        return Err(format!("path {shown:?} holds a NUL byte"));
    }
    if raw
        .split(|b| *b == b'/')
        .any(|part| part.is_empty() || part == b"." || part == b"..")
    {
        return Err(format!(
            "path {shown:?} is not a relative path of plain names"
        ));
    }
    Ok(PathBuf::from(OsStr::from_bytes(raw)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> (Vec<PathBuf>, HashMap<PathBuf, Stamp>) {
        let order: Vec<PathBuf> = ["d", "d/f", "g"].iter().map(PathBuf::from).collect();
        let mut before = HashMap::new();
        for (i, p) in order.iter().enumerate() {
            before.insert(
                p.clone(),
                Stamp {
                    ino: 10 + i as u64,
                    born: (i != 2).then_some((1_700_000_000, 5)),
                    ctime: (1_700_000_001, 7 + i as i64),
                    dir: i == 0,
                },
            );
        }
        (order, before)
    }

    fn record(path: &[u8], flags: u8) -> Vec<u8> {
        let mut r = (path.len() as u32).to_le_bytes().to_vec();
        r.extend_from_slice(path);
        r.push(flags);
        r.extend_from_slice(&[0u8; 8 + 8 + 4 + 8 + 8]);
        r
    }

    #[test]
    fn stamps_read_back_as_written() {
        let (order, before) = sample();
        let order: Vec<&PathBuf> = order.iter().collect();
        assert_eq!(decode(&encode(&order, &before)).unwrap(), before);
        assert_eq!(decode(MAGIC).unwrap(), HashMap::new());
    }

    #[test]
    fn forged_stamps_are_refused_with_the_reason() {
        let (order, before) = sample();
        let good = encode(&order.iter().collect::<Vec<_>>(), &before);
        let with = |records: &[Vec<u8>]| {
            let mut b = MAGIC.to_vec();
            for r in records {
                b.extend_from_slice(r);
            }
            decode(&b).unwrap_err()
        };
        assert!(decode(b"junk").unwrap_err().contains("magic"));
        assert!(decode(&good[..good.len() - 3])
            .unwrap_err()
            .contains("truncated"));
        for bad in [
            &b"../etc"[..],
            b"/etc",
            b"a//b",
            b"a/.",
            b"a/..",
            b"a\0b",
            b"",
        ] {
            let e = with(&[record(b"a", 1), record(bad, 0)]);
            assert!(e.starts_with("record 1: "), "{e}");
        }
        assert!(with(&[record(b"a\0b", 0)]).contains("NUL"));
        assert!(with(&[record(b"a/b", 0)]).contains("before its directory"));
        assert!(with(&[record(b"a", 0), record(b"a/b", 0)]).contains("before its directory"));
        assert!(with(&[record(b"a", 0), record(b"a", 0)]).contains("twice"));
        assert!(with(&[record(b"a", 4)]).contains("flags"));
        let mut long = (5000u32).to_le_bytes().to_vec();
        long.extend_from_slice(&[b'a'; 5000]);
        assert!(with(&[long]).contains("path length 5000"));
    }

    #[test]
    fn a_symlink_or_a_special_file_is_refused_by_path() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("target");
        let (order, before) = sample();
        std::fs::write(&target, encode(&order.iter().collect::<Vec<_>>(), &before)).unwrap();
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open(&link).unwrap_err().to_string();
        assert!(
            e.contains(&link.display().to_string()) && e.contains("symlink"),
            "{e}"
        );
        let e = open(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("not a regular file"), "{e}");
        let big_path = tmp.path().join("big");
        let big = std::fs::File::create(&big_path).unwrap();
        big.set_len(MAX_BYTES + 1).unwrap();
        let e = open(&big_path).unwrap_err().to_string();
        assert!(e.contains("big: larger than"), "{e}");
        let corrupt = tmp.path().join("corrupt");
        std::fs::write(&corrupt, b"tare-copy-stamps 1\nxx").unwrap();
        let e = open(&corrupt).unwrap_err().to_string();
        assert!(e.contains("corrupt: truncated record"), "{e}");
        assert!(open(&tmp.path().join("none")).unwrap().is_none());
        assert_eq!(open(&target).unwrap().unwrap().1, before);
        // Retired: a reader afterwards finds none.
        let held = retire(&target).unwrap();
        assert!(held.is_some() && !target.exists());
        assert!(open(&target).unwrap().is_none());
    }
}
