//! `--cgroup-parent`: each RUN step runs in a new cgroup PARENT/tare-ID of every hierarchy
//! (the v1 ones and the cgroup2 one), as `docker build --cgroup-parent` places BuildKit's, and
//! the step's cgroups are gone after the build.

use super::{ctx_dir, setup};

#[path = "../util/cgroups.rs"]
pub(crate) mod cgroups;

/// Builds `RUN cat /proc/self/cgroup` under a new parent, `--cgroup-parent /PARENT/ci`, with
/// the built-in sandbox or `--runtime RUNTIME`, and returns the step's cgroups (controllers,
/// path) after checking what holds for every runtime: one line per hierarchy (the v1 ones and
/// the cgroup2 one), all the same path `/PARENT/ci/tare-ID...`, and no cgroup left under the
/// parent after the build (the parent stays, as docker leaves it).
pub(super) fn step_cgroups(runtime: Option<&str>) -> Vec<(String, String)> {
    let t = setup();
    let parent =
        cgroups::TestParent::new(&runtime.map_or("build".into(), |r| format!("runtime-{r}")));
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN sh -c 'cat /proc/self/cgroup > /cgroup'\n",
    );
    let out = t.path().join("out");
    let parent_flag = format!("/{}/ci", parent.name);
    let dest = format!("type=local,dest={}", out.display());
    let ctx = ctx_dir(&t);
    let mut args = vec!["build", "-q"];
    if let Some(runtime) = runtime {
        args.extend(["--runtime", runtime]);
    }
    args.extend(["--cgroup-parent", &parent_flag, "-o", &dest, &ctx]);
    t.ok(&args);
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
            "{runtime:?}: {controllers}: {path}\n{text}"
        );
    }
    // One cgroup for the step: the same path in every hierarchy.
    assert!(lines.iter().all(|(_, p)| *p == lines[0].1), "{text}");
    for dir in parent.dirs("ci") {
        assert!(dir.is_dir(), "{} missing", dir.display());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        assert!(left.is_empty(), "{runtime:?} left {left:?}");
    }
    lines
}

#[test]
fn run_steps_join_a_new_cgroup_under_the_parent_in_every_hierarchy_and_leave_none_behind() {
    let lines = step_cgroups(None);
    for wanted in ["memory", "pids", "cpu"] {
        assert!(
            lines.iter().any(|(c, _)| c.split(',').any(|c| c == wanted)),
            "no {wanted} line in {lines:?}"
        );
    }
}

#[test]
fn a_parent_in_systemd_notation_is_refused_with_the_reason() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN true\n");
    let stderr = t.fails(&["build", "--cgroup-parent", "ci.slice:tare:x", &ctx_dir(&t)]);
    assert!(stderr.contains("--cgroup-parent"), "{stderr}");
    assert!(stderr.contains("slice notation"), "{stderr}");
}
