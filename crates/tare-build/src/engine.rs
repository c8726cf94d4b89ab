//! The build: which stages to build, in which order, in parallel where they are
//! independent, and the final image.
//!
//! Only the stages the target needs are built: the target, the stages it is built `FROM`,
//! and those it copies from, transitively. Every needed stage gets a thread; a stage waits
//! for the stages it depends on to finish ([`Slots`]), so independent stages run at the same
//! time and each reports under its own name.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::SystemTime;

use serde_json::json;
use tare_dockerfile::{Command, Dockerfile};
use tare_sandbox::Network;
use tare_store::{Image, Reference, Store};

use crate::cache::Cache;
use crate::error::Error;
use crate::report::{Event, Reporter};
use crate::stage::{build_stage, StageOut};
use crate::tree::ContextTree;

/// Everything `tare build` decides.
#[derive(Debug, Clone, Default)]
pub struct BuildOptions {
    /// The context directory.
    pub context: PathBuf,
    /// The Dockerfile's text and the name it is reported under (its path, or `-`).
    pub dockerfile: String,
    pub dockerfile_name: String,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    /// `--label`: added to the final image's config.
    pub labels: BTreeMap<String, String>,
    pub network: Network,
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
    /// Set (by the caller's signal handler) to stop the build at the next step boundary,
    /// cleaning up as for an error.
    pub interrupt: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// One step of the final image's stage chain, for the summary.
#[derive(Debug, Clone, PartialEq)]
pub struct StepSummary {
    pub stage: String,
    pub text: String,
    pub line: usize,
    pub cached: bool,
    /// Uncompressed layer size, `None` for steps without a layer.
    pub layer_size: Option<u64>,
    /// The image size after this step.
    pub image_size: u64,
}

/// What a build made.
#[derive(Debug, Clone)]
pub struct BuildResult {
    pub image: Image,
    /// Layers that came from the base image.
    pub base_layers: usize,
    /// Their size in file bytes, as docker counts a layer.
    pub base_size: u64,
    /// The image's size in file bytes.
    pub image_size: u64,
    pub steps: Vec<StepSummary>,
    pub warnings: Vec<String>,
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
}

/// A finished stage, or its error as text (the error itself goes to the caller once).
type StageResult = Result<Arc<StageOut>, String>;

/// The results of stages, filled as they finish; readers wait for the ones they need.
pub(crate) struct Slots {
    done: Mutex<Vec<Option<StageResult>>>,
    changed: Condvar,
}

impl Slots {
    fn new(n: usize) -> Slots {
        Slots {
            done: Mutex::new(vec![None; n]),
            changed: Condvar::new(),
        }
    }

    fn set(&self, index: usize, result: StageResult) {
        if let Ok(mut done) = self.done.lock() {
            if let Some(slot) = done.get_mut(index) {
                *slot = Some(result);
            }
        }
        self.changed.notify_all();
    }

    /// Waits for stage `index`; an error when it failed (its own error is reported once).
    pub fn wait(&self, index: usize) -> Result<Arc<StageOut>, Error> {
        let mut done = self
            .done
            .lock()
            .map_err(|_| Error::Invalid("a stage thread panicked".into()))?;
        loop {
            match done.get(index) {
                Some(Some(Ok(out))) => return Ok(out.clone()),
                Some(Some(Err(e))) => {
                    return Err(Error::Invalid(format!("stage {index} failed: {e}")))
                }
                Some(None) => {}
                None => return Err(Error::Invalid(format!("no stage {index}"))),
            }
            done = self
                .changed
                .wait(done)
                .map_err(|_| Error::Invalid("a stage thread panicked".into()))?;
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

    /// The stage a `--from` value or FROM names, if it is a stage before `before`.
    pub fn stage_index(&self, name: &str, before: usize) -> Option<usize> {
        let lower = name.to_ascii_lowercase();
        let by_name = self
            .dockerfile
            .stages
            .iter()
            .take(before)
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .map(|s| s.index);
        by_name.or_else(|| name.parse::<usize>().ok().filter(|i| *i < before))
    }

    /// Whether the cache may answer steps of this stage.
    pub fn cache_enabled(&self, stage: &tare_dockerfile::Stage) -> bool {
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
            if let Command::Copy(c) = &ins.command {
                if let Some(from) = &c.from {
                    if let Some(dep) = build.stage_index(from, i) {
                        todo.push(dep);
                    }
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
    let dockerfile = tare_dockerfile::evaluate(&ast, &opts.build_args, opts.target.as_deref())?;
    let warnings: Vec<String> = dockerfile
        .warnings
        .iter()
        .map(|w| match w.line {
            Some(l) => format!("{}:{l}: {}", opts.dockerfile_name, w.message),
            None => w.message.clone(),
        })
        .collect();
    for w in &warnings {
        reporter.report(SystemTime::now(), Event::Warning { message: w.clone() });
    }
    let build = Build {
        store,
        opts,
        reporter,
        context: ContextTree::open(&opts.context)?,
        cache: Cache::open(store)?,
        slots: Slots::new(dockerfile.stages.len()),
        dockerfile,
        counter: AtomicUsize::new(0),
    };
    let needed = needed_stages(&build);
    let target = build.dockerfile.target;
    let results: Vec<(usize, Result<Arc<StageOut>, Error>)> = std::thread::scope(|s| {
        let handles: Vec<_> = needed
            .iter()
            .map(|&i| {
                let build = &build;
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
                let r = h
                    .join()
                    .unwrap_or_else(|_| Err(Error::Invalid(format!("stage {i} panicked"))));
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
                let echo = matches!(&e, Error::Invalid(m) if m.starts_with("stage "));
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
    let out = out.ok_or_else(|| Error::Invalid("the target stage made no result".into()))?;
    commit(&build, &out, warnings)
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
    config.rootfs.diff_ids = out.layers.iter().map(|l| l.diff_id).collect();
    let history: Vec<serde_json::Value> = out
        .history_lines
        .iter()
        .map(|line| match line {
            Some(l) => json!({"file": build.opts.dockerfile_name, "line": l}),
            None => serde_json::Value::Null,
        })
        .collect();
    let build_info = json!({
        "dockerfile": build.opts.dockerfile_name,
        "context": build.context.root().display().to_string(),
        "base_layers": out.base_layers,
        "history": history,
    });
    let image =
        build
            .store
            .commit_image(&config, &out.layers, &build.opts.tags, Some(build_info))?;
    let base_size = tare_layer::layers_content_size(
        build.store,
        &out.layers[..out.base_layers.min(out.layers.len())],
    )?;
    let image_size = tare_layer::image_content_size(build.store, &image)?;
    Ok(BuildResult {
        image,
        base_layers: out.base_layers,
        base_size,
        image_size,
        steps: out.steps.clone(),
        warnings,
    })
}
