//! Attacks on the store: host users reaching setuid files and device nodes in snapshots,
//! tampered blobs, a huge GNU long name, whiteouts that try to delete outside the tree.
//! See the suite's overview in main.rs.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::util::TestContext;

/// A file outside the store that no attack may change.
struct Canary {
    path: PathBuf,
    content: &'static [u8],
}

impl Canary {
    fn new(dir: &Path) -> Canary {
        let path = dir.join("canary");
        let content = b"canary: must stay untouched\n";
        fs::write(&path, content).unwrap();
        Canary { path, content }
    }

    fn assert_untouched(&self) {
        assert_eq!(
            fs::read(&self.path).expect("the canary is still there"),
            self.content,
            "{} changed",
            self.path.display()
        );
    }
}

fn import_tar(ctx: &TestContext, dir: &Path, name: &str) -> PathBuf {
    ctx.import_dir(dir, name)
}

fn snapshot_dirs(root: &Path) -> Vec<PathBuf> {
    fs::read_dir(root.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect()
}

/// The nobody user, for what other host users could do.
fn as_nobody(cmd: &mut Command) -> &mut Command {
    cmd.uid(65534).gid(65534)
}

#[test]
fn host_users_cannot_run_setuid_files_or_open_devices_of_snapshots_and_containers() {
    let ctx = TestContext::new();
    let canary = Canary::new(ctx.path());
    fs::set_permissions(ctx.path(), fs::Permissions::from_mode(0o755)).unwrap();
    // An image with a setuid-root shell and a world-writable device node (1:3 is null: the
    // test must not need a dangerous one to prove the point).
    let rootfs = tempfile::tempdir().unwrap();
    crate::util::busybox_rootfs(rootfs.path());
    fs::set_permissions(
        rootfs.path().join("bin/busybox"),
        fs::Permissions::from_mode(0o4755),
    )
    .unwrap();
    let status = Command::new("mknod")
        .args(["-m", "666"])
        .arg(rootfs.path().join("dev/open-null"))
        .args(["c", "1", "3"])
        .status()
        .unwrap();
    assert!(status.success());
    import_tar(&ctx, rootfs.path(), "suid:1");
    let out = ctx.run(&["run", "--name", "kept", "suid:1", "true"]);
    assert!(out.status.success(), "{out:?}");

    // A store made by an older tare, with its directories open to everyone: tare tightens it
    // when it opens it.
    let root = ctx.root.path().to_path_buf();
    let open_up = |p: &Path| fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    open_up(&root);
    for e in fs::read_dir(&root).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            open_up(&e.path());
        }
    }
    ctx.ok(&["images"]);
    assert_eq!(fs::metadata(&root).unwrap().mode() & 0o7777, 0o700);
    for dir in [
        "blobs",
        "tmp",
        "layers",
        "images",
        "snapshots",
        "containers",
    ] {
        let mode = fs::metadata(root.join(dir)).unwrap().mode() & 0o7777;
        assert_eq!(mode, 0o700, "{dir}: {mode:o}");
    }

    let snaps = snapshot_dirs(&root);
    assert_eq!(snaps.len(), 1, "one snapshot: {snaps:?}");
    let suid = snaps[0].join("bin/busybox");
    let dev = snaps[0].join("dev/open-null");
    assert_eq!(fs::metadata(&suid).unwrap().mode() & 0o4000, 0o4000);
    let err = as_nobody(&mut Command::new(&suid))
        .args(["sh", "-c", "echo owned > \"$0\""])
        .arg(&canary.path)
        .status()
        .expect_err("a host user must not be able to run the image's setuid file");
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    for target in [&dev, &suid] {
        let out = as_nobody(&mut Command::new("/bin/cat"))
            .arg(target)
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success(), "nobody opened {}", target.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("Permission denied"), "{stderr}");
    }
    // The kept container's files are out of reach too.
    let containers: Vec<PathBuf> = fs::read_dir(root.join("containers"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("diff").is_dir())
        .collect();
    assert_eq!(containers.len(), 1, "{containers:?}");
    let out = as_nobody(&mut Command::new("/bin/ls"))
        .arg(containers[0].join("diff"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    canary.assert_untouched();
}

#[test]
fn a_store_root_that_other_users_can_write_to_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    fs::create_dir(&shared).unwrap();
    fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_tare"))
        .arg("--root")
        .arg(&shared)
        .arg("images")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("store root {} is unsafe", shared.display())),
        "{stderr}"
    );
    // Left as it was, not chmodded.
    assert_eq!(fs::metadata(&shared).unwrap().mode() & 0o7777, 0o1777);
}

/// The digest of layer `index` of `image`, and its blob file.
fn layer_blob(ctx: &TestContext, image: &str, index: usize) -> (String, PathBuf) {
    let out = ctx.ok(&["inspect", image]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let digest = v["layers"][index]["digest"]
        .as_str()
        .expect("layers[].digest")
        .to_string();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let path = ctx.root.path().join("blobs/sha256").join(hex);
    assert!(path.is_file(), "{} is the layer's blob", path.display());
    (digest, path)
}

/// Where to flip a byte: inside a file's content, or in the padding after the end-of-archive
/// blocks (which tar readers never look at).
#[derive(Clone, Copy, Debug)]
enum Tamper {
    FileContent,
    AfterEndOfArchive,
}

fn tamper(blob: &Path, how: Tamper) {
    let mut bytes = fs::read(blob).unwrap();
    let at = match how {
        Tamper::FileContent => {
            let needle = b"nobody:x:65534";
            bytes
                .windows(needle.len())
                .position(|w| w == needle)
                .expect("/etc/passwd's content in the layer")
        }
        Tamper::AfterEndOfArchive => {
            assert_eq!(bytes[bytes.len() - 1], 0, "GNU tar pads with zeros");
            bytes.len() - 1
        }
    };
    bytes[at] ^= 0x20;
    fs::write(blob, bytes).unwrap();
}

fn assert_refused_naming(stderr: &str, digest: &str) {
    assert!(
        stderr.contains(digest) && stderr.contains("corrupt"),
        "the error names the tampered blob {digest}:\n{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Nothing half-made stays behind: no snapshot, no temporary data of a finished process.
fn assert_nothing_left(root: &Path) {
    assert_eq!(snapshot_dirs(root), Vec::<PathBuf>::new());
    let tmp: Vec<_> = fs::read_dir(root.join("tmp")).unwrap().flatten().collect();
    assert!(tmp.is_empty(), "{tmp:?}");
}

#[test]
fn a_tampered_layer_is_refused_by_run_before_any_snapshot_is_made() {
    for how in [Tamper::FileContent, Tamper::AfterEndOfArchive] {
        let ctx = TestContext::new();
        let canary = Canary::new(ctx.path());
        ctx.import_busybox("base:1");
        let (digest, blob) = layer_blob(&ctx, "base:1", 0);
        tamper(&blob, how);
        let stderr = ctx.fails(&["run", "--rm", "base:1", "cat", "/etc/passwd"]);
        assert_refused_naming(&stderr, &digest);
        assert_nothing_left(ctx.root.path());
        // The build's snapshot path refuses it the same way.
        ctx.write("ctx/Dockerfile", "FROM base:1\nRUN true\n");
        let stderr = ctx.fails(&[
            "build",
            "-t",
            "x:1",
            ctx.path().join("ctx").to_str().unwrap(),
        ]);
        assert_refused_naming(&stderr, &digest);
        assert_nothing_left(ctx.root.path());
        canary.assert_untouched();
        eprintln!("{how:?}: refused");
    }
}

#[test]
fn a_tampered_layer_is_refused_by_export_and_squash() {
    for how in [Tamper::FileContent, Tamper::AfterEndOfArchive] {
        let ctx = TestContext::new();
        let canary = Canary::new(ctx.path());
        ctx.import_busybox("base:1");
        ctx.write("ctx/Dockerfile", "FROM base:1\nRUN echo hi > /hi\n");
        ctx.ok(&[
            "build",
            "-t",
            "two:1",
            ctx.path().join("ctx").to_str().unwrap(),
        ]);
        let (digest, blob) = layer_blob(&ctx, "two:1", 0);
        tamper(&blob, how);
        let out = ctx.path().join("out.tar");
        let stderr = ctx.fails(&["export", "two:1", "-o", out.to_str().unwrap()]);
        assert_refused_naming(&stderr, &digest);
        assert!(!out.exists(), "no partial export");
        let stderr = ctx.fails(&["export", "base:1", "-o", out.to_str().unwrap()]);
        assert_refused_naming(&stderr, &digest);
        assert!(!out.exists(), "no partial export");
        let stderr = ctx.fails(&["squash", "two:1", "--all", "-t", "flat:1"]);
        assert_refused_naming(&stderr, &digest);
        let images = ctx.ok(&["images"]);
        assert!(!images.contains("flat"), "{images}");
        let saved = ctx.path().join("saved.tar");
        let stderr = ctx.fails(&["save", "-o", saved.to_str().unwrap(), "two:1"]);
        assert_refused_naming(&stderr, &digest);
        assert!(!saved.exists(), "no partial save");
        canary.assert_untouched();
        eprintln!("{how:?}: refused");
    }
}

/// A gzip layer whose first entry is a GNU long name of 1 GiB (zeros, so it compresses to
/// about 1 MB): gzip members of 1 MiB of zeros repeated.
fn huge_long_name_layer(path: &Path) {
    let mut header = tar::Header::new_gnu();
    header.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
    header.set_entry_type(tar::EntryType::GNULongName);
    header.set_size(1 << 30);
    header.set_mode(0o644);
    header.set_cksum();
    let gzip = |data: &[u8]| -> Vec<u8> {
        let mut child = Command::new("gzip")
            .arg("-c")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = data.to_vec();
        let writer = std::thread::spawn(move || stdin.write_all(&data).unwrap());
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        assert!(out.status.success());
        out.stdout
    };
    let mut f = fs::File::create(path).unwrap();
    f.write_all(&gzip(header.as_bytes())).unwrap();
    let mib = gzip(&vec![0u8; 1 << 20]);
    for _ in 0..1024 {
        f.write_all(&mib).unwrap();
    }
    // The entry the long name would name, then the end of the archive.
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(1);
    h.set_mode(0o644);
    b.append_data(&mut h, "x", &b"x"[..]).unwrap();
    f.write_all(&gzip(&b.into_inner().unwrap())).unwrap();
}

#[test]
fn a_gnu_long_name_of_a_gibibyte_is_refused_with_a_clear_error() {
    let ctx = TestContext::new();
    let canary = Canary::new(ctx.path());
    let layer = ctx.path().join("huge-name.tar.gz");
    huge_long_name_layer(&layer);
    let size = fs::metadata(&layer).unwrap().len();
    assert!(size < 8 << 20, "the layer is small: {size} bytes");
    let stderr = ctx.fails(&["import", layer.to_str().unwrap(), "huge:1"]);
    assert!(
        stderr.contains("GNU long name of 1073741824 bytes exceeds the limit"),
        "{stderr}"
    );
    assert!(
        stderr.contains("huge-name.tar.gz"),
        "names the file: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    // Nothing stored: check is clean and no blob was kept.
    ctx.ok(&["check"]);
    let blobs = fs::read_dir(ctx.root.path().join("blobs/sha256"))
        .unwrap()
        .count();
    assert_eq!(blobs, 0);
    canary.assert_untouched();
}

#[test]
fn whiteouts_never_delete_outside_the_tree() {
    let ctx = TestContext::new();
    let victim_dir = tempfile::tempdir().unwrap();
    let canary = Canary::new(victim_dir.path());
    let outside = victim_dir.path().to_str().unwrap().to_string();
    let depth = "../".repeat(20);
    // Symlinks to the canary's directory (absolute and relative), then whiteouts through
    // them, in one layer: they resolve inside the tree, where there is nothing to delete.
    let mut b = tar::Builder::new(Vec::new());
    let mut link = |name: &str, target: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, name, target).unwrap();
    };
    link("abs", &outside);
    link(
        "rel",
        &format!("{depth}{}", outside.trim_start_matches('/')),
    );
    let file = |b: &mut tar::Builder<Vec<u8>>, name: &str| {
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        h.set_mode(0o644);
        b.append_data(&mut h, name, std::io::empty()).unwrap();
    };
    file(&mut b, "abs/.wh.canary");
    file(&mut b, "rel/.wh.canary");
    file(&mut b, "abs/.wh..wh..opq");
    let tar = ctx.path().join("whiteouts.tar");
    fs::write(&tar, b.into_inner().unwrap()).unwrap();
    ctx.ok(&["import", tar.to_str().unwrap(), "wh:1"]);
    // Snapshot (overlay whiteouts), export (flattened) and run all go through them.
    let _ = ctx.run(&["run", "--rm", "wh:1", "/bin/true"]);
    let _ = ctx.run(&[
        "export",
        "wh:1",
        "-o",
        ctx.path().join("o.tar").to_str().unwrap(),
    ]);
    canary.assert_untouched();

    // Whiteouts naming `..` are refused at import, naming the entry.
    for name in ["../.wh.canary", "a/../../.wh.canary", "a/.wh.."] {
        let mut raw = tar::Header::new_gnu();
        raw.as_gnu_mut().unwrap().name[..name.len()].copy_from_slice(name.as_bytes());
        raw.set_size(0);
        raw.set_mode(0o644);
        raw.set_cksum();
        let mut b = tar::Builder::new(Vec::new());
        b.append(&raw, std::io::empty()).unwrap();
        fs::write(&tar, b.into_inner().unwrap()).unwrap();
        let out = ctx.run(&["import", tar.to_str().unwrap(), "bad:1"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            assert!(stderr.contains(name), "names the entry {name}: {stderr}");
        } else {
            // Accepted by import (`a/.wh..` is a plain name to a tar reader): applying it
            // must fail cleanly instead.
            let stderr = ctx.fails(&["run", "--rm", "bad:1", "/bin/true"]);
            assert!(stderr.contains("whiteout"), "{stderr}");
        }
        canary.assert_untouched();
    }
}
