//! FROM: the state a stage starts from, an image of the store (or a registry) or scratch.

use tare_registry::Platform;
use tare_store::config::ImageConfig;

use crate::context::{Build, StageOut};
use crate::contexts::{self, Resolved};
use crate::error::Error;
use crate::key::StepKey;
use crate::layer;
use crate::platform::set_config_platform;
use crate::report::{Event, StepId, Stream};
use std::sync::atomic::Ordering;

/// The image `name` as a stage state: the build context of that name if there is one
/// (`--build-context`), else the store's image, else the registry's ([`store_image`]).
pub(crate) fn image(
    build: &Build<'_>,
    name: &str,
    platform: Option<&Platform>,
) -> Result<StageOut, Error> {
    match contexts::lookup(build, name, platform)? {
        Some(Resolved::State(state)) => Ok(*state),
        Some(Resolved::Dir(path)) => Err(Error::Invalid(format!(
            "build context {name:?} is a directory ({}): FROM needs an image \
             (docker-image:// or oci-layout://); use the directory with COPY --from",
            path.display()
        ))),
        None => store_image(build, name, platform),
    }
}

/// The image `name` from the store, as a stage state; with a `platform`, the store's image
/// only if it is of that platform, else the registry's image for it.
pub(crate) fn store_image(
    build: &Build<'_>,
    name: &str,
    platform: Option<&Platform>,
) -> Result<StageOut, Error> {
    let base_err = |source| Error::BaseImage {
        name: name.to_string(),
        source: Box::new(source),
    };
    // `--pull`: a reference is always asked of its registry (the store keeps the layers it
    // already has); an image ID names nothing there and stays the store's.
    let reference = tare_store::Reference::parse(name)
        .ok()
        .filter(|_| build.opts.pull && !is_image_id(build.store, name));
    let pull = PullReporter::new(build, name);
    let image = match reference {
        Some(reference) => {
            tare_registry::pull(build.store, &reference, platform, &pull).map_err(base_err)?
        }
        // Like FROM in docker: the store first, then the registry.
        None => {
            tare_registry::resolve_or_pull(build.store, name, platform, &pull).map_err(base_err)?
        }
    };
    pull.finish(&image);
    state_of(build, image)
}

/// Whether `name` is the ID (or an ID prefix) of a store image rather than a reference.
fn is_image_id(store: &tare_store::Store, name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    store
        .resolve(name)
        .is_ok_and(|image| image.id.hex().starts_with(hex))
}

/// The registry's events of a FROM that pulls, as build events under a step of their own
/// (`#N FROM name`), started by the first event: an image already stored makes no step.
struct PullReporter<'a> {
    build: &'a Build<'a>,
    name: &'a str,
    step: std::cell::OnceCell<(StepId, std::time::Instant)>,
}

impl<'a> PullReporter<'a> {
    fn new(build: &'a Build<'a>, name: &'a str) -> Self {
        PullReporter {
            build,
            name,
            step: std::cell::OnceCell::new(),
        }
    }

    fn step(&self) -> &StepId {
        &self
            .step
            .get_or_init(|| {
                let step = StepId {
                    number: self.build.counter.fetch_add(1, Ordering::SeqCst) + 1,
                    stage: String::new(),
                    index: 0,
                    total: 0,
                };
                self.build.report(Event::Started {
                    step: step.clone(),
                    text: format!("FROM {}", self.name),
                });
                (step, std::time::Instant::now())
            })
            .0
    }

    fn log(&self, line: String) {
        let step = self.step().clone();
        self.build.report(Event::Log {
            step,
            stream: Stream::Stdout,
            line,
        });
    }

    fn transfer(&self, digest: &tare_store::Digest, done: u64, total: u64) {
        let step = self.step().clone();
        self.build.report(Event::Transfer {
            step,
            blob: digest.to_string().chars().take(19).collect(),
            done,
            total,
        });
    }

    /// Ends the step, if the pull made one.
    fn finish(&self, image: &tare_store::Image) {
        if let Some((step, started)) = self.step.get() {
            let image_size = image.layers.iter().map(|l| l.size).sum();
            self.build.report(Event::Finished {
                step: step.clone(),
                layer_size: None,
                image_size,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
}

impl tare_registry::Reporter for PullReporter<'_> {
    fn report(&self, event: tare_registry::Event) {
        use tare_registry::Event as E;
        match event {
            E::Resolved {
                reference, digest, ..
            } => self.log(format!("resolve {reference} to {digest}")),
            E::BlobStarted { digest, size, .. } => self.transfer(&digest, 0, size),
            E::BlobProgress {
                digest,
                done,
                total,
            } => self.transfer(&digest, done, total),
            E::BlobDone { digest, size, .. } => self.transfer(&digest, size, size),
            E::Retrying {
                what,
                attempt,
                error,
            } => self.log(format!(
                "{what}: retrying (attempt {attempt}) after: {error}"
            )),
            E::BlobSkipped { .. } | E::Pushed { .. } => {}
        }
    }
}

/// An image of the store as a stage state: its snapshots extracted when missing.
pub(crate) fn state_of(build: &Build<'_>, image: tare_store::Image) -> Result<StageOut, Error> {
    let snapshots = image
        .layers
        .iter()
        .map(|l| layer::snapshot_of(build.store, &l.diff_id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StageOut {
        history_lines: vec![None; image.config.history.len()],
        created: image.config.created.clone(),
        base_layers: image.layers.len(),
        key: StepKey::Image {
            id: image.id.to_string(),
        }
        .digest()?,
        config: image.config,
        layers: image.layers,
        snapshots,
        steps: Vec::new(),
    })
}

/// BuildKit's empty image: `/` as working directory (PATH is added for every stage), of the
/// stage's platform (default: this machine's).
pub(crate) fn scratch(platform: Option<&Platform>) -> Result<StageOut, Error> {
    let mut config = ImageConfig::new_for_host();
    if let Some(p) = platform {
        set_config_platform(&mut config, p);
    }
    config.config.working_dir = Some("/".to_string());
    Ok(StageOut {
        config,
        layers: Vec::new(),
        snapshots: Vec::new(),
        key: StepKey::Scratch.digest()?,
        base_layers: 0,
        steps: Vec::new(),
        history_lines: Vec::new(),
        created: None,
    })
}
