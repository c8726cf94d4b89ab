//! Cache mounts (`RUN --mount=type=cache`): directories that outlive builds, keyed by id.
//!
//! ```text
//! ROOT/cachemounts/<sha256 of the id>/id         the id, as written (for `system df -v`)
//! ROOT/cachemounts/<sha256 of the id>/lock       flock: shared by each `shared` user,
//!                                                exclusive for `locked`, `private` and removal
//! ROOT/cachemounts/<sha256 of the id>/init.lock  flock around creating or resetting data/
//! ROOT/cachemounts/<sha256 of the id>/data/      what the RUN sees at its target
//! ROOT/cachemounts/<sha256 of the id>/lock.N     `private` users that found every other
//! ROOT/cachemounts/<sha256 of the id>/data.N/    directory of the id in use (N = 1, 2, ...)
//! ```
//!
//! `private` follows BuildKit 0.25 (`getRefCacheDirNoCache`): a user takes the first
//! directory of the id that nobody holds, and when all are held, makes one more that is kept
//! for later builds like the first.
//!
//! The directory name is a hash, never the id itself, so no id (`../../x`, `/`, an empty
//! string) names a path outside `ROOT/cachemounts`. tare never follows a link inside `data/`:
//! it is created, renamed, measured without following links, and removed.

use std::fs::{self, File};
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::path::{Path, PathBuf};

use rustix::fs::{flock, FlockOperation};

use crate::error::{io, Error, Result};
use crate::temp::remove_tree;
use crate::{lock_file, Digest, Store};

/// Who may use one cache at the same time (BuildKit's `sharing=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Every user at once.
    Shared,
    /// One user at a time; the others wait.
    Locked,
    /// A user that finds the cache in use takes another directory of the id nobody holds,
    /// or makes one more, kept for later builds.
    Private,
}

/// How a cache directory starts when it does not exist yet.
#[derive(Debug, Clone)]
pub struct NewCache {
    /// Mode, owner and group of `data/` itself (BuildKit: 0755, 0, 0).
    pub mode: u32,
    /// Owner of `data/` (BuildKit: 0).
    pub uid: u32,
    /// Group of `data/` (BuildKit: 0).
    pub gid: u32,
    /// A directory (in the store's temporary area) whose contents a new cache starts with
    /// (`from=`/`source=`): renamed into place. Its root keeps its own mode and owner.
    pub seed: Option<PathBuf>,
    /// Start empty even if the cache exists (`--no-cache`): the old contents are dropped.
    pub reset: bool,
    /// What the cache starts from, when not from nothing: the owner and mode asked for, or the
    /// seed's origin. Caches of one id with different bases are different caches, as in
    /// BuildKit, which keys a cache by its id and the snapshot it starts from.
    pub base: Option<String>,
}

/// A cache directory in use; the lock is held until it is dropped.
#[derive(Debug)]
pub struct CacheMountGuard {
    dir: PathBuf,
    _lock: Option<File>,
}

impl CacheMountGuard {
    /// The directory to mount.
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

/// One cache, for listings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheMountInfo {
    /// The cache's `id=` (the target path when the mount gave none).
    pub id: String,
    /// Bytes of the regular files and symlinks in it.
    pub size: u64,
    /// A build holds it now.
    pub in_use: bool,
}

fn entry_name(id: &str, base: Option<&str>) -> String {
    match base {
        None => Digest::of(id.as_bytes()).hex(),
        // The id's length first: no other (id, base) pair, and no id alone, spells the same.
        Some(base) => Digest::of(format!("{}:{id}:{base}", id.len()).as_bytes()).hex(),
    }
}

impl Store {
    fn cache_mounts_dir(&self) -> PathBuf {
        self.root().join("cachemounts")
    }

    /// Opens the cache `id` for one RUN, creating it as `new` says when missing, and waits
    /// for it as `sharing` says.
    pub fn cache_mount(
        &self,
        id: &str,
        sharing: Sharing,
        new: &NewCache,
    ) -> Result<CacheMountGuard> {
        let entry = self
            .cache_mounts_dir()
            .join(entry_name(id, new.base.as_deref()));
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&entry)
            .map_err(io("creating", &entry))?;
        let lock_path = entry.join("lock");
        let mut slot = 0;
        let lock = match sharing {
            Sharing::Shared => lock_file(&lock_path, FlockOperation::LockShared)?,
            Sharing::Locked => lock_file(&lock_path, FlockOperation::LockExclusive)?,
            Sharing::Private => {
                // The first directory nobody holds; a new one past the last.
                let mut n = 0;
                loop {
                    let path = entry.join(slot_name("lock", n));
                    let file = File::options()
                        .create(true)
                        .truncate(false)
                        .write(true)
                        .open(&path)
                        .map_err(io("opening", &path))?;
                    if flock(&file, FlockOperation::NonBlockingLockExclusive).is_ok() {
                        slot = n;
                        break file;
                    }
                    n += 1;
                }
            }
        };
        let data = entry.join(slot_name("data", slot));
        {
            let _init = lock_file(&entry.join("init.lock"), FlockOperation::LockExclusive)?;
            let id_file = entry.join("id");
            if !id_file.exists() {
                fs::write(&id_file, id).map_err(io("writing", &id_file))?;
            }
            let exists = fs::symlink_metadata(&data).is_ok();
            if exists && new.reset {
                // Renamed away first: a concurrent user keeps the directory it mounted.
                let trash = self.temp_dir("cache-old-")?;
                let old = trash.path().join("data");
                fs::rename(&data, &old).map_err(io("renaming", &data))?;
            }
            if !exists || new.reset {
                self.make_data(&data, new)?;
            }
        }
        Ok(CacheMountGuard {
            dir: data,
            _lock: Some(lock),
        })
    }

    /// Makes `dir` (absent) as `new` says.
    fn make_data(&self, dir: &Path, new: &NewCache) -> Result<()> {
        match &new.seed {
            Some(seed) => fs::rename(seed, dir).map_err(io("renaming", seed)),
            None => {
                fs::create_dir(dir).map_err(io("creating", dir))?;
                std::os::unix::fs::chown(dir, Some(new.uid), Some(new.gid))
                    .map_err(io("changing the owner of", dir))?;
                fs::set_permissions(
                    dir,
                    std::os::unix::fs::PermissionsExt::from_mode(new.mode & 0o7777),
                )
                .map_err(io("changing the mode of", dir))
            }
        }
    }

    /// Every cache mount, sorted by id.
    pub fn cache_mounts(&self) -> Result<Vec<CacheMountInfo>> {
        let root = self.cache_mounts_dir();
        let mut out = Vec::new();
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(io("reading", &root)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io("reading", &root))?;
            let path = entry.path();
            let id = fs::read_to_string(path.join("id")).unwrap_or_default();
            let in_use = lock_slots(&path).is_none();
            out.push(CacheMountInfo {
                id,
                size: data_size(&path),
                in_use,
            });
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Removes every cache mount no build holds; returns how many and their bytes.
    pub fn remove_cache_mounts(&self) -> Result<(usize, u64)> {
        let root = self.cache_mounts_dir();
        let entries = match fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((0, 0)),
            Err(e) => return Err(io("reading", &root)(e)),
        };
        let (mut count, mut bytes) = (0, 0);
        for entry in entries {
            let entry = entry.map_err(io("reading", &root))?;
            let path = entry.path();
            // Held (every directory of the id) until it is renamed away.
            let Some(_locks) = lock_slots(&path) else {
                continue;
            };
            let size = data_size(&path);
            // Renamed into the temporary area first, so a half-removed cache is never used.
            let trash = self.temp_dir("cache-prune-")?;
            let gone = trash.path().join("entry");
            fs::rename(&path, &gone).map_err(io("renaming", &path))?;
            remove_tree(&gone).map_err(|source| Error::Io {
                op: "removing",
                path: gone.clone(),
                source,
            })?;
            count += 1;
            bytes += size;
        }
        Ok((count, bytes))
    }
}

/// `lock`/`data` for slot 0, `lock.N`/`data.N` for the directories `private` users added.
fn slot_name(base: &str, n: usize) -> String {
    if n == 0 {
        base.to_string()
    } else {
        format!("{base}.{n}")
    }
}

/// Locks every lock file of a cache entry exclusively; `None` when a build holds one.
fn lock_slots(entry: &Path) -> Option<Vec<File>> {
    let mut held = Vec::new();
    for e in fs::read_dir(entry).ok()?.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name == "lock"
            || name
                .strip_prefix("lock.")
                .is_some_and(|n| n.parse::<usize>().is_ok())
        {
            let f = File::open(e.path()).ok()?;
            flock(&f, FlockOperation::NonBlockingLockExclusive).ok()?;
            held.push(f);
        }
    }
    Some(held)
}

/// The bytes of every data directory of a cache entry.
fn data_size(entry: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(entry) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name == "data"
                || name
                    .strip_prefix("data.")
                    .is_some_and(|n| n.parse::<usize>().is_ok())
        })
        .map(|e| tree_size(&e.path()))
        .sum()
}

/// The bytes of the regular files and symlinks below `dir`, links not followed.
fn tree_size(dir: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(dir) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.size();
    }
    let mut total = 0;
    if let Ok(entries) = fs::read_dir(dir) {
        for e in entries.flatten() {
            total += tree_size(&e.path());
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_cache() -> NewCache {
        NewCache {
            mode: 0o755,
            uid: 0,
            gid: 0,
            seed: None,
            reset: false,
            base: None,
        }
    }

    #[test]
    fn ids_never_name_a_path_outside_the_cache_directory() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        for id in ["../../x", "/", "", "a/../../b", ".."] {
            let guard = store
                .cache_mount(id, Sharing::Shared, &new_cache())
                .unwrap();
            let dir = guard.path().canonicalize().unwrap();
            let base = root.path().join("cachemounts").canonicalize().unwrap();
            assert!(dir.starts_with(&base), "{id:?} gave {}", dir.display());
        }
        assert!(!root.path().join("x").exists());
        let listed: Vec<String> = store
            .cache_mounts()
            .unwrap()
            .into_iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(listed, ["", "..", "../../x", "/", "a/../../b"]);
    }

    #[test]
    fn contents_persist_reset_empties_and_removal_frees_them() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        {
            let g = store
                .cache_mount("c", Sharing::Locked, &new_cache())
                .unwrap();
            fs::write(g.path().join("f"), b"12345").unwrap();
        }
        {
            let g = store
                .cache_mount("c", Sharing::Shared, &new_cache())
                .unwrap();
            assert_eq!(fs::read(g.path().join("f")).unwrap(), b"12345");
            let listed = store.cache_mounts().unwrap();
            assert_eq!(listed.len(), 1);
            assert!(listed[0].in_use && listed[0].size == 5);
            // A cache in use is not removed.
            assert_eq!(store.remove_cache_mounts().unwrap(), (0, 0));
        }
        let reset = NewCache {
            reset: true,
            ..new_cache()
        };
        {
            let g = store.cache_mount("c", Sharing::Shared, &reset).unwrap();
            assert!(!g.path().join("f").exists());
            fs::write(g.path().join("g"), b"123").unwrap();
        }
        assert_eq!(store.remove_cache_mounts().unwrap(), (1, 3));
        assert!(store.cache_mounts().unwrap().is_empty());
    }

    #[test]
    fn private_users_get_their_own_directory_while_the_cache_is_held() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let first = store
            .cache_mount("p", Sharing::Private, &new_cache())
            .unwrap();
        fs::write(first.path().join("mine"), b"x").unwrap();
        let second = store
            .cache_mount("p", Sharing::Private, &new_cache())
            .unwrap();
        assert_ne!(first.path(), second.path());
        assert!(!second.path().join("mine").exists());
        fs::write(second.path().join("theirs"), b"yz").unwrap();
        // A cache that a build holds (any of its directories) is not removed.
        drop(first);
        assert_eq!(store.remove_cache_mounts().unwrap(), (0, 0));
        drop(second);
        // Both directories are kept, as BuildKit keeps them: the next user takes the first
        // free one, a user while that one is held takes the second.
        let again = store
            .cache_mount("p", Sharing::Private, &new_cache())
            .unwrap();
        assert!(again.path().join("mine").exists());
        let other = store
            .cache_mount("p", Sharing::Private, &new_cache())
            .unwrap();
        assert!(other.path().join("theirs").exists());
        let listed = store.cache_mounts().unwrap();
        assert!(listed[0].in_use && listed[0].size == 3, "{listed:?}");
        drop((again, other));
        assert_eq!(store.remove_cache_mounts().unwrap(), (1, 3));
    }

    #[test]
    fn a_new_cache_gets_mode_and_owner() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let new = NewCache {
            mode: 0o700,
            uid: 5,
            gid: 6,
            ..new_cache()
        };
        let g = store.cache_mount("m", Sharing::Shared, &new).unwrap();
        let meta = fs::metadata(g.path()).unwrap();
        assert_eq!(
            (meta.mode() & 0o7777, meta.uid(), meta.gid()),
            (0o700, 5, 6)
        );
    }
}
