//! `--explain-cache` across machines (issue 15): machine A exports; machine B, with an empty
//! store, changes one file, then one build arg, and each miss names what differs from A's
//! entry in the registry.

use crate::harness::RegistryServer;
use crate::util::cache::{base_at, build};
use crate::util::TestContext;

const DOCKERFILE: &str = "FROM BASE\n\
ARG LEVEL=1\n\
COPY a.txt /a.txt\n\
RUN echo \"level $LEVEL\" > /level\n";

fn machine(base: &str, a_txt: &str) -> TestContext {
    let m = TestContext::new();
    m.write("ctx/Dockerfile", &DOCKERFILE.replace("BASE", base));
    m.write("ctx/a.txt", a_txt);
    m
}

/// The `cache miss:` lines of a plain progress.
fn misses(progress: &str) -> Vec<&str> {
    progress
        .lines()
        .filter(|l| l.contains(" cache miss: "))
        .collect()
}

#[test]
fn explain_cache_names_the_input_that_differs_from_the_remote_entry() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let cache = format!("{}/cache:explain", reg.host());
    let a = machine(&base, "alpha\n");
    build(&a, &["--cache-to", &format!("type=registry,ref={cache}")]);
    let from = format!("type=registry,ref={cache}");

    // B changes a.txt: the COPY misses and names the file, against A's entry.
    let b = machine(&base, "changed\n");
    let (_, progress) = build(&b, &["--cache-from", &from, "--explain-cache"]);
    let lines = misses(&progress);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("context files changed: a.txt")
                && l.contains("tare-cache-")
                && l.contains(&format!("--cache-from {}/cache", reg.host()))),
        "{progress}"
    );

    // B puts a.txt back and changes the build arg: the COPY hits, the RUN names LEVEL.
    b.write("ctx/a.txt", "alpha\n");
    let (_, progress) = build(
        &b,
        &[
            "--cache-from",
            &from,
            "--explain-cache",
            "--build-arg",
            "LEVEL=2",
        ],
    );
    let lines = misses(&progress);
    assert_eq!(lines.len(), 1, "{progress}");
    assert!(
        lines[0].contains("build arg changed") && lines[0].contains("LEVEL"),
        "{progress}"
    );
}
