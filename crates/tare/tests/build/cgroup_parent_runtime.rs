//! `--cgroup-parent` with `--runtime runc` and `--runtime crun`: the RUN step lands under
//! PARENT in every hierarchy (the v1 ones and the cgroup2 one) as with the built-in sandbox.
//! runc puts the container in `linux.cgroupsPath`, `/PARENT/tare-ID/runtime` (without it,
//! runc 1.1 put it at the root of the cgroup2 hierarchy); crun runs without a cgroup manager
//! and leaves it in `PARENT/tare-ID`, which tare joined before starting it. Nothing is left
//! under PARENT afterwards. Skipped, saying so, when the runtime is not installed (CI
//! installs both: scripts/test.sh).

use super::cgroup_parent::step_cgroups;

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

/// The step's cgroups through `runtime` ([`step_cgroups`]), `None` when it is absent.
fn runtime_cgroups(runtime: &str) -> Option<Vec<(String, String)>> {
    if !installed(runtime) {
        eprintln!("skipped: {runtime} is not installed (CI installs it: scripts/test.sh)");
        return None;
    }
    Some(step_cgroups(Some(runtime)))
}

#[test]
fn runc_puts_the_step_under_the_parent_in_every_hierarchy() {
    let Some(lines) = runtime_cgroups("runc") else {
        return;
    };
    assert!(lines[0].1.ends_with("/runtime"), "{lines:?}");
}

#[test]
fn crun_puts_the_step_under_the_parent_in_every_hierarchy() {
    let Some(lines) = runtime_cgroups("crun") else {
        return;
    };
    assert!(!lines[0].1.ends_with("/runtime"), "{lines:?}");
}
