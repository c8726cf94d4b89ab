//! `tare info`: how tare runs on this host, and for each thing that blocks rootless use, the fix.
//!
//! It is the one command that does not enter the rootless user namespace before it starts
//! (see `main`): it enters it itself, so that a refusal becomes a reported blocker instead of
//! an error, and then probes an overlay mount the way RUN steps make them.

use std::os::unix::fs::MetadataExt;
use std::process::ExitCode;

use clap::Args as ClapArgs;
use serde::Serialize;
use tare_sandbox::userns;

use crate::Context;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Output format: text or json.
    #[arg(long, default_value = "text", value_parser = ["text", "json"])]
    format: String,
}

#[derive(Serialize, Debug)]
struct Info {
    user: String,
    uid: u32,
    gid: u32,
    rootless: bool,
    /// `uid_map`/`gid_map` lines ("inside outside count") tare runs under.
    uid_map: Vec<userns::IdRange>,
    gid_map: Vec<userns::IdRange>,
    id_mapping: String,
    overlay: String,
    network: String,
    seccomp: String,
    cgroups: String,
    store: String,
    /// What stops rootless use (or limits it), each with its fix.
    blockers: Vec<String>,
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    let info = gather(ctx);
    if args.format == "json" {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        print_text(&info);
    }
    Ok(ExitCode::SUCCESS)
}

fn gather(ctx: &Context) -> Info {
    // The owner of /proc/self is the effective uid and gid (before entering a namespace).
    let (uid, gid) = std::fs::metadata("/proc/self")
        .map(|m| (MetadataExt::uid(&m), MetadataExt::gid(&m)))
        .unwrap_or((u32::MAX, u32::MAX));
    let mut blockers = Vec::new();
    let plan = (uid != 0).then(userns::plan);
    let user = plan
        .as_ref()
        .map_or_else(|| "root".to_string(), |p| p.rootless.user.clone());
    let entered = match userns::enter() {
        Ok(r) => Ok(r),
        Err(e) => {
            blockers.push(e.to_string());
            Err(())
        }
    };
    let (uid_map, gid_map, id_mapping) = match (&plan, &entered) {
        (None, _) => (
            Vec::new(),
            Vec::new(),
            "none: tare runs as root on the host".to_string(),
        ),
        (Some(p), _) => {
            let r = &p.rootless;
            let text = if r.subordinate {
                "subordinate ID range through newuidmap/newgidmap (container IDs 0-65536)"
                    .to_string()
            } else {
                "single ID: only container root (uid 0, gid 0) exists".to_string()
            };
            if !r.subordinate {
                blockers.push(if p.range_without_helpers {
                    "newuidmap/newgidmap not found: install the uidmap package".to_string()
                } else {
                    format!(
                        "no subordinate ID range for {}: images and RUN steps that need \
                         other IDs fail; {}",
                        r.user,
                        r.range_fix()
                    )
                });
            }
            (r.uid_map.clone(), r.gid_map.clone(), text)
        }
    };
    if let Some(b) = userns::userns_blocker().filter(|_| uid != 0) {
        if !blockers.contains(&b) {
            blockers.push(b);
        }
    }
    let overlay = match entered {
        Err(()) => "unknown: no user namespace".to_string(),
        Ok(_) => probe_overlay(ctx, &mut blockers),
    };
    Info {
        user,
        uid,
        gid,
        rootless: uid != 0,
        uid_map,
        gid_map,
        id_mapping,
        overlay,
        network: network(&mut blockers),
        seccomp: seccomp(),
        cgroups: cgroups(),
        store: ctx.root.display().to_string(),
        blockers,
    }
}

fn probe_overlay(ctx: &Context, blockers: &mut Vec<String>) -> String {
    // On the store's filesystem, where snapshots live; the store itself is left alone.
    let base = ctx
        .root
        .parent()
        .filter(|p| p.is_dir())
        .map(|p| p.to_path_buf())
        .unwrap_or_else(std::env::temp_dir);
    let dir = base.join(format!(".tare-info-overlay-{}", std::process::id()));
    match userns::probe_overlay(&dir) {
        Ok(mode) => mode.to_string(),
        Err(e) => {
            blockers.push(format!(
                "overlayfs refused on {} ({e}): RUN steps cannot get snapshots there; \
                 Linux 5.11 or later mounts overlayfs in a user namespace, or put the store \
                 (--root) on a filesystem that supports it",
                base.display()
            ));
            format!("refused ({e})")
        }
    }
}

fn network(blockers: &mut Vec<String>) -> String {
    match userns::find_program("pasta") {
        Some(p) => {
            // pasta opens the tun device inside the namespace, as the user when rootless.
            if let Err(e) = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open("/dev/net/tun")
            {
                blockers.push(format!(
                    "/dev/net/tun cannot be opened ({e}): pasta cannot connect the private \
                     network, RUN steps get only a loopback interface; as root, chmod 0666 \
                     /dev/net/tun (the distributions' default), or use --network host"
                ));
            }
            format!(
                "pasta ({}): a private network namespace per tare process",
                p.display()
            )
        }
        None => {
            blockers.push(
                "pasta not found: RUN and tare run need it for the private network; install \
                 the passt package, or use --network host"
                    .into(),
            );
            "none: pasta not found".into()
        }
    }
}

fn seccomp() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mode = status
        .lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim);
    let available = std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists();
    let own = match mode {
        Some("0") => "tare itself is not filtered",
        Some("2") => "tare itself runs under a seccomp filter (its container's)",
        Some("1") => "tare itself runs in strict seccomp mode",
        _ => "tare's own state unknown",
    };
    if available {
        format!("available: containers get Docker's default profile; {own}")
    } else {
        format!("not available in this kernel; {own}")
    }
}

fn cgroups() -> String {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let fs_at = |target: &str| {
        mounts.lines().find_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let sep = fields.iter().position(|f| *f == "-")?;
            (fields.get(4) == Some(&target)).then(|| fields.get(sep + 1).copied())?
        })
    };
    let layout = match fs_at("/sys/fs/cgroup") {
        Some("cgroup2") => "cgroup v2 (unified)",
        Some("tmpfs") if fs_at("/sys/fs/cgroup/unified") == Some("cgroup2") => {
            "cgroup v1 with a v2 hierarchy (hybrid)"
        }
        Some("tmpfs") => "cgroup v1",
        _ => "no cgroup filesystem mounted",
    };
    format!("{layout}; tare sets no resource limits, so cgroups are not needed")
}

fn print_text(i: &Info) {
    let maps = |m: &[userns::IdRange]| {
        if m.is_empty() {
            return "-".to_string();
        }
        m.iter()
            .map(|r| format!("{} -> {} ({})", r.inside, r.outside, r.count))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("user:        {} (uid {}, gid {})", i.user, i.uid, i.gid);
    println!(
        "mode:        {}",
        if i.rootless {
            "rootless (a user namespace of its own, container root is this user)"
        } else {
            "root"
        }
    );
    println!("id mapping:  {}", i.id_mapping);
    println!("  uid map:   {}", maps(&i.uid_map));
    println!("  gid map:   {}", maps(&i.gid_map));
    println!("overlay:     {}", i.overlay);
    println!("network:     {}", i.network);
    println!("seccomp:     {}", i.seccomp);
    println!("cgroups:     {}", i.cgroups);
    println!("store:       {}", i.store);
    if i.blockers.is_empty() {
        println!("blockers:    none");
    } else {
        println!("blockers:");
        for b in &i.blockers {
            println!("  - {b}");
        }
    }
}
