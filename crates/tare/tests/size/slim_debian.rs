//! `tare slim` on a real Debian image (the demo's debootstrap'd bookworm, apt-get from Debian's
//! mirror inside RUN): a Python HTTP server, probed over HTTP on loopback, slims and still
//! answers. (The seed demo's multi-stage image slimming under 5 MB and still greeting is
//! checked in tests/run/rootless_demo.rs, which builds it already.)

use serde_json::Value;

use crate::util::demo;
use crate::util::TestContext;

/// A store holding the demo's `debian:bookworm`.
fn with_debian() -> TestContext {
    let t = TestContext::new();
    let tar = demo::debian_base_tar();
    t.ok(&[
        "import",
        "--change",
        "CMD [\"bash\"]",
        tar.to_str().unwrap(),
        "debian:bookworm",
    ]);
    t
}

/// The slim report's sizes, before and after.
fn sizes(report: &std::path::Path) -> (u64, u64) {
    let report: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    (
        report["size_before"].as_u64().unwrap(),
        report["size_after"].as_u64().unwrap(),
    )
}

#[test]
fn a_python_http_server_probed_over_http_slims_and_still_answers() {
    let t = with_debian();
    t.write(
        "py/Dockerfile",
        "FROM debian:bookworm\n\
         RUN apt-get update && apt-get install -y --no-install-recommends python3 \
             && rm -rf /var/lib/apt/lists/*\n\
         WORKDIR /srv\n\
         RUN echo 'served by python' > index.html && echo 'never asked for' > unused.html\n\
         CMD [\"python3\", \"-m\", \"http.server\", \"8000\", \"--bind\", \"127.0.0.1\"]\n",
    );
    let ctx = t.path().join("py");
    t.ok(&["build", "-q", "-t", "web:py", ctx.to_str().unwrap()]);
    let report = t.path().join("slim.json");
    let out = t.ok(&[
        "slim",
        "web:py",
        "-t",
        "web:py-slim",
        "--http-probe",
        "8000:/index.html",
        "--duration",
        "60s",
        "--report",
        report.to_str().unwrap(),
    ]);
    // The verification reran the probe against the slim image and got the same answer.
    assert!(out.contains("Verified 1 probe"), "{out}");
    let (before, after) = sizes(&report);
    assert!(after * 3 < before, "{after} of {before} bytes:\n{out}");
    let removed: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let removed: Vec<&str> = removed["removed"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["path"].as_str())
        .collect();
    assert!(removed.contains(&"/srv/unused.html"), "{removed:?}");
    assert!(!removed.contains(&"/srv/index.html"));
    assert!(
        !removed.contains(&"/usr/bin/python3.11"),
        "the interpreter kept"
    );
    // Packages are named from the dpkg database.
    let report: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert!(
        report["removed"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["package"].as_str() == Some("coreutils")),
        "removed files carry their package"
    );
    t.ok(&["check"]);
}
