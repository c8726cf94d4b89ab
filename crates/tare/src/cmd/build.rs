//! `tare build`: a Dockerfile and a context to an image in the store, then a size summary.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use clap::Args as ClapArgs;
use tare_build::annotations::Annotations;
use tare_build::contexts::NamedContext;
use tare_build::output::Output;
use tare_build::{BuildOptions, Network, Silent};
use tare_store::Reference;

use crate::progress::{Printer, ProgressMode};
use crate::Context;

mod index;
mod outputs;
mod push;
mod summary;

use index::build_index;
use outputs::{annotate, metadata_json, write_output, writes_stdout, DOCKER_MANIFEST_LIST};
use push::{push_only, push_remote, push_tags};
use summary::{compare_baseline, finish, print_summary};

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Name the image NAME[:TAG] (repeatable).
    #[arg(short = 't', long = "tag", value_name = "NAME[:TAG]")]
    tags: Vec<String>,
    /// The Dockerfile (`-` reads it from stdin); default CONTEXT/Dockerfile.
    #[arg(short = 'f', long = "file", value_name = "FILE")]
    file: Option<String>,
    /// A build arg; without `=VALUE` its value comes from the environment (repeatable).
    #[arg(long = "build-arg", value_name = "KEY[=VALUE]")]
    build_args: Vec<String>,
    /// A label on the image (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE")]
    labels: Vec<String>,
    /// The network of RUN steps: default (a private network namespace with outside access
    /// through pasta), host or none.
    #[arg(long, value_name = "default|host|none", default_value = "default")]
    network: String,
    /// Build this stage (and what it needs) instead of the last one.
    #[arg(long, value_name = "STAGE")]
    target: Option<String>,
    /// Run every step; use no cached result.
    #[arg(long)]
    no_cache: bool,
    /// Run every step of these stages (names or indices; repeatable, or comma-separated).
    #[arg(long, value_name = "STAGE", value_delimiter = ',')]
    no_cache_filter: Vec<String>,
    /// For every step that is not cached, say why.
    #[arg(long)]
    explain_cache: bool,
    /// Run RUN steps through an OCI runtime (`runc`, `crun` or a path) instead of the
    /// built-in sandbox.
    #[arg(long, value_name = "runc|crun|PATH")]
    runtime: Option<String>,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value = "auto")]
    progress: ProgressMode,
    /// Print only the image ID.
    #[arg(short, long)]
    quiet: bool,
    /// Write the image ID to this file.
    #[arg(long, value_name = "FILE")]
    iidfile: Option<PathBuf>,
    /// Fail the build (exit 1) when the image is larger than SIZE (`500MB`, `1.5GB`, `10MiB`).
    #[arg(long, value_name = "SIZE", value_parser = tare_size::parse_size)]
    max_size: Option<u64>,
    /// Fail the build when it ships more than SIZE of dead bytes (deleted or overwritten).
    #[arg(long, value_name = "SIZE", value_parser = tare_size::parse_size)]
    max_waste: Option<u64>,
    /// The most bytes one `ADD URL` may download (`2GiB` by default); a bigger download
    /// fails the build.
    #[arg(long, value_name = "SIZE", value_parser = tare_size::parse_size)]
    max_download_size: Option<u64>,
    /// Fail the build when the image has more than N layers.
    #[arg(long, value_name = "N")]
    max_layers: Option<usize>,
    /// Squash this build's layers into one on top of the base (`--squash`), or the whole
    /// image into one layer (`--squash=all`).
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "new",
          value_parser = ["new", "all"], value_name = "new|all")]
    squash: Option<String>,
    /// Push the image to its registry after the build (each `-t` name).
    #[arg(long)]
    push: bool,
    // --- secrets, ssh agents and entitlements (RUN --mount=type=secret|ssh, --security) ---
    /// A secret for `RUN --mount=type=secret,id=ID`, read from a file or an environment
    /// variable (repeatable); it is never stored in the image or the cache.
    #[arg(long = "secret", value_name = "id=ID[,src=PATH|,env=VAR]")]
    secrets: Vec<String>,
    /// An ssh agent for `RUN --mount=type=ssh[,id=ID]`: `default` is $SSH_AUTH_SOCK;
    /// ID=SOCKET forwards an agent, ID=KEY[,KEY...] loads keys into a new one (repeatable).
    #[arg(long = "ssh", value_name = "default|ID[=SOCKET|KEY[,KEY...]]")]
    ssh: Vec<String>,
    /// Grant an entitlement: security.insecure (RUN --security=insecure) or network.host
    /// (RUN --network=host) (repeatable, or comma-separated).
    #[arg(long = "allow", value_name = "ENTITLEMENT", value_delimiter = ',')]
    allow: Vec<String>,
    // --- end of secrets, ssh agents and entitlements ---

    // RUN --mount (helper H1).
    /// With --no-cache: keep the contents of cache mounts (`RUN --mount=type=cache`) instead
    /// of starting them empty.
    #[arg(long)]
    keep_cache_mounts: bool,

    // --- The buildx interface (platforms, outputs, build contexts, metadata) ---
    /// Build for this platform (os/arch[/variant], like linux/arm64) instead of this machine's:
    /// the TARGET* ARGs, the platform FROM pulls, the image's architecture.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_delimiter = ',')]
    platform: Vec<String>,
    /// Where the result goes, in buildx's notation: type=local,dest=DIR (the files; `-o DIR`
    /// too), type=tar,dest=FILE|- (`-o -` too), type=oci|docker,dest=FILE|- (the image
    /// archive, not stored), type=image[,name=N][,push=true], type=registry (image + push).
    /// Default: the image in the store.
    #[arg(short = 'o', long = "output", value_name = "TYPE=...,DEST=...")]
    output: Option<String>,
    /// An extra named context for FROM NAME, COPY --from=NAME and RUN --mount from=NAME: a
    /// directory, docker-image://REF or oci-layout://PATH[@TAG] (repeatable).
    #[arg(long = "build-context", value_name = "NAME=VALUE")]
    build_contexts: Vec<String>,
    // --- The build cache in a registry (helper H2, issue 15) ---
    /// Export this build's cache: type=registry,ref=REPOSITORY[:TAG][,mode=min|max]
    /// (one entry per step, tagged tare-cache-KEY; min: the final image's steps, max: every
    /// stage's), type=local,dest=DIR (the same, as an OCI layout), or type=inline (the final
    /// image's steps in the image's manifest) (repeatable).
    #[arg(long = "cache-to", value_name = "type=registry,ref=REF[,mode=min|max]")]
    cache_to: Vec<String>,
    /// Look steps the local cache misses up in this cache: type=registry,ref=REPOSITORY
    /// (or just REPOSITORY; an image's inline cache too), or type=local,src=DIR
    /// (repeatable).
    #[arg(long = "cache-from", value_name = "type=registry,ref=REF")]
    cache_from: Vec<String>,
    #[command(flatten)]
    registry: super::pull::RegistryArgs,
    // --- end of the remote cache ---
    // --- buildx's metadata, --pull and RUN settings (helper H4, issue 14 item 7) ---
    /// Write the result as buildx does: JSON with containerimage.digest,
    /// containerimage.config.digest, containerimage.descriptor and image.name.
    #[arg(long, value_name = "FILE")]
    metadata_file: Option<PathBuf>,
    /// Ask the registry for every FROM image, even when the store has one of that name.
    #[arg(long)]
    pull: bool,
    /// An /etc/hosts entry for RUN steps (repeatable; `HOST=IP` too).
    #[arg(long = "add-host", value_name = "HOST:IP")]
    add_hosts: Vec<String>,
    /// The size of RUN steps' /dev/shm (bytes, or with a unit: 64m, 1g; default 64m).
    #[arg(long, value_name = "SIZE", value_parser = parse_ram_size)]
    shm_size: Option<u64>,
    /// A resource limit of RUN steps, as docker's (`nofile=1024:2048`, `-1` unlimited;
    /// repeatable).
    #[arg(long = "ulimit", value_name = "NAME=SOFT[:HARD]")]
    ulimits: Vec<String>,
    /// Run each RUN step in a new cgroup PARENT/tare-ID, PARENT taken from the root of every
    /// mounted cgroup hierarchy (v1 and v2), as docker build --cgroup-parent does.
    #[arg(long, value_name = "PARENT", value_parser = parse_cgroup_parent)]
    cgroup_parent: Option<tare_sandbox::CgroupParent>,
    /// buildx's `--load`: the image goes into the engine, which for tare is the store (what a
    /// build without -o does); the same as `-o type=docker`.
    #[arg(long)]
    load: bool,
    /// buildx's provenance attestation: tare writes none, so only `false` (or
    /// `disabled=true`) is accepted; anything that asks for one is refused.
    #[arg(long, value_name = "false", num_args = 0..=1, default_missing_value = "true")]
    provenance: Option<String>,
    /// buildx's SBOM attestation: as --provenance, only `false` is accepted.
    #[arg(long, value_name = "false", num_args = 0..=1, default_missing_value = "true")]
    sbom: Option<String>,
    /// buildx's `--attest type=provenance|sbom,...`: accepted only with `disabled=true`.
    #[arg(long, value_name = "type=...,disabled=true")]
    attest: Vec<String>,
    /// An OCI annotation, as buildx writes it: `KEY=VALUE` (each image manifest's), or
    /// `TYPES[PLATFORMS]:KEY=VALUE` with TYPES among manifest, manifest-descriptor and index
    /// (the last two need several platforms). Repeatable.
    #[arg(long = "annotation", value_name = "[TYPE:]KEY=VALUE")]
    annotations: Vec<String>,
    // --- git sources and the context from git or stdin (helper H3) ---
    /// The deadline, in seconds, of each git command that `ADD <git url>` or a git context
    /// runs (600 by default); a slower fetch fails the build.
    #[arg(long, value_name = "SECONDS")]
    git_timeout: Option<u64>,
    // --- end of git sources ---

    // --- Reproducible images (helper H6, issue 17) ---
    /// Seconds since 1970 for `created` in the config and history (clamped: an earlier time
    /// stays); default `--build-arg SOURCE_DATE_EPOCH`, then $SOURCE_DATE_EPOCH.
    #[arg(long, value_name = "SECONDS")]
    source_date_epoch: Option<String>,
    /// With SOURCE_DATE_EPOCH: write every file mtime later than it as the epoch, in the
    /// layers this build makes (base image layers stay as they are).
    #[arg(long)]
    rewrite_timestamp: bool,
    /// Compare the new image with IMAGE (looked up before the build, so it may be the tag the
    /// build moves): the size and compressed size deltas are printed.
    #[arg(long, value_name = "IMAGE")]
    baseline: Option<String>,
    /// With --baseline: exit 1 after the build when the new image's files are larger than the
    /// baseline's by more than SIZE (`10MB`), listing the largest contributors.
    #[arg(long, value_name = "SIZE", value_parser = tare_size::parse_size, requires = "baseline")]
    max_growth: Option<u64>,
    // --- end of reproducible images ---
    /// The build context: a directory, a git URL (`https://host/repo.git#ref:subdir`,
    /// `git@host:repo.git`), or `-` for a tar archive (plain or compressed) or a lone
    /// Dockerfile on standard input.
    context: PathBuf,
}

/// A size as docker's `--shm-size` reads it (go-units' RAMInBytes): a number with an
/// optional binary unit `b`, `k`, `m`, `g`, `t` (`kb`, `kib`... too).
fn parse_ram_size(text: &str) -> Result<u64, String> {
    let t = text.trim().to_ascii_lowercase();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{text:?}: expected a number of bytes, or 64m, 1g"))?;
    let shift = match unit.trim_end_matches("ib").trim_end_matches('b') {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        _ => return Err(format!("{text:?}: unknown unit (b, k, m, g or t)")),
    };
    n.checked_mul(1 << shift)
        .filter(|n| *n > 0)
        .ok_or_else(|| format!("{text:?}: must be above 0 and fit in 64 bits"))
}

fn parse_cgroup_parent(text: &str) -> Result<tare_sandbox::CgroupParent, String> {
    tare_sandbox::CgroupParent::parse(text).map_err(|e| e.to_string())
}

fn parse_build_args(list: &[String]) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for item in list {
        match item.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_string(), v.to_string());
            }
            // Docker takes the value from the environment, and drops the arg without one.
            None => {
                if let Ok(v) = std::env::var(item) {
                    out.insert(item.clone(), v);
                }
            }
        }
    }
    out
}

/// `--platform`: the platforms to build, each once (several make one multi-platform index).
fn target_platforms(list: &[String]) -> anyhow::Result<Vec<tare_build::Platform>> {
    let mut out: Vec<tare_build::Platform> = Vec::new();
    for one in list {
        let p: tare_build::Platform = one.parse().with_context(|| format!("--platform {one}"))?;
        if !out.contains(&p) {
            out.push(p);
        }
    }
    Ok(out)
}

/// The context from a git URL or standard input, fetched or extracted into the store's
/// temporary area; `None` for a directory.
fn remote_context(
    ctx: &Context,
    args: &Args,
) -> anyhow::Result<Option<tare_build::context_source::PreparedContext>> {
    let text = args.context.to_string_lossy();
    if text == "-" {
        if args.file.as_deref() == Some("-") {
            bail!("the context and the Dockerfile cannot both come from standard input");
        }
        let store = ctx.store()?;
        let prepared = tare_build::context_source::from_stdin(&store, &mut std::io::stdin().lock())
            .context("reading the build context from standard input")?;
        return Ok(Some(prepared));
    }
    // A directory of that name wins, as `docker build` checks the path first.
    if args.context.exists() {
        return Ok(None);
    }
    let Some(git) = tare_build::git::GitRef::parse(&text) else {
        return Ok(None);
    };
    let git = git?;
    let opts = tare_build::git::FetchOptions {
        keep_git_dir: git.keep_git_dir == Some(true),
        max_size: args
            .max_download_size
            .unwrap_or(tare_build::fetch::DEFAULT_MAX_DOWNLOAD),
        timeout: git_timeout(args),
        ssh_auth_sock: None,
    };
    let store = ctx.store()?;
    let prepared =
        tare_build::context_source::from_git(&store, &git, &opts).with_context(|| {
            format!(
                "fetching the build context {}",
                tare_build::git::redact(&text)
            )
        })?;
    Ok(Some(prepared))
}

fn git_timeout(args: &Args) -> std::time::Duration {
    tare_build::git::effective_timeout(std::time::Duration::from_secs(
        args.git_timeout.unwrap_or(0),
    ))
}

/// The Dockerfile's own ignore file, `<Dockerfile>.dockerignore`, when it exists: docker
/// and buildx read it instead of the context's `.dockerignore`. None for a Dockerfile from
/// standard input. In a context tare made (git or stdin) the name is relative to it and may
/// not lead outside it.
fn dockerfile_ignore(
    context_dir: &std::path::Path,
    dockerfile_name: &str,
    in_context: bool,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    if dockerfile_name == "-" {
        return Ok(None);
    }
    let name = format!("{dockerfile_name}.dockerignore");
    if !in_context {
        let path = std::path::PathBuf::from(name);
        return Ok(path.exists().then_some(path));
    }
    let path = context_dir.join(&name);
    if std::fs::symlink_metadata(&path).is_err() {
        return Ok(None);
    }
    let root = std::fs::canonicalize(context_dir)
        .with_context(|| format!("opening {}", context_dir.display()))?;
    let file = std::fs::canonicalize(&path).with_context(|| format!("opening {name:?}"))?;
    if !file.starts_with(&root) {
        bail!("the ignore file {name:?} leads outside the build context");
    }
    Ok(Some(file))
}

/// Reads the Dockerfile `path` of a context that tare made (git or stdin): relative to it,
/// and never outside it.
fn read_in_context(dir: &std::path::Path, path: &str) -> anyhow::Result<String> {
    let root = std::fs::canonicalize(dir).with_context(|| format!("opening {}", dir.display()))?;
    let file = std::fs::canonicalize(root.join(path))
        .with_context(|| format!("the context has no Dockerfile {path:?}"))?;
    if !file.starts_with(&root) {
        bail!("the Dockerfile {path:?} leads outside the build context");
    }
    let rel = file.strip_prefix(&root).unwrap_or(&file).to_string_lossy();
    tare_build::tree::read_in_context(&root, &rel)?
        .with_context(|| format!("the context has no Dockerfile {path:?}"))
}

pub fn run(ctx: &Context, args: Args) -> anyhow::Result<ExitCode> {
    // The context from git or standard input (helper H3): kept until the build is done.
    let remote = remote_context(ctx, &args)?;
    let context_dir = remote
        .as_ref()
        .map_or_else(|| args.context.clone(), |r| r.dir.clone());
    if !context_dir.is_dir() {
        bail!(
            "build context {} is not a directory",
            args.context.display()
        );
    }
    let (dockerfile, dockerfile_name) = match (args.file.as_deref(), &remote) {
        (_, Some(r)) if r.dockerfile.is_some() => {
            (r.dockerfile.clone().unwrap_or_default(), "-".to_string())
        }
        (Some(path), Some(_)) if path != "-" => {
            (read_in_context(&context_dir, path)?, path.to_string())
        }
        (None, Some(_)) => (
            read_in_context(&context_dir, "Dockerfile")?,
            "Dockerfile".to_string(),
        ),
        (Some("-"), _) => {
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the Dockerfile from stdin")?;
            (
                String::from_utf8_lossy(&bytes).into_owned(),
                "-".to_string(),
            )
        }
        (Some(path), _) => (
            tare_build::tree::read_build_file(std::path::Path::new(path))
                .with_context(|| format!("reading {path}"))?,
            path.to_string(),
        ),
        (None, _) => {
            let path = args.context.join("Dockerfile");
            (
                tare_build::tree::read_build_file(&path)
                    .with_context(|| format!("reading {}", path.display()))?,
                path.display().to_string(),
            )
        }
    };
    let dockerignore = dockerfile_ignore(&context_dir, &dockerfile_name, remote.is_some())?;
    let network = match args.network.as_str() {
        "default" | "private" => Network::Private,
        "host" => Network::Host,
        "none" => Network::None,
        other => bail!("--network {other}: expected default, host or none"),
    };
    let mut tags = args
        .tags
        .iter()
        .map(|t| Reference::parse(t).with_context(|| format!("invalid tag {t:?}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    refuse_attestations(&args)?;
    let output = match (args.output.as_deref(), args.load) {
        (Some(o), _) => Some(Output::parse(o)?),
        // `--load`: into the store.
        (None, true) => Some(Output::parse("type=docker")?),
        (None, false) => None,
    };
    if args.load && !output.as_ref().is_some_and(|o| o.stores_image()) {
        bail!(
            "--load puts the image in the store, and -o {} writes it elsewhere: tare writes one \
             output, so give one of them",
            args.output.as_deref().unwrap_or_default()
        );
    }
    let platforms = target_platforms(&args.platform)?;
    if platforms.len() > 1 && matches!(output, Some(Output::Docker { .. })) {
        bail!(
            "--platform {}: {DOCKER_MANIFEST_LIST}",
            args.platform.join(",")
        );
    }
    let layout = matches!(output, Some(Output::Oci { .. }));
    let annotations = Annotations::parse(&args.annotations, platforms.len(), layout)?;
    let mut push = args.push;
    // The tags an archive output names; the image itself is then not stored.
    let mut archive_names = Vec::new();
    match &output {
        None => {}
        Some(Output::Image { names, push: p }) => {
            tags.extend(names.iter().cloned());
            push |= p;
        }
        Some(Output::Oci { names, .. } | Output::Docker { names, .. }) => {
            archive_names = std::mem::take(&mut tags);
            archive_names.extend(names.iter().cloned());
        }
        Some(Output::Local { .. } | Output::Tar { .. }) => tags.clear(),
    }
    // Nothing but the archive may go to standard output then.
    let quiet = args.quiet || output.as_ref().is_some_and(writes_stdout);
    let mut labels = BTreeMap::new();
    for l in &args.labels {
        let (k, v) = l.split_once('=').unwrap_or((l.as_str(), ""));
        labels.insert(k.to_string(), v.to_string());
    }
    let runtime = match &args.runtime {
        Some(name) => Some(
            tare_sandbox::oci::find_runtime(name).with_context(|| format!("--runtime {name}"))?,
        ),
        None => None,
    };
    let tags_for_push = tags.clone();
    let mut build_args = parse_build_args(&args.build_args);
    crate::epoch::into_build_args(args.source_date_epoch.as_deref(), &mut build_args)?;
    let mut opts = BuildOptions {
        context: context_dir.clone(),
        dockerfile,
        dockerfile_name,
        dockerignore,
        tags,
        build_args,
        labels,
        network,
        target: args.target.clone(),
        no_cache: args.no_cache,
        no_cache_filter: args.no_cache_filter.clone(),
        explain_cache: args.explain_cache,
        runtime,
        max_download_size: args
            .max_download_size
            .unwrap_or(tare_build::fetch::DEFAULT_MAX_DOWNLOAD),
        secrets: args
            .secrets
            .iter()
            .map(|s| tare_build::secrets::SecretSpec::parse(s))
            .collect::<Result<_, _>>()?,
        ssh: args
            .ssh
            .iter()
            .map(|s| tare_build::secrets::SshSpec::parse(s))
            .collect::<Result<_, _>>()?,
        allow: args
            .allow
            .iter()
            .map(|a| a.parse::<tare_build::Entitlement>())
            .collect::<Result<_, _>>()?,
        interrupt: None,
        // RUN --mount (helper H1).
        keep_cache_mounts: args.keep_cache_mounts,
        platform: platforms.first().cloned(),
        build_contexts: args
            .build_contexts
            .iter()
            .map(|spec| NamedContext::parse(spec))
            .collect::<Result<_, _>>()?,
        // buildx's RUN settings and --pull (helper H4).
        extra_hosts: args
            .add_hosts
            .iter()
            .map(|h| tare_sandbox::ExtraHost::parse(h).with_context(|| format!("--add-host {h}")))
            .collect::<Result<_, _>>()?,
        shm_size: args.shm_size,
        ulimits: args
            .ulimits
            .iter()
            .map(|u| tare_sandbox::Ulimit::parse(u).with_context(|| format!("--ulimit {u}")))
            .collect::<Result<_, _>>()?,
        pull: args.pull,
        cgroup_parent: args.cgroup_parent.clone(),
        // git sources (helper H3).
        git_timeout: git_timeout(&args),
        // Reproducible images (helper H6).
        rewrite_timestamp: args.rewrite_timestamp,
        // The build cache in a registry (helper H2).
        cache_to: args
            .cache_to
            .iter()
            .map(|c| tare_build::remote_cache::CacheTo::parse(c))
            .collect::<Result<_, _>>()?,
        cache_from: args
            .cache_from
            .iter()
            .map(|c| tare_build::remote_cache::CacheFrom::parse(c))
            .collect::<Result<_, _>>()?,
        registry: Some(args.registry.options()),
        push_only: push_only(&args, output.as_ref(), push, &platforms, &tags_for_push),
    };
    // The inline cache rides in the image's manifest (helper H1): an output of files has
    // none (BuildKit's local and tar exporters drop it too), and --squash replaces the
    // layers its entries name.
    if opts
        .cache_to
        .iter()
        .any(|c| c.location == tare_build::remote_cache::Location::Inline)
    {
        let why = match &output {
            Some(Output::Local { .. } | Output::Tar { .. }) => {
                Some("-o type=local|tar writes files, not an image")
            }
            _ if args.squash.is_some() => Some("--squash replaces the layers of the steps"),
            _ => None,
        };
        if let Some(why) = why {
            eprintln!("WARNING: --cache-to type=inline: {why}, so no inline cache is written");
        }
    }
    // Ctrl-C stops the build between steps (a running RUN is ended by the sandbox), so its
    // temporary directories are removed; a second Ctrl-C exits at once.
    let interrupt = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&interrupt))
            .context("installing the Ctrl-C handler")?;
        signal_hook::flag::register(signal, Arc::clone(&interrupt))
            .context("installing the Ctrl-C handler")?;
    }
    opts.interrupt = Some(interrupt);
    let store = ctx.store()?;
    // The size baseline (helper H6): looked up before the build, which may move its tag.
    let baseline = match &args.baseline {
        Some(_) if platforms.len() > 1 => {
            bail!("--baseline compares one image: build one platform at a time")
        }
        Some(what) => Some(
            store
                .resolve(what)
                .with_context(|| format!("--baseline: looking up {what}"))?,
        ),
        None => None,
    };
    if platforms.len() > 1 {
        return build_index(
            &store,
            &args,
            &opts,
            &platforms,
            // The file and archive outputs (`-o type=local|tar|oci`) write every platform,
            // and the images are then not kept.
            output
                .as_ref()
                .filter(|o| !o.stores_image())
                .map(|o| (o, archive_names.as_slice())),
            push,
            quiet,
        );
    }
    let images_before: BTreeSet<_> = store.image_ids()?.into_iter().collect();
    // Kept after the build: a push reports as one more step of it.
    let printer = (!quiet).then(|| Printer::new(args.progress));
    let result = match &printer {
        Some(printer) => tare_build::build(&store, &opts, printer),
        None => tare_build::build(&store, &opts, &Silent),
    }
    .context("build failed")?;
    if !result.remote_layers.is_empty() {
        return push_remote(
            &store,
            &args,
            &result,
            &opts,
            &annotations,
            printer.as_ref(),
        );
    }
    let done = finish(&store, &args, &result, &opts.tags)?;
    let annotated = annotate(
        &store,
        &done.image,
        &annotations,
        opts.platform.as_ref(),
        outputs::Keep::Stored,
    )?;
    let image = &annotated;
    let growth = match &baseline {
        Some(base) => Some(compare_baseline(&store, &args, base, image)?),
        None => None,
    };
    let id = image.id.to_string();
    if let Some(path) = &args.iidfile {
        std::fs::write(path, &id).with_context(|| format!("writing {}", path.display()))?;
    }
    // An archive output's `index.json` entry, for --metadata-file.
    let mut saved = None;
    if let Some(output) = output.as_ref().filter(|o| !o.stores_image()) {
        let platform = opts
            .platform
            .clone()
            .unwrap_or_else(tare_build::Platform::host);
        let descriptor = annotations.layout_descriptor(1, &platform);
        saved = write_output(&store, image, output, &archive_names, &descriptor)?;
        // The image was only the means: the store keeps its layers (the cache) but no new
        // image record.
        for made in [&result.image.id, &image.id] {
            if !images_before.contains(made) && store.image_by_id(made).is_ok() {
                store
                    .remove_image(made)
                    .with_context(|| format!("removing the intermediate image {made}"))?;
            }
        }
    }
    if output.as_ref().is_some_and(writes_stdout) {
        // Standard output holds the archive.
    } else if args.quiet {
        crate::outln!("{id}");
    } else {
        let size = tare_layer::image_content_size(&store, image)?;
        print_summary(&result, image, size)?;
        for line in done.summary.lines(3) {
            crate::outln!("{line}");
        }
    }
    if done.summary.failed() {
        for v in &done.summary.budgets.violations {
            eprintln!("error: budget exceeded: {v}");
        }
        return Ok(ExitCode::from(1));
    }
    if let Some((summary, over)) = &growth {
        if !args.quiet {
            crate::outln!("{summary}");
        }
        if let Some(lines) = over {
            eprintln!("error: the image {}", lines[0]);
            for line in &lines[1..] {
                eprintln!("{line}");
            }
            return Ok(ExitCode::from(1));
        }
    }
    if push {
        push_tags(
            &store,
            image,
            &opts.tags,
            printer.as_ref().filter(|_| !args.quiet),
            &args.registry.options(),
        )?;
    }
    if let Some(path) = &args.metadata_file {
        let names = if archive_names.is_empty() {
            &opts.tags
        } else {
            &archive_names
        };
        let metadata = metadata_json(&store, image, output.as_ref(), names, saved.as_ref())?;
        let text = serde_json::to_vec_pretty(&metadata)?;
        std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// buildx's attestation flags: tare makes no attestations, so a pipeline that turns them off
/// builds unchanged, and one that asks for them is told so instead of getting an image
/// without what it asked for.
fn refuse_attestations(args: &Args) -> anyhow::Result<()> {
    let off = |value: &str| {
        matches!(value, "false" | "0") || value.split(',').any(|kv| kv == "disabled=true")
    };
    for (flag, what, value) in [
        ("--provenance", "provenance", &args.provenance),
        ("--sbom", "SBOM", &args.sbom),
    ] {
        if let Some(value) = value.as_deref().filter(|v| !off(v)) {
            bail!("{flag}={value}: tare writes no {what} attestations; build with {flag}=false");
        }
    }
    if let Some(value) = args.attest.iter().find(|v| !off(v)) {
        bail!("--attest {value}: tare writes no attestations; drop the flag or add disabled=true");
    }
    Ok(())
}
