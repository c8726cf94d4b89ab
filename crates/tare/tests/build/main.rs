//! `tare build` end to end on a busybox image imported into a fresh store.

#[path = "../util/oci_layout.rs"]
mod oci_layout;
#[path = "../util/tmux.rs"]
mod tmux;
#[path = "../util/mod.rs"]
mod util;

mod annotations;
mod annotations_layout;
mod build_info;
mod buildx_flags;
mod cache_local;
mod cache_local_prune;
mod cgroup_parent;
mod cgroup_parent_runtime;
mod config_keys;
mod contexts;
mod copy_flags;
mod copy_hashing;
mod etc_files;
mod git;
mod index_commands;
mod load_multiplatform;
mod load_unnamed_index;
mod metadata_archives;
mod multiplatform;
mod outputs;
mod outputs_platform_archives;
mod outputs_platforms;
mod parallel_platforms;
mod platforms;
mod private_cache;
mod progress_tty;
mod secrets;

use std::io::{Read, Write};
use std::process::Stdio;

use util::TestContext;

/// A test context with `busybox:latest` imported and a `ctx/` directory for the build.
fn setup() -> TestContext {
    let t = TestContext::new();
    t.import_busybox("busybox:latest");
    std::fs::create_dir_all(t.path().join("ctx")).expect("ctx dir");
    t
}

fn ctx_dir(t: &TestContext) -> String {
    t.path().join("ctx").to_string_lossy().into_owned()
}

fn inspect(t: &TestContext, image: &str) -> serde_json::Value {
    serde_json::from_str(&t.ok(&["inspect", image])).expect("inspect json")
}

/// Calls `read` on the entry for `path` in the image's `tare export` archive.
fn with_entry<T>(
    t: &TestContext,
    image: &str,
    path: &str,
    read: impl FnOnce(&mut tar::Entry<'_, std::fs::File>) -> T,
) -> Option<T> {
    let out = t.path().join("export.tar");
    t.ok(&["export", image, "-o", out.to_str().expect("utf-8")]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).expect("open export"));
    for entry in archive.entries().expect("entries") {
        let mut entry = entry.expect("entry");
        let p = entry.path().expect("path").to_string_lossy().into_owned();
        if p.trim_start_matches("./").trim_start_matches('/') == path {
            return Some(read(&mut entry));
        }
    }
    None
}

/// Reads one file of an image through `tare export`.
fn file_in(t: &TestContext, image: &str, path: &str) -> Option<String> {
    with_entry(t, image, path, |entry| {
        let mut s = String::new();
        entry.read_to_string(&mut s).expect("read");
        s
    })
}

#[test]
fn run_copy_and_config_steps_make_the_expected_layers_and_history() {
    let t = setup();
    t.write("ctx/hello.txt", "hello\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN dd if=/dev/zero of=/big bs=1024 count=100\nRUN rm /big\nCOPY hello.txt /dir/\nENV A=1\nRUN echo \"$A\" > /a.txt\nCMD [\"sh\"]\n",
    );
    let out = t.ok(&["build", "--progress", "plain", "-t", "demo:1", &ctx_dir(&t)]);
    assert!(
        out.contains("layers   5 (1 from the base, 4 from this build)"),
        "{out}"
    );
    let json = inspect(&t, "demo:1");
    let history = json["config"]["history"].as_array().expect("history");
    let created_by: Vec<&str> = history
        .iter()
        .map(|h| h["created_by"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(
        &created_by[1..],
        [
            "RUN /bin/sh -c dd if=/dev/zero of=/big bs=1024 count=100 # buildkit",
            "RUN /bin/sh -c rm /big # buildkit",
            "COPY hello.txt /dir/ # buildkit",
            "ENV A=1",
            "RUN /bin/sh -c echo \"$A\" > /a.txt # buildkit",
            "CMD [\"sh\"]",
        ]
    );
    assert_eq!(history[4]["empty_layer"], true);
    assert_eq!(json["config"]["config"]["Cmd"], serde_json::json!(["sh"]));
    assert_eq!(
        file_in(&t, "demo:1", "dir/hello.txt").as_deref(),
        Some("hello\n")
    );
    assert_eq!(file_in(&t, "demo:1", "a.txt").as_deref(), Some("1\n"));
    assert_eq!(file_in(&t, "demo:1", "big"), None);
    // The dead 100 kB stays in the image, in its own layer, visible in the history.
    let dead = json["layers"][1]["size"].as_u64().expect("layer size");
    assert!(dead >= 100 * 1024, "{dead}");
    let hist = t.ok(&["history", "demo:1"]);
    assert!(hist.contains("RUN /bin/sh -c rm /big"), "{hist}");
    // build_info records the Dockerfile line of each history entry.
    assert_eq!(json["build_info"]["base_layers"], 1);
    assert_eq!(json["build_info"]["history"][2]["line"], 3);
}

#[test]
fn a_failing_run_names_file_line_command_and_exit_code() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN true\nRUN echo out; exit 3\n",
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains("Dockerfile:3"), "{err}");
    assert!(err.contains("exit 3"), "{err}");
    assert!(err.contains("exit code 3"), "{err}");
    // Nothing is left in the store's scratch area.
    let leftovers: Vec<_> = std::fs::read_dir(t.root.path().join("tmp"))
        .expect("tmp")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("step-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn quiet_prints_only_the_id_and_iidfile_gets_it_too() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nLABEL a=b\n");
    let iid = t.path().join("iid");
    let out = t.ok(&[
        "build",
        "-q",
        "--label",
        "team=size",
        "--iidfile",
        iid.to_str().expect("utf-8"),
        &ctx_dir(&t),
    ]);
    let id = out.trim();
    assert!(id.starts_with("sha256:") && id.len() == 71, "{out}");
    assert_eq!(std::fs::read_to_string(&iid).expect("iidfile"), id);
    let labels = inspect(&t, id)["config"]["config"]["Labels"].clone();
    assert_eq!(labels, serde_json::json!({"a": "b", "team": "size"}));
}

#[test]
fn dockerfile_from_stdin_and_build_args_not_persisted() {
    let t = setup();
    let mut child = t
        .tare()
        .args([
            "build",
            "-q",
            "-t",
            "args:1",
            "--build-arg",
            "WHO=cli",
            "-f",
            "-",
            &ctx_dir(&t),
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"FROM busybox\nARG WHO=default\nRUN echo \"hi $WHO\" > /who\n")
        .expect("write");
    let out = child.wait_with_output().expect("wait");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(file_in(&t, "args:1", "who").as_deref(), Some("hi cli\n"));
    let env = inspect(&t, "args:1")["config"]["config"]["Env"].to_string();
    assert!(!env.contains("WHO"), "{env}");
}

#[test]
fn a_cached_rebuild_runs_nothing_and_gives_the_same_image() {
    let t = setup();
    t.write("ctx/a.txt", "a\n");
    t.write("ctx/b.txt", "b\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN echo first > /first\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\nRUN cat /a.txt /b.txt > /both\n",
    );
    let first = t.ok(&["build", "-q", &ctx_dir(&t)]);
    let out = t.run(&["build", "--progress", "plain", &ctx_dir(&t)]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches(" CACHED").count(), 4, "{stderr}");
    let second = t.ok(&["build", "-q", &ctx_dir(&t)]);
    assert_eq!(first, second);

    // Changing b.txt invalidates its COPY and the RUN after it, nothing before.
    t.write("ctx/b.txt", "b2\n");
    let out = t.run(&[
        "build",
        "--progress",
        "plain",
        "--explain-cache",
        &ctx_dir(&t),
    ]);
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("#1 CACHED"), "{stderr}");
    assert!(stderr.contains("#2 CACHED"), "{stderr}");
    assert!(!stderr.contains("#3 CACHED"), "{stderr}");
    assert!(!stderr.contains("#4 CACHED"), "{stderr}");
    assert!(
        stderr.contains("#3 cache miss: context files changed: b.txt"),
        "{stderr}"
    );

    // --no-cache runs everything.
    let out = t.run(&["build", "--progress", "plain", "--no-cache", &ctx_dir(&t)]);
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CACHED"));
}

#[test]
fn prune_cache_empties_the_build_cache() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox
RUN echo one > /one
",
    );
    t.ok(&["build", "-q", "-t", "pc:1", &ctx_dir(&t)]);
    // Keeping more than the cache holds removes nothing.
    let kept = t.ok(&["prune", "--cache", "--keep-storage", "1GB"]);
    assert!(kept.contains("deleted 0 build cache records"), "{kept}");
    let out = t.run(&["build", "--progress", "plain", &ctx_dir(&t)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("#1 CACHED"));

    // A plain prune after the image is gone keeps what the cache needs.
    t.ok(&["rmi", "pc:1"]);
    t.ok(&["prune"]);
    let out = t.run(&["build", "--progress", "plain", &ctx_dir(&t)]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("#1 CACHED"));
    t.ok(&["check"]);

    let pruned = t.ok(&["prune", "--cache"]);
    assert!(pruned.contains("deleted 1 build cache records"), "{pruned}");
    let out = t.run(&["build", "--progress", "plain", &ctx_dir(&t)]);
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).contains("CACHED"));
    // --keep-storage without --cache is refused.
    t.fails(&["prune", "--keep-storage", "1GB"]);
}

#[test]
fn explain_cache_names_a_changed_build_arg() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nARG V=1\nRUN echo $V > /v\n",
    );
    t.ok(&["build", "-q", &ctx_dir(&t)]);
    let out = t.run(&[
        "build",
        "--progress",
        "plain",
        "--explain-cache",
        "--build-arg",
        "V=2",
        &ctx_dir(&t),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cache miss:") && stderr.contains("V"),
        "{stderr}"
    );
    assert!(stderr.contains("\"1\" -> \"2\""), "{stderr}");
}

#[test]
fn only_needed_stages_are_built_and_copy_from_works() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS broken\nRUN exit 1\nFROM busybox AS good\nRUN echo good > /good\nFROM busybox AS unused\nRUN echo never\nFROM scratch\nCOPY --from=good /good /good\nCOPY --from=1 /good /again\n",
    );
    let out = t.run(&["build", "--progress", "plain", "-t", "ms:1", &ctx_dir(&t)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("never"), "{stderr}");
    assert!(!stderr.contains("[broken"), "{stderr}");
    assert_eq!(file_in(&t, "ms:1", "good").as_deref(), Some("good\n"));
    assert_eq!(file_in(&t, "ms:1", "again").as_deref(), Some("good\n"));
    // --target picks an earlier stage.
    let out = t.run(&["build", "-q", "--target", "broken", &ctx_dir(&t)]);
    assert!(!out.status.success());
}

#[test]
fn independent_stages_run_at_the_same_time() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS a\nRUN sleep 1 && echo a > /a\nFROM busybox AS b\nRUN sleep 1 && echo b > /b\nFROM busybox\nCOPY --from=a /a /a\nCOPY --from=b /b /b\n",
    );
    let out = t.run(&["build", "--progress", "json", &ctx_dir(&t)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let time = |stage: &str, kind: &str| -> chrono::DateTime<chrono::FixedOffset> {
        let e = events
            .iter()
            .find(|e| {
                e["stage"] == stage
                    && e["event"] == kind
                    && e["text"].as_str().is_none_or(|t| t.starts_with("RUN"))
            })
            .unwrap_or_else(|| panic!("no {kind} event for stage {stage}: {events:?}"));
        chrono::DateTime::parse_from_rfc3339(e["time"].as_str().expect("time")).expect("rfc3339")
    };
    // Each stage's RUN started before the other one's finished: the two overlapped.
    assert!(time("a", "started") < time("b", "finished"));
    assert!(time("b", "started") < time("a", "finished"));
}

#[test]
fn dockerignore_and_sources_leaving_the_context() {
    let t = setup();
    t.write("ctx/.dockerignore", "*.log\n!keep.log\n");
    t.write("ctx/a.log", "a");
    t.write("ctx/keep.log", "k");
    t.write("ctx/Dockerfile", "FROM busybox\nCOPY . /c/\n");
    t.ok(&["build", "-q", "-t", "ign:1", &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "ign:1", "c/keep.log").as_deref(), Some("k"));
    assert_eq!(file_in(&t, "ign:1", "c/a.log"), None);

    // A symlink out of the context resolves inside it, as in a chroot (BuildKit 0.25): the
    // host's file beside the context is never read.
    t.write("secret", "host");
    std::os::unix::fs::symlink("../secret", t.path().join("ctx/out")).expect("symlink");
    std::os::unix::fs::symlink("/secret", t.path().join("ctx/abs")).expect("symlink");
    t.write("ctx/Dockerfile", "FROM busybox\nCOPY out /out\n");
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains("\"out\""), "{err}");
    assert!(err.contains("not found"), "{err}");
    assert!(err.contains("Dockerfile:2"), "{err}");
    t.write("ctx/secret", "context");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nCOPY out /out\nCOPY abs /abs\n",
    );
    t.ok(&["build", "-q", "-t", "ign:2", &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "ign:2", "out").as_deref(), Some("context"));
    assert_eq!(file_in(&t, "ign:2", "abs").as_deref(), Some("context"));
}

#[test]
fn a_dockerfiles_own_ignore_file_replaces_the_contexts() {
    let t = setup();
    t.write("ctx/.dockerignore", "a.txt\n");
    t.write("ctx/a.txt", "a");
    t.write("ctx/b.txt", "b");
    t.write("ctx/sub/app.Dockerfile", "FROM busybox\nCOPY . /c/\n");
    t.write("ctx/sub/app.Dockerfile.dockerignore", "b.txt\n");
    let file = t.path().join("ctx/sub/app.Dockerfile");
    let file = file.to_str().expect("utf-8");
    t.ok(&["build", "-q", "-t", "own:1", "-f", file, &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "own:1", "c/a.txt").as_deref(), Some("a"));
    assert_eq!(file_in(&t, "own:1", "c/b.txt"), None);
    // From standard input there is no Dockerfile beside which to look: the context's file.
    let out = git::build_with_stdin(
        &t,
        &["build", "-q", "-t", "own:2", "-f", "-", &ctx_dir(&t)],
        b"FROM busybox\nCOPY . /c/\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(file_in(&t, "own:2", "c/a.txt"), None);
    assert_eq!(file_in(&t, "own:2", "c/b.txt").as_deref(), Some("b"));
}

#[test]
fn onbuild_triggers_run_in_the_child_image() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nONBUILD RUN echo triggered > /onbuild.txt\n",
    );
    t.ok(&["build", "-q", "-t", "parent:1", &ctx_dir(&t)]);
    assert_eq!(file_in(&t, "parent:1", "onbuild.txt"), None);
    let onbuild = inspect(&t, "parent:1")["config"]["config"]["OnBuild"].clone();
    assert_eq!(
        onbuild,
        serde_json::json!(["RUN echo triggered > /onbuild.txt"])
    );
    t.write("ctx/Dockerfile", "FROM parent:1\nRUN true\n");
    t.ok(&["build", "-q", "-t", "child:1", &ctx_dir(&t)]);
    assert_eq!(
        file_in(&t, "child:1", "onbuild.txt").as_deref(),
        Some("triggered\n")
    );
    assert!(inspect(&t, "child:1")["config"]["config"]["OnBuild"].is_null());
}

#[test]
fn add_of_a_url_checks_its_checksum() {
    let t = setup();
    let server = util::http::Server::serve(2, b"remote content\n".to_vec(), None);
    let sum = "sha256:0a4f6d3ab8ac7b4fe5d6fcb8e0e0a8c6d2b3ae8f0c1e0a8d6a0b6c8f7e6d5c4b";
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nADD {} /dl/\n",
            server.url("files/remote.txt")
        ),
    );
    t.ok(&["build", "-q", "-t", "url:1", &ctx_dir(&t)]);
    assert_eq!(
        file_in(&t, "url:1", "dl/remote.txt").as_deref(),
        Some("remote content\n")
    );
    t.write(
        "ctx/Dockerfile",
        &format!(
            "FROM busybox\nADD --checksum={sum} {} /x\n",
            server.url("x")
        ),
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains("checksum"), "{err}");
    server.join();
}

#[test]
fn run_steps_can_go_through_an_oci_runtime() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN echo via-crun > /r\n");
    t.ok(&[
        "build",
        "-q",
        "--runtime",
        "crun",
        "-t",
        "rt:1",
        &ctx_dir(&t),
    ]);
    assert_eq!(file_in(&t, "rt:1", "r").as_deref(), Some("via-crun\n"));
}

#[test]
fn no_cache_filter_reruns_the_named_stage_and_what_reads_it() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox AS deps\nRUN cat /proc/sys/kernel/random/uuid > /deps\nFROM busybox\nCOPY --from=deps /deps /deps\nRUN echo app > /app\n",
    );
    t.ok(&["build", "-q", &ctx_dir(&t)]);
    let out = t.run(&[
        "build",
        "--progress",
        "plain",
        "--no-cache-filter",
        "deps",
        &ctx_dir(&t),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    // The deps stage ran again and made a different file; the COPY reading it missed too,
    // as did the RUN after it.
    let deps_step = stderr
        .lines()
        .find(|l| l.contains("[deps 1/1] RUN"))
        .and_then(|l| l.split_whitespace().next())
        .expect("deps step line")
        .to_string();
    assert!(!stderr.contains(&format!("{deps_step} CACHED")), "{stderr}");
    assert!(!stderr.contains(" CACHED"), "{stderr}");
}

#[test]
fn ctrl_c_stops_the_build_and_leaves_nothing_behind() {
    use std::io::BufRead;
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN echo started && sleep 30\nRUN echo never\n",
    );
    let mut child = t
        .tare()
        .args(["build", "--progress", "plain", &ctx_dir(&t)])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    // Wait until the RUN's process is running.
    for line in lines.by_ref() {
        if line.expect("line").contains("started") {
            break;
        }
    }
    // The sandbox registers the container for signal forwarding just after it starts; give
    // it a moment so the signal finds it (the test is about cleanup, not that race).
    std::thread::sleep(std::time::Duration::from_millis(500));
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(!status.success());
    let rest = rest.join("\n");
    assert!(rest.contains("interrupted"), "{rest}");
    assert!(!rest.contains("never"), "{rest}");
    let left: Vec<_> = std::fs::read_dir(t.root.path().join("tmp"))
        .expect("tmp")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mounts").expect("mounts");
    assert!(
        !mounts.contains(&t.root.path().to_string_lossy().into_owned()),
        "{mounts}"
    );
}

#[test]
fn steps_that_need_an_entitlement_are_refused_with_their_line() {
    let t = setup();
    for (line, flag) in [
        ("RUN --security=insecure true", "--allow security.insecure"),
        ("RUN --network=host true", "network.host"),
    ] {
        t.write("ctx/Dockerfile", &format!("FROM busybox\n{line}\n"));
        let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
        assert!(err.contains(":2:") && err.contains(flag), "{line}: {err}");
    }
}

/// The owner and permission bits of one file of an image, through `tare export`.
fn owner_and_mode(t: &TestContext, image: &str, path: &str) -> Option<(u64, u64, u32)> {
    with_entry(t, image, path, |entry| {
        let h = entry.header();
        (
            h.uid().expect("uid"),
            h.gid().expect("gid"),
            h.mode().expect("mode") & 0o7777,
        )
    })
}

/// Issue 12: the cache key was once built from the history text, which (as BuildKit 0.8
/// wrote it) left COPY's flags out, so these three gave one image whatever order they were
/// built in.
#[test]
fn copy_chown_and_chmod_are_part_of_the_cache_key() {
    let t = setup();
    t.write("ctx/f", "f\n");
    let mut ids = Vec::new();
    for (line, want) in [
        ("COPY --chown=7:7 f /f", (7, 7, 0o644)),
        ("COPY f /f", (0, 0, 0o644)),
        ("COPY --chmod=700 f /f", (0, 0, 0o700)),
    ] {
        t.write("ctx/Dockerfile", &format!("FROM busybox\n{line}\n"));
        let tag = format!("own:{}", ids.len());
        let id = t.ok(&["build", "-q", "-t", &tag, &ctx_dir(&t)]);
        assert_eq!(owner_and_mode(&t, &tag, "f"), Some(want), "{line}");
        ids.push(id.trim().to_string());
    }
    assert_ne!(ids[0], ids[1]);
    assert_ne!(ids[1], ids[2]);
    assert_ne!(ids[0], ids[2]);
}

/// Every record in the store's build cache, as JSON, with its path.
fn cache_records(t: &TestContext) -> Vec<(std::path::PathBuf, serde_json::Value)> {
    let dir = t.root.path().join("cache/records");
    std::fs::read_dir(&dir)
        .expect("records dir")
        .map(|e| {
            let path = e.expect("entry").path();
            let json = serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("json");
            (path, json)
        })
        .collect()
}

/// Turns every cache record into one of the format before versions (no `format` field).
fn make_records_old(t: &TestContext) -> usize {
    let records = cache_records(t);
    for (path, mut json) in records.iter().cloned() {
        json.as_object_mut().expect("object").remove("format");
        std::fs::write(&path, json.to_string()).expect("write");
    }
    records.len()
}

#[test]
fn cache_records_of_an_older_format_are_ignored_and_pruned() {
    let t = setup();
    t.write("ctx/f", "f\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nCOPY f /f\nRUN echo one > /one\n",
    );
    t.ok(&["build", "-q", &ctx_dir(&t)]);
    let out = t.run(&["build", "--progress", "plain", &ctx_dir(&t)]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .matches(" CACHED")
            .count(),
        2
    );
    // The same keys, but written by an older tare: never trusted.
    assert_eq!(make_records_old(&t), 2);
    let out = t.run(&[
        "build",
        "--progress",
        "plain",
        "--explain-cache",
        &ctx_dir(&t),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("CACHED"), "{stderr}");
    assert!(stderr.contains("cache miss: no cached result"), "{stderr}");
    // The rebuild wrote current records; old ones go on prune whatever the size limit.
    assert_eq!(make_records_old(&t), 2);
    let pruned = t.ok(&["prune", "--cache", "--keep-storage", "1GB"]);
    assert!(pruned.contains("deleted 2 build cache records"), "{pruned}");
    assert!(cache_records(&t).is_empty());
    t.ok(&["check"]);
}

/// The interfaces in `/proc/net/dev` of a file written by a RUN.
fn interfaces(dev: &str) -> Vec<String> {
    dev.lines()
        .skip(2)
        .filter_map(|l| l.split(':').next())
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn run_network_flag_is_honoured_per_step_and_keyed() {
    let t = setup();
    for (mode, tag) in [("none", "net:none"), ("host", "net:host")] {
        t.write(
            "ctx/Dockerfile",
            &format!("FROM busybox\nRUN --network={mode} cat /proc/net/dev > /dev.txt\n"),
        );
        // A step's host network is an entitlement, as in BuildKit.
        t.ok(&[
            "build",
            "-q",
            "--allow",
            "network.host",
            "-t",
            tag,
            &ctx_dir(&t),
        ]);
    }
    let none = interfaces(&file_in(&t, "net:none", "dev.txt").expect("none"));
    assert_eq!(none, vec!["lo".to_string()]);
    // The host's namespace: its own interfaces, not the cached result of the `none` step.
    let host = interfaces(&file_in(&t, "net:host", "dev.txt").expect("host"));
    let ours = interfaces(&std::fs::read_to_string("/proc/net/dev").expect("host net"));
    assert_eq!(host, ours);
    // `default` is the build's --network.
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN --network=default cat /proc/net/dev > /dev.txt\n",
    );
    t.ok(&[
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "net:default",
        &ctx_dir(&t),
    ]);
    let default = interfaces(&file_in(&t, "net:default", "dev.txt").expect("default"));
    assert_eq!(default, vec!["lo".to_string()]);
}
mod mounts;
