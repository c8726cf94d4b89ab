//! Pushes as a person sees them on a terminal (tmux screenshots): `tare push` and a build's
//! `--push` show a bar per layer while it uploads and clear it when done; the build's push is
//! one more step of the build, collapsed to one line at the end.

use std::sync::atomic::Ordering;

use super::harness::{Proxy, RegistryServer};
use super::tmux::Screen;
use super::util::TestContext;
use super::{make_image, ok};

#[test]
fn pushes_show_a_bar_per_uploading_layer_and_a_build_push_is_a_step() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    // About 3 MiB of random bytes read by the registry at 256 KiB/s: seconds to watch.
    proxy.state.upload_kib_per_sec.store(256, Ordering::SeqCst);
    let tare = env!("CARGO_BIN_EXE_tare");

    let a = TestContext::new();
    make_image(&a, "big:1", "hello", 3 << 20);
    let (_, done) = Screen::watch_transfer(
        &format!(
            "{tare} --root {} push big:1 {}/big:1",
            a.root.path().display(),
            proxy.host()
        ),
        "pushing layer",
    );
    assert!(done.contains(": done, "), "{done}");

    // A build that pushes: the push is a step after the build's own, with the same bars.
    std::fs::write(
        a.path().join("Dockerfile"),
        "FROM big:1\nRUN head -c 3000000 /dev/urandom > /more\n",
    )
    .unwrap();
    let target = format!("{}/built:1", proxy.host());
    let (_, done) = Screen::watch_transfer(
        &format!(
            "{tare} --root {} build --push -t {target} {}",
            a.root.path().display(),
            a.path().display()
        ),
        &format!("pushing {target}"),
    );
    assert!(
        done.lines()
            .any(|l| l.starts_with("=> #2 pushing ") && l.contains(&target)),
        "the push collapsed to one line after the build's one step (a stored FROM makes none):\n{done}"
    );
    assert!(done.contains(&format!("pushed {target}")), "{done}");

    // Plain output names the push step, the layers it skipped and each upload's end.
    proxy.state.upload_kib_per_sec.store(0, Ordering::SeqCst);
    std::fs::write(
        a.path().join("Dockerfile"),
        "FROM big:1\nRUN head -c 100000 /dev/urandom > /other\n",
    )
    .unwrap();
    let (_, err) = ok(
        &a,
        &[
            "build",
            "--progress",
            "plain",
            "--push",
            "-t",
            &format!("{}/plain:1", proxy.host()),
            a.path().to_str().unwrap(),
        ],
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("#2 pushing ") && l.ends_with("/plain:1")),
        "{err}"
    );
    assert!(
        err.contains("already in the registry") || err.contains("mounted from"),
        "{err}"
    );
    assert!(
        err.lines()
            .any(|l| l.starts_with("#2 sha256:") && l.ends_with(" done")),
        "{err}"
    );
    assert!(err.lines().any(|l| l.starts_with("#2 DONE ")), "{err}");
}
