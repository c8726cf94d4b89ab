//! Where a COPY writes: the [`Target`] calls both a step's upper directory on disk ([`Disk`])
//! and an in-memory plan of the layer (plan.rs) answer. Below both the COPY rules (copy/) and
//! the plan, so neither depends on the other through it.

use std::fs;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use rustix::fs::{AtFlags, FileType, Timespec};

use crate::error::{io_err, Error};
use crate::fsops::{self, Root};
use crate::tree::Node;

/// Where a COPY writes what it copies: a step's upper directory on disk ([`Disk`]), or a
/// `Plan` (plan.rs) held in memory that becomes the layer tar without a file being written. Paths
/// are relative to the step's root, `/`-separated; their parents resolve symlinks inside the
/// root (as [`Root::dir`] does), the last component never.
pub(crate) trait Target {
    /// The kind of `rel`; `None` when absent.
    fn kind(&mut self, rel: &str) -> Result<Option<FileType>, Error>;
    /// Makes `rel` a directory: an existing one is kept, anything else is replaced by a new
    /// directory with `mode` and `owner`.
    fn ensure_dir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> Result<(), Error>;
    /// Makes the new directory `rel` (it must not exist).
    fn mkdir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> Result<(), Error>;
    /// chown, then chmod, of directory `rel`.
    fn set_owner_mode(&mut self, rel: &str, owner: (u32, u32), mode: u32) -> Result<(), Error>;
    /// Removes `rel` and everything below it; nothing when absent.
    fn remove(&mut self, rel: &str) -> Result<(), Error>;
    /// Makes `rel` (absent) a hard link to what `first` is.
    fn link(&mut self, first: &str, rel: &str) -> Result<(), Error>;
    /// Makes the symlink `rel -> target` (absent).
    fn symlink(
        &mut self,
        rel: &str,
        target: &Path,
        owner: (u32, u32),
        mtime: Timespec,
    ) -> Result<(), Error>;
    /// Makes the regular file `rel` (absent) holding `content`; returns its size.
    fn file(&mut self, rel: &str, content: Content<'_>, attrs: FileAttrs) -> Result<u64, Error>;
    /// Makes the device node or fifo `rel` (absent).
    fn mknod(
        &mut self,
        rel: &str,
        kind: FileType,
        mode: u32,
        rdev: u64,
        owner: (u32, u32),
    ) -> Result<(), Error>;
    /// Sets the mtime of directory `rel` (a symlink to one followed inside the root).
    fn set_dir_mtime(&mut self, rel: &str, mtime: Timespec) -> Result<(), Error>;
    /// Extracts an archive into directory `dest` (see the COPY writer's `extract`); only a directory
    /// on disk can.
    fn extract<'o>(
        &mut self,
        reader: Box<dyn Read>,
        opts: tare_layer::apply::ExtractOptions<'o>,
        below: tare_layer::apply::BelowFn<'o>,
        name: &'o str,
    ) -> Result<tare_layer::ApplyStats, Error>;
}

/// What a new regular file holds.
pub(crate) enum Content<'a> {
    /// A file of a source tree, read fd-relative ([`Node::open`]); its xattrs come along.
    Node(&'a Node),
    Bytes(&'a [u8]),
    /// A file of tare's own (a download).
    Host(&'a Path),
}

/// The owner, mode and mtime of a new regular file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileAttrs {
    pub owner: (u32, u32),
    pub mode: u32,
    pub mtime: Timespec,
}

/// A step's upper directory, written only through [`fsops`].
pub(crate) struct Disk {
    root: Root,
}

impl Disk {
    /// The upper directory `root` as a COPY target.
    pub(crate) fn new(root: Root) -> Disk {
        Disk { root }
    }

    fn parent<'r>(&self, rel: &'r str) -> Result<(OwnedFd, &'r str), Error> {
        self.root.parent(rel)
    }
}

impl Target for Disk {
    fn kind(&mut self, rel: &str) -> Result<Option<FileType>, Error> {
        let (dir, name) = self.parent(rel)?;
        fsops::kind_at(&dir, name).map_err(self.root.err(rel))
    }

    fn ensure_dir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> Result<(), Error> {
        let (dir, name) = self.parent(rel)?;
        fsops::ensure_dir_at(&dir, name, mode, owner).map_err(self.root.err(rel))?;
        Ok(())
    }

    fn mkdir(&mut self, rel: &str, mode: u32, owner: (u32, u32)) -> Result<(), Error> {
        let (dir, name) = self.parent(rel)?;
        fsops::mkdir_at(&dir, name, mode, owner).map_err(self.root.err(rel))?;
        Ok(())
    }

    fn set_owner_mode(&mut self, rel: &str, owner: (u32, u32), mode: u32) -> Result<(), Error> {
        let dir = self.root.dir(rel)?;
        fsops::set_owner_mode(&dir, owner, mode).map_err(self.root.err(rel))
    }

    fn remove(&mut self, rel: &str) -> Result<(), Error> {
        let (dir, name) = self.parent(rel)?;
        fsops::remove_at(&dir, name).map_err(self.root.err(rel))
    }

    fn link(&mut self, first: &str, rel: &str) -> Result<(), Error> {
        let (first_dir, first_name) = self.parent(first)?;
        let (dir, name) = self.parent(rel)?;
        rustix::fs::linkat(&first_dir, first_name, &dir, name, AtFlags::empty())
            .map_err(|e| self.root.err(rel)(e.into()))
    }

    fn symlink(
        &mut self,
        rel: &str,
        target: &Path,
        owner: (u32, u32),
        mtime: Timespec,
    ) -> Result<(), Error> {
        let (dir, name) = self.parent(rel)?;
        fsops::symlink_at(&dir, name, target.as_os_str(), owner, mtime).map_err(self.root.err(rel))
    }

    fn file(&mut self, rel: &str, content: Content<'_>, attrs: FileAttrs) -> Result<u64, Error> {
        let (dir, name) = self.parent(rel)?;
        let mut to = fsops::create_file_at(&dir, name).map_err(self.root.err(rel))?;
        let size = match content {
            Content::Node(node) => {
                let mut from = node.open()?;
                let size = std::io::copy(&mut from, &mut to).map_err(io_err(&node.host))?;
                fsops::copy_xattrs(&from, &to);
                size
            }
            Content::Bytes(mut bytes) => {
                std::io::copy(&mut bytes, &mut to).map_err(self.root.err(rel))?
            }
            Content::Host(path) => {
                let mut from = fs::File::open(path).map_err(io_err(path))?;
                std::io::copy(&mut from, &mut to).map_err(self.root.err(rel))?
            }
        };
        fsops::set_owner_mode(&to, attrs.owner, attrs.mode).map_err(self.root.err(rel))?;
        fsops::set_mtime(&to, attrs.mtime).map_err(self.root.err(rel))?;
        Ok(size)
    }

    fn mknod(
        &mut self,
        rel: &str,
        kind: FileType,
        mode: u32,
        rdev: u64,
        owner: (u32, u32),
    ) -> Result<(), Error> {
        let (dir, name) = self.parent(rel)?;
        fsops::mknod_at(&dir, name, kind, mode, rdev, owner).map_err(self.root.err(rel))
    }

    fn set_dir_mtime(&mut self, rel: &str, mtime: Timespec) -> Result<(), Error> {
        let dir = self.root.dir(rel)?;
        fsops::set_mtime(&dir, mtime).map_err(self.root.err(rel))
    }

    fn extract<'o>(
        &mut self,
        reader: Box<dyn Read>,
        opts: tare_layer::apply::ExtractOptions<'o>,
        below: tare_layer::apply::BelowFn<'o>,
        name: &'o str,
    ) -> Result<tare_layer::ApplyStats, Error> {
        Ok(tare_layer::apply::extract_over(
            reader,
            self.root.path(),
            opts,
            below,
            name,
        )?)
    }
}
