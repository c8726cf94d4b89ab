//! Rootless tare must not give its user more than the user has: no file owned by another host
//! user (only the user and its subordinate IDs), no setuid file owned by host root, no write to
//! root's files through a volume, no use of root's store, no device node.

#[path = "../util/rootless.rs"]
pub(crate) mod user;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use user::RootlessUser;

use crate::util::TestContext;

/// A root-owned canary directory outside every store, readable and searchable by all.
fn canary_dir() -> (tempfile::TempDir, Vec<(std::path::PathBuf, Vec<u8>)>) {
    let dir = tempfile::tempdir().expect("canary dir");
    std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o755)).expect("chmod");
    let file = dir.path().join("canary");
    std::fs::write(&file, b"root's canary\n").expect("canary");
    std::fs::set_permissions(&file, PermissionsExt::from_mode(0o644)).expect("chmod");
    (dir, vec![(file, b"root's canary\n".to_vec())])
}

fn assert_canaries(canaries: &[(std::path::PathBuf, Vec<u8>)]) {
    for (path, content) in canaries {
        let meta = std::fs::symlink_metadata(path).expect("canary present");
        assert_eq!(std::fs::read(path).expect("canary"), *content, "{path:?}");
        assert_eq!((meta.uid(), meta.gid()), (0, 0), "{path:?} changed owner");
        assert_eq!(meta.mode() & 0o7777, 0o644, "{path:?} changed mode");
    }
}

#[test]
fn rootless_setuid_root_and_foreign_owners_stay_inside_the_users_ids() {
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.write(
        "ctx/Dockerfile",
        b"FROM base
RUN cp /bin/busybox /suid-root && chown 0:0 /suid-root && chmod 4755 /suid-root \
 && cp /bin/busybox /sgid && chown 1000:0 /sgid && chmod 6755 /sgid \
 && touch /owned-by-app && chown 1000:1000 /owned-by-app
",
    );
    u.ok(&["import", &tar, "base"]);
    let ctx = u.path().join("ctx");
    u.ok(&["build", "-q", "-t", "attack", ctx.to_str().unwrap()]);
    // Inside the image the owners and modes are what the Dockerfile asked for...
    let out = u.ok(&[
        "run",
        "--rm",
        "attack",
        "stat",
        "-c",
        "%n %u %g %a",
        "/suid-root",
        "/sgid",
        "/owned-by-app",
    ]);
    assert_eq!(
        out,
        "/suid-root 0 0 4755\n/sgid 1000 0 6755\n/owned-by-app 1000 1000 644\n"
    );
    // ...while on the host nothing belongs to another user or is setuid root.
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
    assert_eq!(u.foreign_files(u.path()), Vec::<String>::new());
}

#[test]
fn rootless_container_root_cannot_write_chown_or_setuid_roots_files_through_a_volume() {
    let u = RootlessUser::ranged();
    let tar = u.busybox_tar();
    u.ok(&["import", &tar, "base"]);
    let (dir, canaries) = canary_dir();
    let mine = u.write("vol/mine", b"user's file\n");
    let volume = format!("{}:/c", dir.path().display());
    let own = format!("{}:/mine", mine.display());
    let out = u.run(&[
        "run",
        "--rm",
        "-v",
        &volume,
        "-v",
        &own,
        "base",
        "sh",
        "-c",
        "echo pwned > /c/canary; echo pwned > /c/new; chown 0:0 /c/canary; chmod 4755 /c/canary; \
         chown 0:0 /mine; chmod 4755 /mine; stat -c '%u %a' /mine; true",
    ]);
    assert!(out.status.success(), "{out:?}");
    assert_canaries(&canaries);
    assert!(
        !dir.path().join("new").exists(),
        "a file appeared in root's directory"
    );
    // The user's own file may become setuid, but only for the user: never root's.
    let meta = std::fs::metadata(&mine).expect("mine");
    assert_eq!(
        meta.uid(),
        u.uid,
        "container root's chown reached host root"
    );
}

#[test]
fn rootless_tare_cannot_open_roots_store() {
    let root = TestContext::new();
    root.import_busybox("busybox");
    let store = root.root.path().to_path_buf();
    let before = listing(&store);
    let u = RootlessUser::ranged();
    let err = u.fails(&["--root", store.to_str().unwrap(), "images"]);
    assert!(err.contains(store.to_str().unwrap()), "{err}");
    let err = u.fails(&[
        "--root",
        store.to_str().unwrap(),
        "run",
        "--rm",
        "busybox",
        "true",
    ]);
    assert!(err.contains(store.to_str().unwrap()), "{err}");
    assert_eq!(before, listing(&store), "root's store changed");
}

#[test]
fn rootless_layers_with_ids_beyond_the_range_and_device_nodes_are_refused_or_left_out() {
    let u = RootlessUser::ranged();
    // A layer with a file owned by 70000 (beyond the 65536 subordinate IDs) and a device node.
    let layer = u.path().join("evil.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&layer).expect("create"));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_size(0);
        b.append_data(&mut h, "bin", std::io::empty()).expect("dir");
        let busybox = std::fs::read("/bin/busybox").expect("busybox");
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o755);
        h.set_size(busybox.len() as u64);
        b.append_data(&mut h, "bin/busybox", &busybox[..])
            .expect("busybox");
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Char);
        h.set_mode(0o666);
        h.set_device_major(1).expect("major");
        h.set_device_minor(1).expect("minor");
        h.set_size(0);
        b.append_data(&mut h, "mem", std::io::empty())
            .expect("device");
        b.finish().expect("finish");
    }
    std::fs::set_permissions(&layer, PermissionsExt::from_mode(0o644)).expect("chmod");
    u.ok(&["import", layer.to_str().unwrap(), "devices"]);
    // The device node is left out of the snapshot (a user namespace cannot make one).
    let out = u.run(&["run", "--rm", "devices", "/bin/busybox", "ls", "/mem"]);
    assert_ne!(out.status.code(), Some(0), "{out:?}");

    let far = u.path().join("far.tar");
    {
        let mut b = tar::Builder::new(std::fs::File::create(&far).expect("create"));
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o4755);
        h.set_uid(70000);
        h.set_gid(0);
        h.set_size(2);
        b.append_data(&mut h, "far", &b"x\n"[..]).expect("far");
        b.finish().expect("finish");
    }
    std::fs::set_permissions(&far, PermissionsExt::from_mode(0o644)).expect("chmod");
    u.ok(&["import", far.to_str().unwrap(), "far"]);
    let err = u.fails(&["run", "--rm", "far", "true"]);
    assert!(err.contains("70000"), "{err}");
    assert!(err.contains("/etc/subuid"), "{err}");
    assert_eq!(u.foreign_files(&u.store()), Vec::<String>::new());
    assert_eq!(devices_under(&u.store()), Vec::<String>::new());
}

fn devices_under(dir: &Path) -> Vec<String> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        let ft = meta.file_type();
        if (ft.is_char_device() && meta.rdev() != 0) || ft.is_block_device() {
            out.push(p.display().to_string());
        }
        if ft.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out
}

fn listing(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(p) = stack.pop() {
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        out.push(format!(
            "{} {} {} {:o} {}",
            p.display(),
            meta.uid(),
            meta.gid(),
            meta.mode(),
            meta.len()
        ));
        if meta.is_dir() {
            if let Ok(rd) = std::fs::read_dir(&p) {
                stack.extend(rd.flatten().map(|e| e.path()));
            }
        }
    }
    out.sort();
    out
}
