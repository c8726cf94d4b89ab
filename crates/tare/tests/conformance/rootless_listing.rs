//! What a RUN step sees of the container's own file system, rootless and as root: the
//! entries of `/`, `/dev`, `/dev/pts`, `/dev/shm`, `/dev/mqueue`, `/etc` and `/sys` (name,
//! type, mode, owner, device numbers, link target), the names in `/proc`, and the /etc files
//! a step gets. The same Dockerfile is built by BuildKit 0.25, root tare and rootless tare;
//! each image is then run by tare (its two empty RUN layers share one diff ID: `tare run`
//! stacks that snapshot once, as overlayfs wants), and the listings are compared.
//!
//! Root tare must list what BuildKit lists. Rootless tare must list what root tare lists,
//! but for the owner of the kernel's own objects, which the kernel shows as the overflow ID
//! 65534 inside a user namespace and tare cannot change (ARCHITECTURE.md, "Rootless: what a
//! step sees"): the proc and sysfs mounts and every sysfs entry, and the device nodes, which
//! rootless /dev binds from the host because a user namespace cannot make them.
//!
//! The listing is written with one redirect around the whole script, so the file exists
//! before anything is listed: a `ls / | wc -l > /count` lists `/` while the redirect of the
//! other end of the pipe creates `/count`, and so counts it or not at random (that race,
//! not tare, made root and rootless counts differ in an earlier case).

use std::collections::BTreeMap;

use super::rootless::user_with_base;
use crate::util::TestContext;

const DOCKERFILE: &str = r#"FROM busybox
RUN --mount=type=tmpfs,target=/tmpnew/x true
RUN --mount=type=bind,source=sub,target=/new/deep/m true
RUN --mount=type=bind,source=sub/f,target=/filemount/f cat /filemount/f > /out
RUN { for d in / /dev /dev/pts /dev/shm /dev/mqueue /etc /sys; do \
        echo "== $d"; cd "$d" && for n in $(ls -a); do \
          stat -c '%n %a %u %g %t:%T %F %N' "$n"; \
        done; \
      done; \
      echo "== /proc"; ls /proc | grep -v '^[0-9]'; \
      echo "== /etc/hosts"; cat /etc/hosts; \
      echo "== /etc/resolv.conf"; cat /etc/resolv.conf; \
    } > /listing
"#;

/// Each line of a listing under its section: (section, key) -> line. The key is the first
/// word of an entry (a name), and the line number in a file's section.
fn sections(listing: &str) -> BTreeMap<(String, String), String> {
    let mut out = BTreeMap::new();
    let mut section = String::new();
    let mut number = 0;
    for line in listing.lines() {
        if let Some(name) = line.strip_prefix("== ") {
            section = name.to_string();
            number = 0;
            continue;
        }
        number += 1;
        let key = if section.starts_with("/etc/") {
            format!("line {number:03}")
        } else {
            line.split(' ').next().unwrap_or_default().to_string()
        };
        let previous = out.insert((section.clone(), key.clone()), line.to_string());
        assert!(previous.is_none(), "{section}: {key} twice in\n{listing}");
    }
    out
}

/// Whether rootless may show `(section, name)` owned by 65534: an object of the kernel's
/// that belongs to the initial user namespace.
fn kernel_owned(section: &str, name: &str) -> bool {
    match section {
        "/" => name == "proc" || name == "sys",
        "/dev" => ["null", "zero", "full", "random", "urandom", "tty"].contains(&name),
        // sysfs itself and its entries; `..` is `/`, and `firmware` tare's masking tmpfs.
        "/sys" => name != ".." && name != "firmware",
        _ => false,
    }
}

/// `line` with its owner fields (the 3rd and 4th words of a `stat` line) set to `uid gid`.
fn with_owner(line: &str, owner: &str) -> String {
    let words: Vec<&str> = line.split(' ').collect();
    assert!(words.len() > 4, "not a stat line: {line}");
    let mut out: Vec<&str> = words[..2].to_vec();
    out.push(owner);
    out.extend(&words[4..]);
    out.join(" ")
}

/// The differences of `got` from `want`, one line each; `allowed` may excuse one.
fn differences(
    want: &BTreeMap<(String, String), String>,
    got: &BTreeMap<(String, String), String>,
    mut allowed: impl FnMut(&(String, String), &str, &str) -> bool,
) -> Vec<String> {
    let mut out = Vec::new();
    for (key, w) in want {
        match got.get(key) {
            None => out.push(format!("missing in {}: {w}", key.0)),
            Some(g) if g != w && !allowed(key, w, g) => {
                out.push(format!("{}:\n      want {w}\n      got  {g}", key.0))
            }
            Some(_) => {}
        }
    }
    for (key, g) in got {
        if !want.contains_key(key) {
            out.push(format!("extra in {}: {g}", key.0));
        }
    }
    out
}

#[test]
fn a_rootless_step_sees_what_a_root_step_and_buildkit_see() {
    let root = TestContext::new();
    super::prepare_base(&root);
    let u = user_with_base(&root);
    let dockerfile = u.write("listing/Dockerfile", DOCKERFILE.as_bytes());
    u.write("listing/sub/f", b"bound\n");
    let case = dockerfile.parent().unwrap();
    let dir = case.to_str().unwrap();

    super::docker_build(&root, case, "listing/buildkit:1", &[]).expect("BuildKit build");
    let build = [
        "build",
        "-q",
        "--network",
        "none",
        "-t",
        "listing/tare:1",
        dir,
    ];
    root.ok(&build);
    u.ok(&build);
    fn cat(image: &str) -> [&str; 7] {
        ["run", "--rm", "--network", "none", image, "cat", "/listing"]
    }
    let buildkit = root.ok(&cat("listing/buildkit:1"));
    let rooted = root.ok(&cat("listing/tare:1"));
    let rootless = u.ok(&cat("listing/tare:1"));
    let (buildkit, rooted, rootless) =
        (sections(&buildkit), sections(&rooted), sections(&rootless));
    // The listing covers what it should (a wrong `cd` would list one directory eight times).
    for key in [
        ("/", "listing"),
        ("/dev", "null"),
        ("/etc", "hosts"),
        ("/sys", "fs"),
    ] {
        let key = (key.0.to_string(), key.1.to_string());
        assert!(rooted.contains_key(&key), "{key:?} not listed: {rooted:?}");
    }
    // No mount point of the earlier steps is left in `/`.
    for stub in ["tmpnew", "new", "filemount"] {
        let key = ("/".to_string(), stub.to_string());
        assert!(!rooted.contains_key(&key), "{stub} left in /");
        assert!(!rootless.contains_key(&key), "{stub} left in / rootless");
    }

    // Root tare and BuildKit. The container's own name in /etc/hosts is each builder's, the
    // only line allowed to differ there (checked by `s7-h5-run-etc-*` too).
    let problems = differences(&buildkit, &rooted, |key, w, g| {
        key.0 == "/etc/hosts" && w.starts_with("127.0.0.1") && g.starts_with("127.0.0.1")
    });
    assert!(
        problems.is_empty(),
        "root tare's RUN step sees another file system than BuildKit's:\n  {}",
        problems.join("\n  ")
    );

    // Rootless and root tare: only the kernel's objects, and only their owner.
    let mut excused = Vec::new();
    let problems = differences(&rooted, &rootless, |key, w, g| {
        let ok = kernel_owned(&key.0, &key.1) && with_owner(w, "65534 65534") == g;
        if ok {
            excused.push(format!("{}/{}", key.0, key.1));
        }
        ok
    });
    assert!(
        problems.is_empty(),
        "a rootless RUN step sees another file system than a root one:\n  {}",
        problems.join("\n  ")
    );
    // The exceptions are real (a listing as root would show none).
    for owned in ["//proc", "//sys", "/dev/null", "/dev/tty", "/sys/kernel"] {
        assert!(excused.iter().any(|e| e == owned), "{owned}: {excused:?}");
    }
}
