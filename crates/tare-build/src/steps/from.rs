//! FROM: the state a stage starts from, an image of the store (or a registry) or scratch.

use tare_registry::Platform;
use tare_store::config::ImageConfig;

use crate::context::{Build, StageOut};
use crate::contexts::NamedContext;
use crate::error::Error;
use crate::key::StepKey;
use crate::layer;
use crate::platform::set_config_platform;
use crate::report::TransferStep;
use std::path::PathBuf;
use std::sync::atomic::Ordering;

/// The image `name` as a stage state: the build context of that name if there is one
/// (`--build-context`), else the store's image, else the registry's ([`store_image`]).
pub(crate) fn image(
    build: &Build<'_>,
    name: &str,
    platform: Option<&Platform>,
) -> Result<StageOut, Error> {
    match lookup(build, name, platform)? {
        Some(Resolved::State(state)) => Ok(*state),
        Some(Resolved::Dir(path)) => Err(Error::FromDirectory {
            name: name.to_string(),
            path,
        }),
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
    let pull = TransferStep::new(build.reporter, format!("FROM {name}"), || {
        build.counter.fetch_add(1, Ordering::SeqCst) + 1
    });
    let image = match reference {
        Some(reference) => {
            tare_registry::pull(build.store, &reference, platform, &pull).map_err(base_err)?
        }
        // Like FROM in docker: the store first, then the registry.
        None => {
            tare_registry::resolve_or_pull(build.store, name, platform, &pull).map_err(base_err)?
        }
    };
    pull.finish(image.layers.iter().map(|l| l.size).sum());
    state_of(build, image)
}

/// Whether `name` is the ID (or an ID prefix) of a store image rather than a reference.
fn is_image_id(store: &tare_store::Store, name: &str) -> bool {
    let hex = name.strip_prefix("sha256:").unwrap_or(name);
    store
        .resolve(name)
        .is_ok_and(|image| image.id.hex().starts_with(hex))
}

/// An image of the store as a stage state: its snapshots extracted when missing.
pub(crate) fn state_of(build: &Build<'_>, image: tare_store::Image) -> Result<StageOut, Error> {
    let snapshots = image
        .layers
        .iter()
        .map(|l| layer::snapshot_of(build.store, &l.diff_id))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(StageOut {
        history_origins: vec![None; image.config.history.len()],
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
        history_origins: Vec::new(),
        created: None,
    })
}

impl Build<'_> {
    /// The directory of the build context `name`, when it is a directory one.
    pub(crate) fn named_dir(&self, name: &str) -> Option<PathBuf> {
        match self.opts.build_contexts.get(&name.to_ascii_lowercase()) {
            Some(NamedContext::Dir(path)) => Some(path.clone()),
            _ => None,
        }
    }
}

/// What a named context gives a step.
pub(crate) enum Resolved {
    /// An image's state (its layers, snapshots and config), as FROM of an image gives.
    State(Box<StageOut>),
    /// A directory's files.
    Dir(PathBuf),
}

/// The named context `name` (as FROM, `COPY --from` or `RUN --mount from=` write it), if the
/// build has one; images are resolved for `platform`.
pub(crate) fn lookup(
    build: &Build<'_>,
    name: &str,
    platform: Option<&Platform>,
) -> Result<Option<Resolved>, Error> {
    let Some(context) = build.opts.build_contexts.get(&name.to_ascii_lowercase()) else {
        return Ok(None);
    };
    Ok(Some(match context {
        NamedContext::Dir(path) => Resolved::Dir(path.clone()),
        NamedContext::Image(reference) => {
            Resolved::State(Box::new(store_image(build, reference, platform)?))
        }
        NamedContext::OciLayout { path, pick } => {
            let what = format!("oci-layout://{}", path.display());
            let image = tare_layer::layout::load_one(build.store, path, pick.as_deref(), &what)?;
            Resolved::State(Box::new(state_of(build, image)?))
        }
    }))
}
