//! `--platform A,B` builds every platform at once: their steps overlap, a step they share
//! (a `FROM --platform=$BUILDPLATFORM` stage's) is made once and found in the cache by the
//! other, and each event names its platform with a step number unique across them.

use super::{ctx_dir, file_in, setup};

#[test]
fn platforms_build_at_the_same_time_and_share_their_common_steps() {
    let t = setup();
    t.write(
        "ctx/Dockerfile",
        "FROM --platform=$BUILDPLATFORM busybox AS tools\nRUN echo shared >> /tools\n\
         FROM --platform=$BUILDPLATFORM busybox\nARG TARGETARCH\n\
         RUN sleep 1 && echo $TARGETARCH > /arch\nCOPY --from=tools /tools /tools\n",
    );
    let out = t.run(&[
        "build",
        "--progress",
        "json",
        "-t",
        "par",
        "--platform",
        "linux/amd64,linux/arm64",
        &ctx_dir(&t),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let events: Vec<serde_json::Value> = stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    // The RUN sleep step of a platform's last stage: (started, finished) times.
    let run_times = |stage: &str| {
        let started = events
            .iter()
            .find(|e| {
                e["stage"] == stage
                    && e["event"] == "started"
                    && e["text"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("RUN sleep"))
            })
            .unwrap_or_else(|| panic!("no RUN sleep in {stage}: {events:?}"));
        let finished = events
            .iter()
            .find(|e| e["event"] == "finished" && e["step"] == started["step"])
            .unwrap_or_else(|| panic!("RUN sleep of {stage} never finished: {events:?}"));
        let at = |e: &serde_json::Value| {
            chrono::DateTime::parse_from_rfc3339(e["time"].as_str().unwrap()).unwrap()
        };
        (at(started), at(finished))
    };
    let (amd, arm) = (run_times("linux/amd64 1"), run_times("linux/arm64 1"));
    // Each platform's RUN started before the other's finished: the platforms overlapped.
    assert!(amd.0 < arm.1, "{events:?}");
    assert!(arm.0 < amd.1, "{events:?}");
    // The shared step ran for one platform and was a cache hit for the other.
    let cached: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "cached")
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    assert!(cached[0].ends_with(" tools"), "{cached:?}");
    // Step numbers do not repeat across the platforms.
    let mut numbers: Vec<u64> = events
        .iter()
        .filter(|e| e["event"] == "started")
        .map(|e| e["step"].as_u64().unwrap())
        .collect();
    let all = numbers.len();
    numbers.sort_unstable();
    numbers.dedup();
    assert_eq!(numbers.len(), all, "{events:?}");
    // And each image holds its own platform's file.
    let inspect: serde_json::Value = serde_json::from_str(&t.ok(&["inspect", "par"])).unwrap();
    let arm = inspect["index"]["platforms"][1]["id"].as_str().unwrap();
    assert_eq!(file_in(&t, arm, "arch").as_deref(), Some("arm64\n"));
    assert_eq!(file_in(&t, "par", "arch").as_deref(), Some("amd64\n"));
    assert_eq!(file_in(&t, arm, "tools").as_deref(), Some("shared\n"));
}
