//! FROM: the state a stage starts from, an image of the store (or a registry) or scratch.

use tare_registry::Platform;
use tare_store::config::ImageConfig;

use crate::context::{Build, StageOut};
use crate::error::Error;
use crate::key::StepKey;
use crate::layer;
use crate::platform::set_config_platform;

/// The image `name` from the store, as a stage state; with a `platform`, the store's image
/// only if it is of that platform, else the registry's image for it.
pub(crate) fn image(
    build: &Build<'_>,
    name: &str,
    platform: Option<&Platform>,
) -> Result<StageOut, Error> {
    // Like FROM in docker: the store first, then the registry.
    let image =
        tare_registry::resolve_or_pull(build.store, name, platform, &tare_registry::NoReporter)
            .map_err(|source| Error::BaseImage {
                name: name.to_string(),
                source: Box::new(source),
            })?;
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
