//! The child's mount sequence on the recording [`Syscall`]: what a plan mounts, in which
//! order, and where, without root.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode as FsMode, OFlags};
use rustix::io::Errno;

use super::{build_container_fs, mount_root, StepResult};
use crate::plan::{self, Bind, Mode, Plan, RootMount, Step};
use crate::syscall::fake::Recorder;
use crate::{BindMount, EtcFiles, Network, TmpfsMount};

const MERGED: &str = "/fake/rootfs";

/// A plan as `prepare` makes it for a RUN step, with `binds`, and nothing the child would
/// need a real kernel object for.
fn plan_with(binds: Vec<Bind>) -> Plan {
    let null = rustix::fs::open(
        c"/dev/null",
        OFlags::WRONLY | OFlags::CLOEXEC,
        FsMode::empty(),
    )
    .unwrap();
    let mut plan = Plan {
        mode: Mode::Container,
        merged: CString::new(MERGED).unwrap(),
        root: RootMount::Overlay {
            data: CString::new("lowerdir=l,upperdir=u,workdir=w,volatile").unwrap(),
            plain: CString::new("lowerdir=l,upperdir=u,workdir=w").unwrap(),
            chdir: None,
        },
        binds,
        bind_fds: Vec::new(),
        hostname: CString::new("tare").unwrap(),
        cwd: CString::new("/").unwrap(),
        argv: vec![CString::new("/bin/true").unwrap()],
        envp: Vec::new(),
        argv_ptrs: Vec::new(),
        envp_ptrs: Vec::new(),
        path: crate::DEFAULT_PATH.as_bytes().to_vec(),
        uid: 0,
        gid: 0,
        groups: Vec::new(),
        last_cap: 40,
        stdio: [None, None, None],
        null_stdio: [false; 3],
        tty: None,
        readonly_rootfs: false,
        netns: -1,
        seccomp: None,
        no_new_privs: false,
        privileged: false,
        mount_stubs: Vec::new(),
        unified_cgroup: false,
        shm_data: CString::new("mode=1777,size=67108864").unwrap(),
        rlimits: Vec::new(),
        cgroup_procs: Vec::new(),
        report: null,
        rootless: false,
        device_fds: [-1; 6],
        bind_sys: false,
        sys_fd: -1,
        setgroups: true,
        trace_fd: -1,
        trace_ready: -1,
        trace_go: -1,
    };
    plan.seal();
    plan
}

/// The binds of a RUN step with a bind, a cache, a secret and two tmpfs-related mounts,
/// through `plan::binds` with the /etc files a build step gets. The sources live in `dir`.
fn run_step_binds(dir: &Path) -> Vec<Bind> {
    let etc: Vec<(PathBuf, &str, bool)> =
        crate::etc::etc_files("tare", Network::None, &[], EtcFiles::BuildStep)
            .into_iter()
            .map(|f| (dir.join(f.name), f.name, f.readonly))
            .collect();
    let context = dir.join("context");
    let cache = dir.join("cache");
    std::fs::create_dir(&context).unwrap();
    std::fs::create_dir(&cache).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "s3cr3t").unwrap();
    let bind = |source: &Path, target: &str, readonly: bool| BindMount {
        source: source.to_path_buf(),
        target: target.into(),
        readonly,
    };
    // Deepest first, to see `binds` put parents first.
    let mounts = [
        bind(&context, "/tmp/scratch/inner", true),
        bind(&secret, "/run/secrets/token", true),
        bind(&cache, "/root/.cache", false),
        bind(&context, "/src", true),
    ];
    let tmpfs = [TmpfsMount {
        target: "/tmp/scratch".into(),
        size: Some(1 << 20),
    }];
    plan::binds(&etc, &mounts, &tmpfs).unwrap()
}

fn no_hooks(_: &Plan) -> StepResult {
    Ok(())
}

/// Runs the child's mount sequence for `plan` on a recorder whose image has `links` as
/// symbolic links.
fn record(plan: &mut Plan, links: &[&str]) -> (Recorder, StepResult) {
    let rec = Recorder::new(MERGED, links);
    mount_root(&rec, plan).unwrap();
    let result = build_container_fs(&rec, plan, no_hooks, no_hooks);
    (rec, result)
}

#[test]
fn a_run_step_mounts_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan_with(run_step_binds(dir.path()));
    let (rec, result) = record(&mut plan, &[]);
    result.unwrap();
    let d = dir.path().display();
    let mut expected = vec![
        "private /".to_string(),
        format!("mount overlay overlay {MERGED} nodev lowerdir=l,upperdir=u,workdir=w,volatile"),
        "pivot_root . .".into(),
        "umount .".into(),
        "mount proc proc /proc ro,nosuid,nodev,noexec".into(),
        "mount sysfs sysfs /sys ro,nosuid,nodev,noexec".into(),
        "mount tmpfs tmpfs /dev nosuid,strictatime mode=755,size=65536k".into(),
    ];
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        expected.push(format!("bind /dev/{dev} /dev/{dev}"));
    }
    expected.extend([
        "remount /dev bind,nosuid,nodev,strictatime".to_string(),
        "mount devpts devpts /dev/pts nosuid,noexec newinstance,ptmxmode=0666,mode=0620,gid=5"
            .into(),
        "mount tmpfs shm /dev/shm nosuid,nodev,noexec mode=1777,size=67108864".into(),
        "mount mqueue mqueue /dev/mqueue nosuid,nodev,noexec".into(),
        // The /etc files, then the step's mounts parents first.
        "move /etc/resolv.conf".into(),
        "move /etc/hosts".into(),
        "move /src".into(),
        "move /root/.cache".into(),
        "mount tmpfs tmpfs /tmp/scratch nosuid,nodev mode=1777,size=1048576".into(),
        "move /tmp/scratch/inner".into(),
        "move /run/secrets/token".into(),
    ]);
    for file in [
        "kcore",
        "keys",
        "latency_stats",
        "timer_list",
        "timer_stats",
        "sched_debug",
    ] {
        expected.push(format!("bind /dev/null /proc/{file}"));
    }
    for masked in [
        "/proc/acpi",
        "/proc/scsi",
        "/sys/firmware",
        "/sys/devices/virtual/powercap",
    ] {
        expected.push(format!("mount tmpfs tmpfs {masked} ro"));
    }
    assert_eq!(rec.mounts(), expected, "{d}");

    // Each source is detached from the host before pivot_root, with its attributes: the
    // /etc files and the bind and secret mounts read-only, the cache writable, all nodev.
    let calls = rec.calls();
    let pivot = calls.iter().position(|c| c == "pivot_root . .").unwrap();
    let trees: Vec<(String, String)> = calls
        .windows(2)
        .take(pivot)
        .filter_map(|w| {
            let source = w[0].strip_prefix("open_tree ")?;
            Some((source.to_string(), w[1].clone()))
        })
        .collect();
    let tree = |source: &str, recursive: bool, attrs: &str| {
        let rec = if recursive { " recursive" } else { "" };
        (format!("{d}/{source}{rec}"), format!("setattr {attrs}"))
    };
    assert_eq!(
        trees,
        [
            tree("resolv.conf", false, "nodev,ro"),
            tree("hosts", false, "nodev,ro"),
            tree("context", true, "nodev,ro"),
            tree("cache", true, "nodev"),
            tree("context", true, "nodev,ro"),
            tree("secret", false, "nodev,ro"),
        ]
    );
    // File targets are created without following a link the image put there.
    for file in ["/etc/hosts", "/etc/resolv.conf", "/run/secrets/token"] {
        assert!(
            calls.contains(&format!("create {file} 644 nofollow")),
            "{file}: {calls:#?}"
        );
    }
}

#[test]
fn read_only_root_comes_last_and_privileged_masks_nothing() {
    let mut plan = plan_with(Vec::new());
    plan.readonly_rootfs = true;
    plan.privileged = true;
    let (rec, result) = record(&mut plan, &[]);
    result.unwrap();
    let mounts = rec.mounts();
    assert_eq!(mounts.last().unwrap(), "remount / bind,ro,nodev");
    assert!(
        !mounts.iter().any(|m| m.contains("/proc/kcore")),
        "{mounts:#?}"
    );
}

#[test]
fn the_hooks_run_after_pivot_root_and_before_the_volumes() {
    let dir = tempfile::tempdir().unwrap();
    let mut plan = plan_with(run_step_binds(dir.path()));
    let rec = Recorder::new(MERGED, &[]);
    mount_root(&rec, &mut plan).unwrap();
    let at = std::cell::RefCell::new(Vec::new());
    let mark = |name: &'static str| {
        let (rec, at) = (&rec, &at);
        move |_: &Plan| {
            at.borrow_mut().push((name, rec.calls().len()));
            Ok(())
        }
    };
    build_container_fs(&rec, &mut plan, mark("after_pivot"), mark("terminal")).unwrap();
    let calls = rec.calls();
    let index = |line: &str| calls.iter().position(|c| c == line).unwrap();
    let at = at.into_inner();
    // Right after the old root is left (the trace mark and the stub report need the new
    // root), and the terminal once devpts is there, before any volume.
    assert_eq!(at[0], ("after_pivot", index("chdir /") + 1));
    assert!(at[1].1 > index("mount mqueue mqueue /dev/mqueue nosuid,nodev,noexec"));
    assert!(at[1].1 <= index("move /etc/resolv.conf"));
}

#[test]
fn a_proc_or_sys_symlink_in_the_image_is_refused() {
    for (link, step) in [("/proc", Step::MountProc), ("/sys", Step::MountSys)] {
        for rootless in [false, true] {
            let mut plan = plan_with(Vec::new());
            plan.rootless = rootless;
            let (rec, result) = record(&mut plan, &[link]);
            let err = result.unwrap_err();
            assert_eq!(err, (step, Errno::NOTDIR), "{link} rootless={rootless}");
            assert!(
                rec.through_symlink().is_empty(),
                "{link} rootless={rootless}: {:#?}",
                rec.calls()
            );
            // Rootless mounts them from inside the new root before pivot_root: it never
            // happens then.
            let pivoted = rec.calls().iter().any(|c| c.starts_with("pivot_root"));
            assert_eq!(pivoted, !rootless);
        }
    }
}

/// Before pivot_root a symbolic link of the image could lead a mount onto the host; after
/// it, the kernel resolves every link inside the new root (the old one is detached), so a
/// link can only move a mount within the container.
#[test]
fn no_mount_before_pivot_root_goes_through_an_image_symlink() {
    // Every directory a mount of this plan targets is a link in the image, but /proc and
    // /sys (refused, see above).
    let links = [
        "/dev",
        "/etc",
        "/tmp",
        "/run",
        "/root",
        "/src",
        "/etc/hosts",
    ];
    for rootless in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let mut plan = plan_with(run_step_binds(dir.path()));
        plan.rootless = rootless;
        let (rec, result) = record(&mut plan, &links);
        result.unwrap();
        let through = rec.through_symlink();
        assert!(
            through.iter().all(|(before_pivot, _)| !before_pivot),
            "rootless={rootless}: {through:#?}"
        );
        // The model does see the links (the check is not vacuous): the mounts after
        // pivot_root went through them.
        assert!(
            through.iter().any(|(_, call)| call == "move /etc/hosts"),
            "{through:#?}"
        );
        if rootless {
            let calls = rec.calls();
            let pivot = calls.iter().position(|c| c == "pivot_root . .").unwrap();
            let proc = calls
                .iter()
                .position(|c| c.starts_with("mount proc proc proc "))
                .unwrap();
            assert!(proc < pivot, "{calls:#?}");
        }
    }
}

#[test]
fn rootless_binds_the_hosts_devices_instead_of_making_nodes() {
    let mut plan = plan_with(Vec::new());
    plan.rootless = true;
    let (rec, result) = record(&mut plan, &[]);
    result.unwrap();
    let calls = rec.calls();
    assert!(!calls.iter().any(|c| c.starts_with("mknod")), "{calls:#?}");
    let pivot = calls.iter().position(|c| c == "pivot_root . .").unwrap();
    for dev in ["null", "zero", "full", "random", "urandom", "tty"] {
        let taken = calls
            .iter()
            .position(|c| c == &format!("open_tree /dev/{dev}"));
        assert!(taken.is_some_and(|i| i < pivot), "{dev}: {calls:#?}");
        let placeholder = format!("create /dev/{dev} 666");
        let moved = format!("move /dev/{dev}");
        let at = calls.iter().position(|c| c == &placeholder).unwrap();
        assert_eq!(calls[at + 1], moved);
    }
}
