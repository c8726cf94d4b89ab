//! The build's live view on a terminal, as a person sees it (tmux screenshots): a running
//! step shows its timer and its last five lines of output, and collapses to one line when it
//! ends.

use std::time::Duration;

use super::tmux::Screen;
use super::{ctx_dir, setup};

/// The numbers N of the `tick-N` lines on a screen.
fn ticks(screen: &str) -> Vec<u32> {
    screen
        .lines()
        .filter_map(|l| l.trim().strip_prefix("tick-")?.parse().ok())
        .collect()
}

#[test]
fn a_running_step_shows_its_timer_and_last_lines_then_collapses() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\n\
         RUN for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.3; done\n\
         RUN echo second-step\n",
    );
    let tare = env!("CARGO_BIN_EXE_tare");
    let root = t.root.path().display();
    let screen = Screen::start(&format!(
        "{tare} --root {root} build -t live {}",
        ctx_dir(&t)
    ));

    // While it runs: at least seven lines printed, the last five on screen, under the header.
    let running = screen.wait_for("tick-7 on the screen", Duration::from_secs(120), |s| {
        ticks(s).iter().any(|n| *n >= 7)
    });
    let header = running
        .lines()
        .find(|l| l.contains("RUN for i in"))
        .unwrap_or_else(|| panic!("no step header:\n{running}"));
    let timer = header.split_whitespace().last().unwrap_or("");
    assert!(
        timer.ends_with('s') && timer.trim_end_matches('s').parse::<f64>().is_ok(),
        "the header ends with its timer: {header:?}\n{running}"
    );
    let shown = ticks(&running);
    assert_eq!(shown.len(), 5, "the last five lines:\n{running}");
    let last = *shown.iter().max().unwrap();
    assert_eq!(shown, ((last - 4)..=last).collect::<Vec<_>>(), "{running}");

    // Afterwards: each step is one line, the output is gone, the summary follows.
    let done = screen.finish(Duration::from_secs(120));
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(
        ticks(&done).is_empty(),
        "the finished step collapsed:\n{done}"
    );
    let collapsed: Vec<&str> = done.lines().filter(|l| l.starts_with("=> #")).collect();
    assert_eq!(collapsed.len(), 2, "{done}");
    assert!(collapsed[0].contains("RUN for i in") && collapsed[0].contains("image "));
    assert!(collapsed[1].contains("RUN echo second-step"), "{done}");
    assert!(!done.lines().any(|l| l.trim() == "second-step"), "{done}");
}

#[test]
fn an_add_download_shows_one_bar_under_its_step_not_a_line_per_report() {
    let t = setup();
    // 2 MB at 400 kB/s: five seconds to watch.
    let server = crate::util::http::Server::serve(1, vec![b'x'; 2_000_000], Some(400_000));
    t.write(
        "ctx/Dockerfile",
        &format!("FROM busybox\nADD {} /big\n", server.url("big")),
    );
    let tare = env!("CARGO_BIN_EXE_tare");
    let root = t.root.path().display();
    let screen = Screen::start(&format!("{tare} --root {root} build -t dl {}", ctx_dir(&t)));
    let moving = screen.wait_for("the download's bar", Duration::from_secs(60), |s| {
        s.lines().any(|l| l.contains(" / 1.91 MiB"))
    });
    let lines: Vec<&str> = moving.lines().collect();
    let header = lines
        .iter()
        .position(|l| l.contains("ADD http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no ADD header:\n{moving}"));
    assert!(
        lines[header + 1].contains(" / 1.91 MiB"),
        "the bar right under its step:\n{moving}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.contains(" / 1.")).count(),
        1,
        "one bar, no line per progress report:\n{moving}"
    );
    let done = screen.finish(Duration::from_secs(120));
    assert!(done.contains("EXIT=0"), "{done}");
    assert!(!done.contains(" / 1.91 MiB"), "the bar cleared:\n{done}");
    assert!(
        done.lines()
            .any(|l| l.starts_with("=> #1 ") && l.contains("ADD http://")),
        "{done}"
    );
    server.join();
}

#[test]
fn a_large_copy_reports_its_bytes_and_a_small_one_does_not() {
    let t = setup();
    let big = 20u64 << 20;
    std::fs::write(t.path().join("ctx/big.bin"), vec![7u8; big as usize]).unwrap();
    t.write("ctx/small.txt", "small\n");
    t.write(
        "ctx/Dockerfile",
        "FROM busybox\nCOPY small.txt /small.txt\nCOPY big.bin /big.bin\n",
    );
    let out = t.run(&["build", "--progress", "json", "-t", "big", &ctx_dir(&t)]);
    assert!(out.status.success());
    let events: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .filter(|e: &serde_json::Value| e["event"] == "progress")
        .collect();
    assert!(!events.is_empty(), "the big COPY reports its bytes");
    assert!(
        events.iter().all(|e| e["step"] == 2 && e["size"] == big),
        "only the big COPY, against its size: {events:?}"
    );
    let last = events.last().unwrap();
    assert_eq!(last["bytes"], big, "ends with every byte: {events:?}");

    // Plain output prints the total once, not every report.
    let out = t.run(&[
        "build",
        "--no-cache",
        "--progress",
        "plain",
        "-t",
        "big",
        &ctx_dir(&t),
    ]);
    assert!(out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("#2 ") && l.contains(" / "))
        .collect();
    assert_eq!(lines.len(), 1, "{err}");
}
