//! `--runtime runc|crun` as an ordinary user: the runtime runs inside tare's user namespace
//! (see docs/ARCHITECTURE.md, "Rootless"), and a run or a RUN step through it gives what the
//! built-in sandbox gives.

use crate::rootless::user::RootlessUser;

/// What the checks print: the IDs, the mapping seen inside, a file written, /sys readable.
const SCRIPT: &str = "id; cat /proc/self/uid_map | tr -s ' '; echo hi > /tmp/x && cat /tmp/x; \
                      test -d /sys/class && echo sys";

const DOCKERFILE: &str = "FROM base
RUN mkdir /d && echo x > /d/f && chown 1000:1000 /d/f && chmod 640 /d/f && id > /d/who
USER 1000:1000
RUN id > /tmp/by-1000
";

fn check_runtime(u: &RootlessUser, runtime: &str) {
    // tare run: the same output as the built-in sandbox, for root and for a mapped uid, on the
    // private network, without one, and on the host's.
    for user in ["0:0", "1000:1000"] {
        for network in ["default", "none", "host"] {
            let builtin = [
                "run",
                "--rm",
                "-u",
                user,
                "--network",
                network,
                "base",
                "sh",
                "-c",
                SCRIPT,
            ];
            let mut through = builtin.to_vec();
            through.splice(2..2, ["--runtime", runtime]);
            let (want, got) = (u.ok(&builtin), u.ok(&through));
            assert_eq!(
                want, got,
                "{runtime} -u {user} --network {network}: differs from the built-in sandbox"
            );
            assert!(got.ends_with("hi\nsys\n"), "{runtime}: {got}");
            let uid = user.split(':').next().unwrap();
            assert!(got.starts_with(&format!("uid={uid}")), "{runtime}: {got}");
        }
    }
    // The exit code is the container's.
    let out = u.run(&[
        "run",
        "--rm",
        "--runtime",
        runtime,
        "base",
        "sh",
        "-c",
        "exit 7",
    ]);
    assert_eq!(out.status.code(), Some(7), "{runtime}");

    // tare build --runtime: RUN steps through it make the image the built-in sandbox makes.
    let ctx = u.path().join("ctx");
    let ctx = ctx.to_str().unwrap();
    let tag = format!("through-{runtime}");
    u.ok(&["build", "-q", "--runtime", runtime, "-t", &tag, ctx]);
    u.ok(&["build", "-q", "--no-cache", "-t", "builtin", ctx]);
    let show = "stat -c '%n %u %g %a %s' /d/f /d/who /tmp/by-1000; cat /d/who /tmp/by-1000";
    let (want, got) = (
        u.ok(&["run", "--rm", "builtin", "sh", "-c", show]),
        u.ok(&["run", "--rm", &tag, "sh", "-c", show]),
    );
    assert_eq!(want, got, "{runtime}: the image differs");
    assert!(got.contains("/d/f 1000 1000 640 2"), "{got}");
    assert!(got.contains("/tmp/by-1000 1000 1000"), "{got}");
}

#[test]
fn rootless_runc_and_crun_run_what_the_builtin_sandbox_runs() {
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "base"]);
    u.write("ctx/Dockerfile", DOCKERFILE.as_bytes());
    for runtime in ["runc", "crun"] {
        check_runtime(&u, runtime);
    }
    // Host side: nothing the runtimes left belongs to anyone but the user and its range.
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
