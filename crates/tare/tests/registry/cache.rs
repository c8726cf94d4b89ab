//! The build cache in a registry (issue 15): three stores with separate roots stand in for
//! three CI runners sharing one loopback `docker-registry`.

use crate::harness::RegistryServer;
use crate::util::TestContext;

/// A RUN prints `MARK<n>` only when it runs: the instruction's text says `MARK$((...))`, so
/// the marker cannot come from the step's title.
const DOCKERFILE: &str = "FROM BASE\n\
WORKDIR /app\n\
COPY a.txt /app/a.txt\n\
RUN echo \"MARK$((40+2))\" && cat /app/a.txt > /app/a.copy\n\
COPY b.txt /app/b.txt\n\
RUN echo \"MARK$((40+3))\" && cat /app/b.txt > /app/b.copy\n\
CMD [\"cat\", \"/app/b.copy\"]\n";

/// A machine: its own store, and a context with the Dockerfile on the shared base image.
fn machine(base: &str, b_txt: &str) -> TestContext {
    let m = TestContext::new();
    m.write("ctx/Dockerfile", &DOCKERFILE.replace("BASE", base));
    m.write("ctx/a.txt", "alpha\n");
    m.write("ctx/b.txt", b_txt);
    m
}

/// A build with the cache flags; returns the image ID and the plain progress (stderr).
fn build(m: &TestContext, extra: &[&str]) -> (String, String) {
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

fn cached_steps(progress: &str) -> usize {
    progress.lines().filter(|l| l.ends_with(" CACHED")).count()
}

/// Pushes a busybox image from a scratch store as the shared base, `REG/base:1`.
fn shared_base(reg: &RegistryServer) -> String {
    let seed = TestContext::new();
    seed.import_busybox("busybox:latest");
    let base = format!("{}/base:1", reg.host());
    seed.ok(&["push", "busybox:latest", &base]);
    base
}

/// Item 7 of issue 15: A builds and exports; B, empty, finds every step CACHED, runs no RUN
/// and makes A's image; C changes one file and runs only that COPY and what follows.
#[test]
fn many_machines_share_one_cache() {
    let reg = RegistryServer::open();
    let base = shared_base(&reg);
    let cache = format!("{}/cache:build", reg.host());
    let to = format!("type=registry,ref={cache},mode=max");
    let from = format!("type=registry,ref={cache}");

    let a = machine(&base, "bravo\n");
    let (id_a, progress) = build(&a, &["--cache-to", &to, "--cache-from", &from]);
    assert!(
        progress.contains("MARK42") && progress.contains("MARK43"),
        "{progress}"
    );
    assert!(!progress.contains("WARNING"), "{progress}");

    let b = machine(&base, "bravo\n");
    let (id_b, progress) = build(&b, &["--cache-from", &from]);
    assert!(!progress.contains("MARK4"), "a RUN ran on B:\n{progress}");
    // WORKDIR, two COPYs, two RUNs.
    assert_eq!(cached_steps(&progress), 5, "{progress}");
    assert_eq!(id_b, id_a, "B made another image than A");
    // The image B stored is complete and runs.
    assert_eq!(b.ok(&["run", "--rm", &id_b]), "bravo\n");
    b.ok(&["check"]);

    let c = machine(&base, "charlie\n");
    let (id_c, progress) = build(&c, &["--cache-from", &from]);
    assert!(
        !progress.contains("MARK42"),
        "the first RUN ran on C:\n{progress}"
    );
    assert!(
        progress.contains("MARK43"),
        "the second RUN did not run on C:\n{progress}"
    );
    // WORKDIR, the first COPY and the first RUN.
    assert_eq!(cached_steps(&progress), 3, "{progress}");
    assert_ne!(id_c, id_a);
    assert_eq!(c.ok(&["run", "--rm", &id_c]), "charlie\n");
}
