//! `tare build --platform`: the automatic platform ARGs, the platform FROM resolves, the
//! image's architecture, and the errors for what cannot be built here.

use super::{ctx_dir, file_in, inspect, setup};
use crate::util;

fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

/// An architecture other than this machine's.
fn foreign_arch() -> &'static str {
    if host_arch() == "arm64" {
        "amd64"
    } else {
        "arm64"
    }
}

#[test]
fn a_cross_compiling_build_runs_natively_and_makes_an_image_of_the_target_platform() {
    let t = setup();
    let foreign = foreign_arch();
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS build\n\
         ARG TARGETPLATFORM TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH\n\
         RUN echo \"$TARGETPLATFORM $TARGETARCH [$TARGETVARIANT] $BUILDPLATFORM $BUILDARCH\" > /out\n\
         FROM scratch\nARG TARGETARCH\nCOPY --from=build /out /out-${TARGETARCH}\n",
    );
    let platform = format!("linux/{foreign}");
    t.ok(&[
        "build",
        "-q",
        "-t",
        "cross",
        "--platform",
        &platform,
        &ctx_dir(&t),
    ]);
    let config = &inspect(&t, "cross")["config"];
    assert_eq!(config["architecture"], foreign);
    assert_eq!(config["os"], "linux");
    assert!(
        config.get("variant").is_none_or(|v| v.is_null()),
        "{config}"
    );
    let found = file_in(&t, "cross", &format!("out-{foreign}"));
    let host = host_arch();
    assert_eq!(
        found.as_deref(),
        Some(format!("linux/{foreign} {foreign} [] linux/{host} {host}\n").as_str())
    );
}

#[test]
fn without_platform_the_store_image_is_used_and_the_image_is_the_hosts() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nARG TARGETARCH\nENV A=$TARGETARCH\n",
    );
    t.ok(&["build", "-q", "-t", "native", &ctx_dir(&t)]);
    let config = &inspect(&t, "native")["config"];
    assert_eq!(config["architecture"], host_arch());
    let env = config["config"]["Env"].to_string();
    assert!(env.contains(&format!("A={}", host_arch())), "{env}");
}

#[test]
fn a_foreign_base_from_the_store_is_used_and_its_run_steps_say_what_is_missing() {
    let t = setup();
    let foreign = foreign_arch();
    let platform = format!("linux/{foreign}");
    let tar = t.path().join("rootfs.tar");
    util::busybox_rootfs_tar(&tar);
    t.ok(&[
        "import",
        "--platform",
        &platform,
        tar.to_str().unwrap(),
        "foreignbox:latest",
    ]);
    // Config-only and COPY steps need no emulation.
    t.write("ctx/f", "x");
    t.write("ctx/Dockerfile", "FROM foreignbox\nCOPY f /f\nENV X=1\n");
    t.ok(&[
        "build",
        "-q",
        "-t",
        "foreign-copy",
        "--platform",
        &platform,
        &ctx_dir(&t),
    ]);
    assert_eq!(
        inspect(&t, "foreign-copy")["config"]["architecture"],
        foreign
    );
    // A RUN step runs when an emulator is registered with the F flag (this rootfs holds
    // this machine's busybox, which the kernel runs natively), else fails saying what is
    // missing (multiplatform.rs runs a real arm64 step under QEMU).
    t.write("ctx/Dockerfile", "FROM foreignbox\nRUN true\n");
    let out = t.run(&["build", "-q", "--platform", &platform, &ctx_dir(&t)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let qemu = if foreign == "arm64" {
        "aarch64"
    } else {
        "x86_64"
    };
    let handler = format!("/proc/sys/fs/binfmt_misc/qemu-{qemu}");
    let ready = std::fs::read_to_string(&handler).is_ok_and(|h| {
        h.starts_with("enabled")
            && h.lines()
                .any(|l| l.starts_with("flags:") && l.contains('F'))
    });
    if ready {
        assert!(out.status.success(), "{stderr}");
    } else {
        assert!(!out.status.success(), "RUN of a foreign image succeeded");
        assert!(stderr.contains("Dockerfile:2"), "{stderr}");
        assert!(
            stderr.contains(&format!("RUN for linux/{foreign} needs emulation")),
            "{stderr}"
        );
        assert!(stderr.contains("tare binfmt --install"), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_store_image_of_another_platform_is_pulled_for_the_target_or_refused_clearly() {
    let t = setup();
    // Named after a loopback port that nothing listens on, so the pull fails at once.
    t.ok(&["tag", "busybox:latest", "127.0.0.1:9/lib/box:1"]);
    t.write("ctx/Dockerfile", "FROM 127.0.0.1:9/lib/box:1\nENV X=1\n");
    let platform = format!("linux/{}", foreign_arch());
    let stderr = t.fails(&["build", "-q", "--platform", &platform, &ctx_dir(&t)]);
    assert!(stderr.contains("Dockerfile:1"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "127.0.0.1:9/lib/box:1 in the store is linux/{}, not {platform}",
            host_arch()
        )),
        "{stderr}"
    );
    // The same image for this machine's platform is the store's, explicitly asked or not.
    let native = format!("linux/{}", host_arch());
    t.ok(&["build", "-q", "--platform", &native, &ctx_dir(&t)]);
    // An image ID names no registry image: the mismatch is the error.
    let id = inspect(&t, "busybox:latest")["id"]
        .as_str()
        .unwrap()
        .to_string();
    t.write(
        "ctx/Dockerfile",
        &format!("FROM --platform={platform} {id}\nENV X=1\n"),
    );
    let stderr = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(
        stderr.contains("names no image that could be pulled"),
        "{stderr}"
    );
}

#[test]
fn bad_and_several_platforms_are_refused() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\n");
    let stderr = t.fails(&["build", "--platform", "linux", &ctx_dir(&t)]);
    assert!(stderr.contains("--platform linux"), "{stderr}");
    assert!(stderr.contains("expected os/arch[/variant]"), "{stderr}");
    // Several platforms make one index in the store (multiplatform.rs), a directory per
    // platform (outputs_platforms.rs) or one archive of all (outputs_platform_archives.rs).
    t.write("ctx/Dockerfile", "FROM --platform=linux/ busybox\n");
    let stderr = t.fails(&["build", &ctx_dir(&t)]);
    assert!(
        stderr.contains("Dockerfile:1: FROM --platform=linux/"),
        "{stderr}"
    );
}
