//! The crash loop: tare killed with SIGKILL at random points of build, import, load and pull.
//! After each kill the store must pass `tare check`, hold no temporary data once it is opened
//! again, and take the next build; at the end, `tare prune` brings its disk use back to what
//! it was. See the suite's overview in main.rs.
//!
//! The kill points are random (the seed is printed; `TARE_CRASH_SEED=N` replays a run),
//! spread over the whole duration of an uninterrupted run of the same command.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// The registry module of this suite includes the harness too, privately; a second copy here
// keeps the two attack classes independent of each other's modules.
#[allow(clippy::duplicate_mod)]
#[path = "../registry/harness.rs"]
mod harness;

use crate::util::TestContext;

/// Kills per command; four commands, so 60 in all.
const KILLS_EACH: usize = 15;

/// xorshift64*: enough randomness for kill points, and replayable from its seed.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("TARE_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            })
            | 1;
        eprintln!("crash loop seed: TARE_CRASH_SEED={seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// Every file of the store with its size (directories left out: their own size never
/// shrinks on ext4).
fn store_files(root: &Path) -> BTreeMap<String, u64> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, u64>) {
        for e in fs::read_dir(dir).unwrap().flatten() {
            let meta = e.path().symlink_metadata().unwrap();
            if meta.is_dir() {
                walk(&e.path(), root, out);
            } else {
                let rel = e.path().strip_prefix(root).unwrap().display().to_string();
                out.insert(rel, meta.len());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

fn tmp_entries(root: &Path) -> Vec<String> {
    fs::read_dir(root.join("tmp"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

struct Loop<'a> {
    ctx: &'a TestContext,
    rng: Rng,
    kills: usize,
    finished: usize,
    rounds: usize,
}

impl Loop<'_> {
    /// Runs `tare ARGS` to the end and returns how long it took.
    fn timed(&self, args: &[String]) -> Duration {
        let start = Instant::now();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctx.ok(&args);
        start.elapsed()
    }

    /// Starts `tare ARGS`, kills it with SIGKILL after a random part of `span`, then checks the
    /// store as the next tare process finds it.
    fn kill_once(&mut self, args: &[String], span: Duration) {
        let delay = Duration::from_micros(self.rng.below(span.as_micros() as u64 + 1));
        let mut child = self
            .ctx
            .tare()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        match child.try_wait().unwrap() {
            Some(_) => self.finished += 1,
            None => {
                // The whole group: tare and whatever helper it forked (not the sandboxes,
                // which have their own session).
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .status();
                let _ = child.kill();
                self.kills += 1;
            }
        }
        let _ = child.wait();
        self.rounds += 1;
        self.after_crash(args);
    }

    fn after_crash(&self, args: &[String]) {
        let root = self.ctx.root.path();
        // Opening the store reclaims what the killed process left in ROOT/tmp. A RUN step's
        // sandbox outlives a killed tare for the few milliseconds its command takes: its
        // scratch directory goes once it is done (bounded wait).
        let mut left = Vec::new();
        for _ in 0..50 {
            let out = self.ctx.run(&["check"]);
            assert!(
                out.status.success(),
                "tare check after killing `tare {}`:\n{}{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            left = tmp_entries(root);
            if left.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            left.is_empty(),
            "ROOT/tmp after killing `tare {}` and opening the store again: {left:?}",
            args.join(" ")
        );
        let ctx_dir = self.ctx.path().join("next");
        self.ctx
            .ok(&["build", "-q", "-t", "next:1", ctx_dir.to_str().unwrap()]);
    }

    /// Removes an image (if there) and what only it used, so the next run has work to do.
    fn forget(&self, image: &str) {
        let _ = self.ctx.run(&["rmi", image]);
        self.ctx.ok(&["prune"]);
    }
}

#[test]
fn sigkill_at_random_points_leaves_a_consistent_store_and_nothing_behind() {
    let ctx = TestContext::new();
    let registry = harness::RegistryServer::open();
    ctx.import_busybox("base:1");
    ctx.write("next/Dockerfile", "FROM base:1\nRUN echo next > /next\n");
    ctx.write(
        "work/Dockerfile",
        "FROM base:1\nARG N\nRUN echo $N > /n && head -c 4000000 /dev/urandom > /data\n",
    );
    // A payload image (base plus 6 MB of random data): imported from a gzip tar, loaded from
    // a docker archive, pulled from the registry.
    let rootfs = tempfile::tempdir().unwrap();
    crate::util::busybox_rootfs(rootfs.path());
    let status = Command::new("sh")
        .arg("-c")
        .arg("head -c 6000000 /dev/urandom > \"$0/data\" && tar --numeric-owner -C \"$0\" -czf \"$1\" .")
        .arg(rootfs.path())
        .arg(ctx.path().join("payload.tar.gz"))
        .status()
        .unwrap();
    assert!(status.success());
    let payload_tar = ctx.path().join("payload.tar.gz").display().to_string();
    let archive = ctx.path().join("payload-archive.tar").display().to_string();
    let remote = format!("{}/crash/payload:1", registry.host());
    ctx.ok(&["import", &payload_tar, "payload:1"]);
    ctx.ok(&["save", "-o", &archive, "payload:1"]);
    ctx.ok(&["tag", "payload:1", &remote]);
    ctx.ok(&["push", &remote]);
    ctx.ok(&["rmi", "payload:1"]);
    ctx.ok(&["rmi", &remote]);
    // Warm: the base's snapshot exists, as it would in use.
    ctx.ok(&[
        "build",
        "-q",
        "-t",
        "next:1",
        ctx.path().join("next").to_str().unwrap(),
    ]);
    ctx.ok(&["rmi", "next:1"]);
    ctx.ok(&["prune", "--cache"]);
    let baseline = store_files(ctx.root.path());

    let mut l = Loop {
        ctx: &ctx,
        rng: Rng::new(),
        kills: 0,
        finished: 0,
        rounds: 0,
    };
    let work_dir = ctx.path().join("work").display().to_string();
    let import: Vec<String> = ["import", &payload_tar, "crash/import:1"]
        .map(String::from)
        .to_vec();
    let load: Vec<String> = ["load", "-q", "-i", &archive].map(String::from).to_vec();
    let pull: Vec<String> = ["pull", &remote].map(String::from).to_vec();
    for (args, image) in [
        (&import, "crash/import:1"),
        (&load, "payload:1"),
        (&pull, remote.as_str()),
    ] {
        l.forget(image);
        let span = l.timed(args);
        let mut kills = 0;
        // Bounded: runs that finish before their kill point do not count as kills.
        for _ in 0..KILLS_EACH * 3 {
            if kills == KILLS_EACH {
                break;
            }
            l.forget(image);
            let before = l.kills;
            l.kill_once(args, span);
            kills += l.kills - before;
        }
        eprintln!("{}: {kills} kills", args[0]);
    }
    // Builds: a new build argument each time, so each run has a RUN step and a layer to write.
    let build = |n: usize| -> Vec<String> {
        [
            "build",
            "-q",
            "--build-arg",
            &format!("N={n}"),
            "-t",
            "crash/build:1",
            &work_dir,
        ]
        .map(String::from)
        .to_vec()
    };
    let span = l.timed(&build(0));
    let mut kills = 0;
    for n in 1..=KILLS_EACH * 3 {
        if kills == KILLS_EACH {
            break;
        }
        let before = l.kills;
        l.kill_once(&build(n), span);
        kills += l.kills - before;
    }
    eprintln!("build: {kills} kills");
    eprintln!(
        "{} kills, {} runs finished before their kill point, {} rounds",
        l.kills, l.finished, l.rounds
    );
    assert!(l.kills >= 50, "only {} kills", l.kills);

    // Everything the loop made goes; then the store is what it was.
    let images: serde_json::Value =
        serde_json::from_str(&ctx.ok(&["images", "--format", "json"])).expect("images json");
    let base_id = images
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["repository"] == "base" && i["tag"] == "1")
        .map(|i| i["id"].as_str().unwrap().to_string())
        .expect("base:1 is still there");
    for img in images.as_array().unwrap() {
        let id = img["id"].as_str().unwrap();
        if id != base_id {
            ctx.ok(&["rmi", "-f", id]);
        }
    }
    ctx.ok(&["prune", "--cache"]);
    ctx.ok(&["check"]);
    let after = store_files(ctx.root.path());
    let total = |m: &BTreeMap<String, u64>| m.values().sum::<u64>();
    let changed: Vec<_> = after
        .iter()
        .filter(|(k, v)| baseline.get(*k) != Some(v))
        .chain(baseline.iter().filter(|(k, _)| !after.contains_key(*k)))
        .collect();
    assert_eq!(
        total(&after),
        total(&baseline),
        "disk use after prune differs from before the crash loop: {changed:?}"
    );
    assert!(changed.is_empty(), "files differ: {changed:?}");
}
