//! `--cgroup-parent` with `--runtime runc` and `--runtime crun`: the RUN step lands under
//! PARENT in every hierarchy (the v1 ones and the cgroup2 one) as with the built-in sandbox.
//! runc puts the container in `linux.cgroupsPath`, `/PARENT/tare-ID/runtime` (without it,
//! runc 1.1 put it at the root of the cgroup2 hierarchy); crun runs without a cgroup manager
//! and leaves it in `PARENT/tare-ID`, which tare joined before starting it. Nothing is left
//! under PARENT afterwards. Skipped, saying so, when the runtime is not installed (CI
//! installs both: scripts/test.sh).

use super::cgroup_parent::cgroups;
use super::{ctx_dir, setup};

/// Whether `name` is an executable in PATH.
fn installed(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            std::fs::metadata(dir.join(name)).is_ok_and(|m| {
                m.is_file()
                    && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0
            })
        })
    })
}

/// Builds a RUN step through `runtime` under a new parent; returns the step's
/// `/proc/self/cgroup` paths (controllers, path), after checking that nothing is left under
/// the parent. `None` when the runtime is absent.
fn step_cgroups(runtime: &str) -> Option<Vec<(String, String)>> {
    if !installed(runtime) {
        eprintln!("skipped: {runtime} is not installed (CI installs it: scripts/test.sh)");
        return None;
    }
    let t = setup();
    let parent = cgroups::TestParent::new(&format!("runtime-{runtime}"));
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN sh -c 'cat /proc/self/cgroup > /cgroup'\n",
    );
    let out = t.path().join("out");
    t.ok(&[
        "build",
        "-q",
        "--runtime",
        runtime,
        "--cgroup-parent",
        &format!("/{}/ci", parent.name),
        "-o",
        &format!("type=local,dest={}", out.display()),
        &ctx_dir(&t),
    ]);
    let text = std::fs::read_to_string(out.join("cgroup")).expect("the step's /proc/self/cgroup");
    let lines: Vec<(String, String)> = text
        .lines()
        .map(|l| {
            let (_, rest) = l.split_once(':').expect("ID:CONTROLLERS:PATH");
            let (c, p) = rest.split_once(':').expect("CONTROLLERS:PATH");
            (c.to_string(), p.to_string())
        })
        .collect();
    assert_eq!(lines.len(), cgroups::hierarchies().len(), "{text}");
    let prefix = format!("/{}/ci/tare-", parent.name);
    for (controllers, path) in &lines {
        assert!(
            path.starts_with(&prefix),
            "{runtime}: {controllers}: {path}\n{text}"
        );
    }
    // One cgroup for the step: the same path in every hierarchy.
    assert!(lines.iter().all(|(_, p)| *p == lines[0].1), "{text}");
    // The step's cgroups were removed; the parent stays, empty, as docker leaves it.
    for dir in parent.dirs("ci") {
        assert!(dir.is_dir(), "{} missing", dir.display());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{runtime} left {left:?}");
    }
    Some(lines)
}

#[test]
fn runc_puts_the_step_under_the_parent_in_every_hierarchy() {
    let Some(lines) = step_cgroups("runc") else {
        return;
    };
    assert!(lines[0].1.ends_with("/runtime"), "{lines:?}");
}

#[test]
fn crun_puts_the_step_under_the_parent_in_every_hierarchy() {
    let Some(lines) = step_cgroups("crun") else {
        return;
    };
    assert!(!lines[0].1.ends_with("/runtime"), "{lines:?}");
}
