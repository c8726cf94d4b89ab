//! Per-run overhead of the sandbox, without the CLI around it: `true` run N times on a busybox
//! rootfs, as a plain directory and as an overlay with a fresh upper directory per run (what a
//! RUN step costs). Needs root.
//!
//!     cargo run --release -p tare-sandbox --example startup -- [RUNS]

use std::time::Instant;

use tare_sandbox::{run, Rootfs, RunSpec};

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30)
        .max(1);
    let tmp = tempfile::tempdir().expect("temporary directory");
    let lower = tmp.path().join("rootfs");
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp"] {
        std::fs::create_dir_all(lower.join(d)).expect("rootfs directory");
    }
    std::fs::copy("/bin/busybox", lower.join("bin/busybox")).expect("copy /bin/busybox");
    std::os::unix::fs::symlink("busybox", lower.join("bin/true")).expect("symlink");

    let dir = measure(runs, |_| Rootfs::Dir(lower.clone()));
    let overlay = measure(runs, |i| {
        let step = tmp.path().join(format!("step{i}"));
        let (upper, work) = (step.join("upper"), step.join("work"));
        std::fs::create_dir_all(&upper).expect("upper");
        std::fs::create_dir_all(&work).expect("work");
        Rootfs::Overlay {
            lower: vec![lower.clone()],
            upper,
            work,
        }
    });
    println!("directory rootfs: {}", summary(dir));
    println!("overlay rootfs:   {}", summary(overlay));
}

fn measure(runs: usize, rootfs: impl Fn(usize) -> Rootfs) -> Vec<f64> {
    (0..runs)
        .map(|i| {
            let spec = RunSpec::new(rootfs(i), vec!["true".into()]);
            let started = Instant::now();
            let code = run(spec).expect("run");
            assert_eq!(code, 0);
            started.elapsed().as_secs_f64() * 1000.0
        })
        .collect()
}

fn summary(mut times: Vec<f64>) -> String {
    times.sort_by(|a, b| a.total_cmp(b));
    format!(
        "median {:.1} ms, min {:.1} ms, max {:.1} ms ({} runs)",
        times[times.len() / 2],
        times[0],
        times[times.len() - 1],
        times.len()
    )
}
