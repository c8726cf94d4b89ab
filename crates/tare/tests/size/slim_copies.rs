//! `tare slim` where overlayfs is refused: with copy-based snapshots (`TARE_SNAPSHOTTER=copy`,
//! what `auto` picks there) each probe runs on a merged copy of the image's layers, and the
//! result must be the overlay's: the same removed paths and sizes, the same slim image files
//! and output, as root and rootless.
//!
//! The copy lives on the store's filesystem, which the host's processes use too. Root's tracer
//! marks only the container's root mount there, so what the host opens meanwhile is never
//! taken for the container's: the image holds a copy of the host's `/usr/lib/os-release` that
//! the probe never reads, and a thread of the test reads the host's file while the probe
//! runs. Marking the whole filesystem would report those reads under the same path, and the
//! slim image would keep the file.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::rootless::user::RootlessUser;
use crate::slim_rootless::{import_both_with, removed_paths, slim, Slimmed, PROBE};
use crate::util::TestContext;

/// A file of the host's that is on the store's filesystem in CI, and in the image, unread by
/// the probe.
const HOST_FILE: &str = "/usr/lib/os-release";

/// `tare ARGS` through `tare` with `TARE_SNAPSHOTTER=copy`; stdout, or the test fails.
fn on_copies(mut tare: Command, args: &[&str]) -> String {
    let out = tare
        .env("TARE_SNAPSHOTTER", "copy")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("spawn tare");
    assert!(
        out.status.success(),
        "tare {args:?} on copies:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs `f` while a thread keeps opening [`HOST_FILE`] on the host.
fn with_host_reads<T>(f: impl FnOnce() -> T) -> T {
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                std::fs::read(HOST_FILE).expect("read the host's file");
                reads += 1;
            }
            reads
        })
    };
    let out = f();
    stop.store(true, Ordering::SeqCst);
    assert!(reader.join().expect("reader thread") > 0);
    out
}

#[test]
fn slim_on_copies_gives_the_overlay_slim_as_root_and_rootless() {
    let root = TestContext::new();
    let u = RootlessUser::ranged();
    let extra = |dir: &Path| {
        let copy = dir.join(HOST_FILE.trim_start_matches('/'));
        std::fs::create_dir_all(copy.parent().unwrap()).unwrap();
        std::fs::copy(HOST_FILE, copy).unwrap();
    };
    let cmd = [r#"CMD ["/usr/local/bin/hello", "hi"]"#];
    import_both_with(&root, &u, "app:fat", &cmd, &extra);

    let want: Slimmed = slim(&|a| root.ok(a), root.path(), "app:fat", PROBE);
    let removed = removed_paths(&want);
    for gone in ["/opt/app/data/unused", HOST_FILE] {
        assert!(
            removed.contains(&gone),
            "{gone} kept on overlay: {removed:?}"
        );
    }
    let got = with_host_reads(|| {
        slim(
            &|a| on_copies(root.tare(), a),
            root.path(),
            "app:fat",
            PROBE,
        )
    });
    assert_eq!(got, want, "root, on copies");
    let got = slim(&|a| on_copies(u.tare(), a), u.path(), "app:fat", PROBE);
    assert_eq!(got, want, "rootless, on copies");

    // -v names the snapshots in use.
    let mut verbose = root.tare();
    verbose.args(["-v", "analyze", "app:fat", "--trace", "true"]);
    let out = verbose
        .env("TARE_SNAPSHOTTER", "copy")
        .stdin(Stdio::null())
        .output()
        .expect("spawn tare");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains("snapshots: copies (TARE_SNAPSHOTTER=copy)"),
        "{err}"
    );
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
