//! `tare run`'s /etc/hosts, /etc/resolv.conf and /etc/hostname are writable, as `docker run`
//! gives them (a build step's are not: tests/build/etc_files.rs), and none is left in the
//! container's layer.

use super::ctx;

#[test]
fn run_gets_writable_etc_files_as_docker_run_does() {
    let ctx = ctx();
    let out = ctx.ok(&[
        "run",
        "--rm",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hostname && echo '10.0.0.1 extra' >> /etc/hosts && echo renamed > /etc/hostname \
         && echo 'search example' >> /etc/resolv.conf && cat /etc/hostname && grep -c extra /etc/hosts \
         && awk '$2 ~ /^\\/etc\\// { split($4, o, \",\"); print $2, o[1] }' /proc/mounts | sort",
    ]);
    assert_eq!(
        out,
        "box\nrenamed\n1\n/etc/hostname rw\n/etc/hosts rw\n/etc/resolv.conf rw\n"
    );
}
