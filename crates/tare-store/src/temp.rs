//! Temporary data in the store, owned by the store handle that made it.
//!
//! Every open [`Store`] that writes temporary data gets one owner directory,
//! `ROOT/tmp/own-XXXXXX/`, holding a `lock` file on which the handle keeps an exclusive flock
//! for as long as it (or anything it handed out) lives. All of its temporary files and
//! directories (blobs being written, build steps' scratch directories, snapshots being
//! extracted) are made inside. A process that dies, even by SIGKILL, releases its flocks, so
//! anyone can tell an abandoned owner directory from a live one by trying the lock: the next
//! [`Store::open`] and `prune` remove the abandoned ones. Unlike pids, flocks are not reused and
//! work across pid namespaces.
//!
//! The owner directory is set up as `ROOT/tmp/.new-XXXXXX/` (lock created and taken) and only
//! then renamed to `own-*`, so a reclaimer never sees an `own-*` directory whose lock is not yet
//! held. Setting up happens under `ROOT/tmp.lock`; a `.new-*` directory seen while holding it
//! belongs to a process killed while setting up.

use std::fs::{self, File};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{io, Error, Result};
use crate::Store;

/// Prefix of owner directories under `ROOT/tmp`.
const OWNER_PREFIX: &str = "own-";
/// Prefix of owner directories being set up.
const NEW_PREFIX: &str = ".new-";
/// The flock file inside an owner directory.
const LOCK_NAME: &str = "lock";

/// The owner directory of one store handle and the file whose flock proves it is alive.
#[derive(Debug)]
pub(crate) struct Owner {
    dir: PathBuf,
    _lock: File,
}

impl Owner {
    fn create(tmp: &Path) -> Result<Owner> {
        let _setup = setup_lock(tmp)?;
        let new = tempfile::Builder::new()
            .prefix(NEW_PREFIX)
            .tempdir_in(tmp)
            .map_err(io("creating a temporary directory in", tmp))?;
        let lock_path = new.path().join(LOCK_NAME);
        let lock = File::create(&lock_path).map_err(io("creating", &lock_path))?;
        flock(&lock, FlockOperation::LockExclusive).map_err(|e| Error::Io {
            op: "locking",
            path: lock_path,
            source: e.into(),
        })?;
        let suffix = new
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix(NEW_PREFIX))
            .unwrap_or_default()
            .to_string();
        let dir = tmp.join(format!("{OWNER_PREFIX}{suffix}"));
        let new = new.keep();
        fs::rename(&new, &dir).map_err(io("renaming into", &dir))?;
        Ok(Owner { dir, _lock: lock })
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        // Everything handed out held a Store clone, so all of it is gone by now.
        let _ = remove_tree(&self.dir);
    }
}

/// A temporary directory inside the store; removed when dropped unless [`TempDir::keep`]
/// is called (for example before renaming it into place).
#[derive(Debug)]
pub struct TempDir {
    dir: Option<tempfile::TempDir>,
    // Keeps the owner's lock held while the directory exists.
    _store: Store,
}

impl TempDir {
    /// The directory's path (under `ROOT/tmp/own-XXXXXX/`).
    pub fn path(&self) -> &Path {
        self.dir.as_ref().map(|d| d.path()).unwrap_or(Path::new(""))
    }

    /// Stops removing the directory on drop and returns its path. The caller must move it out
    /// of the owner directory (rename it into place) or it is reclaimed with its owner.
    pub fn keep(mut self) -> PathBuf {
        self.dir.take().map(|d| d.keep()).unwrap_or_default()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let path = d.keep();
            let _ = remove_tree(&path);
        }
    }
}

impl Store {
    /// This handle's owner directory under `ROOT/tmp`, made on first use.
    fn owner_dir(&self) -> Result<&Path> {
        if let Some(owner) = self.inner.owner.get() {
            return Ok(&owner.dir);
        }
        let owner = Owner::create(&self.inner.root.join("tmp"))?;
        // Another thread may have won the race; its owner is used and ours is dropped.
        let _ = self.inner.owner.set(owner);
        Ok(&self.inner.owner.get().expect("just set").dir)
    }

    /// A fresh temporary directory in the store (same file system as the blobs and snapshots,
    /// so it can be renamed into place). It is reclaimed even if the process is killed.
    pub fn temp_dir(&self, prefix: &str) -> Result<TempDir> {
        let parent = self.owner_dir()?;
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(parent)
            .map_err(io("creating a temporary directory in", parent))?;
        Ok(TempDir {
            dir: Some(dir),
            _store: self.clone(),
        })
    }

    /// A fresh temporary file in the store; see [`Store::temp_dir`].
    pub(crate) fn temp_file(&self, prefix: &str) -> Result<tempfile::NamedTempFile> {
        let parent = self.owner_dir()?;
        tempfile::Builder::new()
            .prefix(prefix)
            .tempfile_in(parent)
            .map_err(io("creating a temporary file in", parent))
    }

    /// Removes the owner directories under `ROOT/tmp` whose owner is gone; with `everything`
    /// (prune, under the exclusive store lock), also whatever else is there that no live
    /// owner holds. Returns the bytes freed.
    pub(crate) fn reclaim_temp(&self, everything: bool) -> Result<u64> {
        let tmp = self.inner.root.join("tmp");
        let mine = self.inner.owner.get().map(|o| o.dir.clone());
        let mut freed = 0;
        let mut setup = None;
        for entry in fs::read_dir(&tmp).map_err(io("reading", &tmp))? {
            let entry = entry.map_err(io("reading", &tmp))?;
            let path = entry.path();
            if Some(&path) == mine.as_ref() {
                continue;
            }
            let name = entry.file_name();
            let is_owner = name.to_str().is_some_and(|n| n.starts_with(OWNER_PREFIX));
            let is_new = name.to_str().is_some_and(|n| n.starts_with(NEW_PREFIX));
            if is_new && setup.is_none() {
                // No one is setting up an owner while we hold this: a `.new-*` that is
                // still there was left by a killed process.
                setup = Some(setup_lock(&tmp)?);
                if !path.exists() {
                    continue;
                }
            }
            if !is_owner && !is_new && !everything {
                continue;
            }
            // Held while removing, so the lock file cannot be taken over meanwhile.
            let _held = if is_owner {
                match try_lock(&path.join(LOCK_NAME)) {
                    Some(lock) => Some(lock),
                    None => continue,
                }
            } else {
                None
            };
            freed += tree_size(&path);
            remove_tree(&path).map_err(io("removing", &path))?;
        }
        Ok(freed)
    }
}

/// The lock held while an owner directory is set up (`ROOT/tmp.lock`, next to `ROOT/tmp`, so
/// that nothing removing entries of `ROOT/tmp` removes it).
fn setup_lock(tmp: &Path) -> Result<File> {
    crate::lock_file(&tmp.with_extension("lock"), FlockOperation::LockExclusive)
}

/// Takes the flock of an owner directory if its owner is gone; `None` while it is alive.
/// A missing or unreadable lock file counts as gone: owners create it before the directory
/// gets its `own-` name.
fn try_lock(path: &Path) -> Option<Option<File>> {
    match File::open(path) {
        Ok(f) => match flock(&f, FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Some(Some(f)),
            Err(_) => None,
        },
        Err(_) => Some(None),
    }
}

/// Removes a file or a directory tree, making read-only directories writable first (a
/// snapshot being extracted may hold some). Missing is fine.
pub(crate) fn remove_tree(path: &Path) -> std::io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    if !meta.is_dir() {
        return fs::remove_file(path);
    }
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(path);
            fs::remove_dir_all(path)
        }
    }
}

/// Makes every directory of a tree writable and searchable by its owner, without following
/// symlinks, so that its entries can be removed.
pub(crate) fn make_writable(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = fs::set_permissions(dir, fs::Permissions::from_mode(0o700));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
            make_writable(&e.path());
        }
    }
}

/// Bytes held by the regular files of a tree (not following symlinks).
fn tree_size(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return if meta.is_file() { meta.len() } else { 0 };
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| tree_size(&e.path())).sum())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_owner_directory_is_reclaimed_and_a_live_one_is_not() {
        let root = tempfile::tempdir().unwrap();
        let live = Store::open(root.path()).unwrap();
        let kept = live.temp_dir("live-").unwrap();
        fs::write(kept.path().join("data"), b"in use").unwrap();

        // What a SIGKILL leaves behind: an owner directory whose flock nobody holds.
        let dead_owner = root.path().join("tmp/own-killed");
        fs::create_dir_all(dead_owner.join("step-1")).unwrap();
        fs::write(dead_owner.join(LOCK_NAME), b"").unwrap();
        fs::write(dead_owner.join("step-1/data"), b"left behind").unwrap();

        // Killed while setting its owner directory up.
        let half_made = root.path().join("tmp/.new-killed");
        fs::create_dir_all(&half_made).unwrap();

        let _reopened = Store::open(root.path()).unwrap();
        assert!(!dead_owner.exists(), "abandoned owner directory reclaimed");
        assert!(!half_made.exists(), "half-made owner directory reclaimed");
        assert_eq!(fs::read(kept.path().join("data")).unwrap(), b"in use");
    }

    #[test]
    fn a_dropped_temp_dir_is_removed_even_when_read_only_inside() {
        use std::os::unix::fs::PermissionsExt;
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let t = store.temp_dir("x-").unwrap();
        let sub = t.path().join("ro");
        fs::create_dir(&sub).unwrap();
        fs::write(sub.join("f"), b"").unwrap();
        fs::set_permissions(&sub, fs::Permissions::from_mode(0o500)).unwrap();
        let path = t.path().to_path_buf();
        drop(t);
        assert!(!path.exists());
    }
}
