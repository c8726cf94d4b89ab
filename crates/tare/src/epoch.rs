//! `SOURCE_DATE_EPOCH` for the commands that write an image's `created`: `build`, `import`,
//! `commit`. `--source-date-epoch N` wins, then (build only) `--build-arg
//! SOURCE_DATE_EPOCH=N`, then the environment variable, as buildx propagates it.

use std::collections::BTreeMap;

use anyhow::Context as _;
use tare_build::epoch::{Epoch, SOURCE_DATE_EPOCH};

/// The epoch from the flag, else the environment; errors name where a bad value came from.
pub fn from_flag_or_env(flag: Option<&str>) -> anyhow::Result<Option<Epoch>> {
    if let Some(v) = flag {
        return Epoch::parse(v, "--source-date-epoch").context("--source-date-epoch");
    }
    match std::env::var(SOURCE_DATE_EPOCH) {
        Ok(v) => Epoch::parse(&v, "environment variable SOURCE_DATE_EPOCH")
            .context("reading SOURCE_DATE_EPOCH from the environment"),
        Err(_) => Ok(None),
    }
}

/// `created` for a new image: the epoch when there is one, else now.
pub fn created(flag: Option<&str>) -> anyhow::Result<String> {
    Ok(match from_flag_or_env(flag)? {
        Some(epoch) => epoch.rfc3339(),
        None => chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Puts the build's epoch into its build args (where tare-build reads it, and where a
/// Dockerfile's `ARG SOURCE_DATE_EPOCH` sees it): the flag over a `--build-arg`, a
/// `--build-arg` over the environment.
pub fn into_build_args(
    flag: Option<&str>,
    build_args: &mut BTreeMap<String, String>,
) -> anyhow::Result<()> {
    let epoch = match (flag, build_args.get(SOURCE_DATE_EPOCH)) {
        (None, Some(v)) => Epoch::parse(v, "--build-arg SOURCE_DATE_EPOCH")?,
        _ => from_flag_or_env(flag)?,
    };
    if let Some(epoch) = epoch {
        build_args.insert(SOURCE_DATE_EPOCH.to_string(), epoch.seconds().to_string());
    }
    Ok(())
}
