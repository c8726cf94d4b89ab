//! The overlay's mount options.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::plan::{cstring, RootMount};
use crate::Error;

/// The kernel refuses mount options longer than a page.
const MAX_MOUNT_DATA: usize = 4000;

const VOLATILE: &str = ",volatile";

/// The overlay's options; `userxattr` in a user namespace, where overlayfs keeps its
/// whiteouts' and opaque directories' marks in `user.overlay.*` (the `trusted.*` namespace
/// needs CAP_SYS_ADMIN in the host's user namespace).
pub(crate) fn overlay_data(
    lower: &[PathBuf],
    upper: &Path,
    work: &Path,
    userxattr: bool,
) -> Result<RootMount, Error> {
    if lower.is_empty() {
        return Err(Error::Invalid {
            what: "overlay",
            value: upper.display().to_string(),
            reason: "needs at least one lower directory",
        });
    }
    let lower = distinct_top_first(lower);
    let build = |paths: &dyn Fn(&Path) -> String| {
        let lowers: Vec<String> = lower.iter().map(|l| paths(l)).collect();
        format!(
            "lowerdir={},upperdir={},workdir={}{}",
            lowers.join(":"),
            paths(upper),
            paths(work),
            if userxattr { ",userxattr" } else { "" }
        )
    };
    // `volatile`: no sync of the upper filesystem at unmount. A run's upper directory is
    // read back (diff, export) but never mounted again, so crash consistency buys nothing, and
    // syncing a busy disk at every step's end dominated the run time.
    let with_volatile = |plain: String, chdir: Option<CString>| -> Result<RootMount, Error> {
        Ok(RootMount::Overlay {
            data: cstring(format!("{plain},volatile").as_bytes(), "overlay options")?,
            plain: cstring(plain.as_bytes(), "overlay options")?,
            chdir,
        })
    };
    let absolute = build(&|p| escape(&p.display().to_string()));
    if absolute.len() + VOLATILE.len() <= MAX_MOUNT_DATA {
        return with_volatile(absolute, None);
    }
    // Long layer lists: paths relative to their common ancestor, which the child enters.
    let mut all: Vec<&Path> = lower.clone();
    all.push(upper);
    all.push(work);
    let common = common_ancestor(&all);
    let relative = build(&|p| escape(&p.strip_prefix(&common).unwrap_or(p).display().to_string()));
    if relative.len() + VOLATILE.len() > MAX_MOUNT_DATA {
        return Err(Error::Invalid {
            what: "overlay",
            value: format!("{} lower directories", lower.len()),
            reason: "too many layers for one overlay mount",
        });
    }
    with_volatile(
        relative,
        Some(cstring(common.as_os_str().as_bytes(), "path")?),
    )
}

/// `lower` (top first) with each directory only where it is highest. An image may name one
/// layer twice (two `RUN true` steps make two empty layers with one diffID, stored once), and
/// overlayfs refuses a lower directory given twice (ELOOP). Dropping the lower copies changes
/// nothing that is seen: everything they hold, whiteouts included, the higher copy holds too,
/// and it hides the same entries below it.
fn distinct_top_first(lower: &[PathBuf]) -> Vec<&Path> {
    let mut seen = std::collections::HashSet::new();
    lower
        .iter()
        .map(PathBuf::as_path)
        .filter(|dir| seen.insert(*dir))
        .collect()
}

/// Overlay options separate with `,` and lower directories with `:`; both are escaped.
fn escape(path: &str) -> String {
    path.replace('\\', "\\\\")
        .replace(':', "\\:")
        .replace(',', "\\,")
}

fn common_ancestor(paths: &[&Path]) -> PathBuf {
    let mut common: PathBuf = paths.first().map(|p| p.to_path_buf()).unwrap_or_default();
    for p in paths.iter().skip(1) {
        while !p.starts_with(&common) {
            if !common.pop() {
                return PathBuf::from("/");
            }
        }
    }
    common
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_layer_named_twice_is_given_once_where_it_is_highest() {
        let lower: Vec<PathBuf> = ["/s/empty", "/s/top", "/s/empty", "/s/base", "/s/top"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let RootMount::Overlay { plain, .. } =
            overlay_data(&lower, Path::new("/u/upper"), Path::new("/u/work"), false).unwrap()
        else {
            panic!("an overlay");
        };
        assert_eq!(
            plain.to_str().unwrap(),
            "lowerdir=/s/empty:/s/top:/s/base,upperdir=/u/upper,workdir=/u/work"
        );
    }
}
