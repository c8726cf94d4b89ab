//! [`Ast`] to [`Dockerfile`]: stages, global ARGs, FROM expansion, `--target`, warnings; and
//! [`Stage::expand`], which substitutes variables once the base image's environment is known.

use std::collections::{BTreeMap, BTreeSet};

use crate::ast::{Ast, Node};
use crate::error::Source;
use crate::flags::Kind;
use crate::instructions::{self, Cx};
use crate::model::{ArgScope, Command, CopySource, Dockerfile, Instruction, Stage, Warning};
use crate::shell::{expand_word, expand_words, Lexer};
use crate::Error;

/// Build args Docker accepts without an ARG declaration and passes to RUN.
pub(crate) const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// The platform tare runs on, in BuildKit's notation (`linux/amd64`, `linux/arm/v7`).
pub(crate) fn host_platform() -> String {
    match std::env::consts::ARCH {
        "x86_64" => "linux/amd64".to_string(),
        "aarch64" => "linux/arm64".to_string(),
        "arm" => "linux/arm/v7".to_string(),
        "x86" => "linux/386".to_string(),
        "powerpc64" => "linux/ppc64le".to_string(),
        other => format!("linux/{other}"),
    }
}

/// `os/arch[/variant]` split as BuildKit normalises it for the platform ARGs: `arm64/v8` is
/// `arm64` without a variant, and `arm` without a variant is `arm/v7`.
fn split_platform(platform: &str) -> (String, String, String) {
    let mut parts = platform.splitn(3, '/');
    let os = parts.next().unwrap_or_default().to_string();
    let arch = parts.next().unwrap_or_default().to_string();
    let variant = parts.next().unwrap_or_default().to_string();
    let variant = match (arch.as_str(), variant.as_str()) {
        ("arm64", "v8") => String::new(),
        ("arm", "") => "v7".to_string(),
        _ => variant,
    };
    (os, arch, variant)
}

/// The automatic platform ARGs (`BUILDPLATFORM`, `TARGETARCH`, ...) when building for
/// `target` (`linux/arm64`) on this machine. A `--build-arg` of the same name overrides each.
pub(crate) fn platform_args_for(target: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (prefix, platform) in [("BUILD", host_platform()), ("TARGET", target.to_string())] {
        let (os, arch, variant) = split_platform(&platform);
        let full = if variant.is_empty() {
            format!("{os}/{arch}")
        } else {
            format!("{os}/{arch}/{variant}")
        };
        out.push((format!("{prefix}PLATFORM"), full));
        out.push((format!("{prefix}OS"), os));
        out.push((format!("{prefix}ARCH"), arch));
        out.push((format!("{prefix}VARIANT"), variant));
    }
    out
}

fn builtin_args(
    build_args: &BTreeMap<String, String>,
    target_platform: Option<&str>,
) -> BTreeMap<String, String> {
    platform_args_for(target_platform.unwrap_or(&host_platform()))
        .into_iter()
        .map(|(k, v)| {
            let v = build_args.get(&k).cloned().unwrap_or(v);
            (k, v)
        })
        .collect()
}

/// Evaluates a parsed Dockerfile: splits it into stages, resolves the global ARGs (with
/// `build_args` overriding defaults) and expands every FROM with them, checks every
/// instruction and its flags, and keeps the stages up to `target` (default: the last).
pub fn evaluate(
    ast: &Ast,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
) -> Result<Dockerfile, Error> {
    evaluate_for_platform(ast, build_args, target, None)
}

/// [`evaluate`] for a build whose target platform is `target_platform` (`linux/arm64`; `None`
/// is this machine's): the `TARGET*` ARGs describe it, the `BUILD*` ARGs this machine.
/// Whether a `# syntax=` directive names a labs frontend (`docker/dockerfile:1.7-labs`).
fn labs_syntax(syntax: Option<&str>) -> bool {
    syntax.is_some_and(|s| s.ends_with("-labs") || s.contains("-labs@"))
}

/// [`evaluate`] for a build whose target platform is `target_platform` (an OCI platform such
/// as `linux/arm64`): the automatic platform ARGs (`TARGETPLATFORM`, `TARGETARCH`, ...) take
/// their values from it instead of the host.
pub fn evaluate_for_platform(
    ast: &Ast,
    build_args: &BTreeMap<String, String>,
    target: Option<&str>,
    target_platform: Option<&str>,
) -> Result<Dockerfile, Error> {
    let source = &ast.source;
    let escape = ast.directives.escape;
    let builtins = builtin_args(build_args, target_platform);
    let mut global_args: Vec<(String, Option<String>)> = Vec::new();
    let mut global: BTreeMap<String, String> = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    let mut declared: BTreeSet<String> = BTreeSet::new();
    let mut duplicates: Vec<Warning> = Vec::new();

    for node in &ast.children {
        let name = node.name();
        if name == "from" {
            let stage = from(node, source, &global, &builtins, &stages, escape)?;
            // BuildKit 0.25 builds a Dockerfile whose stage names repeat, with a lint warning
            // (DuplicateStageName); a name then means the last stage of that name defined
            // before the reference (`FROM name`, `--from=name`) or in the file (`--target`).
            if let Some(n) = &stage.name {
                if stages.iter().any(|s| s.name.as_ref() == Some(n)) {
                    duplicates.push(Warning {
                        line: Some(stage.line),
                        message: format!(
                            "DuplicateStageName: duplicate stage name '{n}', stage names should be unique"
                        ),
                    });
                }
            }
            stages.push(stage);
            continue;
        }
        let instruction = instructions::convert(node, source)?;
        if let Command::Copy(copy) = &instruction.command {
            // Dockerfile 1.19 has --parents only in its labs channel: BuildKit refuses the
            // flag unless the syntax directive names a `-labs` frontend.
            if copy.parents && !labs_syntax(ast.directives.syntax.as_deref()) {
                return Err(Error::at(
                    source,
                    node.span.0,
                    node.span.1,
                    "COPY --parents is a labs feature in Dockerfile 1.19: start the Dockerfile \
                     with `# syntax=docker/dockerfile:1-labs` to use it",
                ));
            }
        }
        match stages.last_mut() {
            Some(stage) => {
                if let Command::Arg(args) = &instruction.command {
                    declared.extend(args.iter().map(|(k, _)| k.clone()));
                }
                stage.instructions.push(instruction);
            }
            None => {
                let Command::Arg(args) = &instruction.command else {
                    return Err(Error::at(
                        source,
                        node.span.0,
                        node.span.1,
                        format!(
                            "{} is not allowed before the first FROM (only ARG is)",
                            node.keyword.to_ascii_uppercase()
                        ),
                    ));
                };
                for (key, default) in args {
                    let lookup = |n: &str| global.get(n).or_else(|| builtins.get(n)).cloned();
                    let key =
                        expand_word(key, &lookup, escape).map_err(|e| located(source, node, e))?;
                    let value = match build_args.get(&key) {
                        Some(v) => Some(v.clone()),
                        None => match default {
                            Some(d) => Some(
                                expand_word(d, &lookup, escape)
                                    .map_err(|e| located(source, node, e))?,
                            ),
                            None => None,
                        },
                    };
                    declared.insert(key.clone());
                    if let Some(v) = &value {
                        global.insert(key.clone(), v.clone());
                    }
                    global_args.push((key, value));
                }
            }
        }
    }
    if stages.is_empty() {
        return Err(Error::at(
            source,
            0,
            source.text.len(),
            "no build stage in the Dockerfile (missing FROM)",
        ));
    }
    let target_index = match target {
        None => stages.len() - 1,
        Some(t) => {
            let lower = t.to_ascii_lowercase();
            stages
                .iter()
                .rposition(|s| s.name.as_deref() == Some(lower.as_str()))
                .ok_or_else(|| Error::UnknownTarget {
                    name: t.to_string(),
                })?
        }
    };
    stages.truncate(target_index + 1);
    let scope = ArgScope {
        build_args: build_args.clone(),
        global,
        builtins: builtins.clone(),
    };
    for i in 0..stages.len() {
        stages[i].scope = scope.clone();
        if let Some(b) = stages[i].base_stage {
            let base = &stages[b];
            let mut inherited = base.inherited_args.clone();
            inherited.extend(
                base.instructions
                    .iter()
                    .filter(|ins| matches!(ins.command, Command::Arg(_)))
                    .cloned(),
            );
            stages[i].inherited_args = inherited;
        }
    }

    let mut warnings = ast.warnings.clone();
    warnings.extend(duplicates);
    let unused: Vec<&str> = build_args
        .keys()
        .map(String::as_str)
        .filter(|k| {
            !declared.contains(*k)
                && !PROXY_ARGS.contains(k)
                && !builtins.contains_key(*k)
                // The build's own epoch (tare-build's `epoch`), used whether declared or not.
                && *k != "SOURCE_DATE_EPOCH"
        })
        .collect();
    if !unused.is_empty() {
        warnings.push(Warning {
            line: None,
            message: format!(
                "one or more build-args [{}] were not consumed",
                unused.join(" ")
            ),
        });
    }
    Ok(Dockerfile {
        directives: ast.directives.clone(),
        global_args,
        stages,
        target: target_index,
        warnings,
    })
}

fn located(source: &Source, node: &Node, e: Error) -> Error {
    Error::at(source, node.span.0, node.span.1, e.message())
}

/// `FROM [--platform=p] image [AS name]`.
fn from(
    node: &Node,
    source: &Source,
    global: &BTreeMap<String, String>,
    builtins: &BTreeMap<String, String>,
    stages: &[Stage],
    escape: char,
) -> Result<Stage, Error> {
    let cx = Cx { node, source };
    let flags = cx.flags(&[("platform", Kind::String)])?;
    let (image, name) = match node.args.as_slice() {
        [image] => (image, None),
        [image, as_, name] if as_.eq_ignore_ascii_case("as") => {
            (image, Some(name.to_ascii_lowercase()))
        }
        _ => return Err(cx.error("FROM requires either one or three arguments")),
    };
    if let Some(n) = &name {
        let valid = n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars().all(|c| {
                c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.')
            });
        if !valid {
            return Err(cx.error(format!(
                "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
            )));
        }
    }
    let lookup = |n: &str| global.get(n).or_else(|| builtins.get(n)).cloned();
    let base = expand_word(image, &lookup, escape).map_err(|e| located(source, node, e))?;
    if base.is_empty() {
        return Err(cx.error(format!("base name ({image}) should not be blank")));
    }
    let platform = match flags.string("platform") {
        Some(p) => Some(expand_word(&p, &lookup, escape).map_err(|e| located(source, node, e))?),
        None => None,
    };
    let lower = base.to_ascii_lowercase();
    // The last stage of that name defined so far, as BuildKit binds `FROM name` when it
    // adds the stage (names may repeat: a lint warning, see `evaluate`).
    let base_stage = stages
        .iter()
        .rposition(|s| s.name.as_deref() == Some(lower.as_str()));
    Ok(Stage {
        index: stages.len(),
        name,
        base,
        base_stage,
        platform,
        line: node.start_line,
        original: node.original.trim().to_string(),
        instructions: Vec::new(),
        scope: ArgScope::default(),
        inherited_args: Vec::new(),
        source: source.clone(),
        escape,
    })
}

impl Stage {
    /// Expands the stage's instructions in order, the way Docker does while building: each
    /// instruction sees the variables set before it: `base_env` (the base image's `Env`, as
    /// `KEY=value` split in pairs; for `FROM <earlier stage>`, that stage's resulting env), then the stage's ENVs and valued ARGs in order, a later
    /// assignment replacing an earlier one (so an ENV after an ARG of the same name wins, as
    /// in BuildKit). An ARG takes its value from `--build-arg`, else its default, else the
    /// global ARG of that name, else the automatic platform ARG of that name.
    ///
    /// Expanded: ENV, ARG, LABEL, EXPOSE (also split into words), VOLUME, USER, WORKDIR,
    /// STOPSIGNAL, COPY/ADD (sources, destination, `--from --chown --chmod --checksum
    /// --exclude`, unquoted heredoc bodies) and RUN `--mount` values. RUN, CMD, ENTRYPOINT,
    /// SHELL, HEALTHCHECK, ONBUILD and MAINTAINER stay as written: the shell expands those.
    /// Each RUN also gets `build_args`: the variables an ARG set last (plus proxy build args),
    /// which its process sees on top of the image env but which are not stored in the image.
    ///
    /// Instructions from the base image's ONBUILD triggers can be put in front of
    /// `instructions` (see [`crate::parse_triggers`]) before calling this.
    pub fn expand(&self, base_env: &[(String, String)]) -> Result<Vec<Instruction>, Error> {
        // One set of variables, as in BuildKit's LLB state: the base image's env, then every
        // ENV and valued ARG in order, the later assignment winning. `from_arg` remembers
        // which names an ARG set last: those reach RUN but not the image config.
        let mut vars: BTreeMap<String, String> = base_env.iter().cloned().collect();
        let mut from_arg: BTreeSet<String> = BTreeSet::new();
        // Every ARG name the stage declared, in order, each once (the RUN history's list).
        let mut declared: Vec<String> = Vec::new();
        let builtins = &self.scope.builtins;
        // The build args of the stages this one is built from come first; the base's env,
        // where it holds the same name, wins.
        for ins in &self.inherited_args {
            let Command::Arg(list) = &ins.command else {
                continue;
            };
            let fail = |e: Error| Error::at(&self.source, ins.span.0, ins.span.1, e.message());
            for (k, v) in list {
                let lookup = |n: &str| vars.get(n).cloned();
                let k = expand_word(k, &lookup, self.escape).map_err(fail)?;
                let default = match v {
                    Some(v) => Some(expand_word(v, &lookup, self.escape).map_err(fail)?),
                    None => None,
                };
                declare(&mut declared, &k);
                if let Some(v) = self.arg_value(&k, default, builtins) {
                    if !base_env.iter().any(|(name, _)| *name == k) {
                        from_arg.insert(k.clone());
                        vars.insert(k, v);
                    }
                }
            }
        }
        let mut out = Vec::with_capacity(self.instructions.len());
        for ins in &self.instructions {
            let lookup = |n: &str| vars.get(n).cloned();
            let fail = |e: Error| Error::at(&self.source, ins.span.0, ins.span.1, e.message());
            let word = |w: &str| expand_word(w, &lookup, self.escape).map_err(fail);
            let opt = |w: &Option<String>| w.as_deref().map(word).transpose();
            let mut ins = ins.clone();
            match &mut ins.command {
                Command::Env(pairs) | Command::Label(pairs) => {
                    for (k, v) in pairs.iter_mut() {
                        *k = word(k)?;
                        *v = word(v)?;
                    }
                }
                Command::Arg(list) => {
                    for (k, v) in list.iter_mut() {
                        *k = word(k)?;
                        let default = opt(v)?;
                        *v = self.arg_value(k, default, builtins);
                    }
                }
                Command::Expose(ports) => {
                    let mut expanded = Vec::new();
                    for p in ports.iter() {
                        for word in expand_words(p, &lookup, self.escape).map_err(fail)? {
                            expanded.extend(
                                port_spec(&word).map_err(|m| {
                                    Error::at(&self.source, ins.span.0, ins.span.1, m)
                                })?,
                            );
                        }
                    }
                    *ports = expanded;
                }
                Command::Volume(list) => {
                    for v in list.iter_mut() {
                        *v = word(v)?;
                    }
                }
                Command::User(s) | Command::Workdir(s) | Command::StopSignal(s) => *s = word(s)?,
                Command::Copy(c) | Command::Add(c) => {
                    for src in c.sources.iter_mut() {
                        match src {
                            CopySource::Path(p) => *p = word(p)?,
                            CopySource::Heredoc(h) if h.expand => {
                                let lexer = Lexer {
                                    skip_process_quotes: true,
                                    ..Lexer::new('\\')
                                };
                                h.content = lexer.process(&h.content, &lookup).map_err(fail)?.0;
                            }
                            CopySource::Heredoc(_) => {}
                        }
                    }
                    c.dest = word(&c.dest)?;
                    c.from = opt(&c.from)?;
                    c.chown = opt(&c.chown)?;
                    c.chmod = opt(&c.chmod)?;
                    c.checksum = opt(&c.checksum)?;
                    for e in c.exclude.iter_mut() {
                        *e = word(e)?;
                    }
                }
                Command::Run(run) => {
                    let mut expand =
                        |v: &str| expand_word(v, &lookup, self.escape).map_err(|e| e.message());
                    run.mounts = instructions::parse_mounts(&run.mount_specs, &mut expand)
                        .map_err(|m| Error::at(&self.source, ins.span.0, ins.span.1, m))?;
                    let mut visible: BTreeMap<String, String> = self
                        .scope
                        .build_args
                        .iter()
                        .filter(|(k, _)| PROXY_ARGS.contains(&k.as_str()) && !vars.contains_key(*k))
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect();
                    visible.extend(
                        from_arg
                            .iter()
                            .filter_map(|k| vars.get(k).map(|v| (k.clone(), v.clone()))),
                    );
                    run.build_args = visible.into_iter().collect();
                    run.history_args = declared
                        .iter()
                        .map(|k| (k.clone(), vars.get(k).cloned().unwrap_or_default()))
                        .collect();
                }
                Command::Cmd(_)
                | Command::Entrypoint(_)
                | Command::Shell(_)
                | Command::Healthcheck(_)
                | Command::Onbuild(_)
                | Command::Maintainer(_) => {}
            }
            match &ins.command {
                Command::Env(pairs) => {
                    for (k, v) in pairs {
                        from_arg.remove(k);
                        vars.insert(k.clone(), v.clone());
                    }
                }
                Command::Arg(list) => {
                    for (k, v) in list {
                        declare(&mut declared, k);
                        if let Some(v) = v {
                            from_arg.insert(k.clone());
                            vars.insert(k.clone(), v.clone());
                        }
                    }
                }
                _ => {}
            }
            out.push(ins);
        }
        Ok(out)
    }

    /// An ARG's value: `--build-arg`, else its default, else (without a default) the global
    /// ARG of that name, else the automatic platform ARG of that name.
    fn arg_value(
        &self,
        name: &str,
        default: Option<String>,
        builtins: &BTreeMap<String, String>,
    ) -> Option<String> {
        if let Some(v) = self.scope.build_args.get(name) {
            return Some(v.clone());
        }
        match default {
            Some(d) => Some(d),
            None => self.scope.global.get(name).cloned(),
        }
        .or_else(|| builtins.get(name).cloned())
    }
}

/// Adds ARG `name` to `declared` unless it is there already.
fn declare(declared: &mut Vec<String>, name: &str) {
    if !declared.iter().any(|d| d == name) {
        declared.push(name.to_string());
    }
}

/// One EXPOSE word as the `port/protocol` keys it stands for, as BuildKit reads it (Docker's
/// `nat.ParsePortSpec`): a range `8000-8002` is one key per port, the protocol defaults to
/// tcp, and `ip:host:container` exposes the container port.
pub(crate) fn port_spec(word: &str) -> Result<Vec<String>, String> {
    let (port, proto) = match word.rsplit_once('/') {
        Some((port, proto)) => (port, proto.to_ascii_lowercase()),
        None => (word, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let container = port.rsplit(':').next().unwrap_or(port);
    let number = |s: &str| -> Result<u16, String> {
        s.parse::<u16>()
            .map_err(|_| format!("invalid containerPort: {container}"))
    };
    let (start, end) = match container.split_once('-') {
        Some((a, b)) => (number(a)?, number(b)?),
        None => {
            let p = number(container)?;
            (p, p)
        }
    };
    if end < start {
        return Err(format!(
            "invalid range specified for containerPort: {container}"
        ));
    }
    Ok((start..=end).map(|p| format!("{p}/{proto}")).collect())
}

#[cfg(test)]
#[path = "evaluate_tests.rs"]
mod tests;
