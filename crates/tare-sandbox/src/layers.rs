//! Reading a file of a layered root filesystem without mounting it.
//!
//! The layers are directories in overlayfs format, top first: a whiteout is a character device
//! 0/0 (or an empty file with the whiteout xattr), an opaque directory carries the `trusted.overlay.opaque` (or `user.overlay.opaque`)
//! extended attribute set to `y`. This is how the parent finds `/etc/passwd` before the child
//! mounts anything.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use crate::Error;

/// How many symbolic links a lookup follows before giving up.
const MAX_LINKS: usize = 16;

/// The largest image file read on the host side (`/etc/passwd`, `/etc/group`): far above any
/// real one, low enough that an image cannot make tare allocate without bound.
pub const MAX_FILE_SIZE: u64 = 4 << 20;

/// The content of the absolute path `path` in the filesystem made of `layers` (top first), or
/// `None` when no layer has it (or a whiteout hides it). Symbolic links are followed inside
/// the layered filesystem.
///
/// The file must be a regular file of at most [`MAX_FILE_SIZE`] bytes: a FIFO, a device or a
/// huge file is an error naming `path`, found without blocking and without reading it. It is
/// opened relative to its layer's directory with `openat2(RESOLVE_IN_ROOT |
/// RESOLVE_NO_SYMLINKS)`, `O_NOFOLLOW | O_NONBLOCK`, so that a symbolic link swapped in after
/// the lookup cannot lead out of the layer.
pub fn read_file(layers: &[PathBuf], path: &str) -> Result<Option<Vec<u8>>, Error> {
    let asked = path;
    let mut path = path.to_string();
    for _ in 0..MAX_LINKS {
        match lookup(layers, &path)? {
            Found::Missing => return Ok(None),
            Found::File { layer, rel } => return read_regular(&layer, &rel, asked).map(Some),
            Found::Special => {
                return Err(Error::Invalid {
                    what: "image file",
                    value: asked.to_string(),
                    reason: "is not a regular file",
                })
            }
            Found::Dir(_) => return Ok(None),
            Found::Link(host, target) => {
                path = if target.starts_with('/') {
                    target
                } else {
                    let parent = Path::new(&path).parent().unwrap_or(Path::new("/"));
                    format!("{}/{}", parent.display(), target)
                };
                let _ = host;
            }
        }
    }
    Ok(None)
}

/// Reads `rel` (no symbolic link in it, checked by the lookup) under the layer directory.
fn read_regular(layer: &Path, rel: &str, asked: &str) -> Result<Vec<u8>, Error> {
    use rustix::fs::{Mode, OFlags, ResolveFlags};
    use std::io::Read;
    let root = rustix::fs::open(
        layer,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(layer, e.into()))?;
    let host = layer.join(rel);
    let fd = rustix::fs::openat2(
        &root,
        rel,
        OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
        ResolveFlags::IN_ROOT | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
    )
    .map_err(|e| Error::io(&host, e.into()))?;
    let stat = rustix::fs::fstat(&fd).map_err(|e| Error::io(&host, e.into()))?;
    let invalid = |reason| Error::Invalid {
        what: "image file",
        value: asked.to_string(),
        reason,
    };
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(invalid("is not a regular file"));
    }
    if stat.st_size as u64 > MAX_FILE_SIZE {
        return Err(invalid("is larger than 4 MiB"));
    }
    let mut data = Vec::with_capacity(stat.st_size as usize);
    std::fs::File::from(fd)
        .take(MAX_FILE_SIZE + 1)
        .read_to_end(&mut data)
        .map_err(|e| Error::io(&host, e))?;
    if data.len() as u64 > MAX_FILE_SIZE {
        return Err(invalid("is larger than 4 MiB"));
    }
    Ok(data)
}

/// What a path is in the merged view, and where its topmost copy lives on the host.
#[derive(Debug)]
pub(crate) enum Found {
    Missing,
    /// A regular file: `rel` under the layer directory `layer`.
    File {
        layer: PathBuf,
        rel: String,
    },
    /// A FIFO, socket or device node.
    Special,
    Dir(PathBuf),
    Link(PathBuf, String),
}

/// Looks `path` up through the layers without following a final symbolic link. Intermediate
/// components must be directories (a symbolic link in the middle is not followed: it hides the
/// path, which only makes a lookup fail, never escape).
pub(crate) fn lookup(layers: &[PathBuf], path: &str) -> Result<Found, Error> {
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return Ok(Found::Missing);
    }
    'layers: for layer in layers {
        let mut host = layer.clone();
        let mut opaque = false;
        for (i, part) in parts.iter().enumerate() {
            host.push(part);
            let meta = match std::fs::symlink_metadata(&host) {
                Ok(meta) => meta,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if opaque {
                        return Ok(Found::Missing);
                    }
                    continue 'layers;
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOTDIR) => continue 'layers,
                Err(e) => return Err(Error::io(host, e)),
            };
            let kind = meta.file_type();
            if (kind.is_char_device() && meta.rdev() == 0) || is_xattr_whiteout(&host, &meta) {
                return Ok(Found::Missing);
            }
            let last = i + 1 == parts.len();
            if last {
                return Ok(if kind.is_dir() {
                    Found::Dir(host)
                } else if kind.is_symlink() {
                    let target = std::fs::read_link(&host).map_err(|e| Error::io(&host, e))?;
                    Found::Link(host, target.to_string_lossy().into_owned())
                } else if kind.is_file() {
                    Found::File {
                        layer: layer.clone(),
                        rel: parts.join("/"),
                    }
                } else {
                    Found::Special
                });
            }
            if !kind.is_dir() {
                return Ok(Found::Missing);
            }
            opaque = opaque || is_opaque(&host);
        }
        // The root itself.
        return Ok(Found::Dir(host));
    }
    Ok(Found::Missing)
}

/// Whether an overlay directory hides the same directory in the layers below it.
/// The xattr form of a whiteout (`tare_layer::whiteout`): an empty file with
/// `trusted.overlay.whiteout` or `user.overlay.whiteout`, where the store's filesystem refuses
/// the device node.
fn is_xattr_whiteout(path: &Path, meta: &std::fs::Metadata) -> bool {
    meta.is_file()
        && meta.len() == 0
        && ["trusted.overlay.whiteout", "user.overlay.whiteout"]
            .iter()
            .any(|name| rustix::fs::lgetxattr(path, *name, &mut [0u8; 0][..]).is_ok())
}

pub(crate) fn is_opaque(dir: &Path) -> bool {
    opaque_by(|name, value| rustix::fs::lgetxattr(dir, name, value))
}

/// [`is_opaque`] for an open directory.
pub(crate) fn is_opaque_fd(dir: &std::os::fd::OwnedFd) -> bool {
    opaque_by(|name, value| rustix::fs::fgetxattr(dir, name, value))
}

fn opaque_by(get: impl Fn(&str, &mut [u8]) -> rustix::io::Result<usize>) -> bool {
    let mut value = [0u8; 4];
    ["trusted.overlay.opaque", "user.overlay.opaque"]
        .iter()
        .any(|name| matches!(get(name, &mut value), Ok(n) if n >= 1 && value[0] == b'y'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_layers_win_and_whiteouts_hide() {
        let tmp = tempfile::tempdir().unwrap();
        let (top, bottom) = (tmp.path().join("top"), tmp.path().join("bottom"));
        std::fs::create_dir_all(top.join("etc")).unwrap();
        std::fs::create_dir_all(bottom.join("etc")).unwrap();
        std::fs::write(bottom.join("etc/passwd"), "bottom").unwrap();
        std::fs::write(bottom.join("etc/group"), "bottom").unwrap();
        std::fs::write(top.join("etc/passwd"), "top").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            top.join("etc/group"),
            rustix::fs::FileType::CharacterDevice,
            rustix::fs::Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let layers = vec![top, bottom];
        assert_eq!(
            read_file(&layers, "/etc/passwd").unwrap().as_deref(),
            Some(&b"top"[..])
        );
        assert_eq!(read_file(&layers, "/etc/group").unwrap(), None);
        assert_eq!(read_file(&layers, "/etc/missing").unwrap(), None);
    }

    #[test]
    fn symlinks_resolve_inside_the_layers() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join("usr/etc")).unwrap();
        std::fs::write(tmp.path().join("usr/etc/passwd"), "linked").unwrap();
        std::os::unix::fs::symlink("usr/etc", tmp.path().join("etc")).unwrap();
        std::os::unix::fs::symlink("/usr/etc/passwd", tmp.path().join("pw")).unwrap();
        let layers = vec![tmp.path().to_path_buf()];
        assert_eq!(
            read_file(&layers, "/pw").unwrap().as_deref(),
            Some(&b"linked"[..])
        );
    }
}
