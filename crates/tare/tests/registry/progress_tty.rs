//! Pulls as a person sees them on a terminal (tmux screenshots): a bar per layer while it
//! moves, cleared when it is done; and a build whose FROM pulls shows the same bars under a
//! step of its own.

use std::sync::atomic::Ordering;

use super::harness::{Proxy, RegistryServer};
use super::tmux::Screen;
use super::util::TestContext;
use super::{make_image, ok};

#[test]
fn pulls_show_a_bar_per_moving_layer_and_clear_them() {
    let reg = RegistryServer::open();
    let a = TestContext::new();
    // About 2 MiB of random bytes, sent at 512 KiB/s: a few seconds to watch.
    make_image(&a, "big:1", "hello", 2 << 20);
    ok(&a, &["push", "big:1", &format!("{}/big:1", reg.host())]);
    let proxy = Proxy::start(reg.port, None);
    proxy.state.blob_kib_per_sec.store(512, Ordering::SeqCst);
    let tare = env!("CARGO_BIN_EXE_tare");

    let b = TestContext::new();
    let reference = format!("{}/big:1", proxy.host());
    let (moving, done) = Screen::watch_transfer(
        &format!("{tare} --root {} pull {reference}", b.root.path().display()),
        "pulling layer",
    );
    assert!(
        moving
            .lines()
            .any(|l| l.contains("B / ") && l.contains("B/s")),
        "a bar with its bytes and rate:\n{moving}"
    );
    assert!(done.contains(": done, "), "{done}");

    // A build whose FROM pulls: the pull is a step of its own, with the same bars.
    let c = TestContext::new();
    std::fs::write(
        c.path().join("Dockerfile"),
        format!("FROM {reference}\nRUN true\n"),
    )
    .unwrap();
    let (_, done) = Screen::watch_transfer(
        &format!(
            "{tare} --root {} build -t from-pull {}",
            c.root.path().display(),
            c.path().display()
        ),
        &format!("FROM {reference}"),
    );
    assert!(
        done.lines().any(|l| l.starts_with("=> #1 FROM ")),
        "the pull collapsed to one line:\n{done}"
    );

    // Plain output (not a terminal) names the pull's step and each blob's start and end.
    let d = TestContext::new();
    std::fs::write(d.path().join("Dockerfile"), format!("FROM {reference}\n")).unwrap();
    proxy.state.blob_kib_per_sec.store(0, Ordering::SeqCst);
    let (_, err) = ok(
        &d,
        &[
            "build",
            "--progress",
            "plain",
            "-t",
            "p",
            d.path().to_str().unwrap(),
        ],
    );
    assert!(err.contains(&format!("#1 FROM {reference}")), "{err}");
    assert!(
        err.lines()
            .any(|l| l.starts_with("#1 sha256:") && l.ends_with(" done")),
        "{err}"
    );
}
