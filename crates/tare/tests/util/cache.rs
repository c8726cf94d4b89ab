//! Shared set-up of the build-cache tests (issue 15) in the build, registry and security
//! binaries: stores with separate roots stand in for machines, each with a context under
//! `ctx/`; a build returns the image ID and the plain progress; a seed store pushes the base
//! image every machine shares.

use std::process::Command;

use super::TestContext;

/// A RUN prints `MARK<n>` only when it runs: the instruction's text says `MARK$((...))`, so
/// the marker cannot come from the step's title. `BASE` stands for the base image.
pub const DOCKERFILE: &str = "FROM BASE\n\
WORKDIR /app\n\
COPY a.txt /app/a.txt\n\
RUN echo \"MARK$((40+2))\" && cat /app/a.txt > /app/a.copy\n\
COPY b.txt /app/b.txt\n\
RUN echo \"MARK$((40+3))\" && cat /app/b.txt > /app/b.copy\n\
CMD [\"cat\", \"/app/b.copy\"]\n";

/// The steps of [`DOCKERFILE`] a cache can answer: WORKDIR, two COPYs, two RUNs.
pub const DOCKERFILE_STEPS: usize = 5;

/// A machine: its own store, and a context with [`DOCKERFILE`] on `base`, `a.txt` holding
/// `alpha` and `b.txt` holding `b_txt`.
pub fn machine(base: &str, b_txt: &str) -> TestContext {
    machine_with(&DOCKERFILE.replace("BASE", base), b_txt)
}

/// [`machine`] with another Dockerfile.
pub fn machine_with(dockerfile: &str, b_txt: &str) -> TestContext {
    let m = TestContext::new();
    m.write("ctx/Dockerfile", dockerfile);
    m.write("ctx/a.txt", "alpha\n");
    m.write("ctx/b.txt", b_txt);
    m
}

/// One busybox image saved to a tar, so every machine has the same base (an import dates
/// the image, so two imports differ).
pub struct Base {
    seed: TestContext,
}

impl Base {
    pub fn new() -> Base {
        let seed = TestContext::new();
        seed.import_busybox("busybox:latest");
        let tar = seed.path().join("base.tar");
        seed.ok(&["save", "busybox:latest", "-o", tar.to_str().expect("utf-8")]);
        Base { seed }
    }

    /// A machine with the shared `busybox` and the context of [`DOCKERFILE`] on it.
    pub fn machine(&self, b_txt: &str) -> TestContext {
        self.machine_with(&DOCKERFILE.replace("BASE", "busybox"), b_txt)
    }

    /// [`Base::machine`] with another Dockerfile.
    pub fn machine_with(&self, dockerfile: &str, b_txt: &str) -> TestContext {
        let m = machine_with(dockerfile, b_txt);
        let base = self.seed.path().join("base.tar");
        m.ok(&["load", "-i", base.to_str().expect("utf-8")]);
        m
    }
}

/// Builds `ctx/` with `extra` flags and the plain progress; fails the test unless the build
/// succeeds. Returns the image ID and the progress (stderr).
pub fn build(m: &TestContext, extra: &[&str]) -> (String, String) {
    let ctx = m.path().join("ctx");
    let iid = m.path().join("iid");
    let mut args = vec![
        "build",
        "--progress",
        "plain",
        "--iidfile",
        iid.to_str().expect("utf-8"),
    ];
    args.extend_from_slice(extra);
    args.push(ctx.to_str().expect("utf-8"));
    let out = m.run(&args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "tare {args:?} failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let id = std::fs::read_to_string(&iid).expect("iidfile");
    (id.trim().to_string(), stderr)
}

/// How many steps the plain progress shows as `CACHED`.
pub fn cached_steps(progress: &str) -> usize {
    progress.lines().filter(|l| l.ends_with(" CACHED")).count()
}

/// Asserts that a build of [`DOCKERFILE`] ran no RUN and found every step in a cache.
pub fn assert_every_step_cached(progress: &str) {
    assert!(!progress.contains("MARK4"), "a RUN ran:\n{progress}");
    assert_eq!(cached_steps(progress), DOCKERFILE_STEPS, "{progress}");
}

/// A seed store that pushed a busybox image as `HOST/base:1` (a registry, or a proxy in front
/// of one), and that name.
pub fn seed_base(host: &str) -> (TestContext, String) {
    let seed = TestContext::new();
    seed.import_busybox("busybox:latest");
    let base = format!("{host}/base:1");
    seed.ok(&["push", "busybox:latest", &base]);
    (seed, base)
}

/// Pushes a busybox image from a scratch store as `HOST/base:1`; returns that name.
pub fn base_at(host: &str) -> String {
    seed_base(host).1
}

/// GETs `url` (a registry's manifest or blob, as an OCI manifest where it is one) and parses
/// it as JSON; fails the test unless the answer is a success.
pub fn get_json(url: &str) -> serde_json::Value {
    let out = Command::new("curl")
        .args([
            "-sf",
            "-H",
            "Accept: application/vnd.oci.image.manifest.v1+json",
            url,
        ])
        .output()
        .expect("curl");
    assert!(out.status.success(), "GET {url}");
    serde_json::from_slice(&out.stdout).expect("json")
}

/// How many cross-repository mounts from repository `from` a proxy's request log shows.
pub fn mounts_from(log: &[String], from: &str) -> usize {
    let from = format!("from={from}");
    log.iter()
        .filter(|l| l.starts_with("POST ") && l.contains("mount=") && l.contains(&from))
        .count()
}

/// A third, empty store pulls `image` (verifying every layer), runs it, prints `output`, and
/// stays consistent.
pub fn pull_and_run(image: &str, output: &str) {
    let c = TestContext::new();
    c.ok(&["pull", image]);
    assert_eq!(c.ok(&["run", "--rm", image]), output);
    c.ok(&["check"]);
}

/// How many builders export to one cache at the same time in the concurrent-writer tests.
pub const WRITERS: usize = 4;

/// The Dockerfile of writer `n`: two steps on `base`, its RUN marked `MARK10<n>`.
pub fn writer_dockerfile(base: &str, n: usize) -> String {
    format!("FROM {base}\nRUN echo {n} > /n\nRUN echo \"MARK$((100+{n}))\" && cat /n > /m\n")
}

/// Every machine builds its context with `--cache-to TO`, all at the same time.
pub fn export_at_once(machines: &[TestContext], to: &str) {
    std::thread::scope(|s| {
        for m in machines {
            s.spawn(move || build(m, &["--cache-to", to]));
        }
    });
}

/// `fresh`, a store with writer `n`'s context, builds it with `--cache-from FROM`: both steps
/// are CACHED, no RUN runs, and the image holds writer `n`'s file.
pub fn assert_writer_cached(fresh: &TestContext, n: usize, from: &str) {
    let (id, progress) = build(fresh, &["--cache-from", from]);
    assert_eq!(cached_steps(&progress), 2, "{progress}");
    assert!(!progress.contains("MARK10"), "a RUN ran:\n{progress}");
    assert_eq!(
        fresh.ok(&["run", "--rm", &id, "cat", "/m"]),
        format!("{n}\n")
    );
}
