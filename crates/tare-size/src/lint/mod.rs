//! `tare lint`: size rules over a Dockerfile, without building it.
//!
//! Each rule has an id, a line, a message and the remedy the seed teaches. Rules about what an
//! image ships only look at the stages that end up in it (the target stage and the stages it
//! is built FROM): a build stage may install compilers and keep caches, since only what is
//! copied out of it ships.

use std::collections::BTreeMap;

use serde::Serialize;
use tare_dockerfile::{Command, CopySource, Dockerfile, Instruction, ShellOrExec};

use crate::budget::OVERLAY_MAX_LAYERS;
use crate::error::Result;

mod shell;

pub use shell::commands;
use shell::{
    build_tool_image, dependency_install, is_build_tool, is_remote_archive, mentions, package_args,
    program, related, resolve,
};

/// One finding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's id, as listed in [`RULES`].
    pub rule: &'static str,
    /// 1-based line of the instruction.
    pub line: usize,
    /// What the rule found on that line.
    pub message: String,
    /// How to fix it, as one sentence.
    pub remedy: &'static str,
}

/// The rules: id and what it finds.
pub const RULES: &[(&str, &str)] = &[
    (
        "cleanup-in-later-step",
        "a RUN deletes files an earlier step of the same stage created",
    ),
    (
        "package-cache-kept",
        "apt/apk/dnf/yum caches not removed in the RUN that made them",
    ),
    (
        "apt-install-recommends",
        "apt-get install without --no-install-recommends",
    ),
    (
        "build-tools-in-final-stage",
        "compilers or SDKs in the only stage of a Dockerfile",
    ),
    (
        "add-remote-archive",
        "ADD of a remote archive (stored as it is, never unpacked)",
    ),
    (
        "copy-all-before-install",
        "COPY . before a dependency install",
    ),
    ("recursive-chown", "RUN chown -R / chmod -R of copied files"),
    ("too-many-layers", "more than 125 layers"),
    (
        "cache-mount",
        "a RUN downloads into a package cache and deletes or disables it: a cache mount keeps it out of the layer and reuses it on the next build",
    ),
];

const REMEDY_FOLD: &str = "delete in the same RUN that creates the files (`RUN make && rm -rf build`), or create them in a build stage and COPY --from only what ships";
const REMEDY_CACHE: &str = "clean up in the same RUN: `apt-get update && apt-get install -y --no-install-recommends PKG && rm -rf /var/lib/apt/lists/*`, `apk add --no-cache PKG`, `dnf install -y PKG && dnf clean all`; or use RUN --mount=type=cache";
const REMEDY_RECOMMENDS: &str =
    "`apt-get install -y --no-install-recommends PKG` (add what is really needed by name)";
const REMEDY_MULTI: &str = "use a multi-stage build: compile in a `FROM ... AS build` stage and COPY --from=build only the result into a small final stage";
const REMEDY_ADD: &str = "download, unpack and delete in one RUN (`RUN curl -fsSL URL | tar -xz -C /opt`), or ADD it in a build stage and COPY --from the unpacked files";
const REMEDY_COPY: &str = "copy the dependency manifests first (`COPY package.json package-lock.json ./`, `RUN npm ci`), then `COPY . .`, so the install layer is cached and not rebuilt on every change";
const REMEDY_CHOWN: &str = "set owner and mode while copying: `COPY --chown=app:app --chmod=755 ...`; a later chown -R/chmod -R stores every file a second time";
const REMEDY_APT_MOUNT: &str = "`RUN --mount=type=cache,target=/var/cache/apt,sharing=locked --mount=type=cache,target=/var/lib/apt,sharing=locked rm -f /etc/apt/apt.conf.d/docker-clean && apt-get update && apt-get install -y --no-install-recommends PKG` (no `rm -rf /var/lib/apt/lists/*`: the lists stay in the mount, never in the layer)";
const REMEDY_PIP_MOUNT: &str = "`RUN --mount=type=cache,target=/root/.cache/pip pip install -r requirements.txt` (without --no-cache-dir: the wheels stay in the mount, never in the layer)";
const REMEDY_NPM_MOUNT: &str = "`RUN --mount=type=cache,target=/root/.npm npm ci` (without `npm cache clean`: the cache stays in the mount, never in the layer)";
const REMEDY_APK_MOUNT: &str = "`RUN --mount=type=cache,target=/etc/apk/cache apk add PKG` (without --no-cache: the index and packages stay in the mount, never in the layer)";
const REMEDY_DNF_MOUNT: &str = "`RUN --mount=type=cache,target=/var/cache/dnf,sharing=locked dnf install -y --setopt=keepcache=1 PKG` (no `dnf clean all`: the cache stays in the mount, never in the layer)";
const REMEDY_LAYERS: &str = "merge RUN steps, use a multi-stage build, or `tare build --squash`";

/// Parses and lints Dockerfile text. `file_name` is used in errors.
pub fn lint(text: &str, file_name: &str) -> Result<Vec<Finding>> {
    let ast = tare_dockerfile::parse(text, file_name)?;
    let df = tare_dockerfile::evaluate(&ast, &BTreeMap::new(), None)?;
    Ok(lint_dockerfile(&df))
}

/// Lints an evaluated Dockerfile. Findings are sorted by line.
pub fn lint_dockerfile(df: &Dockerfile) -> Vec<Finding> {
    let mut out = Vec::new();
    let shipped = shipped_stages(df);
    let mut layers = 0usize;
    for stage in &df.stages {
        let ships = shipped.contains(&stage.index);
        if ships && stage.base_stage.is_none() && df.stages.len() == 1 {
            if let Some(tool) = build_tool_image(&stage.base) {
                out.push(Finding {
                    rule: "build-tools-in-final-stage",
                    line: stage.line,
                    message: format!(
                        "the only stage starts FROM {} ({tool}): the SDK ships with the program",
                        stage.base
                    ),
                    remedy: REMEDY_MULTI,
                });
            }
        }
        lint_stage(
            df,
            &stage.instructions,
            ships,
            &mut out,
            if ships { Some(&mut layers) } else { None },
        );
    }
    out.sort_by_key(|f| f.line);
    out
}

/// The target stage and the stages it is built on.
fn shipped_stages(df: &Dockerfile) -> Vec<usize> {
    let mut out = Vec::new();
    let mut next = Some(df.target);
    while let Some(i) = next {
        if out.contains(&i) {
            break;
        }
        out.push(i);
        next = df.stages.get(i).and_then(|s| s.base_stage);
    }
    out
}

/// What a stage has done so far.
struct Earlier {
    /// RUN scripts with their line.
    runs: Vec<(usize, String)>,
    /// COPY/ADD destinations (absolute) with their line.
    copies: Vec<(usize, String)>,
    /// Line of the first `COPY .`, when no install followed yet.
    copy_all: Option<usize>,
    /// Packages installed, with the line.
    installed: Vec<(usize, String)>,
    apt_update: Option<usize>,
    workdir: String,
}

fn lint_stage(
    df: &Dockerfile,
    instructions: &[Instruction],
    ships: bool,
    out: &mut Vec<Finding>,
    layers: Option<&mut usize>,
) {
    let mut e = Earlier {
        runs: Vec::new(),
        copies: Vec::new(),
        copy_all: None,
        installed: Vec::new(),
        apt_update: None,
        workdir: "/".to_string(),
    };
    let mut layer_count = layers;
    let single_stage = df.stages.len() == 1;
    for ins in instructions {
        let line = ins.location.start_line;
        if matches!(
            ins.command,
            Command::Run(_) | Command::Copy(_) | Command::Add(_)
        ) {
            if let Some(n) = layer_count.as_deref_mut() {
                *n += 1;
                if *n == OVERLAY_MAX_LAYERS + 1 {
                    out.push(Finding {
                        rule: "too-many-layers",
                        line,
                        message: format!(
                            "this is layer {} of the final image (base image layers not counted): \
                             more than {OVERLAY_MAX_LAYERS} cannot be mounted with overlayfs",
                            *n
                        ),
                        remedy: REMEDY_LAYERS,
                    });
                }
            }
        }
        match &ins.command {
            Command::Workdir(dir) => e.workdir = resolve(&e.workdir, dir),
            Command::Copy(c) | Command::Add(c) => {
                let is_add = matches!(ins.command, Command::Add(_));
                let dest = resolve(&e.workdir, &c.dest);
                for src in &c.sources {
                    let CopySource::Path(p) = src else { continue };
                    if is_add && ships && is_remote_archive(p) {
                        out.push(Finding {
                            rule: "add-remote-archive",
                            line,
                            message: format!(
                                "ADD {p} stores the archive as it is (remote files are never \
                                 unpacked), and unpacking it later stores it twice"
                            ),
                            remedy: REMEDY_ADD,
                        });
                    }
                    if c.from.is_none()
                        && matches!(p.as_str(), "." | "./" | "./*" | "*")
                        && e.copy_all.is_none()
                    {
                        e.copy_all = Some(line);
                    }
                }
                e.copies.push((line, dest));
            }
            Command::Run(run) => {
                let script = run_script(&run.cmd, run.shell_script());
                let cmds = commands(&script);
                if let Some(copy_line) = e.copy_all {
                    if let Some(install) = cmds.iter().find_map(|c| dependency_install(c)) {
                        out.push(Finding {
                            rule: "copy-all-before-install",
                            line: copy_line,
                            message: format!(
                                "the whole context is copied before `{install}` (line {line}): \
                                 any change to any file reinstalls every dependency"
                            ),
                            remedy: REMEDY_COPY,
                        });
                        e.copy_all = None;
                    }
                }
                let cache_mounts: Vec<&str> = run
                    .mounts
                    .iter()
                    .filter(|m| matches!(m.kind, tare_dockerfile::MountKind::Cache))
                    .map(|m| m.target.as_str())
                    .collect();
                // Every stage: a cache mount speeds up a build stage as much as the last one.
                for (message, remedy) in cache_mount_remedies(&e.workdir, &cmds, &cache_mounts) {
                    out.push(Finding {
                        rule: "cache-mount",
                        line,
                        message,
                        remedy,
                    });
                }
                if ships {
                    lint_run(
                        &mut e,
                        line,
                        &script,
                        &cmds,
                        &cache_mounts,
                        single_stage,
                        out,
                    );
                }
                e.runs.push((line, script));
            }
            _ => {}
        }
    }
}

fn run_script(cmd: &ShellOrExec, heredoc_script: Option<String>) -> String {
    match cmd {
        ShellOrExec::Shell(_) => heredoc_script.unwrap_or_default(),
        ShellOrExec::Exec(args) => match args.as_slice() {
            [sh, c, script, ..] if sh.ends_with("sh") && c == "-c" => script.clone(),
            _ => args.join(" "),
        },
    }
}

fn lint_run(
    e: &mut Earlier,
    line: usize,
    script: &str,
    cmds: &[Vec<String>],
    cache_mounts: &[&str],
    single_stage: bool,
    out: &mut Vec<Finding>,
) {
    let mut push = |rule, message: String, remedy| {
        out.push(Finding {
            rule,
            line,
            message,
            remedy,
        })
    };
    let mut packages: Vec<String> = Vec::new();
    let mut apt_updates = false;
    let mut apt_installs = false;
    let mut cleans_apt = false;
    let mut apk_cache = false;
    let mut yum_cache: Option<&'static str> = None;
    let mut yum_clean = false;
    let mut removed: Vec<(String, String)> = Vec::new(); // (what, as written)
    let mut recursive_owner: Vec<(String, String)> = Vec::new(); // (command, path)
    for c in cmds {
        let Some((prog, args, sub)) = program(c) else {
            continue;
        };
        match prog {
            "apt-get" | "apt" => match sub {
                Some("update") => apt_updates = true,
                Some("install") => {
                    apt_installs = true;
                    let recommends_off = args.iter().any(|a| {
                        a == "--no-install-recommends"
                            || a.contains("Install-Recommends=false")
                            || a.contains("Install-Recommends=0")
                    });
                    if !recommends_off {
                        push(
                            "apt-install-recommends",
                            format!("`{prog} install` without --no-install-recommends also installs every recommended package"),
                            REMEDY_RECOMMENDS,
                        );
                    }
                    packages.extend(package_args(args, "install"));
                }
                Some("purge" | "remove" | "autoremove") => {
                    for p in package_args(args, sub.unwrap_or_default()) {
                        removed.push((format!("package {p}"), p));
                    }
                }
                Some("clean") => removed.push(("the apt cache".into(), "apt-get clean".into())),
                _ => {}
            },
            "apk" => match sub {
                Some("add") => {
                    if !args.iter().any(|a| a == "--no-cache") {
                        apk_cache = true;
                    }
                    packages.extend(package_args(args, "add"));
                }
                Some("del") => {
                    for p in package_args(args, "del") {
                        removed.push((format!("package {p}"), p));
                    }
                }
                _ => {}
            },
            "dnf" | "yum" | "microdnf" => match sub {
                Some("install") => {
                    yum_cache = Some(if prog == "yum" { "yum" } else { "dnf" });
                    packages.extend(package_args(args, "install"));
                }
                Some("clean") => yum_clean = true,
                Some("remove" | "erase") => {
                    for p in package_args(args, sub.unwrap_or_default()) {
                        removed.push((format!("package {p}"), p));
                    }
                }
                _ => {}
            },
            "rm" => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let abs = resolve(&e.workdir, a);
                    if abs.starts_with("/var/lib/apt/lists") {
                        cleans_apt = true;
                    }
                    if abs.starts_with("/var/cache/apk") {
                        apk_cache = false;
                    }
                    if abs.starts_with("/var/cache/dnf") || abs.starts_with("/var/cache/yum") {
                        yum_clean = true;
                    }
                    removed.push((abs, a.clone()));
                }
            }
            "chown" | "chmod"
                if args.iter().any(|a| {
                    a == "-R"
                        || a == "--recursive"
                        || (a.starts_with('-') && !a.starts_with("--") && a.contains('R'))
                }) =>
            {
                let operands: Vec<&String> = args.iter().filter(|a| !a.starts_with('-')).collect();
                for p in operands.iter().skip(1) {
                    recursive_owner.push((prog.to_string(), p.to_string()));
                }
            }
            _ => {}
        }
    }
    let has_cache_mount = |prefix: &str| cache_mounts.iter().any(|m| m.starts_with(prefix));

    if (apt_updates || apt_installs) && !cleans_apt && !has_cache_mount("/var/lib/apt") {
        push(
            "package-cache-kept",
            "the apt package lists (/var/lib/apt/lists, tens of MB) stay in this layer".into(),
            REMEDY_CACHE,
        );
    }
    if apk_cache && !has_cache_mount("/var/cache/apk") {
        push(
            "package-cache-kept",
            "`apk add` without --no-cache keeps the index in /var/cache/apk".into(),
            REMEDY_CACHE,
        );
    }
    if let Some(tool) = yum_cache {
        if !yum_clean && !has_cache_mount("/var/cache") {
            push(
                "package-cache-kept",
                format!("`{tool} install` without `{tool} clean all` keeps the package cache in /var/cache/{tool}"),
                REMEDY_CACHE,
            );
        }
    }
    if single_stage {
        let tools: Vec<&String> = packages.iter().filter(|p| is_build_tool(p)).collect();
        if !tools.is_empty() {
            let names: Vec<&str> = tools.iter().map(|s| s.as_str()).collect();
            push(
                "build-tools-in-final-stage",
                format!(
                    "{} installed in the only stage: the compiler ships with the program",
                    names.join(", ")
                ),
                REMEDY_MULTI,
            );
        }
    }

    // Cleanup of what earlier steps made.
    for (what, written) in &removed {
        if let Some(name) = what.strip_prefix("package ") {
            if let Some((l, _)) = e.installed.iter().find(|(_, p)| p == name) {
                push(
                    "cleanup-in-later-step",
                    format!("removes {name}, installed at line {l}: its files stay in that layer"),
                    REMEDY_FOLD,
                );
            }
            continue;
        }
        if what == "the apt cache" || what.starts_with("/var/lib/apt/lists") {
            if let Some(l) = e.apt_update {
                if !apt_updates {
                    push(
                        "cleanup-in-later-step",
                        format!(
                            "`{written}` cleans what line {l} downloaded, but that layer keeps it"
                        ),
                        REMEDY_FOLD,
                    );
                }
            }
            continue;
        }
        let made_at = e
            .runs
            .iter()
            .find(|(_, s)| mentions(s, what) || mentions(s, written))
            .map(|(l, _)| *l)
            .or_else(|| {
                e.copies
                    .iter()
                    .find(|(_, d)| related(d, what))
                    .map(|(l, _)| *l)
            });
        if let Some(l) = made_at {
            push(
                "cleanup-in-later-step",
                format!("`rm {written}` deletes what line {l} created: the bytes stay in the layer of line {l}"),
                REMEDY_FOLD,
            );
        }
    }
    for (prog, path) in &recursive_owner {
        let abs = resolve(&e.workdir, path);
        if let Some((l, _)) = e.copies.iter().find(|(_, d)| related(d, &abs)) {
            push(
                "recursive-chown",
                format!("`{prog} -R {path}` rewrites the files copied at line {l}: they are stored twice"),
                REMEDY_CHOWN,
            );
        }
    }
    if apt_updates && e.apt_update.is_none() {
        e.apt_update = Some(line);
    }
    e.installed.extend(packages.into_iter().map(|p| (line, p)));
    let _ = script;
}

/// The `cache-mount` rule: package managers whose download cache a RUN throws away (deletes
/// it, or tells the tool not to keep one) while no cache mount covers it. Each gets the
/// `--mount=type=cache,...` that keeps the downloads across builds and out of the layer.
fn cache_mount_remedies(
    workdir: &str,
    cmds: &[Vec<String>],
    cache_mounts: &[&str],
) -> Vec<(String, &'static str)> {
    let mounted = |prefix: &str| {
        cache_mounts
            .iter()
            .any(|m| m.starts_with(prefix) || prefix.starts_with(m.trim_end_matches('/')))
    };
    let mut apt_download = false;
    let mut apt_dropped: Option<String> = None;
    let mut dnf_download = false;
    let mut dnf_dropped: Option<String> = None;
    let mut out: Vec<(String, &'static str)> = Vec::new();
    for c in cmds {
        let Some((prog, args, sub)) = program(c) else {
            continue;
        };
        let written = c.join(" ");
        match (prog, sub) {
            ("apt-get" | "apt", Some("update" | "install" | "upgrade" | "dist-upgrade")) => {
                apt_download = true;
            }
            ("apt-get" | "apt", Some("clean")) => apt_dropped = Some(written),
            ("dnf" | "yum" | "microdnf", Some("install" | "upgrade" | "update")) => {
                dnf_download = true;
            }
            ("dnf" | "yum" | "microdnf", Some("clean")) => dnf_dropped = Some(written),
            ("rm", _) => {
                for a in args.iter().filter(|a| !a.starts_with('-')) {
                    let abs = resolve(workdir, a);
                    if abs.starts_with("/var/lib/apt/lists") || abs.starts_with("/var/cache/apt") {
                        apt_dropped = Some(written.clone());
                    }
                    if abs.starts_with("/var/cache/dnf") || abs.starts_with("/var/cache/yum") {
                        dnf_dropped = Some(written.clone());
                    }
                }
            }
            ("pip" | "pip3", Some("install")) | ("python" | "python3", Some("pip"))
                if args.iter().any(|a| a == "--no-cache-dir") && !mounted("/root/.cache/pip") =>
            {
                out.push((
                    format!("`{written}` downloads every package again on each build"),
                    REMEDY_PIP_MOUNT,
                ));
            }
            ("npm", Some("cache"))
                if args.iter().any(|a| a == "clean") && !mounted("/root/.npm") =>
            {
                out.push((
                    format!("`{written}` deletes the npm cache that the next build would reuse"),
                    REMEDY_NPM_MOUNT,
                ));
            }
            ("apk", Some("add"))
                if args.iter().any(|a| a == "--no-cache")
                    && !mounted("/etc/apk/cache")
                    && !mounted("/var/cache/apk") =>
            {
                out.push((
                    format!("`{written}` downloads the index and packages again on each build"),
                    REMEDY_APK_MOUNT,
                ));
            }
            _ => {}
        }
    }
    if let Some(written) = apt_dropped.filter(|_| apt_download) {
        if !mounted("/var/lib/apt") && !mounted("/var/cache/apt") {
            out.push((
                format!("`{written}` deletes the package lists and downloads this RUN fetched: every build fetches them again"),
                REMEDY_APT_MOUNT,
            ));
        }
    }
    if let Some(written) = dnf_dropped.filter(|_| dnf_download) {
        if !mounted("/var/cache/dnf") && !mounted("/var/cache/yum") {
            out.push((
                format!("`{written}` deletes the package cache this RUN filled: every build downloads it again"),
                REMEDY_DNF_MOUNT,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> Vec<(usize, &'static str)> {
        lint(text, "Dockerfile")
            .unwrap()
            .into_iter()
            .map(|f| (f.line, f.rule))
            .collect()
    }

    #[test]
    fn commands_split_at_operators_and_drop_quotes() {
        let c =
            commands("FOO=1 apt-get install -y 'a b' && rm -rf /x/* ; echo \"hi there\" | wc -l");
        assert_eq!(
            c,
            vec![
                vec!["apt-get", "install", "-y", "a b"],
                vec!["rm", "-rf", "/x/*"],
                vec!["echo", "hi there"],
                vec!["wc", "-l"],
            ]
        );
    }

    #[test]
    fn seed_waste_dockerfile_finds_the_later_rm() {
        let text = "FROM debian:bookworm\nRUN dd if=/dev/zero of=/bigfile bs=1M count=10\nRUN rm /bigfile\nRUN echo done\n";
        assert_eq!(rules(text), vec![(3, "cleanup-in-later-step")]);
    }

    #[test]
    fn apt_rules_fire_only_in_shipped_stages() {
        let single = "FROM debian\nRUN apt-get update && apt-get install -y build-essential\n";
        assert_eq!(
            rules(single),
            vec![
                (2, "apt-install-recommends"),
                (2, "package-cache-kept"),
                (2, "build-tools-in-final-stage"),
            ]
        );
        let multi = "FROM debian AS build\nRUN apt-get update && apt-get install -y gcc\nFROM debian\nCOPY --from=build /x /x\n";
        assert!(rules(multi).is_empty());
        let clean = "FROM debian\nRUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n";
        assert_eq!(rules(clean), vec![(2, "cache-mount")]);
    }

    #[test]
    fn apk_dnf_cache_rules() {
        assert_eq!(
            rules("FROM alpine\nRUN apk add curl\n"),
            vec![(2, "package-cache-kept")]
        );
        assert_eq!(
            rules("FROM alpine\nRUN apk add --no-cache curl\n"),
            vec![(2, "cache-mount")]
        );
        assert_eq!(
            rules("FROM fedora\nRUN dnf install -y curl\n"),
            vec![(2, "package-cache-kept")]
        );
        assert_eq!(
            rules("FROM fedora\nRUN dnf install -y curl && dnf clean all\n"),
            vec![(2, "cache-mount")]
        );
    }

    #[test]
    fn remote_archive_copy_all_and_chown_rules() {
        let text = "FROM node:20\nWORKDIR /app\nADD https://example.com/x.tar.gz /opt/\nCOPY . .\nRUN npm ci\nRUN chown -R node:node /app\n";
        assert_eq!(
            rules(text),
            vec![
                (3, "add-remote-archive"),
                (4, "copy-all-before-install"),
                (6, "recursive-chown"),
            ]
        );
        assert!(rules("FROM node:20\nADD https://example.com/x.txt /opt/\n").is_empty());
    }

    #[test]
    fn deleting_a_download_cache_suggests_a_cache_mount() {
        let text = "FROM python:3 AS build\n\
                    RUN apt-get update && apt-get install -y --no-install-recommends gcc && rm -rf /var/lib/apt/lists/*\n\
                    RUN pip install --no-cache-dir -r requirements.txt\n\
                    FROM node:20\n\
                    RUN npm ci && npm cache clean --force\n\
                    RUN apk add --no-cache curl\n";
        let found = lint(text, "Dockerfile").unwrap();
        let mounts: Vec<(usize, &str)> = found
            .iter()
            .filter(|f| f.rule == "cache-mount")
            .map(|f| (f.line, f.remedy))
            .collect();
        assert_eq!(mounts.len(), 4, "{found:?}");
        assert_eq!(mounts[0].0, 2);
        assert!(mounts[0]
            .1
            .contains("--mount=type=cache,target=/var/lib/apt,sharing=locked"));
        assert_eq!(mounts[1].0, 3);
        assert!(mounts[1]
            .1
            .contains("--mount=type=cache,target=/root/.cache/pip"));
        assert_eq!(mounts[2].0, 5);
        assert!(mounts[2].1.contains("--mount=type=cache,target=/root/.npm"));
        assert_eq!(mounts[3].0, 6);
        assert!(mounts[3]
            .1
            .contains("--mount=type=cache,target=/etc/apk/cache"));
        // With the mount in place, or no cache thrown away, nothing is suggested.
        let mounted = "FROM debian\nRUN --mount=type=cache,target=/var/lib/apt --mount=type=cache,target=/var/cache/apt apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*\n\
                       RUN --mount=type=cache,target=/root/.cache/pip pip install --no-cache-dir x\n";
        assert!(!rules(mounted).iter().any(|(_, r)| *r == "cache-mount"));
        assert!(rules("FROM debian\nRUN rm -rf /var/lib/apt/lists/*\n")
            .iter()
            .all(|(_, r)| *r != "cache-mount"));
    }

    #[test]
    fn package_removed_in_a_later_run_is_a_cleanup_finding() {
        let text = "FROM alpine\nRUN apk add --no-cache gcc\nRUN apk del gcc\n";
        assert_eq!(
            rules(text),
            vec![
                (2, "cache-mount"),
                (2, "build-tools-in-final-stage"),
                (3, "cleanup-in-later-step")
            ]
        );
    }

    #[test]
    fn more_than_125_layers_is_a_finding() {
        let mut text = String::from("FROM busybox\n");
        for i in 0..126 {
            text.push_str(&format!("RUN echo {i}\n"));
        }
        assert_eq!(rules(&text), vec![(127, "too-many-layers")]);
    }

    #[test]
    fn single_stage_on_an_sdk_image_is_a_finding() {
        assert_eq!(
            rules("FROM golang:1.22\nCOPY main.go .\nRUN go build\n"),
            vec![(1, "build-tools-in-final-stage")]
        );
    }
}
