//! A RUN step's /etc files are BuildKit 0.25's: /etc/hosts and /etc/resolv.conf read-only, no
//! /etc/hostname mount (the differential cases tests/conformance/cases/s7-h5-run-etc-* compare
//! with BuildKit itself). Checked through the built-in sandbox and through `--runtime runc`.

use super::util::TestContext;
use super::{ctx_dir, file_in, setup};

const DOCKERFILE: &str = r#"FROM busybox
RUN if echo x > /etc/hosts; then echo writable; else echo read-only; fi > /hosts-write
RUN if echo x >> /etc/resolv.conf; then echo writable; else echo read-only; fi > /resolv-write
RUN if [ -e /etc/hostname ]; then echo present; else echo absent; fi > /hostname-before
RUN echo built > /etc/hostname && touch /etc/empty-hostname-sibling
RUN cat /etc/hostname > /hostname-after
"#;

fn check(t: &TestContext, tag: &str) {
    assert_eq!(
        file_in(t, tag, "hosts-write").as_deref(),
        Some("read-only\n")
    );
    assert_eq!(
        file_in(t, tag, "resolv-write").as_deref(),
        Some("read-only\n")
    );
    assert_eq!(
        file_in(t, tag, "hostname-before").as_deref(),
        Some("absent\n")
    );
    assert_eq!(file_in(t, tag, "etc/hostname").as_deref(), Some("built\n"));
    assert_eq!(
        file_in(t, tag, "hostname-after").as_deref(),
        Some("built\n")
    );
    // Mount points are not left in the image.
    assert_eq!(file_in(t, tag, "etc/hosts"), None);
    assert_eq!(file_in(t, tag, "etc/resolv.conf"), None);
}

#[test]
fn run_steps_get_read_only_hosts_and_resolv_conf_and_no_hostname_mount() {
    let t = setup();
    t.write("ctx/Dockerfile", DOCKERFILE);
    t.ok(&["build", "-q", "-t", "etc:1", &ctx_dir(&t)]);
    check(&t, "etc:1");
}

#[test]
fn an_empty_hostname_a_step_creates_stays_in_its_layer() {
    let t = setup();
    t.write("ctx/Dockerfile", "FROM busybox\nRUN touch /etc/hostname\n");
    t.ok(&["build", "-q", "-t", "etc:empty", &ctx_dir(&t)]);
    assert_eq!(
        file_in(&t, "etc:empty", "etc/hostname").as_deref(),
        Some("")
    );
}

#[test]
fn run_steps_through_an_oci_runtime_get_the_same_etc_files() {
    let t = setup();
    t.write("ctx/Dockerfile", DOCKERFILE);
    for runtime in ["runc", "crun"] {
        let tag = format!("etc:{runtime}");
        t.ok(&[
            "build",
            "-q",
            "--runtime",
            runtime,
            "-t",
            &tag,
            &ctx_dir(&t),
        ]);
        check(&t, &tag);
    }
}
