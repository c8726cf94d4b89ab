//! buildx's `--add-host`, `--ulimit`, `--shm-size`, `--metadata-file` and `--pull`
//! (`--annotation`: annotations.rs, `--cgroup-parent`: cgroup_parent.rs).

use super::{ctx_dir, file_in, setup};

#[test]
fn add_host_entries_are_appended_to_run_steps_hosts_as_buildkit_writes_them() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN cat /etc/hosts > /hosts\n",
    );
    let build = |hosts: &[&str], tag: &str| {
        let mut args = vec!["build", "-q", "-t", tag];
        for h in hosts {
            args.extend(["--add-host", h]);
        }
        let ctx = ctx_dir(&t);
        args.push(&ctx);
        t.ok(&args);
        file_in(&t, tag, "hosts").unwrap()
    };
    let defaults =
        "127.0.0.1\tlocalhost buildkitsandbox\n::1\tlocalhost ip6-localhost ip6-loopback\n";
    assert_eq!(
        build(&["db:10.1.2.3", "v6=[2001:db8::1]"], "hosts1"),
        format!("{defaults}10.1.2.3\tdb\n2001:db8::1\tv6\n")
    );
    // Other hosts are another cache key: the step runs again and sees them.
    assert_eq!(
        build(&["db:10.9.9.9"], "hosts2"),
        format!("{defaults}10.9.9.9\tdb\n")
    );
    assert_eq!(build(&[], "hosts3"), defaults);
    for (bad, says) in [
        ("db", "expected HOST:IP"),
        ("db:10.1.2", "not an IP address"),
        ("gw:host-gateway", "host-gateway is not supported"),
    ] {
        let stderr = t.fails(&["build", "--add-host", bad, &ctx_dir(&t)]);
        assert!(stderr.contains(&format!("--add-host {bad}")), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn ulimit_and_shm_size_apply_to_run_steps() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN echo \"$(ulimit -n) $(ulimit -Hn)\" > /nofile && grep ' /dev/shm ' /proc/mounts > /shm\n",
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "limits",
        "--ulimit",
        "nofile=321:654",
        "--shm-size",
        "3m",
        &ctx_dir(&t),
    ]);
    assert_eq!(
        file_in(&t, "limits", "nofile").as_deref(),
        Some("321 654\n")
    );
    let shm = file_in(&t, "limits", "shm").unwrap();
    assert!(shm.contains("size=3072k"), "{shm}");
    // The defaults: 64 MiB of /dev/shm, as in Docker.
    t.ok(&["build", "-q", "-t", "nolimits", &ctx_dir(&t)]);
    let shm = file_in(&t, "nolimits", "shm").unwrap();
    assert!(shm.contains("size=65536k"), "{shm}");
    for (flag, bad, says) in [
        ("--ulimit", "files=1", "unknown name"),
        (
            "--ulimit",
            "nofile=10:5",
            "soft limit is above the hard limit",
        ),
        ("--shm-size", "3x", "unknown unit"),
    ] {
        let stderr = t.fails(&["build", flag, bad, &ctx_dir(&t)]);
        assert!(stderr.contains(bad), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

#[test]
fn metadata_file_has_buildx_keys_for_the_stored_image() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN echo hi > /hi\n");
    let meta = t.path().join("meta.json");
    let id = t.ok(&[
        "build",
        "-q",
        "-t",
        "meta:1",
        "-t",
        "reg.example:5000/team/meta:2",
        "--metadata-file",
        meta.to_str().unwrap(),
        &ctx_dir(&t),
    ]);
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&meta).unwrap()).unwrap();
    assert_eq!(m["containerimage.config.digest"], id.trim(), "{m}");
    assert_eq!(
        m["image.name"],
        "docker.io/library/meta:1,reg.example:5000/team/meta:2"
    );
    let digest = m["containerimage.digest"].as_str().unwrap();
    assert!(digest.starts_with("sha256:") && digest != id.trim(), "{m}");
    let desc = &m["containerimage.descriptor"];
    assert_eq!(desc["digest"], digest);
    assert_eq!(
        desc["mediaType"],
        "application/vnd.oci.image.manifest.v1+json"
    );
    assert!(desc["size"].as_u64().unwrap() > 0, "{m}");
    // A file output has no image: no image keys, as buildx writes it.
    let out = t.path().join("files");
    t.ok(&[
        "build",
        "-q",
        "-o",
        out.to_str().unwrap(),
        "--metadata-file",
        meta.to_str().unwrap(),
        &ctx_dir(&t),
    ]);
    assert_eq!(std::fs::read_to_string(&meta).unwrap().trim(), "{}");
}

#[test]
fn pull_asks_the_registry_even_for_a_stored_base() {
    let t = setup();
    // Named after a loopback port that nothing listens on: only --pull goes there.
    t.ok(&["tag", "busybox:latest", "127.0.0.1:9/lib/box:1"]);
    t.write("ctx/Dockerfile", "FROM 127.0.0.1:9/lib/box:1\nENV X=1\n");
    t.ok(&["build", "-q", &ctx_dir(&t)]);
    let stderr = t.fails(&["build", "-q", "--pull", &ctx_dir(&t)]);
    assert!(stderr.contains("Dockerfile:1"), "{stderr}");
    assert!(stderr.contains("127.0.0.1:9"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
