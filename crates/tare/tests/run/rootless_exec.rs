//! `tare exec` of a rootless tare: it joins the user namespace of the `tare run -d` that
//! started the container (instead of making one of its own), then the container's other
//! namespaces, and behaves as root's exec does.

use super::detached::eventually;
use super::exec::{run_box, stdin_lands_in_the_layer_and_processes_end_with_the_container};
use super::rootless::user::RootlessUser;
use super::{ctx, mounts_with};

/// `/proc/PID/status` lines of a process, for comparing confinement.
const STATUS: &str = "grep -E '^(CapEff|CapBnd|CapPrm|Seccomp|NoNewPrivs):' /proc/$0/status";

#[test]
fn rootless_exec_joins_the_container_as_roots_exec_does() {
    let root = ctx();
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "busybox"]);
    let marker = format!("rootless-exec-{}", std::process::id());
    let script = format!("echo {marker} >/dev/null; touch /started; exec sleep 600");
    let run_d = run_box(&script);
    root.ok(&run_d);
    u.ok(&run_d);
    eventually("both containers started", || {
        root.run(&["exec", "box", "ls", "/started"])
            .status
            .success()
            && u.run(&["exec", "box", "ls", "/started"]).status.success()
    });

    // Root in the container, its files, its pid 1, its environment and working directory.
    let show = [
        "exec",
        "box",
        "sh",
        "-c",
        "id -u; ls /started; tr '\\0' ' ' < /proc/1/cmdline; echo; echo $FROM_RUN; pwd; \
         ps -o pid,args | grep '^ *1 '",
    ];
    let want = root.ok(&show);
    assert_eq!(want, "0\n/started\nsleep 600 \n1\n/tmp\n    1 sleep 600\n");
    assert_eq!(u.ok(&show), want);

    // Another mapped user, exit codes, and the same confinement as the container's pid 1.
    let as_app = ["exec", "-u", "1000:1000", "box", "sh", "-c", "id -u; id -g"];
    assert_eq!(u.ok(&as_app), "1000\n1000\n");
    assert_eq!(
        u.run(&["exec", "box", "sh", "-c", "exit 7"]).status.code(),
        Some(7)
    );
    let of_exec = u.ok(&["exec", "box", "sh", "-c", STATUS, "self"]);
    let of_init = u.ok(&["exec", "box", "sh", "-c", STATUS, "1"]);
    assert_eq!(of_exec, of_init);
    assert!(of_exec.contains("Seccomp:\t2"), "{of_exec}");
    assert_eq!(
        of_exec,
        root.ok(&["exec", "box", "sh", "-c", STATUS, "self"])
    );

    // stdin with -i, and a process exec left running ends with the container (root's is
    // gone first: its command holds the marker too).
    root.ok(&["rm", "-f", "box"]);
    stdin_lands_in_the_layer_and_processes_end_with_the_container(&|| u.tare(), &marker);
    // What the container's root wrote belongs to the user on the host.
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
    let err = u.fails(&["exec", "box", "true"]);
    assert!(err.contains("container box is not running"), "{err}");
    u.ok(&["rm", "box"]);
    assert!(mounts_with(&marker).is_empty());
}
