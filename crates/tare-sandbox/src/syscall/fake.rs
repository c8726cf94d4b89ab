//! A [`Syscall`] that records the calls instead of making them, over a small model of the
//! image: which container paths are symbolic links, which directories were made. Tests of
//! the mount plan run on it without root.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::CStr;
use std::os::fd::{BorrowedFd, OwnedFd};

use rustix::fs::{FileType, OFlags};
use rustix::io::{Errno, Result};
use rustix::mount::{MountFlags, MountPropagationFlags, OpenTreeFlags, UnmountFlags};

use super::Syscall;

/// What the recorder saw.
#[derive(Default)]
struct State {
    /// One line per call, in order (`mount tmpfs /dev nosuid,strictatime mode=755,...`).
    calls: Vec<String>,
    /// The working directory, as an absolute path of the current root.
    cwd: String,
    /// Set by `pivot_root(".", ".")`: container paths are absolute paths from then on.
    pivoted: bool,
    /// Container paths made by `mkdir`, `mknod`, `symlink` or `create_file`.
    made: BTreeSet<String>,
    /// Mount targets that went through one of the image's symbolic links:
    /// `(before pivot_root, call line)`.
    through_symlink: Vec<(bool, String)>,
}

/// The recording fake. `merged` is the host path of the new root (the plan's `merged`);
/// `symlinks` are the container paths the image has as symbolic links.
pub(crate) struct Recorder {
    merged: String,
    symlinks: Vec<String>,
    state: RefCell<State>,
}

impl Recorder {
    pub(crate) fn new(merged: &str, symlinks: &[&str]) -> Recorder {
        Recorder {
            merged: merged.to_string(),
            symlinks: symlinks.iter().map(|s| s.to_string()).collect(),
            state: RefCell::new(State {
                cwd: "/".into(),
                ..State::default()
            }),
        }
    }

    /// Every call, in order.
    pub(crate) fn calls(&self) -> Vec<String> {
        self.state.borrow().calls.clone()
    }

    /// The calls that change the mount table (mount, bind, remount, move, propagation,
    /// pivot_root, umount), in order.
    pub(crate) fn mounts(&self) -> Vec<String> {
        const KINDS: [&str; 8] = [
            "mount ",
            "bind ",
            "rbind ",
            "remount ",
            "move ",
            "private ",
            "pivot_root ",
            "umount ",
        ];
        self.calls()
            .into_iter()
            .filter(|c| KINDS.iter().any(|k| c.starts_with(k)))
            .collect()
    }

    /// The mount calls whose target resolved through one of the image's symbolic links,
    /// with whether that happened before `pivot_root` (when a link could lead to the host).
    pub(crate) fn through_symlink(&self) -> Vec<(bool, String)> {
        self.state.borrow().through_symlink.clone()
    }

    fn record(&self, line: String) {
        self.state.borrow_mut().calls.push(line);
    }

    /// The container path `path` names, or `None` for a host path outside the new root.
    fn locate(&self, path: &CStr) -> Option<String> {
        let path = path.to_string_lossy();
        let state = self.state.borrow();
        let absolute = if path.starts_with('/') {
            path.to_string()
        } else {
            join(&state.cwd, &path)
        };
        if state.pivoted {
            return Some(absolute);
        }
        if absolute == self.merged {
            return Some("/".into());
        }
        absolute
            .strip_prefix(&self.merged)
            .filter(|rest| rest.starts_with('/'))
            .map(str::to_string)
    }

    /// Notes a mount on `target` whose resolution (every component, the last one
    /// included: mount(2) follows it) meets one of the image's symbolic links.
    fn check_target(&self, target: &CStr, line: &str) {
        let Some(path) = self.locate(target) else {
            return;
        };
        let mut prefix = String::new();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            prefix.push('/');
            prefix.push_str(part);
            if self.symlinks.contains(&prefix) {
                let mut state = self.state.borrow_mut();
                let before = !state.pivoted;
                state.through_symlink.push((before, line.to_string()));
                return;
            }
        }
    }

    fn mount_call(&self, target: &CStr, line: String) -> Result<()> {
        self.check_target(target, &line);
        self.record(line);
        Ok(())
    }

    fn make(&self, path: &CStr, line: String) -> Result<()> {
        self.record(line);
        let Some(located) = self.locate(path) else {
            return Ok(());
        };
        if self.symlinks.contains(&located) {
            return Err(Errno::EXIST);
        }
        if !self.state.borrow_mut().made.insert(located) {
            return Err(Errno::EXIST);
        }
        Ok(())
    }
}

fn join(dir: &str, rel: &str) -> String {
    let mut out = dir.trim_end_matches('/').to_string();
    for part in rel.split('/') {
        match part {
            "" | "." => {}
            _ => {
                out.push('/');
                out.push_str(part);
            }
        }
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

fn show(path: &CStr) -> String {
    path.to_string_lossy().into_owned()
}

/// `nosuid,nodev,...` for the flags the child uses.
fn flag_names(flags: MountFlags) -> String {
    let names = [
        (MountFlags::BIND, "bind"),
        (MountFlags::RDONLY, "ro"),
        (MountFlags::NOSUID, "nosuid"),
        (MountFlags::NODEV, "nodev"),
        (MountFlags::NOEXEC, "noexec"),
        (MountFlags::STRICTATIME, "strictatime"),
    ];
    let set: Vec<&str> = names
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    set.join(",")
}

impl Syscall for Recorder {
    fn mount(
        &self,
        source: &CStr,
        target: &CStr,
        fstype: &CStr,
        flags: MountFlags,
        data: Option<&CStr>,
    ) -> Result<()> {
        let data = data.map(show).unwrap_or_default();
        let line = format!(
            "mount {} {} {} {} {data}",
            show(fstype),
            show(source),
            show(target),
            flag_names(flags)
        );
        self.mount_call(target, line.trim_end().to_string())
    }

    fn mount_bind(&self, source: &CStr, target: &CStr) -> Result<()> {
        self.mount_call(target, format!("bind {} {}", show(source), show(target)))
    }

    fn mount_bind_recursive(&self, source: &CStr, target: &CStr) -> Result<()> {
        self.mount_call(target, format!("rbind {} {}", show(source), show(target)))
    }

    fn mount_remount(&self, target: &CStr, flags: MountFlags, _data: &CStr) -> Result<()> {
        let line = format!("remount {} {}", show(target), flag_names(flags));
        self.mount_call(target, line)
    }

    fn mount_change(&self, target: &CStr, _flags: MountPropagationFlags) -> Result<()> {
        self.record(format!("private {}", show(target)));
        Ok(())
    }

    fn unmount(&self, target: &CStr, _flags: UnmountFlags) -> Result<()> {
        self.record(format!("umount {}", show(target)));
        Ok(())
    }

    fn open_tree(&self, path: &CStr, flags: OpenTreeFlags) -> Result<OwnedFd> {
        let recursive = if flags.contains(OpenTreeFlags::AT_RECURSIVE) {
            " recursive"
        } else {
            ""
        };
        self.record(format!("open_tree {}{recursive}", show(path)));
        // A real descriptor, so that the child's code may own and close it as it does a
        // tree's.
        rustix::fs::open(
            c"/dev/null",
            OFlags::RDONLY | OFlags::CLOEXEC,
            rustix::fs::Mode::empty(),
        )
    }

    fn move_mount(&self, _tree: BorrowedFd<'_>, target: &CStr) -> Result<()> {
        self.mount_call(target, format!("move {}", show(target)))
    }

    fn set_tree_attributes(&self, _tree: BorrowedFd<'_>, readonly: bool) -> Result<()> {
        let attrs = if readonly { "nodev,ro" } else { "nodev" };
        self.record(format!("setattr {attrs}"));
        Ok(())
    }

    fn mkdir(&self, path: &CStr, mode: u32) -> Result<()> {
        self.make(path, format!("mkdir {} {mode:o}", show(path)))
    }

    fn mknod_char(&self, path: &CStr, mode: u32, major: u32, minor: u32) -> Result<()> {
        self.make(
            path,
            format!("mknod {} {mode:o} {major}:{minor}", show(path)),
        )
    }

    fn symlink(&self, target: &CStr, link: &CStr) -> Result<()> {
        self.make(link, format!("symlink {} -> {}", show(link), show(target)))
    }

    fn create_file(&self, path: &CStr, flags: OFlags, mode: u32) -> Result<()> {
        let nofollow = if flags.contains(OFlags::NOFOLLOW) {
            " nofollow"
        } else {
            ""
        };
        let line = format!("create {} {mode:o}{nofollow}", show(path));
        match self.make(path, line) {
            Err(Errno::EXIST) if !flags.contains(OFlags::EXCL) => Ok(()),
            other => other,
        }
    }

    fn file_type(&self, path: &CStr) -> Result<FileType> {
        self.record(format!("lstat {}", show(path)));
        match self.locate(path) {
            Some(p) if self.symlinks.contains(&p) => Ok(FileType::Symlink),
            _ => Ok(FileType::Directory),
        }
    }

    fn exists(&self, path: &CStr) -> bool {
        self.record(format!("stat {}", show(path)));
        true
    }

    fn chdir(&self, path: &CStr) -> Result<()> {
        self.record(format!("chdir {}", show(path)));
        let located = {
            let state = self.state.borrow();
            let path = path.to_string_lossy();
            if path.starts_with('/') {
                path.to_string()
            } else {
                join(&state.cwd, &path)
            }
        };
        self.state.borrow_mut().cwd = located;
        Ok(())
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> Result<()> {
        self.record(format!("pivot_root {} {}", show(new_root), show(put_old)));
        let mut state = self.state.borrow_mut();
        if state.cwd != self.merged {
            // The child pivots from inside the new root only.
            return Err(Errno::INVAL);
        }
        state.pivoted = true;
        state.cwd = "/".into();
        Ok(())
    }
}
