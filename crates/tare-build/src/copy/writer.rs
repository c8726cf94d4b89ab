//! The COPY writer's work: directories, files, links and archives written into a [`Target`]
//! with the owner, mode and mtime rules of the module above.

use std::ffi::OsStr;
use std::os::fd::OwnedFd;

use super::*;

impl<T: Target> Writer<'_, T> {
    /// Creates the parent directories of `rel`.
    pub(super) fn ensure_parents(&mut self, rel: &str) -> Result<(), Error> {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        for i in 1..comps.len() {
            self.ensure_dir_exact(&comps[..i].join("/"))?;
        }
        Ok(())
    }

    /// Creates directory `rel` (parents must exist): a copy of the image's directory when
    /// there is one, else a new directory (0755, or an octal `--chmod`'s mode) owned by
    /// `--chown` or root. Something else at
    /// `rel` that this step made (a file, a symlink) is replaced, never followed; a file the
    /// image has there fails the step, as in BuildKit.
    pub(super) fn ensure_dir_exact(&mut self, rel: &str) -> Result<(), Error> {
        if rel.is_empty() {
            return Ok(());
        }
        if self.out.kind(rel)? == Some(FileType::Directory) {
            return Ok(());
        }
        self.refuse_image_file(rel)?;
        let (mode, owner, mtime) = match self.lower.lstat(rel)? {
            Some(node) if node.meta.is_dir() => (
                node.meta.mode(),
                (node.meta.uid(), node.meta.gid()),
                Some(mtime_of(&node.meta)),
            ),
            _ => (self.new_dir_mode, self.opts.chown.unwrap_or((0, 0)), None),
        };
        self.out.ensure_dir(rel, mode, owner)?;
        if let Some(mtime) = mtime {
            self.mirrored.push((rel.to_string(), mtime));
        }
        Ok(())
    }

    /// Fails when the image holds a non-directory at `rel` and this step has not replaced
    /// it: BuildKit never turns a file into a directory (WORKDIR, a COPY destination or a
    /// copied directory over a file all fail with "not a directory"). A symlink is left to the
    /// callers, which resolve destinations through the image's links.
    fn refuse_image_file(&mut self, rel: &str) -> Result<(), Error> {
        if self.out.kind(rel)?.is_some() {
            return Ok(());
        }
        match self.lower.lstat(rel)? {
            Some(node) if !node.meta.is_dir() && !node.meta.file_type().is_symlink() => {
                Err(Error::NotADirectory {
                    path: rel.to_string(),
                })
            }
            _ => Ok(()),
        }
    }

    pub(super) fn owner(&self, meta: &fs::Metadata) -> (u32, u32) {
        match self.opts.chown {
            Some(o) => o,
            None if self.opts.keep_owner => (meta.uid(), meta.gid()),
            None => (0, 0),
        }
    }

    pub(super) fn mode(&self, meta: &fs::Metadata) -> u32 {
        match &self.opts.chmod {
            Some(chmod) => chmod.apply(meta.mode(), meta.is_dir()),
            None => meta.mode() & 0o7777,
        }
    }

    /// Copies directory `src` of `tree` as `dest` (its contents into `dest`).
    pub(super) fn copy_dir_root(
        &mut self,
        tree: &dyn SourceTree,
        src: &str,
        node: &Node,
        dest: &str,
    ) -> Result<(), Error> {
        if !dest.is_empty() {
            let existing = self.out.kind(dest)?;
            let in_image = self.lower.lstat(dest)?.is_some_and(|n| n.meta.is_dir());
            if existing != Some(FileType::Directory) {
                if in_image {
                    self.ensure_dir_exact(dest)?;
                } else {
                    if existing.is_some() {
                        return Err(Error::DirOntoFile {
                            src: src.to_string(),
                            dest: dest.to_string(),
                        });
                    }
                    self.refuse_image_file(dest)?;
                    // A destination this step creates takes an octal --chmod too; with a
                    // symbolic one it is a plain 0755 directory (BuildKit 0.25).
                    let owner = self.owner(&node.meta);
                    let mode = match &self.opts.chmod {
                        Some(Chmod::Symbolic(_)) => 0o755,
                        _ => self.mode(&node.meta),
                    };
                    self.out.mkdir(dest, mode, owner)?;
                    self.mirrored.push((dest.to_string(), mtime_of(&node.meta)));
                }
            }
        }
        self.copy_children(tree, src, dest)
    }

    /// Copies what directory `src` of `tree` holds into directory `dest`.
    pub(super) fn copy_children(
        &mut self,
        tree: &dyn SourceTree,
        src: &str,
        dest: &str,
    ) -> Result<(), Error> {
        for name in tree.read_dir(src)? {
            let child_src = join(src, &name);
            let child_dest = join(dest, &name);
            let Some(node) = tree.lstat(&child_src)? else {
                continue;
            };
            if node.meta.is_dir() {
                self.refuse_image_file(&child_dest)?;
                self.out.ensure_dir(&child_dest, 0o700, (0, 0))?;
                self.out.set_owner_mode(
                    &child_dest,
                    self.owner(&node.meta),
                    self.mode(&node.meta),
                )?;
                self.copy_children(tree, &child_src, &child_dest)?;
                self.mirrored.push((child_dest, mtime_of(&node.meta)));
            } else {
                self.copy_node(&node, &child_dest)?;
            }
        }
        Ok(())
    }

    /// Copies one non-directory entry to `dest` (parents exist).
    pub(super) fn copy_node(&mut self, node: &Node, rel: &str) -> Result<(), Error> {
        self.out.remove(rel)?;
        let meta = &node.meta;
        let ft = meta.file_type();
        if meta.nlink() > 1 && !ft.is_dir() {
            let key = (meta.dev(), meta.ino());
            if let Some(first) = self.links.get(&key) {
                return self.out.link(first, rel);
            }
            self.links.insert(key, rel.to_string());
        }
        let owner = self.owner(meta);
        let mtime = mtime_of(meta);
        if ft.is_symlink() {
            let target = node.read_link()?;
            self.out.symlink(rel, &target, owner, mtime)?;
        } else if ft.is_file() {
            let attrs = FileAttrs {
                owner,
                mode: self.mode(meta),
                mtime,
            };
            self.out.file(rel, Content::Node(node), attrs)?;
        } else {
            // Devices and fifos: made again with the same kind, mode and rdev.
            let kind = FileType::from_raw_mode(meta.mode());
            if matches!(kind, FileType::Socket | FileType::Unknown) {
                return Err(Error::Socket {
                    path: node.host.clone(),
                });
            }
            self.out
                .mknod(rel, kind, self.mode(meta), meta.rdev(), owner)?;
        }
        Ok(())
    }

    /// Writes a file of `content` (a heredoc, a download) to `dest`.
    pub(super) fn write_file(
        &mut self,
        dest: &str,
        content: Content<'_>,
        mode: u32,
        mtime: i64,
    ) -> Result<(), Error> {
        self.out.remove(dest)?;
        let attrs = FileAttrs {
            owner: self.opts.chown.unwrap_or((0, 0)),
            mode: match &self.opts.chmod {
                Some(chmod) => chmod.apply(mode, false),
                None => mode,
            },
            mtime: Timespec {
                tv_sec: mtime,
                tv_nsec: 0,
            },
        };
        self.out.file(dest, content, attrs)?;
        Ok(())
    }

    /// Extracts an archive into directory `dest` with the layer applier, keeping its owners
    /// and modes (setuid included) unless `--chown`. Directories the archive needs but does
    /// not hold are copied from the image when it has them.
    pub(super) fn extract(
        &mut self,
        file: fs::File,
        kind: ArchiveKind,
        dest: &str,
        name: &str,
    ) -> Result<(), Error> {
        let reader = decoder(kind, file).map_err(io_err(Path::new(name)))?;
        let lower = self.lower;
        let fresh_owner = self.opts.chown.unwrap_or((0, 0));
        let mut mirrored = Vec::new();
        let mut make_dir = |parent: &OwnedFd, dir_name: &OsStr, rel: &Path| {
            let rel = rel.to_string_lossy();
            let found = lower
                .lstat(&rel)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let dir_name = dir_name.to_string_lossy();
            match found {
                Some(node) if node.meta.is_dir() => {
                    let owner = (node.meta.uid(), node.meta.gid());
                    fsops::ensure_dir_at(parent, &dir_name, node.meta.mode(), owner)?;
                    mirrored.push((rel.into_owned(), mtime_of(&node.meta)));
                }
                _ => {
                    fsops::ensure_dir_at(parent, &dir_name, 0o755, fresh_owner)?;
                }
            }
            Ok(())
        };
        let opts = tare_layer::apply::ExtractOptions {
            dest: Path::new(dest),
            chown: self.opts.chown,
            make_dir: &mut make_dir,
        };
        // What the image holds where the step wrote nothing: its symlinks below `dest` are
        // followed as the archive's own are.
        let below = |rel: &Path| -> std::io::Result<Below> {
            let found = lower
                .lstat(&rel.to_string_lossy())
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Ok(match found {
                None => Below::Missing,
                Some(node) if node.meta.is_dir() => Below::Directory,
                Some(node) if node.meta.file_type().is_symlink() => Below::Symlink(
                    node.read_link()
                        .map_err(|e| std::io::Error::other(e.to_string()))?,
                ),
                Some(_) => Below::Other,
            })
        };
        self.out.extract(reader, opts, &below, name)?;
        self.mirrored.extend(mirrored);
        Ok(())
    }

    /// Puts back the mtimes of directories that writing into them changed, deepest first.
    pub(super) fn restore_mtimes(&mut self) -> Result<(), Error> {
        self.mirrored.sort_by(|a, b| b.0.cmp(&a.0));
        for (rel, mtime) in &self.mirrored {
            self.out.set_dir_mtime(rel, *mtime)?;
        }
        Ok(())
    }
}
