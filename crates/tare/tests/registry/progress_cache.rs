//! Cache exports and imports as a person sees them (issues 15 and 18): `--cache-to` and a
//! lazy `--cache-from` hit's fetch are steps of their own after the build's, with a bar per
//! blob while it moves (tmux screenshots), collapsed to one line when done; plain output
//! names each step and each blob's start and end, and json output has them as events.

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::harness::{Proxy, RegistryServer};
use super::tmux::{bar_lines, Screen};
use crate::util::cache::{build, Base};
use crate::util::TestContext;

/// One RUN whose layer is about 3 MB of random bytes: seconds to move at the proxy's pace.
const DOCKERFILE: &str = "FROM busybox\nRUN head -c 3000000 /dev/urandom > /big\n";

/// `tare --root ROOT build FLAGS CTX` as a shell command line, for a terminal.
fn build_line(m: &TestContext, flags: &str) -> String {
    format!(
        "{} --root {} build {flags} {}",
        env!("CARGO_BIN_EXE_tare"),
        m.root.path().display(),
        m.path().join("ctx").display()
    )
}

/// Runs `command` on a terminal: waits for a screen where a bar under the step `header` has
/// moved some bytes (`sha256:… [==>  ] 1.1 MiB / 2.9 MiB 250 KiB/s`), then for the command to
/// succeed with every bar cleared and the step collapsed to one `=> #N HEADER` line.
/// Returns the screen with the moving bar and the last one.
fn watch_moving(command: &str, header: &str) -> (String, String) {
    let screen = Screen::start(command);
    let moving = screen.wait_for("a bar that moved bytes", Duration::from_secs(60), |s| {
        s.lines()
            .any(|l| l.contains(header) && !l.starts_with("=> "))
            && bar_lines(s).iter().any(|l| {
                l.contains("sha256:")
                    && l.contains("B/s")
                    && l.split_once("] ")
                        .is_some_and(|(_, bytes)| !bytes.starts_with("0 B "))
            })
    });
    let done = screen.finish(Duration::from_secs(120));
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(bar_lines(&done).is_empty(), "bars cleared:\n{done}");
    assert!(
        done.lines()
            .any(|l| l.starts_with("=> #") && l.contains(header)),
        "the step collapsed to one line:\n{done}"
    );
    (moving, done)
}

#[test]
fn a_cache_export_and_import_show_a_bar_per_blob_on_a_terminal() {
    let reg = RegistryServer::open();
    let proxy = Proxy::start(reg.port, None);
    let base = Base::new();
    let cache = format!("{}/cache:tty", proxy.host());

    // A exports: the registry reads the uploads at 256 KiB/s.
    proxy.state.upload_kib_per_sec.store(256, Ordering::SeqCst);
    let a = base.machine_with(DOCKERFILE, "");
    let header = format!("exporting cache to {cache}");
    // On loopback the kernel's socket buffers take a 3 MB body at once, so the bytes sent of
    // one PUT jump to the end; in chunks of 256 KiB (each a request the registry answers)
    // the bar follows the registry's pace.
    watch_moving(
        &format!(
            "TARE_PUSH_CHUNK_SIZE=262144 {}",
            build_line(&a, &format!("--cache-to type=registry,ref={cache}"))
        ),
        &header,
    );
    proxy.state.upload_kib_per_sec.store(0, Ordering::SeqCst);

    // B, empty, stores the result: the RUN is a hit, and its layer is fetched at 512 KiB/s.
    proxy.state.blob_kib_per_sec.store(512, Ordering::SeqCst);
    let b = base.machine_with(DOCKERFILE, "");
    let header = format!("importing cache from {}/cache", proxy.host());
    let (_, done) = watch_moving(
        &build_line(&b, &format!("--cache-from type=registry,ref={cache}")),
        &header,
    );
    assert!(
        done.lines()
            .any(|l| l.contains("RUN head") && l.contains("CACHED")),
        "{done}"
    );
    b.ok(&["check"]);
}

/// The lines of the step whose plain header line is `#N TEXT` (TEXT starting with `text`):
/// N and the step's other lines.
fn plain_step<'a>(progress: &'a str, text: &str) -> (String, Vec<&'a str>) {
    let number = progress
        .lines()
        .find_map(|l| {
            let (n, rest) = l.split_once(' ')?;
            rest.starts_with(text).then(|| n.to_string())
        })
        .unwrap_or_else(|| panic!("no step {text:?}:\n{progress}"));
    let lines = progress
        .lines()
        .filter(|l| l.starts_with(&format!("{number} ")) && !l.contains(text))
        .collect();
    (number, lines)
}

/// Asserts that a plain step's lines show a blob's start, its end, and the step's end.
fn assert_blob_moved(lines: &[&str]) {
    for end in [" 0B / ", " done", ""] {
        assert!(
            lines.iter().any(|l| {
                let rest = l.split_once(' ').map_or("", |(_, r)| r);
                match end {
                    "" => rest.starts_with("DONE "),
                    " done" => rest.starts_with("sha256:") && l.ends_with(end),
                    _ => rest.starts_with("sha256:") && l.contains(end),
                }
            }),
            "{end:?} in {lines:#?}"
        );
    }
}

#[test]
fn plain_and_json_progress_show_the_cache_steps_and_their_blobs() {
    let reg = RegistryServer::open();
    let base = Base::new();
    let cache = format!("{}/cache:plain", reg.host());
    let to = format!("type=registry,ref={cache}");

    let a = base.machine_with(DOCKERFILE, "");
    let (_, progress) = build(&a, &["--cache-to", &to]);
    let (_, lines) = plain_step(&progress, &format!("exporting cache to {cache}"));
    assert_blob_moved(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("cache entries: 1 written, 0 already there")),
        "{lines:#?}"
    );
    // Again: the entry is there, nothing moves.
    let (_, progress) = build(&a, &["--cache-to", &to]);
    let (_, lines) = plain_step(&progress, &format!("exporting cache to {cache}"));
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("cache entries: 0 written, 1 already there")),
        "{lines:#?}"
    );
    assert!(!lines.iter().any(|l| l.ends_with(" done")), "{lines:#?}");

    let b = base.machine_with(DOCKERFILE, "");
    let (_, progress) = build(&b, &["--cache-from", &to]);
    let (_, lines) = plain_step(
        &progress,
        &format!("importing cache from {}/cache", reg.host()),
    );
    assert_blob_moved(&lines);

    // json: the import is a `started` event without a stage, its blob `transfer` events
    // end with every byte, and a `finished` event ends it.
    let c = base.machine_with(DOCKERFILE, "");
    let ctx = c.path().join("ctx");
    let out = c.run(&[
        "build",
        "--progress",
        "json",
        "--cache-from",
        &to,
        ctx.to_str().expect("utf-8"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let started = events
        .iter()
        .find(|e| {
            e["event"] == "started"
                && e["text"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("importing cache from "))
        })
        .unwrap_or_else(|| panic!("no import step:\n{stderr}"));
    assert_eq!(
        (&started["stage"], &started["index"]),
        (&"".into(), &0.into())
    );
    let step = &started["step"];
    let transfers: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "transfer" && e["step"] == *step)
        .collect();
    let (first, last) = (transfers.first(), transfers.last());
    assert!(
        first.is_some_and(
            |t| t["bytes"] == 0 && t["blob"].as_str().is_some_and(|b| b.starts_with("sha256:"))
        ),
        "{stderr}"
    );
    assert!(
        last.is_some_and(|t| t["bytes"] == t["size"] && t["size"].as_u64() > Some(0)),
        "{stderr}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["event"] == "finished" && e["step"] == *step),
        "{stderr}"
    );
}

#[test]
fn a_cache_directory_export_and_import_show_their_blobs() {
    let base = Base::new();
    let a = base.machine_with(DOCKERFILE, "");
    let dir = a.path().join("cache");
    let d = dir.to_str().expect("utf-8");
    let (_, progress) = build(&a, &["--cache-to", &format!("type=local,dest={d}")]);
    let (_, lines) = plain_step(&progress, &format!("exporting cache to {d}"));
    assert_blob_moved(&lines);
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with("cache entries: 1 written")),
        "{lines:#?}"
    );

    let b = base.machine_with(DOCKERFILE, "");
    let (_, progress) = build(&b, &["--cache-from", &format!("type=local,src={d}")]);
    let (_, lines) = plain_step(&progress, &format!("importing cache from {d}"));
    assert_blob_moved(&lines);
    b.ok(&["check"]);
}
