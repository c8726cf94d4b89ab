//! `tare slim` on hostile images and probes: links to host files, thousands of opened files,
//! processes that try to outlive the probe. The planner resolves every path in its own view of
//! the image and reads content only from the layer snapshots, so nothing of the host gets in.

use crate::fs_writes::Canary;
use crate::util::{busybox_rootfs, TestContext};

/// No process of this test's probes may be left on the host.
fn assert_no_process(marker: &str) {
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        assert!(
            !cmdline.contains(marker),
            "a probe process survived: {cmdline}"
        );
    }
}

#[test]
fn slim_of_links_to_host_files_keeps_only_the_image_s_own_files() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let root = t.path().join("rootfs");
    busybox_rootfs(&root);
    std::fs::create_dir_all(root.join("app")).unwrap();
    std::fs::write(root.join("app/data"), "image data\n").unwrap();
    let host_keep = format!("{}/keep", canary.path());
    std::os::unix::fs::symlink(&host_keep, root.join("app/secret")).unwrap();
    std::os::unix::fs::symlink(canary.path(), root.join("app/hostdir")).unwrap();
    std::os::unix::fs::symlink("/etc/shadow", root.join("app/shadow")).unwrap();
    std::os::unix::fs::symlink("loop", root.join("app/loop")).unwrap();
    std::os::unix::fs::symlink("../../../../..", root.join("app/up")).unwrap();
    t.import_dir(&root, "links:fat");

    let out = t.ok(&[
        "slim",
        "links:fat",
        "-t",
        "links:slim",
        "--probe",
        "sh -c 'cat /app/data; cat /app/secret /app/shadow /app/loop 2>/dev/null; true'",
        "--include",
        "/app/secret",
        "--include",
        "/app/hostdir",
        "--include",
        "/app/shadow",
        "--include",
        "/app/loop",
        "--include",
        "/app/up/etc",
        "--include",
        &host_keep,
    ]);
    assert!(out.contains("Tagged links:slim"), "{out}");
    // The slim image has the links (kept or not), never the host's files behind them.
    let seen = t.run(&[
        "run",
        "--rm",
        "links:slim",
        "sh",
        "-c",
        &format!("cat /app/secret /app/hostdir/keep {host_keep} /etc/shadow 2>&1; ls -R / 2>&1"),
    ]);
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&seen.stdout),
        String::from_utf8_lossy(&seen.stderr)
    );
    assert!(
        !all.contains("canary"),
        "host content in the slim image: {all}"
    );
    assert!(
        all.contains("data"),
        "the slim image lost its own file: {all}"
    );
    canary.assert_intact();
}

#[test]
fn slim_of_a_probe_opening_thousands_of_files_stays_bounded_and_works() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let root = t.path().join("rootfs");
    busybox_rootfs(&root);
    t.import_dir(&root, "many:fat");
    // Redirections open files without forking: 5000 distinct paths, fast.
    let probe = "sh -c 'i=0; while [ $i -lt 5000 ]; do : > /tmp/f$i; : < /tmp/f$i; \
                 i=$((i+1)); done; echo opened $i'";
    let out = t.ok(&["slim", "many:fat", "-t", "many:slim", "--probe", probe]);
    assert!(out.contains("Verified 1 probe"), "{out}");
    let run = t.ok(&["run", "--rm", "many:slim", "sh", "-c", "echo still works"]);
    assert_eq!(run, "still works\n");
    canary.assert_intact();
}

#[test]
fn processes_that_try_to_outlive_a_probe_end_with_it() {
    let t = TestContext::new();
    let canary = Canary::new(&t);
    let root = t.path().join("rootfs");
    busybox_rootfs(&root);
    t.import_dir(&root, "escape:fat");
    // A background child of the probe, and a probe that never ends by itself (stopped at
    // --duration, in the original and in the verification alike).
    t.ok(&[
        "slim",
        "escape:fat",
        "-t",
        "escape:slim",
        "--probe",
        "sh -c 'sleep 987651 & echo started'",
        "--probe",
        "sleep 987652",
        "--duration",
        "2s",
    ]);
    assert_no_process("sleep 987651");
    assert_no_process("sleep 987652");
    canary.assert_intact();
}

#[test]
fn slim_refuses_bad_probes_with_clear_errors() {
    let t = TestContext::new();
    t.import_busybox("bb:latest");
    let err = t.fails(&["slim", "bb:latest", "-t", "bb:slim", "--probe", "sh -c 'x"]);
    assert!(err.contains("unbalanced quotes"), "{err}");
    let err = t.fails(&["slim", "bb:latest", "-t", "bb:slim", "--http-probe", "http"]);
    assert!(err.contains("invalid --http-probe \"http\""), "{err}");
    let err = t.fails(&["slim", "bb:latest", "-t", "bb:slim", "--duration", "0s"]);
    assert!(err.contains("invalid duration"), "{err}");
    let err = t.fails(&["slim", "bb:latest", "-t", "bb:slim"]);
    assert!(err.contains("no command to trace"), "{err}");
}
