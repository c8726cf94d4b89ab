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

#[test]
fn an_arm64_run_step_executes_under_qemu_once_the_handler_is_registered() {
    if std::env::consts::ARCH != "x86_64" {
        eprintln!("skipped: arm64 is this machine's own architecture");
        return;
    }
    let t = setup();
    import_arm64_busybox(&t, "armbox:latest");
    if !arm64_emulation(&t) {
        return;
    }
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
