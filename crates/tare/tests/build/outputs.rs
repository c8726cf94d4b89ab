//! `tare build -o`: the final stage's files into a directory or a tar, compared with
//! `docker build -o` of dockerd 20.10's BuildKit and of current BuildKit; the image archives;
//! `type=image` names; and the image not being stored for the other kinds.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use super::{ctx_dir, inspect, setup};
use crate::util::{self, TestContext};

/// A stage whose files exercise modes, owners, setuid, links and empty directories.
const DOCKERFILE: &str = "FROM BASE AS b\n\
    RUN mkdir -p /out/d/e /out/empty && echo hi > /out/d/f && ln -s /etc/passwd /out/link \\\n\
     && ln /out/d/f /out/hard && chown 1000:1000 /out/d/f && chmod 4755 /out/d/f \\\n\
     && chmod 0700 /out/d/e && echo x > /out/d/e/g\n\
    FROM scratch\nCOPY --from=b /out /\n";

/// path -> "type mode uid:gid content-or-target" of every entry below `dir`.
fn walk(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            let rel = path
                .strip_prefix(dir)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let what = if meta.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&path).unwrap().display())
            } else if meta.is_dir() {
                todo.push(path.clone());
                "dir".to_string()
            } else {
                format!(
                    "file {:?}",
                    String::from_utf8_lossy(&std::fs::read(&path).unwrap())
                )
            };
            let mode = if meta.file_type().is_symlink() {
                0
            } else {
                meta.mode() & 0o7777
            };
            out.insert(
                rel,
                format!("{what} {mode:o} {}:{}", meta.uid(), meta.gid()),
            );
        }
    }
    out
}

/// path -> "type mode uid:gid content-or-target" of every entry of a tar.
fn tar_listing(path: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut archive = tar::Archive::new(std::fs::File::open(path).unwrap());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let h = entry.header().clone();
        let name = entry
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_end_matches('/')
            .to_string();
        let what = match h.entry_type() {
            tar::EntryType::Symlink => {
                format!("link {}", h.link_name().unwrap().unwrap().display())
            }
            tar::EntryType::Link => {
                format!("hardlink {}", h.link_name().unwrap().unwrap().display())
            }
            tar::EntryType::Directory => "dir".to_string(),
            _ => {
                let mut bytes = Vec::new();
                std::io::Read::read_to_end(&mut entry, &mut bytes).unwrap();
                format!("file {:?}", String::from_utf8_lossy(&bytes))
            }
        };
        let mode = if h.entry_type() == tar::EntryType::Symlink {
            0
        } else {
            h.mode().unwrap() & 0o7777
        };
        out.insert(
            name,
            format!("{what} {mode:o} {}:{}", h.uid().unwrap(), h.gid().unwrap()),
        );
    }
    out
}

/// The reference client, for the daemon at `host` (`None`: current BuildKit's).
fn reference(host: Option<&str>) -> Command {
    let mut cmd = Command::new(util::modern_docker_client());
    cmd.env_remove("DOCKER_HOST");
    if let Some(h) = host {
        cmd.env("DOCKER_HOST", h);
    }
    cmd
}

fn docker_ok(cmd: &mut Command) {
    let out = cmd.output().expect("docker");
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tare_outputs(t: &TestContext) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
    let dest = t.path().join("tare-local");
    let spec = format!("type=local,dest={}", dest.display());
    t.ok(&["build", "-q", "-o", &spec, &ctx_dir(t)]);
    let tar = t.path().join("tare.tar");
    let spec = format!("type=tar,dest={}", tar.display());
    t.ok(&["build", "-q", "-o", &spec, &ctx_dir(t)]);
    (walk(&dest), tar_listing(&tar))
}

#[test]
fn local_and_tar_outputs_match_docker_build_o_of_old_and_current_buildkit() {
    let t = setup();
    let base = format!("tare-outputs-{}:latest", std::process::id());
    t.ok(&["tag", "busybox:latest", &base]);
    t.write("ctx/Dockerfile", &DOCKERFILE.replace("BASE", &base));
    let (tare_local, tare_tar) = tare_outputs(&t);
    assert_eq!(tare_local["d/f"], "file \"hi\\n\" 4755 0:0");
    assert_eq!(tare_tar["d/f"], "file \"hi\\n\" 4755 1000:1000");
    let rootfs = t.path().join("rootfs.tar");
    util::busybox_rootfs_tar(&rootfs);
    for host in [None, Some("unix:///tmp/docker.sock")] {
        let which = host.unwrap_or("current BuildKit");
        docker_ok(reference(host).args(["import", rootfs.to_str().unwrap(), &base]));
        let dest = t.path().join("docker-local");
        let _ = std::fs::remove_dir_all(&dest);
        let tar = t.path().join("docker.tar");
        let specs = [
            format!("type=local,dest={}", dest.display()),
            format!("type=tar,dest={}", tar.display()),
        ];
        for spec in &specs {
            docker_ok(reference(host).env("DOCKER_BUILDKIT", "1").args([
                "build",
                "--network",
                "none",
                "-q",
                "-o",
                spec,
                &ctx_dir(&t),
            ]));
        }
        let _ = reference(host).args(["rmi", "-f", &base]).output();
        assert_eq!(walk(&dest), tare_local, "type=local differs from {which}");
        assert_eq!(tar_listing(&tar), tare_tar, "type=tar differs from {which}");
    }
}

#[test]
fn archive_outputs_hold_the_image_and_only_type_image_stores_it() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN echo made > /made\nLABEL k=v\n",
    );
    let before = t.ok(&["images", "--format", "json"]);
    let oci = t.path().join("img.oci.tar");
    let docker = t.path().join("img.docker.tar");
    let spec = format!("type=oci,dest={}", oci.display());
    t.ok(&["build", "-q", "-t", "arch/oci:1", "-o", &spec, &ctx_dir(&t)]);
    let spec = format!("type=docker,dest={},name=arch/docker:2", docker.display());
    t.ok(&["build", "-q", "-o", &spec, &ctx_dir(&t)]);
    // Not stored: the store lists what it listed before.
    assert_eq!(t.ok(&["images", "--format", "json"]), before);
    assert!(t.run(&["inspect", "arch/oci:1"]).status.code() != Some(0));
    // The archives load back, under their names.
    t.ok(&["load", "-i", oci.to_str().unwrap()]);
    t.ok(&["load", "-i", docker.to_str().unwrap()]);
    for name in ["arch/oci:1", "arch/docker:2"] {
        let config = &inspect(&t, name)["config"]["config"];
        assert_eq!(config["Labels"]["k"], "v", "{name}");
    }
    // type=image names the image and stores it.
    t.ok(&[
        "build",
        "-q",
        "-t",
        "a:1",
        "-o",
        "type=image,name=b:2",
        &ctx_dir(&t),
    ]);
    assert_eq!(inspect(&t, "a:1")["id"], inspect(&t, "b:2")["id"]);
    // A tar on standard output: nothing else there.
    let out = t
        .tare()
        .args(["build", "-o", "-", &ctx_dir(&t)])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let std_tar = t.path().join("stdout.tar");
    std::fs::write(&std_tar, &out.stdout).unwrap();
    assert_eq!(tar_listing(&std_tar)["made"], "file \"made\\n\" 644 0:0");
}

#[test]
fn bad_outputs_are_refused_before_building() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN exit 3\n");
    for (spec, why) in [
        ("type=tar", "needs dest"),
        ("type=nope,dest=x", "unknown type"),
        ("type=local,dest=-", "needs a directory"),
    ] {
        let stderr = t.fails(&["build", "-o", spec, &ctx_dir(&t)]);
        assert!(stderr.contains(why), "{spec}: {stderr}");
        assert!(!stderr.contains("exit code 3"), "{spec} built: {stderr}");
    }
}
