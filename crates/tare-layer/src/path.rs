//! Path cleaning, in one place for the whole project.
//!
//! Docker and BuildKit clean every path they are given with Go's `path.Clean`: Dockerfile
//! destinations and WORKDIR, `.dockerignore` patterns, COPY sources, and tar entry names
//! before they are applied. [`clean`] is that function; [`clean_path`] is the form the tar
//! readers and appliers use: a path relative to a root, refused when it climbs above it.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Go's `path.Clean` on bytes: no empty, `.` or `name/..` components; a leading `/` kept;
/// `..` above a rooted path dropped; `.` for an empty result.
pub fn clean_bytes(path: &[u8]) -> Vec<u8> {
    let rooted = path.first() == Some(&b'/');
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in path.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => {
                if parts.last().is_some_and(|p| *p != b"..") {
                    parts.pop();
                } else if !rooted {
                    parts.push(b"..");
                }
            }
            p => parts.push(p),
        }
    }
    let joined = parts.join(&b'/');
    match (rooted, joined.is_empty()) {
        (true, _) => [b"/".as_slice(), &joined].concat(),
        (false, true) => b".".to_vec(),
        (false, false) => joined,
    }
}

/// Go's `path.Clean` for `/`-separated paths.
pub fn clean(path: &str) -> String {
    String::from_utf8_lossy(&clean_bytes(path.as_bytes())).into_owned()
}

/// `path` as an absolute, clean container path: a relative one is taken below `workdir`, and
/// `..` stops at the root. BuildKit resolves RUN mount targets and other paths given relative
/// to the working directory this way.
pub fn clean_in(workdir: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean(path)
    } else {
        clean(&format!("/{workdir}/{path}"))
    }
}

/// A tar entry name (or hard-link target) as a clean path relative to the root it is applied
/// to: a leading `/` is dropped (absolute names are taken relative to the root), `None` is
/// the root itself, and a name that climbs above the root is an error.
pub fn clean_path(raw: &Path) -> Result<Option<PathBuf>, &'static str> {
    let cleaned = clean_bytes(raw.as_os_str().as_bytes());
    let rel = cleaned.strip_prefix(b"/").unwrap_or(&cleaned);
    if rel == b".." || rel.starts_with(b"../") {
        return Err("path leaves the root through '..'");
    }
    if rel.is_empty() || rel == b"." {
        return Ok(None);
    }
    Ok(Some(PathBuf::from(OsStr::from_bytes(rel))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_follows_go() {
        assert_eq!(clean("a/./b/../c/"), "a/c");
        assert_eq!(clean("/../x"), "/x");
        assert_eq!(clean("../x"), "../x");
        assert_eq!(clean(""), ".");
        assert_eq!(clean("//a//b/"), "/a/b");
    }

    #[test]
    fn container_paths_are_absolute_and_stop_at_the_root() {
        assert_eq!(clean_in("/app", "data/../cache/"), "/app/cache");
        assert_eq!(clean_in("/app/", "x"), "/app/x");
        assert_eq!(clean_in("", "x"), "/x");
        assert_eq!(clean_in("/app", "../../../etc"), "/etc");
        assert_eq!(clean_in("/app", "/abs/./p"), "/abs/p");
        assert_eq!(clean_in("/", ".."), "/");
    }

    #[test]
    fn entry_names_stay_below_the_root() {
        let p = |s: &str| clean_path(Path::new(s));
        assert_eq!(p("./a/b/").unwrap(), Some(PathBuf::from("a/b")));
        assert_eq!(p("/etc/passwd").unwrap(), Some(PathBuf::from("etc/passwd")));
        assert_eq!(p("a/../b").unwrap(), Some(PathBuf::from("b")));
        assert_eq!(p("./").unwrap(), None);
        assert!(p("../x").is_err());
        assert!(p("a/../../x").is_err());
        // Rooted names cannot climb: `/../x` is `/x`, as in a chroot.
        assert_eq!(p("/../x").unwrap(), Some(PathBuf::from("x")));
    }
}
