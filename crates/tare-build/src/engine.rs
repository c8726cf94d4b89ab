//! The build: which stages to build, in which order, in parallel where they are
//! independent, and the final image.
//!
//! Only the stages the target needs are built: the target, the stages it is built `FROM`,
//! and those it copies from, transitively. Every needed stage gets a thread; a stage waits
//! for the stages it depends on to finish ([`Slots`]), so independent stages run at the same
//! time and each reports under its own name.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicUsize;
use std::sync::Arc;
use std::time::SystemTime;

use tare_dockerfile::Command;
use tare_store::{BuildInfo, Image, StepOrigin, Store};

use crate::cache::Cache;
use crate::context::{Build, BuildOptions, Slots, StageOut, StepSummary};
use crate::error::Error;
use crate::report::{Event, Reporter};
use crate::stage::build_stage;
use crate::tree::ContextTree;

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    /// The image, as stored (or, with [`BuildOptions::push_only`], as pushed).
    pub image: Image,
    /// Layers that came from the base image.
    pub base_layers: usize,
    /// Their size in file bytes, as docker counts a layer.
    pub base_size: u64,
    /// The image's size in file bytes.
    pub image_size: u64,
    /// The steps of the target stage's chain, in order.
    pub steps: Vec<StepSummary>,
    /// The build's warnings (also reported as [`crate::Event::Warning`]).
    pub warnings: Vec<String>,
    /// With [`BuildOptions::push_only`]: the layers of `image` that stayed in the registry
    /// (lazy `--cache-from` hits). When there are any, the image is not stored: the store
    /// holds its config and manifest blobs, and a push finds or mounts these layers.
    pub remote_layers: Vec<crate::remote_cache::RemoteLayer>,
}

/// The stages `target` needs, itself included.
fn needed_stages(build: &Build<'_>) -> BTreeSet<usize> {
    let mut needed = BTreeSet::new();
    let mut todo = vec![build.dockerfile.target];
    while let Some(i) = todo.pop() {
        if !needed.insert(i) {
            continue;
        }
        let Some(stage) = build.dockerfile.stages.get(i) else {
            continue;
        };
        if let Some(b) = stage.base_stage {
            todo.push(b);
        }
        for ins in &stage.instructions {
            // COPY --from and RUN --mount=...,from=STAGE read another stage.
            let froms: Vec<&String> = match &ins.command {
                Command::Copy(c) => c.from.iter().collect(),
                Command::Run(r) => r.mounts.iter().filter_map(|m| m.from.as_ref()).collect(),
                _ => Vec::new(),
            };
            for from in froms {
                if let Some(dep) = build.stage_index(from, i) {
                    todo.push(dep);
                }
            }
        }
    }
    needed
}

/// Builds the Dockerfile and stores the image.
pub fn build(
    store: &Store,
    opts: &BuildOptions,
    reporter: &dyn Reporter,
) -> Result<BuildResult, Error> {
    let ast = tare_dockerfile::parse(&opts.dockerfile, &opts.dockerfile_name)?;
    let target_platform = opts.platform.as_ref().map(ToString::to_string);
    let dockerfile = tare_dockerfile::evaluate_for_platform(
        &ast,
        &opts.build_args,
        opts.target.as_deref(),
        target_platform.as_deref(),
    )?;
    let mut warnings: Vec<String> = dockerfile
        .warnings
        .iter()
        .map(|w| match w.line {
            Some(l) => format!("{}:{l}: {}", opts.dockerfile_name, w.message),
            None => w.message.clone(),
        })
        .collect();
    let epoch = crate::epoch::Epoch::of_build_args(&opts.build_args)?;
    if opts.rewrite_timestamp && epoch.is_none() {
        // BuildKit warns the same way and writes the layers as they are.
        warnings.push("--rewrite-timestamp is given, but no SOURCE_DATE_EPOCH".to_string());
    }
    for w in &warnings {
        reporter.report(SystemTime::now(), Event::Warning { message: w.clone() });
    }
    let remote = crate::remote_cache::Remote::new(&opts.cache_from);
    // A lazy `--cache-from` hit whose layer cannot be fetched when it is needed fails the
    // attempt; the next one finds the steps that ran or were fetched in the local cache and
    // runs that step instead. Each failed attempt refuses one more entry, so this ends.
    loop {
        let build = Build {
            store,
            opts,
            reporter,
            context: ContextTree::open(&opts.context, opts.dockerignore.as_deref())?,
            cache: Cache::open(store)?,
            slots: Slots::new(dockerfile.stages.len()),
            dockerfile: dockerfile.clone(),
            counter: AtomicUsize::new(0),
            agents: crate::secrets::Agents::start(store, &opts.ssh)?,
            cache_mounts_reset: Default::default(),
            epoch,
            remote: &remote,
        };
        let refused = remote.refused();
        match build_once(&build, warnings.clone()) {
            Err(e) => match remote_layer_error(&e).filter(|_| remote.refused() > refused) {
                Some(message) => {
                    remote.restart();
                    reporter.report(
                        SystemTime::now(),
                        Event::Warning {
                            message: format!(
                                "--cache-from: entry ignored: {message}; building again without it"
                            ),
                        },
                    );
                }
                None => return Err(e),
            },
            ok => return ok,
        }
    }
}

/// The message of a [`Error::RemoteLayer`] anywhere in `e`'s chain.
fn remote_layer_error(e: &Error) -> Option<String> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(r @ Error::RemoteLayer { .. }) = err.downcast_ref::<Error>() {
            return Some(r.to_string());
        }
        cur = err.source();
    }
    None
}

/// One attempt at the build: the stages, the image, the export.
fn build_once(build: &Build<'_>, warnings: Vec<String>) -> Result<BuildResult, Error> {
    let needed = needed_stages(build);
    let target = build.dockerfile.target;
    let results: Vec<(usize, Result<Arc<StageOut>, Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = needed
            .iter()
            .map(|&i| {
                (
                    i,
                    s.spawn(move || {
                        let result = build_stage(build, i).map(Arc::new);
                        build.slots.set(
                            i,
                            result.as_ref().map(Arc::clone).map_err(|e| e.to_string()),
                        );
                        result
                    }),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(i, h)| {
                let r = h.join().unwrap_or_else(|_| {
                    Err(Error::Panicked {
                        what: format!("stage {i}"),
                    })
                });
                (i, r)
            })
            .collect()
    });
    build.cache.save()?;
    // Report the first stage's own error (not a "stage N failed" echo from a dependent).
    let mut out = None;
    let mut first_err = None;
    for (i, r) in results {
        match r {
            Ok(o) if i == target => out = Some(o),
            Ok(_) => {}
            Err(e) => {
                let echo = matches!(e, Error::DependencyFailed { .. });
                if first_err.is_none()
                    || (!echo && first_err.as_ref().is_some_and(|(echoed, _)| *echoed))
                {
                    first_err = Some((echo, e));
                }
            }
        }
    }
    if let Some((_, e)) = first_err {
        return Err(e);
    }
    let out = out.ok_or(Error::NoResult)?;
    let mut result = commit(build, &out, warnings)?;
    // `--cache-to type=inline`: the steps go into the image's manifest (its ID stays).
    result.image = crate::remote_cache::annotate_inline(
        &build.remote_env(),
        build.remote,
        &build.opts.cache_to,
        &build.dockerfile,
        target,
        result.image,
        result.remote_layers.is_empty(),
    )?;
    crate::remote_cache::export(
        &build.remote_env(),
        build.remote,
        &build.opts.cache_to,
        &build.dockerfile,
        target,
    );
    Ok(result)
}

/// Builds the Dockerfile once per platform, all at the same time (each platform's stages in
/// parallel as in [`build`]); a step two platforms share is made once (see
/// `cache::Claim`). Events keep their order within a platform; each carries its platform
/// before its stage name (`linux/arm64 build`, as BuildKit labels them) and a step number
/// unique across the platforms. Results are in `platforms` order.
pub fn build_platforms(
    store: &Store,
    opts: &BuildOptions,
    platforms: &[crate::Platform],
    reporter: &dyn Reporter,
) -> Vec<Result<BuildResult, Error>> {
    let numbers = Numbering::default();
    std::thread::scope(|s| {
        let handles: Vec<_> = platforms
            .iter()
            .enumerate()
            .map(|(n, platform)| {
                let numbers = &numbers;
                s.spawn(move || {
                    let one = BuildOptions {
                        platform: Some(platform.clone()),
                        tags: Vec::new(),
                        ..opts.clone()
                    };
                    let labelled = Labelled {
                        inner: reporter,
                        platform: platform.to_string(),
                        build: n,
                        numbers,
                    };
                    build(store, &one, &labelled)
                })
            })
            .collect();
        handles
            .into_iter()
            .zip(platforms)
            .map(|(h, p)| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::Panicked {
                        what: format!("the build for {p}"),
                    })
                })
            })
            .collect()
    })
}

/// Step numbers of several builds, made unique: (build, its number) -> a number of all.
#[derive(Default)]
struct Numbering(std::sync::Mutex<Numbers>);

#[derive(Default)]
struct Numbers {
    last: usize,
    given: std::collections::HashMap<(usize, usize), usize>,
}

/// One platform's events, labelled with it, passed on.
struct Labelled<'a> {
    inner: &'a dyn Reporter,
    platform: String,
    build: usize,
    numbers: &'a Numbering,
}

impl Reporter for Labelled<'_> {
    fn report(&self, at: SystemTime, mut event: Event) {
        let step = match &mut event {
            Event::Started { step, .. }
            | Event::Cached { step }
            | Event::CacheMiss { step, .. }
            | Event::Log { step, .. }
            | Event::Progress { step, .. }
            | Event::Transfer { step, .. }
            | Event::Finished { step, .. } => Some(step),
            Event::Warning { message } => {
                *message = format!("{}: {message}", self.platform);
                None
            }
        };
        if let Some(step) = step {
            step.stage = if step.stage.is_empty() {
                self.platform.clone()
            } else {
                format!("{} {}", self.platform, step.stage)
            };
            let mut numbers = self.numbers.0.lock().unwrap_or_else(|e| e.into_inner());
            let Numbers { last, given } = &mut *numbers;
            step.number = *given.entry((self.build, step.number)).or_insert_with(|| {
                *last += 1;
                *last
            });
        }
        self.inner.report(at, event);
    }
}

fn commit(build: &Build<'_>, out: &StageOut, warnings: Vec<String>) -> Result<BuildResult, Error> {
    let mut config = out.config.clone();
    if !build.opts.labels.is_empty() {
        let labels = config.config.labels.get_or_insert_with(BTreeMap::new);
        for (k, v) in &build.opts.labels {
            labels.insert(k.clone(), v.clone());
        }
    }
    config.created = out.created.clone();
    if let Some(epoch) = build.epoch {
        clamp_times(&mut config, &out.history_origins, epoch);
    }
    // BuildKit labels the result with the target platform, whatever its stage's FROM was.
    if let Some(platform) = &build.opts.platform {
        crate::platform::set_config_platform(&mut config, platform);
    }
    config.rootfs.diff_ids = out.layers.iter().map(|l| l.diff_id).collect();
    let build_info = BuildInfo {
        dockerfile: Some(build.opts.dockerfile_name.clone()),
        context: Some(build.context.root().display().to_string()),
        base_layers: Some(out.base_layers),
        history: out.history_origins.clone(),
        squash: None,
    };
    // Lazy `--cache-from` hits' layers are fetched now, unless the image is only pushed to
    // the registry that holds them.
    let store = build.store;
    let mut layers = Vec::with_capacity(out.layers.len());
    let mut remote_layers = Vec::new();
    for layer in &out.layers {
        let stays = build.opts.push_only.as_deref().and_then(|domain| {
            build
                .remote
                .remote_repository(store, layer)
                .filter(|r| r.domain() == domain)
        });
        match stays {
            Some(r) => {
                remote_layers.push(crate::remote_cache::RemoteLayer {
                    layer: layer.clone(),
                    repository: r.name(),
                });
                layers.push(layer.clone());
            }
            None => layers.push(build.remote.materialize(&build.remote_env(), layer)?),
        }
    }
    let image = if remote_layers.is_empty() {
        store.commit_image(&config, &layers, &build.opts.tags, Some(build_info))?
    } else {
        // Not stored (its layers are not here): the config and manifest blobs the push sends.
        let bytes = serde_json::to_vec(&config).map_err(|error| Error::Encode {
            what: "image config",
            error,
        })?;
        let id = store.put_bytes(&bytes)?;
        let manifest = tare_store::manifest_json(&id, bytes.len() as u64, &layers)?;
        Image {
            id,
            manifest_digest: store.put_bytes(&manifest)?,
            config,
            layers,
            repo_tags: Vec::new(),
            build_info: Some(build_info),
        }
    };
    let base_size = build.remote.layers_content_size(
        store,
        &image.layers[..out.base_layers.min(image.layers.len())],
    )?;
    let image_size = build.remote.layers_content_size(store, &image.layers)?;
    Ok(BuildResult {
        image,
        base_layers: out.base_layers,
        base_size,
        image_size,
        steps: out.steps.clone(),
        warnings,
        remote_layers,
    })
}

/// `SOURCE_DATE_EPOCH`, as BuildKit's exporter applies it: the image's `created` and that of
/// each history entry this build made (those with a Dockerfile line; the base image's keep
/// theirs) become `min(created, epoch)`.
fn clamp_times(
    config: &mut tare_store::config::ImageConfig,
    history_origins: &[Option<StepOrigin>],
    epoch: crate::epoch::Epoch,
) {
    config.created = Some(epoch.clamp_created(config.created.as_deref()));
    for (h, origin) in config.history.iter_mut().zip(history_origins) {
        if origin.is_some() {
            h.created = Some(epoch.clamp_created(h.created.as_deref()));
        }
    }
}
