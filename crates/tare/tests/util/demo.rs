//! The seed demo's Debian base (scripts/demo.sh): a `debootstrap --variant=minbase bookworm`
//! root filesystem as a tar, made once per machine and cached where the demo caches it, so the
//! demo, the root demo test and the rootless one share one debootstrap (about 35 s).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The demo's cache directory (`TARE_DEMO_CACHE` in scripts/demo.sh).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("TARE_DEMO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/cache/tare-demo"))
}

/// The seed example's directory (examples/seed: its Dockerfiles and hello.c).
pub fn seed_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/seed")
}

/// The cached bookworm minbase tar (numeric owners, xattrs), debootstrap'd on first use. A file
/// lock (`flock` on `.lock` in the cache) makes concurrent tests and test binaries wait for
/// one debootstrap; the tar appears by rename, so a reader never sees half of it. It is
/// world-readable, so a rootless user can import it too.
pub fn debian_base_tar() -> PathBuf {
    static TAR: OnceLock<PathBuf> = OnceLock::new();
    TAR.get_or_init(|| {
        let cache = cache_dir();
        let tar = cache.join("bookworm-minbase.tar");
        if std::fs::metadata(&tar).is_ok_and(|m| m.len() > 0) {
            return tar;
        }
        std::fs::create_dir_all(&cache)
            .unwrap_or_else(|e| panic!("create {}: {e}", cache.display()));
        let mirror = std::env::var("DEBIAN_MIRROR")
            .unwrap_or_else(|_| "http://deb.debian.org/debian".to_string());
        // The same steps as scripts/demo.sh, under the lock; the tar is checked again once
        // the lock is held (another process may have made it meanwhile).
        let script = r#"
            set -eu
            cache=$1 mirror=$2
            [ -s "$cache/bookworm-minbase.tar" ] && exit 0
            rm -rf "$cache/bookworm.tmp"
            debootstrap --variant=minbase bookworm "$cache/bookworm.tmp" "$mirror" \
                >"$cache/debootstrap.log" 2>&1 || { tail -n 30 "$cache/debootstrap.log" >&2; exit 1; }
            tar --numeric-owner --xattrs -C "$cache/bookworm.tmp" \
                -cf "$cache/bookworm-minbase.tar.tmp" .
            chmod 0644 "$cache/bookworm-minbase.tar.tmp"
            mv "$cache/bookworm-minbase.tar.tmp" "$cache/bookworm-minbase.tar"
            rm -rf "$cache/bookworm.tmp"
        "#;
        let out = Command::new("flock")
            .arg(cache.join(".lock"))
            .args(["sh", "-c", script, "sh"])
            .arg(&cache)
            .arg(&mirror)
            .output()
            .expect("run flock (util-linux) for debootstrap");
        assert!(
            out.status.success(),
            "debootstrap --variant=minbase bookworm from {mirror} into {} failed \
             (apt-get install debootstrap; the mirror must be reachable):\n{}",
            cache.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            std::fs::metadata(&tar).is_ok_and(|m| m.len() > 0),
            "{} is missing after debootstrap",
            tar.display()
        );
        tar
    })
    .clone()
}
