//! `--cgroup-parent`: each RUN step runs in a new cgroup PARENT/tare-ID of every hierarchy
//! (the v1 ones and the cgroup2 one), as `docker build --cgroup-parent` places BuildKit's, and
//! the step's cgroups are gone after the build.

use super::{ctx_dir, setup};

#[path = "../util/cgroups.rs"]
pub(crate) mod cgroups;

#[test]
fn run_steps_join_a_new_cgroup_under_the_parent_in_every_hierarchy_and_leave_none_behind() {
    let t = setup();
    let parent = cgroups::TestParent::new("build");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN sh -c 'cat /proc/self/cgroup > /cgroup'\n",
    );
    let out = t.path().join("out");
    t.ok(&[
        "build",
        "-q",
        "--cgroup-parent",
        &format!("/{}/ci", parent.name),
        "-o",
        &format!("type=local,dest={}", out.display()),
        &ctx_dir(&t),
    ]);
    let text = std::fs::read_to_string(out.join("cgroup")).expect("the step's /proc/self/cgroup");
    let lines: Vec<(&str, &str)> = text
        .lines()
        .map(|l| {
            let (_, rest) = l.split_once(':').expect("ID:CONTROLLERS:PATH");
            rest.split_once(':').expect("CONTROLLERS:PATH")
        })
        .collect();
    let hierarchies = cgroups::hierarchies();
    assert_eq!(lines.len(), hierarchies.len(), "{text}");
    let prefix = format!("/{}/ci/tare-", parent.name);
    for (controllers, path) in &lines {
        assert!(path.starts_with(&prefix), "{controllers}: {path}\n{text}");
    }
    // One cgroup per step: the same name in every hierarchy.
    assert!(lines.iter().all(|(_, p)| *p == lines[0].1), "{text}");
    for wanted in ["memory", "pids", "cpu"] {
        assert!(
            lines.iter().any(|(c, _)| c.split(',').any(|c| c == wanted)),
            "no {wanted} line in\n{text}"
        );
    }
    // The step's cgroups were removed; the parent stays, as docker leaves it.
    let leaf = lines[0].1.rsplit('/').next().expect("leaf name");
    for dir in parent.dirs("ci") {
        assert!(dir.is_dir(), "{} missing", dir.display());
        assert!(
            !dir.join(leaf).exists(),
            "{} left behind",
            dir.join(leaf).display()
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
