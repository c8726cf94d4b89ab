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

/// Machine B, with an empty store, builds from `from` (what A exported): first with a.txt
/// changed, so the COPY misses and names the file, then with a.txt back and the build arg
/// changed, so the COPY hits and the RUN names LEVEL. Each miss names A's entry and `place`,
/// where it was found.
fn b_explains_its_misses(base: &str, from: &str, place: &str) {
    let b = machine(base, "changed\n");
    let (_, progress) = build(&b, &["--cache-from", from, "--explain-cache"]);
    let lines = misses(&progress);
    assert!(
        lines
            .iter()
            .any(|l| l.contains("context files changed: a.txt")
                && l.contains("tare-cache-")
                && l.contains(place)),
        "{progress}"
    );

    b.write("ctx/a.txt", "alpha\n");
    let (_, progress) = build(
        &b,
        &[
            "--cache-from",
            from,
            "--explain-cache",
            "--build-arg",
            "LEVEL=2",
        ],
    );
    let lines = misses(&progress);
    assert_eq!(lines.len(), 1, "{progress}");
    assert!(
        lines[0].contains("build arg changed")
            && lines[0].contains("LEVEL")
            && lines[0].contains(place),
        "{progress}"
    );
}

#[test]
fn explain_cache_names_the_input_that_differs_from_the_remote_entry() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let cache = format!("{}/cache:explain", reg.host());
    let a = machine(&base, "alpha\n");
    build(&a, &["--cache-to", &format!("type=registry,ref={cache}")]);
    b_explains_its_misses(
        &base,
        &format!("type=registry,ref={cache}"),
        &format!("--cache-from {}/cache", reg.host()),
    );
}

/// The same against an image's inline cache (`--cache-to type=inline`, read with
/// `--cache-from type=registry,ref=IMAGE`): its entries are in the image's manifest, not
/// tagged in a repository, and each miss still names what differs from A's entry there.
#[test]
fn explain_cache_compares_with_the_inline_cache_of_an_image() {
    let reg = RegistryServer::open();
    let base = base_at(&reg.host());
    let image = format!("{}/app:1", reg.host());
    let a = machine(&base, "alpha\n");
    build(&a, &["--cache-to", "type=inline", "--push", "-t", &image]);
    b_explains_its_misses(
        &base,
        &format!("type=registry,ref={image}"),
        &format!("in the inline cache of {image}"),
    );
}
