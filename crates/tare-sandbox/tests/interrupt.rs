//! Ctrl-C during a build step ([`OnSignal::Kill`]): the step is killed, `run` returns
//! `Error::Interrupted`, and nothing is left (processes, mounts, stubs). A test binary of its
//! own, because it signals the whole test process.

use std::time::{Duration, Instant};

use tare_sandbox::{run, Error, OnSignal, Rootfs, RunSpec};

#[test]
fn sigint_kills_the_step_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    let upper = tmp.path().join("upper");
    let work = tmp.path().join("work");
    for d in ["bin", "proc", "sys", "dev"] {
        std::fs::create_dir_all(lower.join(d)).unwrap();
    }
    std::fs::create_dir(&upper).unwrap();
    std::fs::create_dir(&work).unwrap();
    std::fs::copy("/bin/busybox", lower.join("bin/busybox")).unwrap();
    std::os::unix::fs::symlink("busybox", lower.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("busybox", lower.join("bin/sleep")).unwrap();

    let mut spec = RunSpec::new(
        Rootfs::Overlay {
            lower: vec![lower],
            upper: upper.clone(),
            work,
        },
        vec!["sh".into(), "-c".into(), "sleep 4242".into()],
    );
    spec.on_signal = OnSignal::Kill;

    let me = std::process::id() as i32;
    let signaller = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let pid = rustix::process::Pid::from_raw(me).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    });
    let started = Instant::now();
    let result = run(spec);
    signaller.join().unwrap();
    assert!(
        matches!(result, Err(Error::Interrupted(sig)) if sig == libc_sigint()),
        "{result:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(!process_with("4242"), "the step's process survived");
    let upper_entries: Vec<_> = std::fs::read_dir(&upper).unwrap().collect();
    assert!(upper_entries.is_empty(), "{upper_entries:?}");
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mountinfo.contains(upper.to_str().unwrap()));
    assert!(!mountinfo.contains("tare-run-"));
}

fn libc_sigint() -> i32 {
    rustix::process::Signal::INT.as_raw()
}

fn process_with(needle: &str) -> bool {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| std::fs::read(e.ok()?.path().join("cmdline")).ok())
        .any(|c| String::from_utf8_lossy(&c).contains(needle))
}
