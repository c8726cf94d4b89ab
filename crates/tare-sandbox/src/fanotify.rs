//! The child's side of `tare slim`'s trace (see the `trace` module): marking the container's root
//! filesystem on the fanotify group the parent opened.

/// The events recorded.
const MASK: u64 = libc::FAN_OPEN | libc::FAN_OPEN_EXEC | libc::FAN_ONDIR;

/// Called by the child after `pivot_root`: marks the filesystem of `/` on the inherited
/// fanotify group. Only a system call: safe after `clone`.
pub(crate) fn mark_root(fd: i32) -> rustix::io::Result<()> {
    let flags = libc::FAN_MARK_ADD | libc::FAN_MARK_FILESYSTEM;
    // SAFETY: `fd` is the fanotify descriptor the parent opened and the child inherited; the
    // path is a valid NUL-terminated string; the call touches no memory of ours otherwise.
    let r = unsafe { libc::fanotify_mark(fd, flags, MASK, libc::AT_FDCWD, c"/".as_ptr()) };
    if r < 0 {
        return Err(rustix::io::Errno::from_raw_os_error(
            std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        ));
    }
    Ok(())
}
