//! What the stages and steps of one build share: the options, the store, the context, the
//! cache and the reporter ([`Build`]), the state a stage carries from step to step
//! ([`StageOut`]), and what one step may read ([`StepCtx`]).
//!
//! The engine (the stage graph) and the steps both depend on this module, never on each
//! other's internals: `engine -> stage -> steps -> context`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use tare_dockerfile::{Dockerfile, Instruction, Stage};
use tare_sandbox::Network;
use tare_store::config::{History, ImageConfig};
use tare_store::{LayerInfo, Reference, StepOrigin, Store};

use crate::cache::Cache;
use crate::error::Error;
use crate::report::{Event, Reporter, StepId};
use crate::tree::{ContextTree, Layers};

/// Everything `tare build` decides.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's text.
    pub dockerfile: String,
    /// The name the Dockerfile is reported under in errors and history (its path, or `-`).
    pub dockerfile_name: String,
    /// The Dockerfile's own ignore file (`<Dockerfile>.dockerignore` beside it), read instead
    /// of the context's `.dockerignore` when present, as docker and buildx do.
    pub dockerignore: Option<PathBuf>,
    /// `-t`: the names the image is tagged with.
    pub tags: Vec<Reference>,
    /// `--build-arg`: values for the Dockerfile's ARGs (and the proxy variables RUN sees).
    pub build_args: BTreeMap<String, String>,
    /// `--label`: added to the final image's config.
    pub labels: BTreeMap<String, String>,
    /// `--network`: what RUN steps without `--network` get.
    pub network: Network,
    /// `--target`: the stage to build (by name or index); `None` builds the last one.
    pub target: Option<String>,
    /// `--no-cache`: run every step.
    pub no_cache: bool,
    /// `--no-cache-filter`: stages (names or indices) whose steps always run.
    pub no_cache_filter: Vec<String>,
    /// `--explain-cache`: report why each step missed.
    pub explain_cache: bool,
    /// `--runtime`: run RUN steps through this OCI runtime binary instead of the built-in
    /// sandbox.
    pub runtime: Option<PathBuf>,
    /// `--max-download-size`: the most bytes one ADD URL may download
    /// (fetch.rs's `DEFAULT_MAX_DOWNLOAD` by default).
    pub max_download_size: u64,
    // --- RUN --mount=type=secret|ssh and RUN --security (see crate::secrets) ---
    /// `--secret`: where each secret's value is (never the value itself).
    pub secrets: Vec<crate::secrets::SecretSpec>,
    /// `--ssh`: the agent sockets or key files by id.
    pub ssh: Vec<crate::secrets::SshSpec>,
    /// `--allow`: the entitlements granted to the build (`security.insecure`).
    pub allow: Vec<Entitlement>,
    // --- end of secrets, ssh and entitlements ---
    /// Set (by the caller's signal handler) to stop the build at the next step boundary,
    /// cleaning up as for an error.
    pub interrupt: Option<Arc<std::sync::atomic::AtomicBool>>,

    // RUN --mount (helper H1).
    /// `--keep-cache-mounts`: with `--no-cache`, cache mounts keep their contents (without
    /// it they start empty, as in BuildKit).
    pub keep_cache_mounts: bool,
    // --- The buildx interface (platforms, outputs, build contexts, metadata) ---
    /// `--platform`: the target platform (the `TARGET*` ARGs, the platform FROM resolves and
    /// a `FROM scratch` image's config). `None`: this machine's, and FROM takes the store's
    /// image of that name whatever its platform.
    pub platform: Option<tare_registry::Platform>,
    /// `--build-context NAME=...`, by lower-case name: what FROM, `COPY --from` and
    /// `RUN --mount from=` of that name read (`steps::from::lookup`).
    pub build_contexts: BTreeMap<String, crate::contexts::NamedContext>,
    // --- buildx's RUN settings and --pull (helper H4, issue 14 item 7) ---
    /// `--add-host`: entries appended to every RUN step's /etc/hosts.
    pub extra_hosts: Vec<tare_sandbox::ExtraHost>,
    /// `--shm-size`: the size of RUN steps' /dev/shm in bytes (default 64 MiB).
    pub shm_size: Option<u64>,
    /// `--ulimit`: resource limits of RUN steps.
    pub ulimits: Vec<tare_sandbox::Ulimit>,
    /// `--cgroup-parent`: each RUN step runs in a new cgroup under this one (helper H2).
    pub cgroup_parent: Option<tare_sandbox::CgroupParent>,
    /// `--pull`: FROM asks the registry for the current image even when the store has one
    /// of that name.
    pub pull: bool,
    // --- git sources (ADD <git url>; helper H3) ---
    /// `--git-timeout`: the deadline of each git command an ADD of a git URL runs
    /// (git's `DEFAULT_TIMEOUT` by default).
    pub git_timeout: std::time::Duration,
    // --- Reproducible images (helper H6, issue 17; see crate::epoch) ---
    // The epoch itself is the `SOURCE_DATE_EPOCH` build arg (the CLI maps the environment
    // variable and `--source-date-epoch` onto it, as buildx does).
    /// `--rewrite-timestamp`: with an epoch, every mtime later than it in the layers this
    /// build makes is written as the epoch.
    pub rewrite_timestamp: bool,
    // --- end of reproducible images ---

    // --- The build cache in a registry (helper H2, issue 15; see crate::remote_cache) ---
    /// `--cache-to`: where this build's cache entries are exported.
    pub cache_to: Vec<crate::remote_cache::CacheTo>,
    /// `--cache-from`: where steps the local cache misses are looked up.
    pub cache_from: Vec<crate::remote_cache::CacheFrom>,
    /// Registry settings for both (credentials, TLS, insecure registries); `None`: from the
    /// environment, as `tare push` without flags.
    pub registry: Option<tare_registry::Options>,
    /// The registry (its domain) the caller pushes the result to without keeping it: the
    /// layers of lazy `--cache-from` hits in that registry are then not fetched, the image
    /// is not stored (only its config and manifest blobs are) and
    /// [`BuildResult::remote_layers`](crate::BuildResult::remote_layers) names them.
    pub push_only: Option<String>,
    // --- end of the remote cache ---
}

/// What `--allow` may grant: BuildKit's entitlements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entitlement {
    /// `security.insecure`: `RUN --security=insecure` runs with every capability and no
    /// seccomp filter.
    SecurityInsecure,
    /// `network.host`: accepted for BuildKit compatibility; tare's `RUN --network=host`
    /// does not require it (the build's own `--network host` does not either).
    NetworkHost,
}

impl std::str::FromStr for Entitlement {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "security.insecure" => Ok(Entitlement::SecurityInsecure),
            "network.host" => Ok(Entitlement::NetworkHost),
            other => Err(Error::BadOption {
                flag: "--allow",
                value: format!("{other:?}"),
                reason: "unknown entitlement (security.insecure or network.host)".into(),
            }),
        }
    }
}

/// One step of the final image's stage chain, for the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSummary {
    /// The stage's name, or its index as text.
    pub stage: String,
    /// The instruction as written.
    pub text: String,
    /// 1-based Dockerfile line where the instruction starts.
    pub line: usize,
    /// Whether the cache answered the step.
    pub cached: bool,
    /// Uncompressed layer size, `None` for steps without a layer.
    pub layer_size: Option<u64>,
    /// The image size after this step.
    pub image_size: u64,
}

/// Shared by all stage threads of one build.
pub(crate) struct Build<'a> {
    pub store: &'a Store,
    pub opts: &'a BuildOptions,
    pub reporter: &'a dyn Reporter,
    pub context: ContextTree,
    pub cache: Cache,
    pub dockerfile: Dockerfile,
    /// Numbers steps in start order across stages.
    pub counter: AtomicUsize,
    pub slots: Slots,
    /// The `--ssh` agents, started for the build and stopped with it.
    pub agents: crate::secrets::Agents,
    /// The caches (id and base) this build has already emptied (`--no-cache`): each once.
    pub cache_mounts_reset: Mutex<std::collections::HashSet<(String, Option<String>)>>,
    /// `SOURCE_DATE_EPOCH`, parsed once.
    pub epoch: Option<crate::epoch::Epoch>,
    /// `--cache-from` sources, lazy hits' layers, and the records `--cache-to` exports
    /// (kept across the attempts of one build, see the engine's `build`).
    pub remote: &'a crate::remote_cache::Remote,
}

/// A finished stage, or its error as text (the error itself goes to the caller once).
type StageResult = Result<Arc<StageOut>, String>;

/// The results of stages, filled as they finish; readers wait for the ones they need.
pub(crate) struct Slots {
    done: Mutex<Vec<Option<StageResult>>>,
    changed: Condvar,
}

impl Slots {
    pub fn new(n: usize) -> Slots {
        Slots {
            done: Mutex::new(vec![None; n]),
            changed: Condvar::new(),
        }
    }

    pub fn set(&self, index: usize, result: StageResult) {
        if let Ok(mut done) = self.done.lock() {
            if let Some(slot) = done.get_mut(index) {
                *slot = Some(result);
            }
        }
        self.changed.notify_all();
    }

    /// Waits for stage `index`; an error when it failed (its own error is reported once).
    pub fn wait(&self, index: usize) -> Result<Arc<StageOut>, Error> {
        let mut done = self.done.lock().map_err(|_| Error::Panicked {
            what: "a stage thread".into(),
        })?;
        loop {
            match done.get(index) {
                Some(Some(Ok(out))) => return Ok(out.clone()),
                Some(Some(Err(e))) => {
                    return Err(Error::DependencyFailed {
                        stage: index,
                        message: e.clone(),
                    })
                }
                Some(None) => {}
                None => return Err(Error::NoStage { index }),
            }
            done = self.changed.wait(done).map_err(|_| Error::Panicked {
                what: "a stage thread".into(),
            })?;
        }
    }
}

impl Build<'_> {
    /// An error when the caller asked the build to stop.
    pub fn check_interrupt(&self) -> Result<(), Error> {
        match &self.opts.interrupt {
            Some(flag) if flag.load(std::sync::atomic::Ordering::SeqCst) => Err(Error::Interrupted),
            _ => Ok(()),
        }
    }

    /// The stage a `--from` value or FROM names, if it is a stage before `before`: when
    /// names repeat (BuildKit only warns), the last one of that name.
    pub fn stage_index(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        let by_name = self
            .dockerfile
            .stages
            .iter()
            .take(before)
            .rfind(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index);
        by_name.or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
    }

    /// Whether the cache may answer steps of this stage.
    pub fn cache_enabled(&self, stage: &Stage) -> bool {
        if self.opts.no_cache {
            return false;
        }
        !self.opts.no_cache_filter.iter().any(|f| {
            stage.name.as_deref() == Some(f.to_ascii_lowercase().as_str())
                || f.parse::<usize>().ok() == Some(stage.index)
        })
    }

    pub fn report(&self, event: Event) {
        self.reporter.report(SystemTime::now(), event);
    }

    /// What the remote cache's calls use of this build.
    pub fn remote_env(&self) -> crate::remote_cache::Env<'_> {
        crate::remote_cache::Env {
            store: self.store,
            cache: &self.cache,
            reporter: self.reporter,
            steps: &self.counter,
            registry: self.opts.registry.as_ref(),
            platform: self.opts.platform.as_ref(),
        }
    }

    /// The mtime clamp of the layers this build makes: the epoch with `--rewrite-timestamp`.
    pub fn mtime_clamp(&self) -> Option<u64> {
        self.epoch
            .filter(|_| self.opts.rewrite_timestamp)
            .map(crate::epoch::Epoch::mtime_clamp)
    }

    /// A layer step's cache inputs: its key, and the build options that change the bytes of
    /// every layer ([`Self::mtime_clamp`]). Every layer step's key goes through here.
    pub fn layer_inputs(&self, key: &crate::key::StepKey) -> Result<serde_json::Value, Error> {
        let step = key.encode()?;
        Ok(match self.mtime_clamp() {
            None => step,
            Some(clamp) => serde_json::json!({"step": step, "mtime_clamp": clamp}),
        })
    }

    /// A fresh scratch directory for one step under the store's `tmp/`.
    pub fn scratch_dir(&self) -> Result<tare_store::TempDir, Error> {
        // In the store's temporary area: reclaimed even if the build is killed.
        Ok(self.store.temp_dir("step-")?)
    }
}

/// A built stage, or one being built: what the next step, the next stage, a `COPY --from`
/// or the final commit needs.
#[derive(Debug, Clone)]
pub(crate) struct StageOut {
    pub config: ImageConfig,
    pub layers: Vec<LayerInfo>,
    /// Snapshot directories, bottom first, one per layer.
    pub snapshots: Vec<PathBuf>,
    /// The cache key of the state after the last step.
    pub key: String,
    /// How many of `layers` came from the base image.
    pub base_layers: usize,
    /// The steps of this stage and of the stages it is built FROM.
    pub steps: Vec<StepSummary>,
    /// The step that made each history entry (`None` for the base image's entries).
    pub history_origins: Vec<Option<StepOrigin>>,
    /// When the last layer was made (the image's `created`).
    pub created: Option<String>,
}

/// What BuildKit's Dockerfile frontend writes in every history entry it makes.
const HISTORY_COMMENT: &str = "buildkit.dockerfile.v0";

impl StageOut {
    /// The stage's layers as a tree to read files from (`name` is used in errors). A COPY's
    /// snapshot is made only here, extracted from its layer, when a step first reads the
    /// tree it is part of (see `crate::layer::commit_plan`); so is a lazy `--cache-from`
    /// hit's, its layer fetched first (`crate::remote_cache`).
    pub fn tree(&self, build: &Build<'_>, name: &str) -> Result<Layers, Error> {
        self.extract(build)?;
        Ok(self.tree_unread(name))
    }

    /// The stage's layers as a tree that must not be read before [`Self::extract`]: for a
    /// step that may be answered by the cache without reading it (`COPY --from`).
    pub fn tree_unread(&self, name: &str) -> Layers {
        Layers::new(self.snapshots.clone(), name)
    }

    /// Makes the snapshots of the stage's layers, fetching lazy `--cache-from` layers.
    pub fn extract(&self, build: &Build<'_>) -> Result<(), Error> {
        for (layer, dir) in self.layers.iter().zip(&self.snapshots) {
            if !dir.is_dir() {
                build.remote.materialize(&build.remote_env(), layer)?;
                crate::layer::snapshot_of(build.store, &layer.diff_id)?;
            }
        }
        Ok(())
    }

    /// The layers the stage starts from (its base image's, or its FROM stage's).
    pub fn base(&self) -> &[LayerInfo] {
        &self.layers[..self.base_layers.min(self.layers.len())]
    }

    /// The working directory, `/` when unset.
    pub fn workdir(&self) -> String {
        crate::config::current_dir(&self.config)
    }

    pub fn push_history(&mut self, created_by: String, layer: bool, origin: StepOrigin) {
        self.config.history.push(History {
            created: self.created.clone(),
            created_by: Some(created_by),
            comment: Some(HISTORY_COMMENT.to_string()),
            empty_layer: !layer,
            ..History::default()
        });
        self.history_origins.push(Some(origin));
    }
}

/// What one step may read: the build, its stage and instruction, its progress identity, and
/// whether the cache may answer it. The state it changes ([`StageOut`]) is passed beside it.
pub(crate) struct StepCtx<'a> {
    pub build: &'a Build<'a>,
    pub stage: &'a Stage,
    pub ins: &'a Instruction,
    pub step: &'a StepId,
    pub cache_on: bool,
}

impl StepCtx<'_> {
    /// The 1-based Dockerfile line of the instruction.
    pub fn line(&self) -> usize {
        self.ins.location.start_line
    }

    /// The step as the image's build record names it: Dockerfile, line and stage.
    pub fn origin(&self) -> StepOrigin {
        StepOrigin {
            file: self.build.opts.dockerfile_name.clone(),
            line: self.line(),
            stage: Some(self.step.stage.clone()),
        }
    }

    pub fn report(&self, event: Event) {
        self.build.report(event);
    }
}
