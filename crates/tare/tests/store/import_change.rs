//! `tare import --change` against dockerd 20.10's `docker import --change`: the same tar and
//! the same changes give the same image config (every field either sets), in shell and JSON
//! form; an instruction docker refuses as a change is refused by both. `tare commit --change`
//! calls the same library function (`tare_build::config::apply_changes`).

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{Map, Value};

use crate::util::{docker, TestContext};
use crate::{json, require_docker, run_ok};

/// A one-file root filesystem tar (the config is what is compared, not the files).
fn small_tar(t: &TestContext) -> std::path::PathBuf {
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("f"), "f\n").unwrap();
    let tar = t.path().join("root.tar");
    run_ok(
        Command::new("tar")
            .args(["--numeric-owner", "-C"])
            .arg(&root)
            .arg("-cf")
            .arg(&tar)
            .arg("."),
    );
    tar
}

/// The config fields that are set: null, "", false, [] and {} are left out, as docker's
/// `omitempty` and tare's `skip_serializing_if` leave them out in different places.
fn set_fields(config: &Value) -> Map<String, Value> {
    let empty = |v: &Value| match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Number(_) => false,
    };
    config
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(_, v)| !empty(v))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect()
        })
        .unwrap_or_default()
}

fn args_with_changes<'a>(changes: &[&'a str]) -> Vec<&'a str> {
    changes.iter().flat_map(|c| ["--change", *c]).collect()
}

/// docker's config for `changes` applied by `docker import` (dockerd 20.10).
fn docker_config(tar: &Path, changes: &[&str]) -> Map<String, Value> {
    let tag = format!("tare-import-change:{}", std::process::id());
    run_ok(
        docker()
            .arg("import")
            .args(args_with_changes(changes))
            .arg(tar)
            .arg(&tag),
    );
    let config = run_ok(docker().args(["image", "inspect", "--format", "{{json .Config}}", &tag]));
    run_ok(docker().args(["rmi", &tag]));
    set_fields(&json(&config))
}

fn tare_config(t: &TestContext, tar: &Path, changes: &[&str]) -> Map<String, Value> {
    let mut args = vec!["import"];
    args.extend(args_with_changes(changes));
    args.extend([tar.to_str().unwrap(), "changed"]);
    t.ok(&args);
    let inspect = json(&t.ok(&["inspect", "changed"]));
    set_fields(&inspect["config"]["config"])
}

#[test]
fn import_change_sets_the_config_docker_import_sets() {
    if !require_docker() {
        return;
    }
    let t = TestContext::new();
    let tar = small_tar(&t);
    let cases: [&[&str]; 4] = [
        // Shell forms; ENV of an earlier change expands in a later one, as in docker.
        &[
            r#"ENV A=1 B="two words""#,
            "ENV C=$A D=${B}",
            r#"CMD echo "hi there""#,
            "USER $A",
            "WORKDIR rel",
            "WORKDIR sub/../x/",
            "EXPOSE 80 53/udp",
            r#"LABEL a=b "c d"=e"#,
            "VOLUME /v1 /v2",
            "ONBUILD RUN echo $A",
            "HEALTHCHECK --interval=5s --retries=2 CMD curl -f x",
            "ENV legacy form with spaces",
        ],
        // JSON forms; ENTRYPOINT after CMD keeps that CMD.
        &[
            r#"CMD ["a", "b"]"#,
            "entrypoint e --flag",
            r#"VOLUME ["/x", "/y"]"#,
            "WORKDIR /a/../b/",
            "EXPOSE 8000-8002/tcp",
            "LABEL x y z",
            "env e=$NOPE",
            r#"HEALTHCHECK CMD ["/bin/check", "-q"]"#,
        ],
        // ENTRYPOINT before CMD, an exec-form ENTRYPOINT, HEALTHCHECK NONE.
        &[
            r#"ENTRYPOINT ["/bin/e"]"#,
            "CMD c",
            "HEALTHCHECK NONE",
            "USER 1000:1000",
        ],
        // A relative WORKDIR after an absolute one, and an ENV replacing an earlier one.
        &["WORKDIR /srv", "WORKDIR app", "ENV P=1", "ENV P=2 Q=$P"],
    ];
    for changes in cases {
        let want = docker_config(&tar, changes);
        let got = tare_config(&t, &tar, changes);
        assert_eq!(got, want, "changes {changes:?}");
        assert!(!want.is_empty(), "docker set nothing for {changes:?}");
    }
}

#[test]
fn import_refuses_what_docker_refuses_as_a_change_and_names_it() {
    if !require_docker() {
        return;
    }
    let t = TestContext::new();
    let tar = small_tar(&t);
    for (change, keyword) in [
        ("RUN true", "RUN"),
        (r#"SHELL ["/bin/bash", "-c"]"#, "SHELL"),
        ("COPY a /b", "COPY"),
        ("FROM busybox", "FROM"),
        ("ARG x=1", "ARG"),
        ("MAINTAINER me", "MAINTAINER"),
    ] {
        let out = docker()
            .args(["import", "--change", change])
            .arg(&tar)
            .arg(format!("tare-import-refused:{}", std::process::id()))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let docker_err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && docker_err.contains("is not a valid change command"),
            "docker accepted {change:?}: {docker_err}"
        );
        let err = t.fails(&[
            "import",
            "--change",
            "ENV OK=1",
            "--change",
            change,
            tar.to_str().unwrap(),
        ]);
        assert!(
            err.contains(&format!("--change:2:1: {keyword} cannot be a --change")),
            "{change}: {err}"
        );
    }
    // Nothing was stored by the refused imports.
    let images = json(&t.ok(&["images", "--format", "json"]));
    assert_eq!(images, serde_json::json!([]));
}

#[test]
fn import_takes_stopsignal_as_current_docker_does() {
    // dockerd 20.10 refuses STOPSIGNAL as a change; moby took it into `validCommitCommands`
    // later, and tare follows the current list.
    let t = TestContext::new();
    let tar = small_tar(&t);
    t.ok(&[
        "import",
        "--change",
        "STOPSIGNAL SIGQUIT",
        tar.to_str().unwrap(),
        "sig",
    ]);
    let inspect = json(&t.ok(&["inspect", "sig"]));
    assert_eq!(inspect["config"]["config"]["StopSignal"], "SIGQUIT");
}

#[test]
fn a_bad_change_is_an_error_at_its_line_with_nothing_stored() {
    let t = TestContext::new();
    let tar = small_tar(&t);
    for (change, message) in [
        ("ENV", "ENV requires at least one argument"),
        (
            "HEALTHCHECK --interval=xs CMD true",
            "--interval: time: invalid duration",
        ),
        ("EXPOSE 80/xyz", "invalid proto: xyz"),
        ("BOGUS x", "unknown instruction: BOGUS"),
    ] {
        let err = t.fails(&[
            "import",
            "--change",
            "LABEL ok=1",
            "--change",
            change,
            tar.to_str().unwrap(),
        ]);
        assert!(
            err.contains("--change:2:") && err.contains(message),
            "{change}: {err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
    let images = json(&t.ok(&["images", "--format", "json"]));
    assert_eq!(images, serde_json::json!([]));
}
