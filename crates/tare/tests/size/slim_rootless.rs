//! `tare slim` and `tare analyze --trace` as an ordinary user (rootless tare, issue 16): the
//! tracer reports file handles there (the `fanotify` module of tare-sandbox), and the result
//! must be root's. Each test slims the same image tar as root and as the user and compares the
//! reports (every removed path with its size), the slim images' files, and their output.

use std::path::Path;

use serde_json::Value;

use crate::rootless::user::RootlessUser;
use crate::util::{busybox_rootfs, demo, TestContext};

/// Opens files at several depths, runs a dynamically linked program (its loader and
/// libraries are opened by the kernel and ld.so), and writes and reads files in directories
/// it makes (not image files: never kept).
pub(super) const PROBE: &str = "sh -c 'cat /opt/app/data/used && /usr/local/bin/hello traced \
                     && mkdir -p /tmp/made/d && echo new > /tmp/made/d/f && cat /tmp/made/d/f \
                     && ls /opt/app/empty'";

/// busybox, a dynamic program laid out as on merged-/usr Debian (the host's `echo` with its
/// C library and loader), nested data with a used and an unused file, an empty directory.
pub(super) fn rootfs(dir: &Path) {
    busybox_rootfs(dir);
    let libdir = dir.join("usr/lib/x86_64-linux-gnu");
    for d in [
        "usr/lib/x86_64-linux-gnu",
        "usr/local/bin",
        "lib64",
        "opt/app/data/deeper",
        "opt/app/empty",
    ] {
        std::fs::create_dir_all(dir.join(d)).unwrap();
    }
    std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
    std::fs::copy("/bin/echo", dir.join("usr/local/bin/hello")).unwrap();
    for lib in ["libc.so.6", "ld-linux-x86-64.so.2"] {
        std::fs::copy(format!("/lib/x86_64-linux-gnu/{lib}"), libdir.join(lib)).unwrap();
    }
    std::os::unix::fs::symlink(
        "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        dir.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    std::fs::write(dir.join("opt/app/data/used"), "used data\n").unwrap();
    std::fs::write(dir.join("opt/app/data/unused"), vec![1u8; 1 << 20]).unwrap();
    std::fs::write(dir.join("opt/app/data/deeper/unused"), "never read\n").unwrap();
}

/// Imports [`rootfs`] as `image` (with `changes`) as root, then the same tar as the user.
fn import_both(root: &TestContext, u: &RootlessUser, image: &str, changes: &[&str]) {
    import_both_with(root, u, image, changes, &|_| {});
}

/// [`import_both`] with `extra` adding to the rootfs first.
pub(super) fn import_both_with(
    root: &TestContext,
    u: &RootlessUser,
    image: &str,
    changes: &[&str],
    extra: &dyn Fn(&Path),
) {
    let dir = tempfile::tempdir().unwrap();
    rootfs(dir.path());
    extra(dir.path());
    let tar = root.import_dir_with(dir.path(), image, changes);
    let theirs = u.path().join("app.tar");
    std::fs::copy(&tar, &theirs).unwrap();
    std::fs::set_permissions(&theirs, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let mut args = vec!["import"];
    for change in changes {
        args.extend(["--change", change]);
    }
    args.extend([theirs.to_str().unwrap(), image]);
    u.ok(&args);
}

/// What one side's slim gave: the report (sizes, kept count, removed paths with sizes and
/// packages), the slim image's files and what it printed when run.
#[derive(Debug, PartialEq)]
pub(super) struct Slimmed {
    removed: Value,
    sizes: (Value, Value, Value),
    files: Vec<String>,
    run: String,
}

/// `tare slim IMAGE -t IMAGE:slim --probe PROBE` through `tare` (root's or the user's
/// command runner), in `dir`.
pub(super) fn slim(
    tare: &dyn Fn(&[&str]) -> String,
    dir: &Path,
    image: &str,
    probe: &str,
) -> Slimmed {
    let report = dir.join(format!("{}-slim.json", image.replace([':', '/'], "_")));
    let slim = format!("{image}-slim");
    let out = tare(&[
        "slim",
        image,
        "-t",
        &slim,
        "--probe",
        probe,
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.contains("Verified 1 probe"), "{out}");
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let export = dir.join(format!("{}-slim.tar", image.replace([':', '/'], "_")));
    tare(&["export", &slim, "-o", export.to_str().unwrap()]);
    let files = crate::rootless::listing(&export);
    let run = tare(&["run", "--rm", &slim, "sh", "-c", probe_script(probe)]);
    Slimmed {
        removed: report["removed"].clone(),
        sizes: (
            report["size_before"].clone(),
            report["size_after"].clone(),
            report["kept"].clone(),
        ),
        files,
        run,
    }
}

/// The script of a `sh -c '...'` probe.
fn probe_script(probe: &str) -> &str {
    probe
        .strip_prefix("sh -c '")
        .and_then(|p| p.strip_suffix('\''))
        .unwrap_or(probe)
}

pub(super) fn removed_paths(s: &Slimmed) -> Vec<&str> {
    s.removed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["path"].as_str().unwrap())
        .collect()
}

#[test]
fn a_rootless_slim_keeps_the_files_root_keeps() {
    let root = TestContext::new();
    let u = RootlessUser::ranged();
    import_both(
        &root,
        &u,
        "app:fat",
        &[r#"CMD ["/usr/local/bin/hello", "hi"]"#],
    );

    let want = slim(&|a| root.ok(a), root.path(), "app:fat", PROBE);
    let got = slim(&|a| u.ok(a), u.path(), "app:fat", PROBE);
    let removed = removed_paths(&want);
    for gone in ["/opt/app/data/unused", "/opt/app/data/deeper/unused"] {
        assert!(removed.contains(&gone), "{gone} kept: {removed:?}");
    }
    for kept in [
        "/opt/app/data/used",
        "/usr/local/bin/hello",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/opt/app/empty",
    ] {
        assert!(!removed.contains(&kept), "{kept} removed");
    }
    assert_eq!(want.run, "used data\ntraced\nnew\n");
    assert_eq!(got, want);

    // The image's own command (no probe) too: the slim image greets, without busybox.
    let own = |tare: &dyn Fn(&[&str]) -> String, dir: &Path| {
        tare(&["slim", "app:fat", "-t", "app:own"]);
        let export = dir.join("own.tar");
        tare(&["export", "app:own", "-o", export.to_str().unwrap()]);
        (
            tare(&["run", "--rm", "app:own"]),
            crate::rootless::listing(&export),
        )
    };
    let (greeting, files) = own(&|a| root.ok(a), root.path());
    assert_eq!(greeting, "hi\n");
    assert!(
        !files.iter().any(|f| f.starts_with("bin/busybox ")),
        "{files:#?}"
    );
    assert_eq!(own(&|a| u.ok(a), u.path()), (greeting, files));
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}

#[test]
fn a_rootless_analyze_trace_reports_what_root_reports() {
    let root = TestContext::new();
    let u = RootlessUser::ranged();
    import_both(&root, &u, "app:fat", &[]);
    let args = ["analyze", "app:fat", "--trace", PROBE];
    // The first line names the image ID, which holds the second each import ran in.
    let report = |out: String| out.lines().skip(1).collect::<Vec<_>>().join("\n");
    let want = report(root.ok(&args));
    assert!(want.contains("Unused by the traced run"), "{want}");
    assert!(want.contains("layer 0: 1.05MB of "), "{want}");
    assert_eq!(report(u.ok(&args)), want);
}

/// The demo's debootstrap'd bookworm: bash, coreutils and their libraries, ld.so.cache,
/// NSS for `id -un`, thousands of directories.
#[test]
fn a_rootless_slim_of_debian_keeps_the_files_root_keeps() {
    let root = TestContext::new();
    let u = RootlessUser::ranged();
    let tar = demo::debian_base_tar();
    let tar = tar.to_str().unwrap();
    root.ok(&["import", tar, "debian:bookworm"]);
    u.ok(&["import", tar, "debian:bookworm"]);
    let probe = "sh -c 'head -1 /etc/os-release && id -un && grep -c . /etc/passwd \
                 && bash -c \"echo from bash\"'";
    let want = slim(&|a| root.ok(a), root.path(), "debian:bookworm", probe);
    let got = slim(&|a| u.ok(a), u.path(), "debian:bookworm", probe);
    let removed = removed_paths(&want);
    assert!(removed.contains(&"/usr/bin/apt-get"), "apt-get kept");
    assert!(!removed.contains(&"/usr/bin/bash"), "bash removed");
    assert!(
        want.run.starts_with("PRETTY_NAME=\"Debian GNU/Linux 12"),
        "{}",
        want.run
    );
    assert!(want.run.ends_with("from bash\n"), "{}", want.run);
    assert_eq!(got, want);
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}

/// Where the kernel refuses the unprivileged path, `tare slim` and `analyze --trace` say why,
/// before anything runs. Forced with a user namespace whose fanotify group limit is 0
/// (`/proc/sys/user/max_fanotify_groups`, checked in every namespace up to the initial one),
/// in which tare runs as that namespace's root: fanotify_init is EPERM without
/// FAN_REPORT_FID there, and EMFILE with it.
#[test]
fn a_refused_unprivileged_fanotify_is_reported_with_the_kernels_reason() {
    let t = TestContext::new();
    t.import_busybox("fat");
    // The layers are unpacked as the host's root first: only uid 0 is mapped in there.
    t.ok(&["analyze", "fat", "--trace", "true"]);
    let images = t.ok(&["images", "-q"]);
    let store: Vec<std::ffi::OsString> = t.tare().get_args().map(|a| a.to_owned()).collect();
    let limited = |args: &[&str]| {
        let out = std::process::Command::new("unshare")
            .args(["--user", "--map-root-user", "--", "sh", "-c"])
            .arg("echo 0 > /proc/sys/user/max_fanotify_groups && exec \"$@\"")
            .arg("sh")
            .arg(env!("CARGO_BIN_EXE_tare"))
            .args(&store)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("TARE_ROOT")
            .output()
            .expect("spawn unshare");
        assert!(!out.status.success(), "tare {args:?} succeeded");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    for args in [
        &["slim", "fat", "-t", "fat:slim", "--probe", "true"][..],
        &["analyze", "fat", "--trace", "true"],
    ] {
        let err = limited(args);
        assert!(err.contains("FAN_REPORT_FID"), "{err}");
        assert!(err.contains("Too many open files"), "{err}");
        assert!(err.contains("run tare slim as root"), "{err}");
    }
    assert_eq!(t.ok(&["images", "-q"]), images);
    t.ok(&["check"]);
}
