//! Issue 12: a step's key holds the filesystem state it starts from and the parts of the
//! config it reads, never the config-only instructions before it. A changed LABEL or EXPOSE
//! keeps the COPY and RUN after it cached, as in BuildKit; a changed ENV, USER or SHELL
//! misses the RUN that reads it, and `--explain-cache` names the field.

use super::{ctx_dir, inspect, setup, util};

/// The build's `--progress plain` stderr (it must succeed).
fn build_plain(t: &util::TestContext, extra: &[&str]) -> String {
    let ctx = ctx_dir(t);
    let mut args = vec!["build", "--progress", "plain", "--explain-cache"];
    args.extend_from_slice(extra);
    args.push(&ctx);
    let out = t.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    stderr
}

#[test]
fn a_changed_label_or_expose_keeps_the_steps_after_it_cached() {
    let t = setup();
    t.write("ctx/f", "f\n");
    let dockerfile = |label: &str, port: u16| {
        format!(
            "FROM busybox\nLABEL v={label}\nCOPY f /f\nEXPOSE {port}\nRUN cat /f > /g\nWORKDIR /w\n"
        )
    };
    t.write("ctx/Dockerfile", &dockerfile("1", 80));
    t.ok(&["build", "-q", "-t", "lab:1", &ctx_dir(&t)]);
    t.write("ctx/Dockerfile", &dockerfile("2", 81));
    let stderr = build_plain(&t, &["-t", "lab:2"]);
    // COPY, RUN and WORKDIR (steps #2, #4 and #5) come from the cache.
    assert_eq!(stderr.matches(" CACHED").count(), 3, "{stderr}");
    assert!(!stderr.contains("cache miss"), "{stderr}");
    // The image still carries the new config.
    let config = &inspect(&t, "lab:2")["config"]["config"];
    assert_eq!(config["Labels"]["v"], "2", "{config}");
    assert!(config["ExposedPorts"].get("81/tcp").is_some(), "{config}");
    assert!(config["ExposedPorts"].get("80/tcp").is_none(), "{config}");
    let one = inspect(&t, "lab:1");
    let two = inspect(&t, "lab:2");
    let diff_ids = |v: &serde_json::Value| v["config"]["rootfs"]["diff_ids"].clone();
    assert!(
        diff_ids(&one).as_array().is_some_and(|d| d.len() == 4),
        "{one}"
    );
    assert_eq!(diff_ids(&one), diff_ids(&two));
}

#[test]
fn a_changed_env_user_or_shell_misses_the_run_that_reads_it() {
    let t = setup();
    for (before, after, field) in [
        ("ENV A=1", "ENV A=2", "env"),
        ("USER root", "USER 0:0", "user"),
        (
            "SHELL [\"/bin/sh\", \"-c\"]",
            "SHELL [\"/bin/sh\", \"-ec\"]",
            "shell",
        ),
    ] {
        let dockerfile = |line: &str| format!("FROM busybox\n{line}\nRUN echo \"$A\" > /a\n");
        t.write("ctx/Dockerfile", &dockerfile(before));
        build_plain(&t, &[]);
        t.write("ctx/Dockerfile", &dockerfile(after));
        let stderr = build_plain(&t, &[]);
        assert!(!stderr.contains("CACHED"), "{field}: {stderr}");
        assert!(
            stderr.contains("cache miss: instruction changed: ") && stderr.contains(field),
            "{field}: {stderr}"
        );
    }
}
