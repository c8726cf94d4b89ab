//! The typed model: what the builder consumes.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::ast::Heredoc;
use crate::error::Source;

/// A Dockerfile after evaluation: global ARGs resolved, stages split and named, every
/// instruction checked and typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The parser directives, as [`crate::Ast::directives`].
    pub directives: crate::Directives,
    /// ARGs declared before the first FROM, with their values after `--build-arg` overrides
    /// (`None`: declared without a value).
    pub global_args: Vec<(String, Option<String>)>,
    /// The stages up to and including the target, in file order.
    pub stages: Vec<Stage>,
    /// Index of the stage to build (`--target`, or the last stage).
    pub target: usize,
    /// The parser's and the evaluation's findings (unused build args, ...), in file order.
    pub warnings: Vec<Warning>,
}

impl Dockerfile {
    /// The stage called `name` (stage names are lower case), or with that index.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

/// A non-fatal finding (an unused `--build-arg`, an empty continuation line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// 1-based line, when the warning belongs to one.
    pub line: Option<usize>,
    /// What was found, as BuildKit words it.
    pub message: String,
}

/// One `FROM` and the instructions after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The stage's position in the file (0 is the first FROM), as `--from=0` names it.
    pub index: usize,
    /// `AS name`, lower-cased.
    pub name: Option<String>,
    /// The FROM image after expansion with the global ARGs: an image reference, `scratch`,
    /// or the name of an earlier stage (then `base_stage` is set).
    pub base: String,
    /// Index of the earlier stage named by `base`.
    pub base_stage: Option<usize>,
    /// `--platform`, expanded with the global ARGs.
    pub platform: Option<String>,
    /// 1-based line of the FROM.
    pub line: usize,
    /// The FROM instruction as written.
    pub original: String,
    /// The instructions after FROM, not yet expanded: see [`Stage::expand`].
    pub instructions: Vec<Instruction>,
    /// What [`Stage::expand`] needs to resolve ARGs: the build args and the global ARG values.
    pub(crate) scope: ArgScope,
    /// The ARG instructions of the stages this one is built `FROM`, oldest first: BuildKit
    /// hands a stage's build args on to the stages built from it.
    pub(crate) inherited_args: Vec<Instruction>,
    pub(crate) source: Source,
    pub(crate) escape: char,
}

/// Build args (`--build-arg`) and resolved global ARGs, shared by all stages.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct ArgScope {
    pub build_args: BTreeMap<String, String>,
    pub global: BTreeMap<String, String>,
    /// The automatic platform ARGs of the build (`--build-arg` overrides applied).
    pub builtins: BTreeMap<String, String>,
}

/// Line range of an instruction (1-based, inclusive, heredoc bodies included).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The instruction's first line.
    pub start_line: usize,
    /// Its last line.
    pub end_line: usize,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Where it is in the Dockerfile.
    pub location: Location,
    /// The instruction as written, continuation lines joined (used for history `created_by`).
    pub original: String,
    /// The instruction's typed arguments.
    pub command: Command,
    /// Byte range in the source, for error labels.
    pub(crate) span: (usize, usize),
}

/// Shell form (`RUN echo hi`, run with the stage's SHELL) or exec form (`RUN ["echo", "hi"]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// The command line, given to the stage's SHELL.
    Shell(String),
    /// The argument vector, executed as it is.
    Exec(Vec<String>),
}

/// The typed instructions. Words are as written until [`Stage::expand`] substitutes variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// RUN.
    Run(Run),
    /// COPY.
    Copy(Copy),
    /// ADD: COPY's fields, plus URLs, git sources and archive unpacking.
    Add(Copy),
    /// ENV's `KEY=VALUE` pairs, in order.
    Env(Vec<(String, String)>),
    /// Names and defaults. After [`Stage::expand`]: the value in effect (build arg, default or
    /// global), `None` when the ARG has no value.
    Arg(Vec<(String, Option<String>)>),
    /// LABEL's pairs, in order.
    Label(Vec<(String, String)>),
    /// Ports after expansion and word splitting (`80`, `53/udp`).
    Expose(Vec<String>),
    /// VOLUME's container paths.
    Volume(Vec<String>),
    /// USER's `user[:group]`.
    User(String),
    /// WORKDIR's path (relative ones are joined to the current one by the builder).
    Workdir(String),
    /// CMD.
    Cmd(ShellOrExec),
    /// ENTRYPOINT.
    Entrypoint(ShellOrExec),
    /// STOPSIGNAL's signal, as written (`SIGTERM`, `15`).
    StopSignal(String),
    /// HEALTHCHECK.
    Healthcheck(Healthcheck),
    /// The new shell, always exec form.
    Shell(Vec<String>),
    /// The trigger instruction as text (`RUN make`), stored in the image config.
    Onbuild(String),
    /// MAINTAINER's text (stored as the image's author).
    Maintainer(String),
}

/// RUN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// The command.
    pub cmd: ShellOrExec,
    /// `--mount` options, parsed.
    pub mounts: Vec<crate::Mount>,
    /// `--network=default|none|host`.
    pub network: Option<String>,
    /// `--security=sandbox|insecure`.
    pub security: Option<String>,
    /// Heredocs named on the line, bodies included (chomped for `<<-`). With one heredoc as
    /// the whole command its body is the script; otherwise the shell gets the line followed by
    /// each body and its terminator, see [`Run::shell_script`].
    pub heredocs: Vec<Heredoc>,
    /// After [`Stage::expand`]: the variables whose last assignment in the stage was an ARG,
    /// plus proxy variables given with `--build-arg`. The command's environment is the image
    /// env (base image + ENV) with these on top; they are not stored in the image.
    pub build_args: Vec<(String, String)>,
    /// After [`Stage::expand`]: what BuildKit's history text lists as `|N K=V ...`: every
    /// ARG the stage declared, its base stages' first, each name once where first declared,
    /// with the variable's value at this RUN (empty for an ARG that has none).
    pub history_args: Vec<(String, String)>,
    /// The `--mount` values as written, re-read with the stage's variables by expand.
    pub mount_specs: Vec<String>,
}

/// COPY and ADD.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    /// Sources in order: paths (or URLs/git refs for ADD) and inline heredoc files.
    pub sources: Vec<CopySource>,
    /// The destination, as written (a trailing `/` means a directory).
    pub dest: String,
    /// `--from=stage|index|image` (COPY only).
    pub from: Option<String>,
    /// `--chown=user[:group]`.
    pub chown: Option<String>,
    /// `--chmod=` (octal or symbolic).
    pub chmod: Option<String>,
    /// `--link`: the files become a layer of their own, independent of the layers below.
    pub link: bool,
    /// `--parents`: keep the sources' parent directories under `dest` (labs syntax).
    pub parents: bool,
    /// `--exclude=` patterns, left out of the copy.
    pub exclude: Vec<String>,
    /// `--checksum` (ADD only).
    pub checksum: Option<String>,
    /// `--keep-git-dir` (ADD only).
    pub keep_git_dir: bool,
    /// `--unpack` (ADD only); `None` means the default (unpack local archives).
    pub unpack: Option<bool>,
    /// Whether the sources and destination came in JSON form.
    pub json: bool,
}

/// One COPY/ADD source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CopySource {
    /// A path in the context or `--from` source (a URL or git reference for ADD).
    Path(String),
    /// A heredoc: `name` is the file name, `content` the file (expanded by [`Stage::expand`]
    /// unless the delimiter was quoted).
    Heredoc(Heredoc),
}

/// HEALTHCHECK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable the base image's check.
    None,
    /// `HEALTHCHECK [OPTIONS] CMD ...`; `None` options are left to the runtime's defaults.
    Cmd {
        /// In image config form: `["CMD", args...]` or `["CMD-SHELL", "command"]`.
        test: Vec<String>,
        /// `--interval`: time between checks.
        interval: Option<Duration>,
        /// `--timeout`: how long one check may take.
        timeout: Option<Duration>,
        /// `--start-period`: failures during it do not count.
        start_period: Option<Duration>,
        /// `--start-interval`: time between checks during the start period.
        start_interval: Option<Duration>,
        /// `--retries`: consecutive failures that make the container unhealthy.
        retries: Option<u32>,
    },
}

impl Command {
    /// The instruction keyword in upper case (`RUN`, `COPY`, ...).
    pub fn keyword(&self) -> &'static str {
        match self {
            Command::Run(_) => "RUN",
            Command::Copy(_) => "COPY",
            Command::Add(_) => "ADD",
            Command::Env(_) => "ENV",
            Command::Arg(_) => "ARG",
            Command::Label(_) => "LABEL",
            Command::Expose(_) => "EXPOSE",
            Command::Volume(_) => "VOLUME",
            Command::User(_) => "USER",
            Command::Workdir(_) => "WORKDIR",
            Command::Cmd(_) => "CMD",
            Command::Entrypoint(_) => "ENTRYPOINT",
            Command::StopSignal(_) => "STOPSIGNAL",
            Command::Healthcheck(_) => "HEALTHCHECK",
            Command::Shell(_) => "SHELL",
            Command::Onbuild(_) => "ONBUILD",
            Command::Maintainer(_) => "MAINTAINER",
        }
    }
}

impl Run {
    /// The script to hand to the shell for a shell-form RUN with heredocs, following
    /// BuildKit: the command line, then each heredoc's body and terminator on new lines.
    /// Returns `None` for exec form.
    pub fn shell_script(&self) -> Option<String> {
        let ShellOrExec::Shell(line) = &self.cmd else {
            return None;
        };
        let mut script = line.clone();
        for doc in &self.heredocs {
            script.push('\n');
            script.push_str(&doc.content);
            script.push_str(&doc.name);
        }
        Some(script)
    }

    /// The heredoc when it is the whole command (`RUN <<EOF`): its body is the script.
    pub fn heredoc_script(&self) -> Option<&Heredoc> {
        match (&self.cmd, self.heredocs.as_slice()) {
            (ShellOrExec::Shell(line), [doc]) => crate::parser::parse_heredoc(line.trim())
                .ok()
                .flatten()
                .map(|_| doc),
            _ => None,
        }
    }
}
