//! `--cgroup-parent` values that try to leave the cgroup hierarchy (`..`, a leading `/..`):
//! `/sys/fs/cgroup` itself is a writable tmpfs, and `..` from a hierarchy reaches it and the
//! host beyond. A RUN step that tries to move itself out of its cgroup, and rootless tare
//! asking for a hierarchy it cannot write.

use std::os::unix::fs::PermissionsExt;

use crate::rootless::user;
use crate::util::TestContext;

#[path = "../util/cgroups.rs"]
mod cgroups;

fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    std::fs::create_dir_all(t.path().join("ctx")).expect("ctx dir");
    t.write("ctx/Dockerfile", "FROM busybox\nRUN true\n");
    t
}

#[test]
fn parents_with_dot_dot_are_refused_and_nothing_is_made_outside_the_hierarchies() {
    let t = setup();
    let canary = tempfile::tempdir().expect("canary dir");
    std::fs::write(canary.path().join("canary"), b"canary\n").expect("canary");
    let unique = format!("tare-escape-{}", std::process::id());
    let ctx = t.path().join("ctx").to_string_lossy().into_owned();
    let climbs = "../".repeat(12);
    let attacks = [
        format!("{climbs}{}/x", canary.path().display()),
        format!("../{unique}"),
        format!("/../{unique}"),
        format!("{unique}/../../{unique}-2"),
        "..".to_string(),
    ];
    for parent in &attacks {
        let stderr = t.fails(&["build", "--cgroup-parent", parent, &ctx]);
        assert!(stderr.contains("--cgroup-parent"), "{parent}: {stderr}");
        assert!(stderr.contains("`..` is refused"), "{parent}: {stderr}");
        assert!(!stderr.contains("panicked"), "{parent}: {stderr}");
    }
    let names: Vec<_> = std::fs::read_dir(canary.path())
        .expect("canary dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["canary"], "the canary directory changed");
    assert_eq!(
        std::fs::read(canary.path().join("canary")).expect("canary"),
        b"canary\n"
    );
    for dir in ["/sys/fs/cgroup".into()]
        .into_iter()
        .chain(cgroups::hierarchies())
    {
        for name in [unique.clone(), format!("{unique}-2")] {
            assert!(
                !dir.join(&name).exists(),
                "{} made",
                dir.join(&name).display()
            );
        }
    }
}

#[test]
fn a_run_step_cannot_move_itself_out_of_its_cgroup() {
    let t = setup();
    let parent = cgroups::TestParent::new("escape");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN for f in /sys/fs/cgroup/cgroup.procs /sys/fs/cgroup/*/cgroup.procs \
         /sys/fs/cgroup/*/tasks; do echo $$ > $f; done 2>/dev/null; cat /proc/self/cgroup > /cg\n",
    );
    let out = t.path().join("out");
    t.ok(&[
        "build",
        "-q",
        "--cgroup-parent",
        &parent.name,
        "-o",
        &format!("type=local,dest={}", out.display()),
        &t.path().join("ctx").to_string_lossy(),
    ]);
    let text = std::fs::read_to_string(out.join("cg")).expect("the step's cgroups");
    let prefix = format!(":/{}/tare-", parent.name);
    assert!(!text.is_empty());
    for line in text.lines() {
        assert!(line.contains(&prefix), "left its cgroup: {line}\n{text}");
    }
}

#[test]
fn rootless_tare_says_it_cannot_write_the_hierarchy() {
    let u = user::RootlessUser::ranged();
    let parent = cgroups::TestParent::new("rootless");
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "base"]);
    u.write("ctx/Dockerfile", b"FROM base\nRUN true\n");
    std::fs::set_permissions(u.path().join("ctx"), PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let ctx = u.path().join("ctx");
    let stderr = u.fails(&[
        "build",
        "--cgroup-parent",
        &parent.name,
        ctx.to_str().expect("utf-8"),
    ]);
    assert!(stderr.contains("cgroup parent"), "{stderr}");
    assert!(stderr.contains("rootless tare cannot"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    for dir in parent.dirs("") {
        assert!(!dir.exists(), "{} made by rootless tare", dir.display());
    }
}
