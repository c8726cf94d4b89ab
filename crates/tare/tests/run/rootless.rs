//! Rootless tare: `tare build`, `tare run` and friends as an unprivileged host user, in a user
//! namespace of tare's own. The images must equal the ones root builds.

#[path = "../util/rootless.rs"]
pub(crate) mod user;

use user::RootlessUser;

use crate::util::TestContext;

/// The flattened filesystem of an image as lines of path, type, mode, owner, size and
/// content hash (no times: RUN steps stamp files with the build's clock).
fn listing(export_tar: &std::path::Path) -> String {
    listing_of(std::fs::File::open(export_tar).expect("open export"), &[])
}

/// [`listing`] of a tar stream; the content of the `volatile` paths (logs and caches that
/// record when a step ran) is left out, their size too.
pub(crate) fn listing_of(tar: impl std::io::Read, volatile: &[&str]) -> String {
    let mut archive = tar::Archive::new(tar);
    let mut lines = Vec::new();
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let h = entry.header().clone();
        let path = entry.path().expect("path").display().to_string();
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut entry, &mut content).expect("read");
        let link = entry
            .link_name()
            .ok()
            .flatten()
            .map(|l| l.display().to_string())
            .unwrap_or_default();
        let (size, hash) = if volatile.contains(&path.trim_start_matches("./")) {
            ("-".to_string(), "-".to_string())
        } else {
            (content.len().to_string(), sha256_hex(&content))
        };
        lines.push(format!(
            "{path} {:?} {:o} {}:{} {size} {hash} {link}",
            h.entry_type(),
            h.mode().unwrap_or(0),
            h.uid().unwrap_or(0),
            h.gid().unwrap_or(0),
        ));
    }
    lines.sort();
    lines.join("\n")
}

fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(data))
}

const RUN_DOCKERFILE: &str = "FROM base
RUN mkdir -p /d/sub && echo x > /d/sub/f && chown 1000:1000 /d/sub/f && echo hi > /greeting
RUN rm -rf /d && mkdir /d && echo new > /d/g && rm /bin/true \
 && cp /bin/busybox /suid && chmod 4755 /suid && mknod /fifo p
USER app
RUN id > /tmp/app-id && touch /home/app/mine
";

const CONFIG_DOCKERFILE: &str = "FROM base
ENV A=1 B=two
LABEL org.example.rootless=yes
WORKDIR /
USER app
CMD [\"id\"]
";

#[test]
fn rootless_build_and_run_give_the_images_and_output_root_gets() {
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.write("ctx/run/Dockerfile", RUN_DOCKERFILE.as_bytes());
    u.write("ctx/config/Dockerfile", CONFIG_DOCKERFILE.as_bytes());
    let ctx_run = u.path().join("ctx/run");
    let ctx_config = u.path().join("ctx/config");
    let (run_dir, config_dir) = (ctx_run.to_str().unwrap(), ctx_config.to_str().unwrap());

    // One base image for both (an import's config records the time of the import).
    let root = TestContext::new();
    root.ok(&["import", &tar, "base"]);
    let saved = u.path().join("base-saved.tar");
    root.ok(&["save", "base", "-o", saved.to_str().unwrap()]);
    std::fs::set_permissions(&saved, std::os::unix::fs::PermissionsExt::from_mode(0o644))
        .expect("chmod");
    u.ok(&["load", "-i", saved.to_str().unwrap()]);

    // A Dockerfile without layers of its own is deterministic: the image IDs must match.
    let root_id = root.ok(&["build", "-q", "-t", "cfg", config_dir]);
    let user_id = u.ok(&["build", "-q", "-t", "cfg", config_dir]);
    assert_eq!(
        root_id.trim(),
        user_id.trim(),
        "config-only image IDs differ"
    );

    // With RUN steps (times differ): the flattened filesystems must match.
    root.ok(&["build", "-q", "-t", "img", run_dir]);
    u.ok(&["build", "-q", "-t", "img", run_dir]);
    let root_export = root.path().join("root.tar");
    let user_export = u.path().join("user.tar");
    root.ok(&["export", "img", "-o", root_export.to_str().unwrap()]);
    u.ok(&["export", "img", "-o", user_export.to_str().unwrap()]);
    let (want, got) = (listing(&root_export), listing(&user_export));
    assert!(
        want.contains("d/sub") || want.contains("/d/g") || want.contains("d/g"),
        "{want}"
    );
    assert_eq!(want, got, "rootless image differs from root's");
    assert!(got.contains("suid Regular 4755 0:0"), "{got}");
    assert!(got.contains("home/app/mine Regular 644 1000:1000"), "{got}");

    // The same run, the same output (no times: the builds ran at different moments); the
    // private network is configured the same way (pasta gives rootless runs the host's
    // routes too, and the same resolver).
    let script = "id; cat /tmp/app-id; stat -c '%n %u %g %a' /home/app/mine /suid; \
                  ip route; cat /etc/resolv.conf";
    let cmd = ["run", "--rm", "img", "sh", "-c", script];
    let (want, got) = (root.ok(&cmd), u.ok(&cmd));
    assert_eq!(want, got);
    assert!(got.contains("/home/app/mine 1000 1000 644"), "{got}");
    assert!(got.contains("nameserver 169.254.1.1"), "{got}");

    // Host side: the files belong to the user and its subordinate IDs, nothing to root.
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}

#[test]
fn rootless_store_defaults_to_the_users_data_directory_and_info_reports_the_mapping() {
    let u = RootlessUser::ranged();
    let out = u.ok(&["info", "--format", "json"]);
    let info: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(info["rootless"], true, "{out}");
    assert_eq!(info["store"], u.store().to_str().unwrap(), "{out}");
    assert_eq!(info["uid_map"][0]["outside"], u.uid, "{out}");
    assert_eq!(info["uid_map"][1]["inside"], 1, "{out}");
    assert_eq!(info["uid_map"][1]["count"], 65536, "{out}");
    assert!(
        info["overlay"].as_str().unwrap().contains("userxattr"),
        "{out}"
    );
    assert_eq!(info["blockers"], serde_json::json!([]), "{out}");

    let single = RootlessUser::single();
    let out = single.ok(&["info"]);
    assert!(out.contains("single ID"), "{out}");
    assert!(out.contains("/etc/subuid"), "{out}");
}

#[test]
fn single_id_mapping_names_the_unmapped_id_and_the_fix() {
    let u = RootlessUser::single();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "base"]);
    // The busybox image has /home/app owned by 1000, which a single-ID mapping cannot hold.
    let err = u.fails(&["run", "--rm", "base", "true"]);
    assert!(err.contains("1000:1000"), "{err}");
    assert!(err.contains("/etc/subuid"), "{err}");

    // A base owned by root alone works, and switching to another uid is refused clearly.
    u.write("root-only/Dockerfile", b"FROM scratch\nCOPY rootfs /\n");
    let ctx = u.path().join("root-only");
    let rootfs = ctx.join("rootfs");
    std::fs::create_dir_all(rootfs.join("bin")).unwrap();
    std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", rootfs.join("bin/id")).unwrap();
    std::process::Command::new("chown")
        .arg("-R")
        .arg(format!("{}:{}", u.uid, u.gid))
        .arg(&ctx)
        .status()
        .unwrap();
    u.ok(&["build", "-q", "-t", "mini", ctx.to_str().unwrap()]);
    let out = u.ok(&["run", "--rm", "mini", "id"]);
    assert!(out.contains("uid=0 gid=0"), "{out}");
    let err = u.fails(&["run", "--rm", "-u", "1000", "mini", "id"]);
    assert!(err.contains("uid 1000 is not mapped"), "{err}");
    assert!(err.contains("/etc/subuid"), "{err}");
}
