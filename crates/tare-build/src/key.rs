//! [`StepKey`]: everything that can change a step's result, as one typed value, and its hash
//! (the cache key).
//!
//! Each key is built by destructuring the Dockerfile model's instruction structs without
//! `..`: a field added to `tare_dockerfile::Run`, `Copy`, `Mount`, `Heredoc` or a new
//! `Command` variant does not compile here until someone decides how it enters the key.
//! State a step reads besides its instruction (the parent state, for RUN the environment,
//! build args, user, working directory, shell and network, for COPY/ADD the digests of the
//! sources) is a field of the key too.
//!
//! The parent is the *filesystem* state: the key of the last step that made or kept a layer
//! (or of the stage's base). Config-only instructions (ENV, LABEL, USER, ...) have no key of
//! their own and leave the parent as it is; what a step reads of the config is in its own key,
//! so a changed LABEL keeps a later COPY or RUN cached (BuildKit does the same), while a
//! changed ENV misses the RUN whose environment it is.
//!
//! The canonical encoding is the value's JSON as serde writes it: struct fields in
//! declaration order, sequences in order, no maps with unspecified order. The key is the
//! sha256 of that JSON after the cache format version, so a change of this file's types that
//! keeps the encoding readable still cannot reuse records of an older version (the version is
//! bumped, see [`CACHE_FORMAT`]).

use serde::Serialize;
use tare_dockerfile::{Copy, CopySource, Heredoc, Mount, MountKind, Run, Sharing, ShellOrExec};
use tare_sandbox::Network;

use crate::error::Error;

/// The version of the cache's keys and records. Records of another version are ignored and
/// removed by `tare prune --cache`. Version 1 was the hand-picked string lists of before
/// [`StepKey`] (they forgot `COPY --chown` and `--chmod`).
pub const CACHE_FORMAT: u32 = 2;

/// The complete input of one step (or of a stage's starting state).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKey {
    /// `FROM image`: the image's ID (its config digest) determines everything.
    Image {
        id: String,
    },
    /// `FROM scratch`.
    Scratch,
    Run(RunKey),
    Copy(CopyKey),
    Workdir(WorkdirKey),
}

impl StepKey {
    /// The canonical encoding (see the module's overview).
    pub fn encode(&self) -> Result<serde_json::Value, Error> {
        serde_json::to_value(self).map_err(|error| Error::Encode {
            what: "encoding a cache key",
            error,
        })
    }

    /// The cache key: sha256 (hex) of the format version and the canonical encoding.
    pub fn digest(&self) -> Result<String, Error> {
        Ok(digest_of(&self.encode()?))
    }
}

/// The cache key of an encoded [`StepKey`].
pub fn digest_of(encoded: &serde_json::Value) -> String {
    let mut h = tare_store::Hasher::new();
    h.update(format!("tare-cache-v{CACHE_FORMAT}\n").as_bytes());
    h.update(encoded.to_string().as_bytes());
    h.finish().hex()
}

/// A shell-form or exec-form command as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CommandKey {
    Shell(String),
    Exec(Vec<String>),
}

impl From<&ShellOrExec> for CommandKey {
    fn from(form: &ShellOrExec) -> CommandKey {
        match form {
            ShellOrExec::Shell(s) => CommandKey::Shell(s.clone()),
            ShellOrExec::Exec(a) => CommandKey::Exec(a.clone()),
        }
    }
}

/// A heredoc, every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HeredocKey {
    pub name: String,
    pub content: String,
    pub expand: bool,
    pub chomp: bool,
    pub fd: u32,
}

impl From<&Heredoc> for HeredocKey {
    fn from(h: &Heredoc) -> HeredocKey {
        let Heredoc {
            name,
            content,
            expand,
            chomp,
            fd,
        } = h;
        HeredocKey {
            name: name.clone(),
            content: content.clone(),
            expand: *expand,
            chomp: *chomp,
            fd: *fd,
        }
    }
}

/// A `RUN --mount`, every field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MountKey {
    pub kind: &'static str,
    pub target: String,
    pub source: Option<String>,
    pub from: Option<String>,
    pub read_only: bool,
    pub id: Option<String>,
    pub sharing: &'static str,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub required: bool,
    pub size: Option<u64>,
    pub env: Option<String>,
}

impl From<&Mount> for MountKey {
    fn from(m: &Mount) -> MountKey {
        let Mount {
            kind,
            target,
            source,
            from,
            read_only,
            id,
            sharing,
            mode,
            uid,
            gid,
            required,
            size,
            env,
        } = m;
        MountKey {
            kind: match kind {
                MountKind::Bind => "bind",
                MountKind::Cache => "cache",
                MountKind::Tmpfs => "tmpfs",
                MountKind::Secret => "secret",
                MountKind::Ssh => "ssh",
            },
            target: target.clone(),
            source: source.clone(),
            from: from.clone(),
            read_only: *read_only,
            id: id.clone(),
            sharing: match sharing {
                Sharing::Shared => "shared",
                Sharing::Private => "private",
                Sharing::Locked => "locked",
            },
            mode: *mode,
            uid: *uid,
            gid: *gid,
            required: *required,
            size: *size,
            env: env.clone(),
        }
    }
}

/// The network a RUN step gets, by name.
pub fn network_name(network: Network) -> &'static str {
    match network {
        Network::Private => "private",
        Network::Host => "host",
        Network::None => "none",
    }
}

/// What a RUN reads: the instruction (every flag), the command line it resolves to, and the
/// process's environment, user, working directory, shell and network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunKey {
    pub parent: String,
    pub cmd: CommandKey,
    pub mounts: Vec<MountKey>,
    /// `--network` as written.
    pub network: Option<String>,
    /// The network the process gets (the build's `--network` for `default`).
    pub effective_network: &'static str,
    pub security: Option<String>,
    pub heredocs: Vec<HeredocKey>,
    pub build_args: Vec<(String, String)>,
    /// The argument vector run (shell, script or exec form, heredoc script).
    pub argv: Vec<String>,
    /// The image environment (`KEY=VALUE`, in order).
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub shell: Vec<String>,
    /// The files of every `--mount=type=bind`, by content ([`RunState::mount_files`]).
    pub mount_files: Vec<(String, String)>,
    /// The build's `--add-host`, `--ulimit` and `--shm-size` ([`RunState::settings`]); left
    /// out when empty, so keys made before these flags existed still match.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub settings: Vec<String>,
}

/// The stage state a RUN runs in, besides its parent key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    pub parent: String,
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub user: String,
    pub workdir: String,
    pub shell: Vec<String>,
    pub network: Network,
    /// `(mount number:path, digest)` of each file a bind mount shows, as COPY keys its
    /// sources (kind, mode, owner, content); a cache mount's contents are never here.
    pub mount_files: Vec<(String, String)>,
    /// The build's RUN settings that change what a step may do or see, as text
    /// (`add-host db=10.0.0.2`, `ulimit nofile=1024:2048`, `shm-size 1048576`): BuildKit
    /// keys them as part of the exec op too.
    pub settings: Vec<String>,
}

impl RunKey {
    pub fn new(run: &Run, state: RunState) -> RunKey {
        let Run {
            cmd,
            mounts,
            network,
            security,
            heredocs,
            build_args,
            // The `--mount` values as written: `mounts` holds them parsed and expanded.
            mount_specs: _,
            // Only the history's text: what the process sees of them is in `build_args` and
            // `env`, and the text is written again on every build, hit or not.
            history_args: _,
        } = run;
        let RunState {
            parent,
            argv,
            env,
            user,
            workdir,
            shell,
            network: effective,
            mount_files,
            settings,
        } = state;
        RunKey {
            parent,
            cmd: cmd.into(),
            mounts: mounts.iter().map(MountKey::from).collect(),
            network: network.clone(),
            effective_network: network_name(effective),
            security: security.clone(),
            heredocs: heredocs.iter().map(HeredocKey::from).collect(),
            build_args: build_args.clone(),
            argv,
            env,
            user,
            workdir,
            shell,
            mount_files,
            settings,
        }
    }
}

/// A COPY/ADD source as written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKey {
    Path(String),
    Heredoc(HeredocKey),
}

/// Where `--from` sources come from, by content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FromKey {
    /// A stage: its state key and the diffIDs of its layers (a stage that ran again with
    /// `--no-cache-filter` and made other layers must not answer from the old copy).
    Stage { key: String, layers: Vec<String> },
    /// An image: its state key (from its ID).
    Image { key: String },
    /// A directory build context (`--build-context NAME=DIR`): its name; its files are in
    /// the key by their digests, as the main context's.
    Context { name: String },
}

/// What a COPY/ADD reads: the instruction (every flag), the working directory (for a
/// relative destination), where `--from` points, and every source file's digest (content,
/// mode, owner; never the mtime).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CopyKey {
    pub parent: String,
    pub add: bool,
    pub sources: Vec<SourceKey>,
    pub dest: String,
    pub from: Option<String>,
    pub from_state: Option<FromKey>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    pub parents: bool,
    pub exclude: Vec<String>,
    pub checksum: Option<String>,
    pub keep_git_dir: bool,
    pub unpack: Option<bool>,
    pub json: bool,
    pub workdir: String,
    /// `(path, digest)` of every source file, in copy order (`copy::source_digests`).
    pub files: Vec<(String, String)>,
}

/// The stage state a COPY/ADD reads, besides its instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyState {
    pub parent: String,
    pub add: bool,
    pub workdir: String,
    pub from_state: Option<FromKey>,
    pub files: Vec<(String, String)>,
}

impl CopyKey {
    pub fn new(copy: &Copy, state: CopyState) -> CopyKey {
        let Copy {
            sources,
            dest,
            from,
            chown,
            chmod,
            link,
            parents,
            exclude,
            checksum,
            keep_git_dir,
            unpack,
            json,
        } = copy;
        let CopyState {
            parent,
            add,
            workdir,
            from_state,
            files,
        } = state;
        CopyKey {
            parent,
            add,
            sources: sources
                .iter()
                .map(|s| match s {
                    CopySource::Path(p) => SourceKey::Path(p.clone()),
                    CopySource::Heredoc(h) => SourceKey::Heredoc(h.into()),
                })
                .collect(),
            dest: dest.clone(),
            from: from.clone(),
            from_state,
            chown: chown.clone(),
            chmod: chmod.clone(),
            link: *link,
            parents: *parents,
            exclude: exclude.clone(),
            checksum: checksum.clone(),
            keep_git_dir: *keep_git_dir,
            unpack: *unpack,
            json: *json,
            workdir,
            files,
        }
    }
}

/// What a WORKDIR reads: the path as written, the directory it resolves to, and the user
/// that will own it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkdirKey {
    pub parent: String,
    pub path: String,
    pub resolved: String,
    pub user: String,
}

#[cfg(test)]
mod tests {
    //! Keys are complete: generated from the instruction model, two steps that differ in
    //! exactly one flag or state input get different keys; the same step twice the same key.
    //! Each `*_variants` function destructures its struct without `..`, so a new field must be
    //! given a variant here too.

    use proptest::prelude::*;

    use super::*;

    fn word() -> impl Strategy<Value = String> {
        "[a-z0-9/ .=-]{0,6}"
    }

    fn opt_word() -> impl Strategy<Value = Option<String>> {
        proptest::option::of(word())
    }

    fn words() -> impl Strategy<Value = Vec<String>> {
        proptest::collection::vec(word(), 0..3)
    }

    fn pairs() -> impl Strategy<Value = Vec<(String, String)>> {
        proptest::collection::vec((word(), word()), 0..3)
    }

    fn heredoc() -> impl Strategy<Value = Heredoc> {
        (word(), word(), any::<bool>(), any::<bool>(), 0u32..4).prop_map(
            |(name, content, expand, chomp, fd)| Heredoc {
                name,
                content,
                expand,
                chomp,
                fd,
            },
        )
    }

    fn mount() -> impl Strategy<Value = Mount> {
        let kinds = prop_oneof![
            Just(MountKind::Bind),
            Just(MountKind::Cache),
            Just(MountKind::Tmpfs),
            Just(MountKind::Secret),
            Just(MountKind::Ssh)
        ];
        let sharing = prop_oneof![
            Just(Sharing::Shared),
            Just(Sharing::Private),
            Just(Sharing::Locked)
        ];
        (
            (
                kinds,
                word(),
                opt_word(),
                opt_word(),
                any::<bool>(),
                opt_word(),
            ),
            (
                sharing,
                proptest::option::of(0u32..0o7777),
                proptest::option::of(0u32..70000),
                proptest::option::of(0u32..70000),
                any::<bool>(),
                proptest::option::of(0u64..1 << 40),
                opt_word(),
            ),
        )
            .prop_map(
                |(
                    (kind, target, source, from, read_only, id),
                    (sharing, mode, uid, gid, required, size, env),
                )| Mount {
                    kind,
                    target,
                    source,
                    from,
                    read_only,
                    id,
                    sharing,
                    mode,
                    uid,
                    gid,
                    required,
                    size,
                    env,
                },
            )
    }

    fn shell_or_exec() -> impl Strategy<Value = ShellOrExec> {
        prop_oneof![
            word().prop_map(ShellOrExec::Shell),
            words().prop_map(ShellOrExec::Exec)
        ]
    }

    fn run() -> impl Strategy<Value = Run> {
        (
            shell_or_exec(),
            proptest::collection::vec(mount(), 0..3),
            opt_word(),
            opt_word(),
            proptest::collection::vec(heredoc(), 0..3),
            pairs(),
            words(),
        )
            .prop_map(
                |(cmd, mounts, network, security, heredocs, build_args, mount_specs)| Run {
                    cmd,
                    mounts,
                    network,
                    security,
                    heredocs,
                    build_args,
                    mount_specs,
                    history_args: Vec::new(),
                },
            )
    }

    fn network() -> impl Strategy<Value = Network> {
        prop_oneof![
            Just(Network::Private),
            Just(Network::Host),
            Just(Network::None)
        ]
    }

    fn run_state() -> impl Strategy<Value = RunState> {
        (
            word(),
            words(),
            words(),
            word(),
            word(),
            words(),
            network(),
            proptest::collection::vec((word(), word()), 0..3),
            words(),
        )
            .prop_map(
                |(parent, argv, env, user, workdir, shell, network, mount_files, settings)| {
                    RunState {
                        parent,
                        argv,
                        env,
                        user,
                        workdir,
                        shell,
                        network,
                        mount_files,
                        settings,
                    }
                },
            )
    }

    fn copy_source() -> impl Strategy<Value = CopySource> {
        prop_oneof![
            word().prop_map(CopySource::Path),
            heredoc().prop_map(CopySource::Heredoc)
        ]
    }

    fn copy() -> impl Strategy<Value = Copy> {
        (
            (
                proptest::collection::vec(copy_source(), 0..4),
                word(),
                opt_word(),
                opt_word(),
                opt_word(),
                any::<bool>(),
            ),
            (
                any::<bool>(),
                words(),
                opt_word(),
                any::<bool>(),
                proptest::option::of(any::<bool>()),
                any::<bool>(),
            ),
        )
            .prop_map(
                |(
                    (sources, dest, from, chown, chmod, link),
                    (parents, exclude, checksum, keep_git_dir, unpack, json),
                )| Copy {
                    sources,
                    dest,
                    from,
                    chown,
                    chmod,
                    link,
                    parents,
                    exclude,
                    checksum,
                    keep_git_dir,
                    unpack,
                    json,
                },
            )
    }

    fn from_key() -> impl Strategy<Value = Option<FromKey>> {
        proptest::option::of(prop_oneof![
            (word(), words()).prop_map(|(key, layers)| FromKey::Stage { key, layers }),
            word().prop_map(|key| FromKey::Image { key })
        ])
    }

    fn copy_state() -> impl Strategy<Value = CopyState> {
        (word(), any::<bool>(), word(), from_key(), pairs()).prop_map(
            |(parent, add, workdir, from_state, files)| CopyState {
                parent,
                add,
                workdir,
                from_state,
                files,
            },
        )
    }

    // Changes that always give a different value of each field type.
    fn s(v: &str) -> String {
        format!("{v}x")
    }
    fn os(v: &Option<String>) -> Option<String> {
        match v {
            Some(_) => None,
            None => Some(String::new()),
        }
    }
    fn ov<T: std::marker::Copy>(v: &Option<T>, some: T) -> Option<T> {
        match v {
            Some(_) => None,
            None => Some(some),
        }
    }
    fn vs(v: &[String]) -> Vec<String> {
        let mut v = v.to_vec();
        v.push(String::new());
        v
    }
    fn vp(v: &[(String, String)]) -> Vec<(String, String)> {
        let mut v = v.to_vec();
        v.push((String::new(), String::new()));
        v
    }
    fn cmd(c: &ShellOrExec) -> Vec<ShellOrExec> {
        match c {
            ShellOrExec::Shell(line) => vec![
                ShellOrExec::Shell(s(line)),
                ShellOrExec::Exec(vec![line.clone()]),
            ],
            ShellOrExec::Exec(args) => vec![
                ShellOrExec::Exec(vs(args)),
                ShellOrExec::Shell(args.join(" ")),
            ],
        }
    }
    /// Each variant of `v` with element 0 replaced by one of `variants(&v[0])`, plus one
    /// element more.
    fn each<T: Clone>(v: &[T], variants: impl Fn(&T) -> Vec<T>, extra: T) -> Vec<Vec<T>> {
        let mut out: Vec<Vec<T>> = Vec::new();
        if let Some(first) = v.first() {
            for changed in variants(first) {
                let mut w = v.to_vec();
                w[0] = changed;
                out.push(w);
            }
        }
        let mut longer = v.to_vec();
        longer.push(extra);
        out.push(longer);
        out
    }

    fn heredoc_variants(h: &Heredoc) -> Vec<Heredoc> {
        let Heredoc {
            name,
            content,
            expand,
            chomp,
            fd,
        } = h;
        vec![
            Heredoc {
                name: s(name),
                ..h.clone()
            },
            Heredoc {
                content: s(content),
                ..h.clone()
            },
            Heredoc {
                expand: !expand,
                ..h.clone()
            },
            Heredoc {
                chomp: !chomp,
                ..h.clone()
            },
            Heredoc {
                fd: fd + 1,
                ..h.clone()
            },
        ]
    }

    fn mount_variants(m: &Mount) -> Vec<Mount> {
        let Mount {
            kind,
            target,
            source,
            from,
            read_only,
            id,
            sharing,
            mode,
            uid,
            gid,
            required,
            size,
            env,
        } = m;
        let other_kind = match kind {
            MountKind::Bind => MountKind::Cache,
            _ => MountKind::Bind,
        };
        let other_sharing = match sharing {
            Sharing::Shared => Sharing::Locked,
            _ => Sharing::Shared,
        };
        vec![
            Mount {
                kind: other_kind,
                ..m.clone()
            },
            Mount {
                target: s(target),
                ..m.clone()
            },
            Mount {
                source: os(source),
                ..m.clone()
            },
            Mount {
                from: os(from),
                ..m.clone()
            },
            Mount {
                read_only: !read_only,
                ..m.clone()
            },
            Mount {
                id: os(id),
                ..m.clone()
            },
            Mount {
                sharing: other_sharing,
                ..m.clone()
            },
            Mount {
                mode: ov(mode, 0),
                ..m.clone()
            },
            Mount {
                uid: ov(uid, 0),
                ..m.clone()
            },
            Mount {
                gid: ov(gid, 0),
                ..m.clone()
            },
            Mount {
                required: !required,
                ..m.clone()
            },
            Mount {
                size: ov(size, 0),
                ..m.clone()
            },
            Mount {
                env: os(env),
                ..m.clone()
            },
        ]
    }

    fn run_variants(r: &Run) -> Vec<Run> {
        let Run {
            cmd: c,
            mounts,
            network,
            security,
            heredocs,
            build_args,
            // The raw `--mount` text: `mounts` is what it parses to, and what is keyed.
            mount_specs: _,
            // The history's text only (see `RunKey::new`).
            history_args: _,
        } = r;
        let blank_mount = Mount {
            kind: MountKind::Bind,
            target: String::new(),
            source: None,
            from: None,
            read_only: false,
            id: None,
            sharing: Sharing::Shared,
            mode: None,
            uid: None,
            gid: None,
            required: false,
            size: None,
            env: None,
        };
        let blank_heredoc = Heredoc {
            name: String::new(),
            content: String::new(),
            expand: false,
            chomp: false,
            fd: 0,
        };
        let mut out: Vec<Run> = Vec::new();
        out.extend(cmd(c).into_iter().map(|cmd| Run { cmd, ..r.clone() }));
        out.extend(
            each(mounts, mount_variants, blank_mount)
                .into_iter()
                .map(|mounts| Run {
                    mounts,
                    ..r.clone()
                }),
        );
        out.push(Run {
            network: os(network),
            ..r.clone()
        });
        out.push(Run {
            security: os(security),
            ..r.clone()
        });
        out.extend(
            each(heredocs, heredoc_variants, blank_heredoc)
                .into_iter()
                .map(|heredocs| Run {
                    heredocs,
                    ..r.clone()
                }),
        );
        out.push(Run {
            build_args: vp(build_args),
            ..r.clone()
        });
        out
    }

    fn other_network(n: Network) -> Network {
        match n {
            Network::Private => Network::Host,
            Network::Host => Network::None,
            Network::None => Network::Private,
        }
    }

    fn run_state_variants(st: &RunState) -> Vec<RunState> {
        let RunState {
            parent,
            argv,
            env,
            user,
            workdir,
            shell,
            network,
            mount_files,
            settings,
        } = st;
        vec![
            RunState {
                parent: s(parent),
                ..st.clone()
            },
            RunState {
                argv: vs(argv),
                ..st.clone()
            },
            RunState {
                env: vs(env),
                ..st.clone()
            },
            RunState {
                user: s(user),
                ..st.clone()
            },
            RunState {
                workdir: s(workdir),
                ..st.clone()
            },
            RunState {
                shell: vs(shell),
                ..st.clone()
            },
            RunState {
                network: other_network(*network),
                ..st.clone()
            },
            RunState {
                mount_files: {
                    let mut m = mount_files.clone();
                    m.push((s(""), s("")));
                    m
                },
                ..st.clone()
            },
            RunState {
                settings: vs(settings),
                ..st.clone()
            },
        ]
    }

    fn copy_variants(c: &Copy) -> Vec<Copy> {
        let Copy {
            sources,
            dest,
            from,
            chown,
            chmod,
            link,
            parents,
            exclude,
            checksum,
            keep_git_dir,
            unpack,
            json,
        } = c;
        let source_variants = |src: &CopySource| match src {
            CopySource::Path(p) => vec![CopySource::Path(s(p))],
            CopySource::Heredoc(h) => heredoc_variants(h)
                .into_iter()
                .map(CopySource::Heredoc)
                .collect(),
        };
        let mut out: Vec<Copy> = each(sources, source_variants, CopySource::Path(String::new()))
            .into_iter()
            .map(|sources| Copy {
                sources,
                ..c.clone()
            })
            .collect();
        out.extend([
            Copy {
                dest: s(dest),
                ..c.clone()
            },
            Copy {
                from: os(from),
                ..c.clone()
            },
            Copy {
                chown: os(chown),
                ..c.clone()
            },
            Copy {
                chmod: os(chmod),
                ..c.clone()
            },
            Copy {
                link: !link,
                ..c.clone()
            },
            Copy {
                parents: !parents,
                ..c.clone()
            },
            Copy {
                exclude: vs(exclude),
                ..c.clone()
            },
            Copy {
                checksum: os(checksum),
                ..c.clone()
            },
            Copy {
                keep_git_dir: !keep_git_dir,
                ..c.clone()
            },
            Copy {
                unpack: ov(unpack, true),
                ..c.clone()
            },
            Copy {
                json: !json,
                ..c.clone()
            },
        ]);
        out
    }

    fn copy_state_variants(st: &CopyState) -> Vec<CopyState> {
        let CopyState {
            parent,
            add,
            workdir,
            from_state,
            files,
        } = st;
        let from_state = match from_state {
            Some(_) => None,
            None => Some(FromKey::Image { key: String::new() }),
        };
        vec![
            CopyState {
                parent: s(parent),
                ..st.clone()
            },
            CopyState {
                add: !add,
                ..st.clone()
            },
            CopyState {
                workdir: s(workdir),
                ..st.clone()
            },
            CopyState {
                from_state,
                ..st.clone()
            },
            CopyState {
                files: vp(files),
                ..st.clone()
            },
        ]
    }

    fn digest(k: &StepKey) -> String {
        k.digest().expect("encodes")
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn every_run_flag_and_state_input_changes_the_key(r in run(), st in run_state()) {
            let base = digest(&StepKey::Run(RunKey::new(&r, st.clone())));
            prop_assert_eq!(&base, &digest(&StepKey::Run(RunKey::new(&r.clone(), st.clone()))));
            for v in run_variants(&r) {
                let k = digest(&StepKey::Run(RunKey::new(&v, st.clone())));
                prop_assert_ne!(&base, &k, "{:?}\nvs {:?}", r, v);
            }
            for v in run_state_variants(&st) {
                let k = digest(&StepKey::Run(RunKey::new(&r, v.clone())));
                prop_assert_ne!(&base, &k, "{:?}\nvs {:?}", st, v);
            }
        }

        #[test]
        fn every_copy_flag_and_state_input_changes_the_key(c in copy(), st in copy_state()) {
            let base = digest(&StepKey::Copy(CopyKey::new(&c, st.clone())));
            prop_assert_eq!(&base, &digest(&StepKey::Copy(CopyKey::new(&c.clone(), st.clone()))));
            for v in copy_variants(&c) {
                let k = digest(&StepKey::Copy(CopyKey::new(&v, st.clone())));
                prop_assert_ne!(&base, &k, "{:?}\nvs {:?}", c, v);
            }
            for v in copy_state_variants(&st) {
                let k = digest(&StepKey::Copy(CopyKey::new(&c, v.clone())));
                prop_assert_ne!(&base, &k, "{:?}\nvs {:?}", st, v);
            }
        }

        #[test]
        fn reordering_two_sources_or_files_changes_the_key(c in copy(), st in copy_state()) {
            let base = digest(&StepKey::Copy(CopyKey::new(&c, st.clone())));
            if c.sources.len() >= 2 && c.sources[0] != c.sources[1] {
                let mut swapped = c.clone();
                swapped.sources.swap(0, 1);
                prop_assert_ne!(&base, &digest(&StepKey::Copy(CopyKey::new(&swapped, st.clone()))));
            }
            if st.files.len() >= 2 && st.files[0] != st.files[1] {
                let mut swapped = st.clone();
                swapped.files.swap(0, 1);
                prop_assert_ne!(&base, &digest(&StepKey::Copy(CopyKey::new(&c, swapped))));
            }
        }

        #[test]
        fn every_workdir_input_changes_the_key(
            parent in word(), path in word(), resolved in word(), user in word()
        ) {
            let k = WorkdirKey { parent, path, resolved, user };
            let WorkdirKey { parent, path, resolved, user } = &k;
            let base = digest(&StepKey::Workdir(k.clone()));
            for v in [
                WorkdirKey { parent: s(parent), ..k.clone() },
                WorkdirKey { path: s(path), ..k.clone() },
                WorkdirKey { resolved: s(resolved), ..k.clone() },
                WorkdirKey { user: s(user), ..k.clone() },
            ] {
                prop_assert_ne!(&base, &digest(&StepKey::Workdir(v)));
            }
        }
    }

    #[test]
    fn step_kinds_with_the_same_fields_get_different_keys() {
        let image = digest(&StepKey::Image { id: String::new() });
        assert_ne!(image, digest(&StepKey::Scratch));
        let wd = WorkdirKey {
            parent: String::new(),
            path: String::new(),
            resolved: String::new(),
            user: String::new(),
        };
        assert_ne!(image, digest(&StepKey::Workdir(wd)));
    }
}
