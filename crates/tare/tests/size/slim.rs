//! `tare slim`: a traced run keeps only what the image's program needs, the slim image still
//! works, and a probe that misses a file fails the verification with the file named.

use std::path::Path;

use serde_json::Value;

use crate::util::{busybox_rootfs, TestContext};

/// The seed's multi-stage shape: a dynamically linked program (the host's `echo`, with its
/// C library and loader laid out as on merged-/usr Debian) in a base with much it never uses.
fn hello_rootfs(dir: &Path) {
    busybox_rootfs(dir);
    let libdir = dir.join("usr/lib/x86_64-linux-gnu");
    std::fs::create_dir_all(&libdir).unwrap();
    std::fs::create_dir_all(dir.join("usr/local/bin")).unwrap();
    std::fs::create_dir_all(dir.join("lib64")).unwrap();
    std::os::unix::fs::symlink("usr/lib", dir.join("lib")).unwrap();
    std::fs::copy("/bin/echo", dir.join("usr/local/bin/hello")).unwrap();
    std::fs::copy("/lib/x86_64-linux-gnu/libc.so.6", libdir.join("libc.so.6")).unwrap();
    std::fs::copy(
        "/lib64/ld-linux-x86-64.so.2",
        libdir.join("ld-linux-x86-64.so.2"),
    )
    .unwrap();
    std::os::unix::fs::symlink(
        "../lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        dir.join("lib64/ld-linux-x86-64.so.2"),
    )
    .unwrap();
    // What the program never touches: a compiler-sized blob and an unused library.
    std::fs::create_dir_all(dir.join("usr/share/unused")).unwrap();
    std::fs::write(dir.join("usr/share/unused/blob"), vec![7u8; 8 << 20]).unwrap();
    std::fs::copy(
        "/lib/x86_64-linux-gnu/libc.so.6",
        libdir.join("libunused.so.1"),
    )
    .unwrap();
}

fn removed_paths(report: &Value) -> Vec<String> {
    report["removed"]
        .as_array()
        .expect("removed list")
        .iter()
        .map(|r| r["path"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn slim_keeps_a_dynamic_program_with_its_loader_and_libraries_and_it_still_greets() {
    let t = TestContext::new();
    let root = t.path().join("rootfs");
    hello_rootfs(&root);
    t.import_dir_with(
        &root,
        "seed:multi",
        &[r#"CMD ["/usr/local/bin/hello", "Hello, world!"]"#],
    );
    let report = t.path().join("report.json");
    let out = t.ok(&[
        "slim",
        "seed:multi",
        "-t",
        "seed:slim",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.contains("Slimmed seed:multi"), "{out}");
    assert!(out.contains("Tagged seed:slim"), "{out}");

    let run = t.ok(&["run", "--rm", "seed:slim"]);
    assert_eq!(run, "Hello, world!\n");

    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let removed = removed_paths(&report);
    for gone in [
        "/bin/busybox",
        "/usr/share/unused/blob",
        "/usr/lib/x86_64-linux-gnu/libunused.so.1",
    ] {
        assert!(
            removed.iter().any(|r| r == gone),
            "{gone} kept: {removed:?}"
        );
    }
    for kept in [
        "/usr/local/bin/hello",
        "/usr/lib/x86_64-linux-gnu/libc.so.6",
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/lib64/ld-linux-x86-64.so.2",
        "/lib",
        "/etc/passwd",
    ] {
        assert!(!removed.iter().any(|r| r == kept), "{kept} removed");
    }
    let before = report["size_before"].as_u64().unwrap();
    let after = report["size_after"].as_u64().unwrap();
    assert!(after * 4 < before, "slim {after} of {before} bytes");
}

#[test]
fn an_http_probe_reaches_the_server_on_loopback_and_the_slim_server_still_answers() {
    let t = TestContext::new();
    let root = t.path().join("rootfs");
    busybox_rootfs(&root);
    std::os::unix::fs::symlink("busybox", root.join("bin/httpd")).unwrap();
    std::fs::create_dir_all(root.join("www")).unwrap();
    std::fs::write(root.join("www/index.html"), "<p>served by busybox</p>\n").unwrap();
    std::fs::write(root.join("www/unused.html"), "never asked for\n").unwrap();
    t.import_dir_with(
        &root,
        "web:fat",
        &[r#"CMD ["httpd", "-f", "-p", "8080", "-h", "/www"]"#],
    );
    let report = t.path().join("report.html");
    let out = t.ok(&[
        "slim",
        "web:fat",
        "-t",
        "web:slim",
        "--http-probe",
        "8080:/index.html",
        "--duration",
        "20s",
        "--report",
        report.to_str().unwrap(),
    ]);
    assert!(out.contains("Verified 1 probe"), "{out}");
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("/www/unused.html"),
        "report lists the unused page"
    );
    assert!(
        !html.contains("<td>/www/index.html</td>"),
        "the served page was removed"
    );
}

#[test]
fn a_probe_that_misses_a_file_fails_the_verification_naming_the_file() {
    let t = TestContext::new();
    let root = t.path().join("rootfs");
    busybox_rootfs(&root);
    std::fs::create_dir_all(root.join("opt")).unwrap();
    // Only stat'ed (`test -e`), never opened: invisible to the tracer.
    std::fs::write(root.join("opt/flag"), "").unwrap();
    std::fs::write(root.join("opt/data"), "feature on\n").unwrap();
    t.import_dir_with(&root, "flag:fat", &[]);
    let probe = "sh -c 'if [ -e /opt/flag ]; then cat /opt/data; else echo feature off; fi'";
    let err = t.fails(&["slim", "flag:fat", "-t", "flag:slim", "--probe", probe]);
    assert!(err.contains("verification failed"), "{err}");
    assert!(
        err.contains("feature on") && err.contains("feature off"),
        "{err}"
    );
    assert!(err.contains("/opt/data"), "the file is not named: {err}");
    // Not tagged.
    let images = t.ok(&["images"]);
    assert!(
        !images
            .lines()
            .any(|l| l.contains("flag") && l.contains("slim")),
        "{images}"
    );
    // Keeping it fixes the slim image.
    t.ok(&[
        "slim",
        "flag:fat",
        "-t",
        "flag:slim",
        "--probe",
        probe,
        "--include",
        "/opt/flag",
    ]);
}

#[test]
fn analyze_trace_shows_per_layer_what_the_run_never_touched() {
    let t = TestContext::new();
    let root = t.path().join("rootfs");
    hello_rootfs(&root);
    t.import_dir_with(
        &root,
        "seed:multi",
        &[r#"CMD ["/usr/local/bin/hello", "hi"]"#],
    );
    let out = t.ok(&["analyze", "seed:multi", "--trace", ""]);
    assert!(out.contains("Unused by the traced run"), "{out}");
    // One layer: the 8 MB blob, busybox and the unused library are most of it.
    let line = out
        .lines()
        .find(|l| l.trim_start().starts_with("layer 0:"))
        .expect("layer line");
    let pct: f64 = line
        .rsplit('(')
        .next()
        .and_then(|p| p.trim_end_matches("%)").parse().ok())
        .expect("percentage");
    assert!(pct > 50.0 && pct < 100.0, "{line}");
}
