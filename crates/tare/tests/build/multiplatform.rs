//! Foreign-architecture RUN steps through QEMU and binfmt_misc (`tare binfmt`), and builds
//! for several platforms.

use std::path::{Path, PathBuf};

use super::{ctx_dir, file_in, inspect, setup};
use crate::util::TestContext;

/// Debian's arm64 busybox-static, which scripts/test.sh extracts here
/// (`apt-get download busybox-static:arm64`); `TARE_TEST_ARM64_BUSYBOX` names another copy.
fn arm64_busybox() -> PathBuf {
    let path = std::env::var_os("TARE_TEST_ARM64_BUSYBOX")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tare-test/arm64/busybox"));
    assert!(
        path.is_file(),
        "{} is missing: scripts/test.sh extracts it from busybox-static:arm64",
        path.display()
    );
    path
}

/// Imports a root filesystem holding the arm64 busybox (and its applets) as `name`, for
/// linux/arm64.
fn import_arm64_busybox(t: &TestContext, name: &str) {
    let root = t.path().join("arm64-rootfs");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("tmp")).unwrap();
    std::fs::copy(arm64_busybox(), root.join("bin/busybox")).unwrap();
    for applet in ["sh", "uname", "cat", "echo", "true", "ls"] {
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet)).unwrap();
    }
    let tar = t.path().join("arm64-rootfs.tar");
    let status = std::process::Command::new("tar")
        .args(["--numeric-owner", "-C"])
        .arg(&root)
        .arg("-cf")
        .arg(&tar)
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    t.ok(&[
        "import",
        "--platform",
        "linux/arm64",
        tar.to_str().unwrap(),
        name,
    ]);
}

/// Registers the arm64 handler through `tare binfmt --install`; false (with the reason
/// printed) only when binfmt_misc cannot be mounted here.
fn arm64_emulation(t: &TestContext) -> bool {
    let out = t.run(&["binfmt", "--install", "arm64"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("mounting binfmt_misc") {
        eprintln!("skipped: binfmt_misc cannot be mounted here: {stderr}");
        return false;
    }
    assert!(
        out.status.success(),
        "tare binfmt --install arm64: {stderr}"
    );
    let listing = t.ok(&["binfmt", "arm64"]);
    assert!(listing.contains("arm64\tready ("), "{listing}");
    assert!(Path::new("/proc/sys/fs/binfmt_misc/qemu-aarch64").exists());
    true
}

/// On an amd64 machine, a test context with `busybox` (this machine's) and `armbox` (arm64),
/// and the arm64 handler registered; `None` (reason printed) where that cannot be.
fn emulated_arm64() -> Option<TestContext> {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: the tests emulate arm64 on an amd64 machine");
        return None;
    }
    let t = setup();
    import_arm64_busybox(&t, "armbox:latest");
    arm64_emulation(&t).then_some(t)
}

#[test]
fn an_arm64_run_step_executes_under_qemu_once_the_handler_is_registered() {
    let Some(t) = emulated_arm64() else {
        return;
    };
    t.write(
        "ctx/Dockerfile",
        "FROM armbox\nARG TARGETARCH\nRUN echo \"$(uname -m) $TARGETARCH\" > /arch\n",
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "armout",
        "--platform",
        "linux/arm64",
        &ctx_dir(&t),
    ]);
    assert_eq!(
        file_in(&t, "armout", "arch").as_deref(),
        Some("aarch64 arm64\n")
    );
    assert_eq!(inspect(&t, "armout")["config"]["architecture"], "arm64");
}

#[test]
fn binfmt_names_what_it_cannot_register() {
    let t = TestContext::new();
    let stderr = t.fails(&["binfmt", "--install", "no-such-arch"]);
    assert!(stderr.contains("qemu-no-such-arch.conf"), "{stderr}");
    assert!(stderr.contains("qemu-user-static"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn two_platforms_make_one_index_whose_arm64_run_ran_under_qemu_and_run_takes_the_hosts() {
    let Some(t) = emulated_arm64() else {
        return;
    };
    // Each platform starts from its own base: the busybox of this machine, the arm64 one.
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS base-amd64\nFROM armbox AS base-arm64\n\
         FROM base-$TARGETARCH\nRUN uname -m > /uname\n",
    );
    let digest = t.ok(&[
        "build",
        "-q",
        "-t",
        "multi",
        "--platform",
        "linux/amd64,linux/arm64",
        &ctx_dir(&t),
    ]);
    let digest = digest.trim();
    // The tag names the index...
    let tags: serde_json::Value =
        serde_json::from_slice(&std::fs::read(t.root.path().join("index-tags.json")).unwrap())
            .unwrap();
    assert_eq!(tags["docker.io/library/multi:latest"], digest, "{tags}");
    let blob = t
        .root
        .path()
        .join("blobs/sha256")
        .join(digest.trim_start_matches("sha256:"));
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(blob).unwrap()).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let manifests = index["manifests"].as_array().unwrap();
    let arches: Vec<&str> = manifests
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(arches, ["amd64", "arm64"], "{index}");
    // ... and one-image commands take this machine's platform from it.
    assert_eq!(t.ok(&["run", "--rm", "multi", "cat", "/uname"]), "x86_64\n");
    assert_eq!(inspect(&t, "multi")["config"]["architecture"], "amd64");
    // The arm64 image's RUN ran under QEMU.
    let arm = format!("multi@{}", manifests[1]["digest"].as_str().unwrap());
    assert_eq!(inspect(&t, &arm)["config"]["architecture"], "arm64");
    assert_eq!(file_in(&t, &arm, "uname").as_deref(), Some("aarch64\n"));
    // A tag moved to one image no longer names the index.
    t.ok(&["tag", "busybox", "multi"]);
    let tags = std::fs::read_to_string(t.root.path().join("index-tags.json")).unwrap();
    assert!(!tags.contains("multi"), "{tags}");
}
