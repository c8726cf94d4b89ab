//! Issue 16's "done when": an ordinary user with a subordinate ID range builds the seed demo's
//! images (scripts/demo.sh, examples/seed) on the debootstrap'd Debian base and runs them with
//! the same results as root. It is also issue 17's reproducibility check on the seed demo: root
//! builds first and the user after it (two stores, minutes apart), and the images are compared:
//! image IDs and manifest digests where the Dockerfile is deterministic under SOURCE_DATE_EPOCH
//! and `--rewrite-timestamp`, the flattened files where apt-get logs the time it ran.

use std::path::Path;
use std::process::{Command, Stdio};

use super::rootless::listing_of;
use super::rootless::user::RootlessUser;
use crate::util::demo;
use crate::util::TestContext;

/// Every build and import of the test is stamped with this time.
const EPOCH: &str = "1700000000";

/// Files whose content records when apt-get and dpkg ran (or caches that hold such a time);
/// their path, type, mode and owner are still compared.
const APT_VOLATILE: &[&str] = &[
    "var/cache/apt/pkgcache.bin",
    "var/cache/apt/srcpkgcache.bin",
    "var/cache/ldconfig/aux-cache",
    "var/log/alternatives.log",
    "var/log/apt/history.log",
    "var/log/apt/term.log",
    "var/log/dpkg.log",
];

/// What one side (root or the user) got from the demo's steps.
#[derive(Debug)]
struct Side {
    base: String,
    single: String,
    multi: String,
    waste: String,
    /// The manifest digests of seed:multi and seed:waste.
    manifests: (String, String),
    squashed: String,
    squashed_layers: serde_json::Value,
    greeting_single: String,
    greeting_multi: String,
    single_files: String,
    slim: Result<String, String>,
    /// The slim report's sizes before and after, when slim ran.
    slim_sizes: Option<(u64, u64)>,
}

fn check(cmd: &mut Command, what: &str) -> String {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn tare");
    assert!(
        out.status.success(),
        "{what}: tare {cmd:?} failed with {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

/// Runs the demo's steps with `tare` (a command for root's store or the user's), the seed
/// context copied to `ctx`.
fn demo_side(who: &str, tare: &dyn Fn() -> Command, ctx: &Path) -> Side {
    let run = |args: &[&str]| -> String {
        check(
            tare().args(args).env("SOURCE_DATE_EPOCH", EPOCH),
            &format!("{who}: {args:?}"),
        )
    };
    let base_tar = demo::debian_base_tar();
    let base = run(&[
        "import",
        "--change",
        "CMD [\"bash\"]",
        base_tar.to_str().unwrap(),
        "debian:bookworm",
    ]);
    let ctx = ctx.to_str().unwrap();
    let build = |name: &str| -> String {
        let file = format!("{ctx}/Dockerfile.{name}");
        let tag = format!("seed:{name}");
        run(&[
            "build",
            "-q",
            "--rewrite-timestamp",
            "-f",
            &file,
            "-t",
            &tag,
            ctx,
        ])
        .trim()
        .to_string()
    };
    let single = build("single");
    let multi = build("multi");
    let waste = build("waste");
    let greeting_single = run(&["run", "--rm", "seed:single"]);
    let greeting_multi = run(&["run", "--rm", "seed:multi"]);
    let manifest = |image: &str| -> String {
        let inspect: serde_json::Value =
            serde_json::from_str(&run(&["inspect", image])).expect("inspect json");
        inspect["manifest_digest"]
            .as_str()
            .expect("manifest_digest")
            .to_string()
    };
    let manifests = (manifest("seed:multi"), manifest("seed:waste"));
    // `tare squash` dates its history entry from SOURCE_DATE_EPOCH: the squashed image is the
    // same on both sides too.
    run(&[
        "squash",
        "--all",
        "--compression",
        "none",
        "seed:multi",
        "-t",
        "seed:squashed",
    ]);
    let inspect: serde_json::Value =
        serde_json::from_str(&run(&["inspect", "seed:squashed"])).expect("inspect json");
    let squashed_layers = inspect["config"]["rootfs"]["diff_ids"].clone();
    let squashed = inspect["id"].as_str().expect("squashed id").to_string();

    let mut export = tare();
    export
        .args(["export", "seed:single", "-o", "-"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = export.spawn().expect("spawn tare export");
    let single_files = listing_of(child.stdout.take().unwrap(), APT_VOLATILE);
    let out = child.wait_with_output().expect("wait for tare export");
    assert!(
        out.status.success(),
        "{who}: tare export seed:single: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let report = Path::new(ctx).join("slim.json");
    let slim = tare()
        .args(["slim", "seed:multi", "-t", "seed:slim", "--report"])
        .arg(&report)
        .stdin(Stdio::null())
        .output()
        .expect("spawn tare slim");
    let (slim, slim_sizes) = if slim.status.success() {
        let report: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&report).expect("slim report"))
                .expect("slim report json");
        let sizes = (
            report["size_before"].as_u64().expect("size_before"),
            report["size_after"].as_u64().expect("size_after"),
        );
        (Ok(run(&["run", "--rm", "seed:slim"])), Some(sizes))
    } else {
        (
            Err(String::from_utf8_lossy(&slim.stderr).into_owned()),
            None,
        )
    };
    Side {
        base: base.trim().to_string(),
        single,
        multi,
        waste,
        manifests,
        squashed,
        squashed_layers,
        greeting_single,
        greeting_multi,
        single_files,
        slim,
        slim_sizes,
    }
}

/// Copies the seed example's files into `dir`.
fn copy_seed(dir: &Path) {
    std::fs::create_dir_all(dir).expect("mkdir ctx");
    for entry in std::fs::read_dir(demo::seed_dir()).expect("examples/seed") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.join(entry.file_name())).expect("copy seed file");
    }
}

#[test]
fn rootless_user_builds_and_runs_the_seed_demo_as_root_does() {
    let u = RootlessUser::ranged();
    let root = TestContext::new();
    copy_seed(&root.path().join("ctx"));
    for entry in std::fs::read_dir(demo::seed_dir()).expect("examples/seed") {
        let entry = entry.expect("entry");
        let name = entry.file_name();
        let content = std::fs::read(entry.path()).expect("read seed file");
        u.write(&format!("ctx/{}", name.to_str().unwrap()), &content);
    }
    // The cache is made once, before both sides want it.
    demo::debian_base_tar();

    let root_ctx = root.path().join("ctx");
    let user_ctx = u.path().join("ctx");
    // One after the other: the second store builds minutes after the first, so every time
    // the builds would record differs between the two.
    let want = demo_side("root", &|| root.tare(), &root_ctx);
    let got = demo_side("rootless", &|| u.tare(), &user_ctx);

    // The import and the deterministic builds give the same image IDs.
    assert_eq!(want.base, got.base, "debian:bookworm imports differ");
    assert_eq!(want.multi, got.multi, "seed:multi differs");
    assert_eq!(want.waste, got.waste, "seed:waste differs");
    assert_eq!(
        want.manifests, got.manifests,
        "manifest digests of seed:multi and seed:waste differ"
    );
    assert_eq!(
        want.squashed_layers, got.squashed_layers,
        "squashed seed:multi layers differ"
    );
    assert_eq!(want.squashed, got.squashed, "squashed seed:multi differs");
    // seed:single ran apt-get: the same files, owners and modes, the same content but for
    // apt's and dpkg's logs.
    assert!(
        want.single_files.contains("src/hello Regular 755 0:0"),
        "no /src/hello in root's seed:single"
    );
    assert!(
        want.single_files.lines().count() > 10_000,
        "root's seed:single has too few files for build-essential"
    );
    if want.single_files != got.single_files {
        let theirs: std::collections::BTreeSet<&str> = got.single_files.lines().collect();
        let mine: std::collections::BTreeSet<&str> = want.single_files.lines().collect();
        let only_root: Vec<_> = mine.difference(&theirs).take(20).collect();
        let only_user: Vec<_> = theirs.difference(&mine).take(20).collect();
        panic!(
            "seed:single files differ\nroot only: {only_root:#?}\nrootless only: {only_user:#?}"
        );
    }
    assert_ne!(want.single, want.multi);

    // The same greeting from both images, on both sides.
    assert_eq!(want.greeting_single, "Hello from a tare-built image!\n");
    assert_eq!(want.greeting_multi, want.greeting_single);
    assert_eq!(got.greeting_single, want.greeting_single);
    assert_eq!(got.greeting_multi, want.greeting_single);

    // `tare slim`: as root the slim image greets, and rootless too (the tracer reports file
    // handles in a user namespace), from a slim image of the same size.
    assert_eq!(
        want.slim.as_deref(),
        Ok("Hello from a tare-built image!\n"),
        "root's tare slim"
    );
    // Issue 19: the seed's multi-stage image slims to under 5 MB, at most 1/20 of it.
    let (before, after) = want.slim_sizes.expect("root's slim report");
    assert!(after < 5_000_000, "seed:slim is {after} bytes");
    assert!(
        after * 20 <= before,
        "seed:slim is {after} of {before} bytes"
    );
    assert_eq!(got.slim, want.slim, "rootless tare slim");
    assert_eq!(
        got.slim_sizes, want.slim_sizes,
        "rootless tare slim's report"
    );

    // Host side: the user's store holds only its own and its subordinate IDs' files.
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
}
