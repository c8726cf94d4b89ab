//! `RUN --mount=type=secret`, `RUN --mount=type=ssh` and `RUN --security=insecure`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::util::TestContext;
use crate::{ctx_dir, file_in, setup};

/// A value no file of the test machine holds by chance.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("tare-{tag}-{}-{nanos:x}", std::process::id())
}

/// `tare ARGS` with extra environment variables.
fn run_env(t: &TestContext, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = t.tare();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn tare")
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "tare failed:\nstdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The paths in an image's `tare export`.
fn paths_in(t: &TestContext, image: &str) -> Vec<String> {
    let out = t.path().join("paths.tar");
    t.ok(&["export", image, "-o", out.to_str().unwrap()]);
    let mut archive = tar::Archive::new(std::fs::File::open(&out).unwrap());
    let paths = archive
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let p = e.path().unwrap().to_string_lossy().into_owned();
            p.trim_start_matches("./").trim_end_matches('/').to_string()
        })
        .collect();
    let _ = std::fs::remove_file(&out);
    paths
}

#[test]
fn secrets_from_a_file_and_a_variable_reach_the_step_and_leave_no_mount_point() {
    let t = setup();
    let file = t.write("tok.txt", "from-a-file");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen && \
             stat -c '%a %u %g %F' /run/secrets/tok > /meta\n\
         RUN --mount=type=secret,id=vartok cat /run/secrets/vartok > /seen-var\n\
         RUN --mount=type=secret,id=tok,env=MY_TOK sh -c 'echo \"$MY_TOK\" > /seen-env; \
             test ! -e /run/secrets/tok'\n\
         RUN --mount=type=secret,id=absent test ! -e /run/secrets/absent\n",
    );
    let src = format!("id=tok,src={}", file.display());
    let out = run_env(
        &t,
        &[("TARE_TEST_VARTOK", "from-a-variable")],
        &[
            "build",
            "-q",
            "-t",
            "sec:1",
            "--secret",
            &src,
            "--secret",
            "id=vartok,env=TARE_TEST_VARTOK",
            &ctx_dir(&t),
        ],
    );
    ok(&out);
    assert_eq!(file_in(&t, "sec:1", "seen").unwrap(), "from-a-file");
    assert_eq!(
        file_in(&t, "sec:1", "meta").unwrap(),
        "400 0 0 regular file\n"
    );
    assert_eq!(file_in(&t, "sec:1", "seen-var").unwrap(), "from-a-variable");
    assert_eq!(file_in(&t, "sec:1", "seen-env").unwrap(), "from-a-file\n");
    // BuildKit removes the mount points it made: no /run/secrets (busybox has no /run).
    let paths = paths_in(&t, "sec:1");
    assert!(
        !paths.iter().any(|p| p == "run" || p.starts_with("run/")),
        "{paths:?}"
    );
}

#[test]
fn a_required_secret_that_is_missing_fails_with_its_line() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN true\nRUN --mount=type=secret,id=nope,required cat /run/secrets/nope\n",
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains(":3:") && err.contains("\"nope\""), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn secret_owner_and_mode_follow_the_mount() {
    let t = setup();
    let file = t.write("tok.txt", "owned");
    let src = format!("id=tok,src={}", file.display());
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok,target=/s/t,uid=1000,gid=1001,mode=0440 \
             stat -c '%a %u %g' /s/t > /meta\n\
         USER 1000\n\
         RUN --mount=type=secret,id=tok,uid=1000 cat /run/secrets/tok > /tmp/as-user\n",
    );
    t.ok(&[
        "build",
        "-q",
        "-t",
        "sec:own",
        "--secret",
        &src,
        &ctx_dir(&t),
    ]);
    assert_eq!(file_in(&t, "sec:own", "meta").unwrap(), "440 1000 1001\n");
    assert_eq!(file_in(&t, "sec:own", "tmp/as-user").unwrap(), "owned");
    assert!(!paths_in(&t, "sec:own").iter().any(|p| p == "s"));
    // Without uid= the file is root's, mode 0400: user 1000 cannot read it.
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nUSER 1000\nRUN --mount=type=secret,id=tok cat /run/secrets/tok\n",
    );
    let err = t.fails(&["build", "-q", "--secret", &src, &ctx_dir(&t)]);
    assert!(err.contains(":3:"), "{err}");
}

/// Every file under `dir` whose bytes, or whose gzip or zstd decompressed bytes, contain
/// `needle`.
fn files_holding(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                stack.push(p);
            } else if meta.is_file() {
                let bytes = std::fs::read(&p).unwrap_or_default();
                let decompressed = match bytes.get(..4) {
                    Some([0x1f, 0x8b, _, _]) => decompress("gzip", &p),
                    Some([0x28, 0xb5, 0x2f, 0xfd]) => decompress("zstd", &p),
                    _ => Vec::new(),
                };
                if contains(&bytes, needle) || contains(&decompressed, needle) {
                    hits.push(p);
                }
            }
        }
    }
    hits
}

fn decompress(tool: &str, path: &Path) -> Vec<u8> {
    Command::new(tool)
        .arg("-dc")
        .arg(path)
        .stderr(Stdio::null())
        .output()
        .map(|o| o.stdout)
        .unwrap_or_default()
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Builds `dockerfile` with the secret (file and variable) and looks for its value in the
/// store, the build's output (plain progress), and `tare save` (unpacked, layers
/// decompressed). Returns where it was found.
fn secret_traces(t: &TestContext, dockerfile: &str, value: &str, expect_ok: bool) -> Vec<String> {
    let file = t.write("secret.txt", value);
    t.write("ctx/Dockerfile", dockerfile);
    let src = format!("id=tok,src={}", file.display());
    let out = run_env(
        t,
        &[("TARE_TEST_SECRET", value)],
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "sec:trace",
            "--secret",
            &src,
            "--secret",
            "id=vtok,env=TARE_TEST_SECRET",
            &ctx_dir(t),
        ],
    );
    assert_eq!(out.status.success(), expect_ok, "{out:?}");
    let mut found = Vec::new();
    if contains(&out.stdout, value.as_bytes()) {
        found.push("build stdout".to_string());
    }
    if contains(&out.stderr, value.as_bytes()) {
        found.push("build stderr".to_string());
    }
    for p in files_holding(t.root.path(), value.as_bytes()) {
        found.push(p.display().to_string());
    }
    if expect_ok {
        let saved = t.path().join("saved");
        std::fs::create_dir_all(&saved).unwrap();
        let tar = saved.join("image.tar");
        let save = t.run(&["save", "-o", tar.to_str().unwrap(), "sec:trace"]);
        assert!(save.status.success(), "{save:?}");
        let status = Command::new("tar")
            .arg("-xf")
            .arg(&tar)
            .arg("-C")
            .arg(&saved)
            .status()
            .unwrap();
        assert!(status.success());
        for p in files_holding(&saved, value.as_bytes()) {
            found.push(format!("tare save: {}", p.display()));
        }
        std::fs::remove_dir_all(&saved).unwrap();
    }
    std::fs::remove_file(&file).unwrap();
    found
}

#[test]
fn a_secret_value_is_in_no_blob_record_cache_log_or_saved_image() {
    // The search can fail: a RUN that copies the secret into the image is found in the
    // store and in `tare save`.
    let t = setup();
    let leaked = unique("leak");
    let found = secret_traces(
        &t,
        "FROM busybox\nRUN --mount=type=secret,id=tok cp /run/secrets/tok /leaked\n",
        &leaked,
        true,
    );
    assert!(
        found.iter().any(|f| f.starts_with("tare save")),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.starts_with(&t.root.path().display().to_string())),
        "{found:?}"
    );

    // Used as a file and as a variable, in steps that succeed: found nowhere.
    let t = setup();
    let value = unique("secret");
    let found = secret_traces(
        &t,
        "FROM busybox\n\
         RUN --mount=type=secret,id=tok wc -c /run/secrets/tok > /len\n\
         RUN --mount=type=secret,id=vtok,env=TOKEN sh -c 'test -n \"$TOKEN\" && echo ok > /ok'\n\
         RUN --mount=type=secret,id=tok,target=/etc/app/token,mode=0444 cat /etc/app/token | wc -c > /len2\n",
        &value,
        true,
    );
    assert!(found.is_empty(), "the secret was found in {found:?}");
    assert_eq!(
        file_in(&t, "sec:trace", "ok").as_deref(),
        Some("ok\n"),
        "the steps did not see the secret"
    );

    // A step that fails with the secret in its environment: not in the error either.
    let t = setup();
    let value = unique("failing");
    let found = secret_traces(
        &t,
        "FROM busybox\nRUN --mount=type=secret,id=vtok,env=TOKEN sh -c 'exit 3'\n",
        &value,
        false,
    );
    assert!(found.is_empty(), "the secret was found in {found:?}");
}

#[test]
fn run_security_insecure_needs_the_entitlement_and_then_has_every_capability() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN --security=insecure mkdir -p /m && mount -t tmpfs t /m && \
             grep CapEff /proc/self/status > /caps\n",
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(
        err.contains(":2:") && err.contains("--allow security.insecure"),
        "{err}"
    );
    t.ok(&[
        "build",
        "-q",
        "--allow",
        "security.insecure",
        "-t",
        "insecure:1",
        &ctx_dir(&t),
    ]);
    let caps = file_in(&t, "insecure:1", "caps").unwrap();
    let mask = u64::from_str_radix(caps.split_whitespace().nth(1).unwrap(), 16).unwrap();
    // CAP_SYS_ADMIN (21), which Docker's default set lacks.
    assert!(mask & (1 << 21) != 0, "{caps}");
    // The same mount in the default sandbox fails.
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN mkdir -p /m && mount -t tmpfs t /m\n",
    );
    let err = t.fails(&["build", "-q", "--allow", "security.insecure", &ctx_dir(&t)]);
    assert!(err.contains(":2:"), "{err}");
}

/// A busybox image with the host's `ssh-add` and the libraries it links, as `name`.
fn import_ssh_add(t: &TestContext, name: &str) {
    let root = t.path().join("ssh-rootfs");
    crate::util::busybox_rootfs(&root);
    let ssh_add = PathBuf::from("/usr/bin/ssh-add");
    let ldd = Command::new("ldd").arg(&ssh_add).output().expect("ldd");
    let mut files = vec![ssh_add];
    for line in String::from_utf8_lossy(&ldd.stdout).lines() {
        if let Some(p) = line.split_whitespace().find(|w| w.starts_with('/')) {
            files.push(PathBuf::from(p));
        }
    }
    for f in files {
        let real = std::fs::canonicalize(&f).unwrap();
        let dest = root.join(f.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&real, &dest).unwrap();
    }
    t.import_dir(&root, name);
}

/// An `ssh-agent` for the test, killed when dropped.
struct TestAgent {
    child: std::process::Child,
    socket: PathBuf,
}

impl TestAgent {
    fn start(dir: &Path) -> TestAgent {
        let socket = dir.join("agent.sock");
        let child = Command::new("ssh-agent")
            .arg("-D")
            .arg("-a")
            .arg(&socket)
            .stdout(Stdio::null())
            .spawn()
            .expect("ssh-agent (openssh-client)");
        for _ in 0..500 {
            if socket.exists() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        TestAgent { child, socket }
    }
}

impl Drop for TestAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let key = dir.join(name);
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
    let fp = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(&key)
        .output()
        .unwrap();
    let fingerprint = String::from_utf8_lossy(&fp.stdout)
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    (key, fingerprint)
}

#[test]
fn ssh_add_in_a_run_lists_the_forwarded_agents_keys() {
    let t = TestContext::new();
    import_ssh_add(&t, "sshimg:latest");
    std::fs::create_dir_all(t.path().join("ctx")).unwrap();
    let keys = t.path().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (key, fingerprint) = keygen(&keys, "agent-key");
    let agent = TestAgent::start(&keys);
    let added = Command::new("ssh-add")
        .arg(&key)
        .env("SSH_AUTH_SOCK", &agent.socket)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");

    // The agent's socket, as root and as a user given the socket.
    t.write(
        "ctx/Dockerfile",
        "FROM sshimg\n\
         RUN --mount=type=ssh ssh-add -l > /listed && echo \"$SSH_AUTH_SOCK\" > /sock\n\
         USER 1000\n\
         RUN --mount=type=ssh,uid=1000 ssh-add -l > /tmp/listed-user\n",
    );
    let forward = format!("default={}", agent.socket.display());
    t.ok(&[
        "build",
        "-q",
        "-t",
        "ssh:1",
        "--ssh",
        &forward,
        &ctx_dir(&t),
    ]);
    let listed = file_in(&t, "ssh:1", "listed").unwrap();
    assert!(listed.contains(&fingerprint), "{listed}");
    assert_eq!(
        file_in(&t, "ssh:1", "sock").unwrap(),
        "/run/buildkit/ssh_agent.0\n"
    );
    assert!(file_in(&t, "ssh:1", "tmp/listed-user")
        .unwrap()
        .contains(&fingerprint));
    let paths = paths_in(&t, "ssh:1");
    assert!(!paths.iter().any(|p| p.starts_with("run")), "{paths:?}");

    // A key file: tare starts an agent of its own for the build.
    let (key2, fingerprint2) = keygen(&keys, "file-key");
    t.write(
        "ctx/Dockerfile",
        "FROM sshimg\nRUN --mount=type=ssh,id=deploy ssh-add -l > /listed\n",
    );
    let from_key = format!("deploy={}", key2.display());
    t.ok(&[
        "build",
        "-q",
        "-t",
        "ssh:2",
        "--ssh",
        &from_key,
        &ctx_dir(&t),
    ]);
    let listed = file_in(&t, "ssh:2", "listed").unwrap();
    assert!(
        listed.contains(&fingerprint2) && !listed.contains(&fingerprint),
        "{listed}"
    );

    // Not given and required: refused with the line; not required: no socket.
    t.write(
        "ctx/Dockerfile",
        "FROM sshimg\nRUN --mount=type=ssh,id=other,required ssh-add -l\n",
    );
    let err = t.fails(&["build", "-q", &ctx_dir(&t)]);
    assert!(err.contains(":2:") && err.contains("other"), "{err}");
    t.write(
        "ctx/Dockerfile",
        "FROM sshimg\nRUN --mount=type=ssh,id=other test -z \"$SSH_AUTH_SOCK\"\n",
    );
    t.ok(&["build", "-q", &ctx_dir(&t)]);
}

#[test]
fn through_an_oci_runtime_a_secret_is_mounted_and_its_mount_point_removed() {
    let t = setup();
    let file = t.write("tok.txt", "via-runtime");
    let src = format!("id=tok,src={}", file.display());
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nRUN --mount=type=secret,id=tok cat /run/secrets/tok > /seen\n",
    );
    t.ok(&[
        "build",
        "-q",
        "--runtime",
        "crun",
        "--secret",
        &src,
        "-t",
        "sec:rt",
        &ctx_dir(&t),
    ]);
    assert_eq!(file_in(&t, "sec:rt", "seen").unwrap(), "via-runtime");
    let paths = paths_in(&t, "sec:rt");
    assert!(
        !paths.iter().any(|p| p == "run" || p.starts_with("run/")),
        "{paths:?}"
    );
}
